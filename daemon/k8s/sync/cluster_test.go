package sync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/loop-dev/loop/daemon/k8s/render"
)

// testCluster connects to the test control plane (make test-cluster). Without KUBECONFIG
// it falls back to the kubeconfig that scripts/test-cluster.sh writes; no cluster is a failure.
func testCluster(t *testing.T) (*Syncer, string) {
	t.Helper()
	if os.Getenv("KUBECONFIG") == "" {
		def := "/tmp/loop-test-cluster/kubeconfig"
		if _, err := os.Stat(def); err != nil {
			t.Fatalf("no test cluster: KUBECONFIG is unset and %s is missing; run make test-cluster (make test does)", def)
		}
		t.Setenv("KUBECONFIG", def)
	}
	c, err := Connect("", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSyncer(c)
	if err != nil {
		t.Fatal(err)
	}
	s.PollInterval = 100 * time.Millisecond
	ns := fmt.Sprintf("loop-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), rand.IntN(1e6))
	if len(ns) > 63 {
		ns = ns[len(ns)-63:]
	}
	nsRes := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	nsObj := obj("v1", "Namespace", "", ns, nil)
	if _, err := nsRes.Create(context.Background(), nsObj, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// Pods need the namespace's default ServiceAccount; kube-controller-manager makes it
	// too, but creating it here spares the wait.
	sa := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(ns)
	if _, err := sa.Create(context.Background(), obj("v1", "ServiceAccount", ns, "default", nil), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return s, ns
}

// event is one change the API server reported, ordered by resourceVersion (etcd's global revision).
type event struct {
	rv   int64
	typ  watch.EventType
	kind string
	name string
	obj  *unstructured.Unstructured
}

// recorder watches kinds in a namespace so tests see the order in which the server stored things.
type recorder struct {
	stop   context.CancelFunc
	done   chan struct{}
	events chan event
}

func record(t *testing.T, s *Syncer, ns string, gvrs ...schema.GroupVersionResource) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{stop: cancel, done: make(chan struct{}), events: make(chan event, 10000)}
	var ws []watch.Interface
	for _, gvr := range gvrs {
		w, err := s.cluster.Dynamic.Resource(gvr).Namespace(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	// One goroutine per watch; all end when ctx is cancelled (stopAll waits for them).
	finished := make(chan struct{}, len(ws))
	for _, w := range ws {
		go func() {
			defer func() { finished <- struct{}{} }()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case e, ok := <-w.ResultChan():
					if !ok {
						return
					}
					u, ok := e.Object.(*unstructured.Unstructured)
					if !ok {
						continue
					}
					rv, _ := strconv.ParseInt(u.GetResourceVersion(), 10, 64)
					r.events <- event{rv: rv, typ: e.Type, kind: u.GetKind(), name: u.GetName(), obj: u}
				}
			}
		}()
	}
	go func() {
		for range ws {
			<-finished
		}
		close(r.done)
	}()
	t.Cleanup(func() { r.stop(); <-r.done })
	return r
}

// stopAll ends the watches after letting in-flight events arrive and returns them by resourceVersion.
func (r *recorder) stopAll() []event {
	time.Sleep(500 * time.Millisecond)
	r.stop()
	<-r.done
	close(r.events)
	var out []event
	for e := range r.events {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rv < out[j].rv })
	return out
}

var (
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrJob        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func added(events []event) []string {
	var out []string
	for _, e := range events {
		if e.typ == watch.Added {
			out = append(out, e.kind+"/"+e.name)
		}
	}
	return out
}

func parse(t *testing.T, y string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

const jobTmpl = `apiVersion: batch/v1
kind: Job
metadata:
  %s
  annotations: {%s}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: ["true"]}]
`

const appTmpl = `apiVersion: v1
kind: ConfigMap
metadata: {name: config, annotations: {argocd.argoproj.io/sync-wave: "-1"}}
data: {k: v}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: example/web}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: after-web, annotations: {argocd.argoproj.io/sync-wave: "1"}}
---
` + jobTmpl + "---\n" + jobTmpl

// TestSyncOrderAndHooks is Argo CD's hook and wave example on the real control plane,
// once with Argo CD's annotations and once with Helm's.
func TestSyncOrderAndHooks(t *testing.T) {
	cases := map[string]string{
		"argocd": fmt.Sprintf(appTmpl,
			"name: migrate", `argocd.argoproj.io/hook: PreSync, argocd.argoproj.io/hook-delete-policy: HookSucceeded`,
			"generateName: smoke-", `argocd.argoproj.io/hook: PostSync`),
		"helm": fmt.Sprintf(appTmpl,
			"name: migrate", `helm.sh/hook: pre-install, helm.sh/hook-delete-policy: hook-succeeded`,
			"generateName: smoke-", `helm.sh/hook: post-install`),
	}
	for name, manifest := range cases {
		t.Run(name, func(t *testing.T) {
			s, ns := testCluster(t)
			rec := record(t, s, ns, gvrConfigMap, gvrService, gvrJob, gvrDeployment)
			s.Now = func() time.Time { return time.Unix(1700000000, 0) }
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := s.Sync(ctx, parse(t, manifest), Options{App: "shop", Namespace: ns, Revision: "abcdef123456"})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Succeeded {
				t.Fatalf("sync failed: %s (steps %v)", res.Message, res.Steps)
			}
			events := rec.stopAll()
			smoke := "smoke-abcdef1-postsync-1700000000"
			want := []string{"Job/migrate", "ConfigMap/config", "Service/web", "Deployment/web", "ConfigMap/after-web", "Job/" + smoke}
			var got []string
			for _, a := range added(events) {
				if !strings.HasPrefix(a, "ConfigMap/kube-root-ca") {
					got = append(got, a)
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("objects created in order %v, want %v", got, want)
			}
			// Wave 1 started only once the Deployment was healthy, and the PostSync hook
			// only once the PreSync Job had completed.
			assertHealthyBefore(t, events, "Deployment", "web", "ConfigMap", "after-web")
			assertHealthyBefore(t, events, "Job", "migrate", "ConfigMap", "config")
			// HookSucceeded deleted migrate; BeforeHookCreation (default) keeps smoke.
			deleted := map[string]bool{}
			for _, e := range events {
				if e.typ == watch.Deleted {
					deleted[e.kind+"/"+e.name] = true
				}
			}
			if !deleted["Job/migrate"] || deleted["Job/"+smoke] {
				t.Errorf("deleted %v, want Job/migrate deleted and Job/%s kept", deleted, smoke)
			}
			live, err := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "config", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := live.GetAnnotations()[AnnTrackingID]; got != "shop:/ConfigMap:"+ns+"/config" {
				t.Errorf("tracking id = %q", got)
			}
			if !slices.ContainsFunc(live.GetManagedFields(), func(m metav1.ManagedFieldsEntry) bool {
				return m.Manager == FieldManager && m.Operation == metav1.ManagedFieldsOperationApply
			}) {
				t.Errorf("config is not server-side applied by %q: %v", FieldManager, live.GetManagedFields())
			}
		})
	}
}

// assertHealthyBefore checks that kind/name was seen healthy before next/nextName was created.
func assertHealthyBefore(t *testing.T, events []event, kind, name, nextKind, nextName string) {
	t.Helper()
	var healthyAt, createdAt int64 = -1, -1
	for _, e := range events {
		if e.kind == kind && e.name == name && healthyAt < 0 {
			if h, ok := Assess(e.obj); ok && h.Status == Healthy {
				healthyAt = e.rv
			}
		}
		if e.kind == nextKind && e.name == nextName && e.typ == watch.Added {
			createdAt = e.rv
		}
	}
	if healthyAt < 0 || createdAt < 0 || healthyAt > createdAt {
		t.Errorf("%s/%s healthy at rv %d, %s/%s created at rv %d: want healthy first", kind, name, healthyAt, nextKind, nextName, createdAt)
	}
}

func TestDriftHealAndPrune(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := parse(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: a}
data: {k: desired}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: keep, annotations: {argocd.argoproj.io/sync-options: Prune=false}}
`)
	opts := Options{App: "drift", Namespace: ns, Prune: true}
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	status := func() map[string]SyncStatus {
		sts, err := s.Compare(ctx, objs, opts)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]SyncStatus{}
		for _, st := range sts {
			m[st.Key] = st.Status
		}
		return m
	}
	keyA := "/ConfigMap/" + ns + "/a"
	if st := status(); st[keyA] != Synced || len(st) != 3 {
		t.Fatalf("after sync: %v, want all Synced", st)
	}
	// Someone edits a behind loop's back.
	cms := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns)
	live, err := cms.Get(ctx, "a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(live.Object, "edited", "data", "k")
	if _, err := cms.Update(ctx, live, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	if st := status(); st[keyA] != OutOfSync {
		t.Fatalf("after the edit: %v, want a OutOfSync", st)
	}
	// Heal: sync again.
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("heal: %v %+v", err, res)
	}
	if st := status(); st[keyA] != Synced {
		t.Fatalf("after heal: %v, want a Synced", st)
	}
	// b and keep are removed from the tree: b is pruned, keep has Prune=false.
	res, err := s.Sync(ctx, objs[:1], opts)
	if err != nil || !res.Succeeded {
		t.Fatalf("prune sync: %v %+v", err, res)
	}
	if _, err := cms.Get(ctx, "b", metav1.GetOptions{}); err == nil {
		t.Error("b was not pruned")
	}
	if _, err := cms.Get(ctx, "keep", metav1.GetOptions{}); err != nil {
		t.Errorf("keep (Prune=false) was pruned: %v", err)
	}
	if !slices.ContainsFunc(res.Steps, func(s Step) bool { return s.Action == "prune" && strings.HasSuffix(s.Key, "/b") }) {
		t.Errorf("steps %v lack the prune of b", res.Steps)
	}
	// loop down deletes what is left.
	deleted, err := s.Down(ctx, "drift")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if want := []string{keyA, "/ConfigMap/" + ns + "/keep"}; !slices.Equal(deleted, want) {
		t.Errorf("down deleted %v, want %v", deleted, want)
	}
}
