package argosync

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// connect connects to the test control plane (make test-cluster). Without KUBECONFIG it
// falls back to the kubeconfig that scripts/test-cluster.sh writes; no cluster is a failure.
func connect(t *testing.T) *Syncer {
	t.Helper()
	testenv.UseTestCluster(t)
	c, err := Connect("", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSyncer(c)
	if err != nil {
		t.Fatal(err)
	}
	s.PollInterval = 100 * time.Millisecond
	return s
}

// testNamespace picks a namespace name for the test and deletes the namespace when the test
// ends; create makes it now (else the sync under test is to create it).
func testNamespace(t *testing.T, s *Syncer, create bool) string {
	t.Helper()
	ns := fmt.Sprintf("loop-%s-%d", strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")), rand.IntN(1e6))
	if len(ns) > 63 {
		ns = ns[len(ns)-63:]
	}
	ns = strings.TrimLeft(ns, "-")
	nsRes := s.cluster.Dynamic.Resource(gvrNamespace)
	t.Cleanup(func() { _ = nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	if !create {
		return ns
	}
	if _, err := nsRes.Create(context.Background(), obj("v1", "Namespace", "", ns, nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Pods need the namespace's default ServiceAccount; kube-controller-manager makes it
	// too, but creating it here spares the wait.
	sa := s.cluster.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "serviceaccounts"}).Namespace(ns)
	if _, err := sa.Create(context.Background(), obj("v1", "ServiceAccount", ns, "default", nil), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	return ns
}

// testCluster connects and makes a namespace for the test.
func testCluster(t *testing.T) (*Syncer, string) {
	t.Helper()
	s := connect(t)
	return s, testNamespace(t, s, true)
}

var (
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrNamespace  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrPod        = schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	gvrJob        = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrReplicaSet = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "replicasets"}
	gvrEndpoints  = schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}
	gvrSlices     = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrCRD        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

func parse(t *testing.T, y string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := render.Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return objs
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
	// Pruned with foreground propagation, as Argo CD: b may be still going.
	if live, err := cms.Get(ctx, "b", metav1.GetOptions{}); err == nil && live.GetDeletionTimestamp() == nil {
		t.Error("b was not pruned")
	}
	if _, err := cms.Get(ctx, "keep", metav1.GetOptions{}); err != nil {
		t.Errorf("keep (Prune=false) was pruned: %v", err)
	}
	if !slices.ContainsFunc(res.Steps, func(s Step) bool { return s.Action == "prune" && strings.HasSuffix(s.Key, "/b") }) {
		t.Errorf("steps %v lack the prune of b", res.Steps)
	}
	// loop down deletes what is left.
	deleted, err := s.Down(ctx, "drift", model.ArgoSync{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if want := []string{keyA, "/ConfigMap/" + ns + "/keep"}; !slices.Equal(deleted, want) {
		t.Errorf("down deleted %v, want %v", deleted, want)
	}
}

const (
	testRev   = "abcdef123456"
	testStart = 1700000000
)

// orderCase is one fixture of TestSyncOrderAndHooks. Object names are written
// "Kind/name"; {ns} stands for the test's namespace and {T} for the sync's start (Unix
// seconds), which names generateName hooks.
type orderCase struct {
	name   string
	render func(t *testing.T, ns string) []*unstructured.Unstructured
	// ownNamespace: the fixture brings its Namespace, so the sync creates it.
	ownNamespace bool
	// want is the order of applies and hook runs, "Phase/wave Kind/name"; a trailing *
	// stands for the rest of a name (Kustomize's hashed ConfigMap names).
	want []string
	// deleted are hooks that must be gone after the sync (HookSucceeded); kept those that
	// must stay (BeforeHookCreation); never objects that must not be created at all.
	deleted, kept, never []string
	// resync syncs a second time, 100 s later, to see BeforeHookCreation at work.
	resync bool
	check  func(t *testing.T, s *Syncer, ns string)
}

func renderDir(name string) func(t *testing.T, ns string) []*unstructured.Unstructured {
	return func(t *testing.T, ns string) []*unstructured.Unstructured {
		objs, err := render.Directory(filepath.Join("testdata", name), render.DirectoryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
}

// TestSyncOrderAndHooks syncs one fixture of each Argo CD example shape on the real
// control plane, watching from before the sync, and checks what the API server saw:
// objects created in Argo CD's order (phase, wave, kind, name; Namespaces and CRDs pulled
// ahead), each phase/wave started only once the previous one was healthy, hooks run and
// deleted per their policies, generateName hooks named as gitops-engine names them.
func TestSyncOrderAndHooks(t *testing.T) {
	cases := []orderCase{{
		name: "directory",
		render: func(t *testing.T, ns string) []*unstructured.Unstructured {
			objs := renderDir("guestbook")(t, ns)
			for _, o := range objs { // the destination namespace, as an Application would set it
				if o.GetKind() == "Namespace" && o.GetName() == "guestbook" {
					o.SetName(ns)
				}
				if o.GetNamespace() == "guestbook" {
					o.SetNamespace(ns)
				}
			}
			return objs
		},
		ownNamespace: true,
		want: []string{
			"Sync/-1 Namespace/{ns}",
			"Sync/-1 CustomResourceDefinition/widgets.fixtures.loop.dev",
			"Sync/-1 Widget/banner",
			"Sync/0 Service/guestbook-ui",
			"Sync/0 Deployment/guestbook-ui",
		},
		check: func(t *testing.T, s *Syncer, ns string) {
			w := schema.GroupVersionResource{Group: "fixtures.loop.dev", Version: "v1", Resource: "widgets"}
			live, err := s.cluster.Dynamic.Resource(w).Namespace(ns).Get(context.Background(), "banner", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := str(live, "spec", "text"); got != "welcome" {
				t.Errorf("widget spec.text = %q", got)
			}
		},
	}, {
		name: "kustomize",
		render: func(t *testing.T, ns string) []*unstructured.Unstructured {
			objs, err := render.Kustomize("testdata/kustomize-guestbook/overlays/staging", render.KustomizeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return objs
		},
		want: []string{
			"Sync/-1 ConfigMap/staging-ui-config-*",
			"Sync/0 Service/staging-guestbook-ui",
			"Sync/0 Deployment/staging-guestbook-ui",
		},
		check: func(t *testing.T, s *Syncer, ns string) {
			ctx := context.Background()
			d, err := s.cluster.Dynamic.Resource(gvrDeployment).Namespace(ns).Get(ctx, "staging-guestbook-ui", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r := num(d, "spec", "replicas"); r != 2 {
				t.Errorf("replicas = %d, want 2 from the overlay's patch", r)
			}
			// The generated ConfigMap's name reference was rewritten to its prefixed, hashed name.
			c := slice(d, "spec", "template", "spec", "containers")[0].(map[string]any)
			ref, _, _ := unstructured.NestedString(c["envFrom"].([]any)[0].(map[string]any), "configMapRef", "name")
			cm, err := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns).Get(ctx, ref, metav1.GetOptions{})
			if err != nil || !strings.HasPrefix(ref, "staging-ui-config-") {
				t.Fatalf("envFrom names %q: %v", ref, err)
			}
			if g := str(cm, "data", "GREETING"); g != "hello-staging" {
				t.Errorf("GREETING = %q, want the overlay's merge", g)
			}
		},
	}, {
		name:   "pre-post-sync",
		render: renderDir("pre-post-sync"),
		want: []string{
			"PreSync/0 Job/before",
			"Sync/0 Service/guestbook-ui",
			"Sync/0 Deployment/guestbook-ui",
			"PostSync/0 Job/after",
			"PostSync/0 Job/report",
		},
		deleted: []string{"Job/before", "Job/after"},
		kept:    []string{"Job/report"},
		resync:  true,
	}, {
		name:   "sync-waves",
		render: renderDir("sync-waves"),
		want: []string{
			"PreSync/0 Job/upgrade-sql-schema-abcdef1-presync-{T}",
			"Sync/-3 Job/maint-page-up-abcdef1-sync-{T}",
			"Sync/-2 ConfigMap/settings",
			"Sync/-1 Service/backend",
			"Sync/-1 Deployment/backend",
			"Sync/0 Job/db-init",
			"Sync/1 ConfigMap/z-frontend-config",
			"Sync/1 Service/frontend",
			"Sync/1 Deployment/frontend",
			"PostSync/0 Job/maint-page-down-abcdef1-postsync-{T}",
			"PostSync/0 Job/smoke-abcdef1-postsync-{T}",
		},
		deleted: []string{"Job/upgrade-sql-schema-abcdef1-presync-{T}", "Job/maint-page-down-abcdef1-postsync-{T}"},
		kept:    []string{"Job/maint-page-up-abcdef1-sync-{T}", "Job/smoke-abcdef1-postsync-{T}"},
		resync:  true,
	}, {
		name:   "helm-hooks",
		render: renderDir("helm-hooks"),
		want: []string{
			"PreSync/-2 Job/upgrade-sql-schema",
			"PreSync/1 Job/seed-data",
			"Sync/0 Service/guestbook-ui",
			"Sync/0 Deployment/guestbook-ui",
			"PostSync/-1 Job/notify",
			"PostSync/0 Job/smoke-abcdef1-postsync-{T}",
		},
		deleted: []string{"Job/upgrade-sql-schema", "Job/notify"},
		kept:    []string{"Job/seed-data", "Job/smoke-abcdef1-postsync-{T}"},
		never:   []string{"Pod/test-connection"},
		resync:  true,
	}, {
		name: "helm-chart",
		render: func(t *testing.T, ns string) []*unstructured.Unstructured {
			objs, err := render.Helm(context.Background(), render.HelmOptions{Chart: "testdata/helm-guestbook",
				ReleaseName: "gb", Namespace: ns, ValueFiles: []string{"values-staging.yaml", "values-local.yaml"}})
			if err != nil {
				t.Fatal(err)
			}
			return objs
		},
		want: []string{
			"PreSync/-5 Job/gb-helm-guestbook-migrate",
			"Sync/-1 ConfigMap/gb-helm-guestbook-config",
			"Sync/0 Service/gb-helm-guestbook",
			"Sync/0 Deployment/gb-helm-guestbook",
		},
		deleted: []string{"Job/gb-helm-guestbook-migrate"},
		check: func(t *testing.T, s *Syncer, ns string) {
			ctx := context.Background()
			d, err := s.cluster.Dynamic.Resource(gvrDeployment).Namespace(ns).Get(ctx, "gb-helm-guestbook", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c := slice(d, "spec", "template", "spec", "containers")[0].(map[string]any)
			if r, img := num(d, "spec", "replicas"), c["image"]; r != 2 || img != "example.com/guestbook-ui:local" {
				t.Errorf("replicas %d image %v, want 2 (values-staging.yaml) and tag local (values-local.yaml)", r, img)
			}
			svc, err := s.cluster.Dynamic.Resource(gvrService).Namespace(ns).Get(ctx, "gb-helm-guestbook", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p := slice(svc, "spec", "ports")[0].(map[string]any)["port"]; p != int64(8080) {
				t.Errorf("service port %v, want 8080 from values-local.yaml", p)
			}
			cm, err := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "gb-helm-guestbook-config", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if g := str(cm, "data", "GREETING"); g != "hello-staging" {
				t.Errorf("GREETING = %q, want hello-staging", g)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runOrderCase(t, c)
		})
	}
}

func runOrderCase(t *testing.T, c orderCase) {
	s := connect(t)
	ns := testNamespace(t, s, !c.ownNamespace)
	objs := c.render(t, ns)
	for _, o := range objs {
		if isCRD(o) {
			cleanCRD(t, s, o.GetName())
		}
	}
	rec := startRecorder(t, s.cluster.Dynamic, targetsFor(t, s, objs, ns)...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	opts := Options{App: "fixture", Namespace: ns, Revision: testRev, WaveTimeout: time.Minute}

	start := int64(testStart)
	s.Now = func() time.Time { return time.Unix(start, 0) }
	began := time.Now()
	res, err := s.Sync(ctx, objs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Succeeded {
		t.Fatalf("sync failed: %s (steps %v)", res.Message, res.Steps)
	}
	t.Logf("sync took %v", time.Since(began).Round(time.Millisecond))
	rec.catchUp(t, 30*time.Second)
	events := rec.all()
	checkSync(t, s, c, ns, res, events, start, false)
	if c.check != nil {
		c.check(t, s, ns)
	}
	if !c.resync {
		return
	}

	// Sync again 100 s later: hooks run again; a named BeforeHookCreation hook is deleted
	// and made anew, a generateName one gets a new name and the old one stays.
	mark := events[len(events)-1].rv
	before := map[string]types.UID{}
	for _, k := range expand(c.kept, ns, start) {
		before[k] = liveUID(t, s, ns, k)
	}
	start += 100
	res, err = s.Sync(ctx, objs, opts)
	if err != nil || !res.Succeeded {
		t.Fatalf("re-sync: %v %+v", err, res)
	}
	rec.catchUp(t, 30*time.Second)
	var later []event
	for _, e := range rec.all() {
		if e.rv > mark {
			later = append(later, e)
		}
	}
	checkSync(t, s, c, ns, res, later, start, true)
	for k, uid := range before {
		now := liveUID(t, s, ns, k)
		replaced := slices.ContainsFunc(res.Steps, func(st Step) bool { return st.Action == "hook" && kindName(st.Key) == k })
		switch {
		case replaced && now == uid:
			t.Errorf("%s was not replaced on re-sync", k)
		case replaced:
			del := slices.IndexFunc(later, func(e event) bool { return e.typ == watch.Deleted && e.obj.GetUID() == uid })
			add := slices.IndexFunc(later, func(e event) bool { return e.typ == watch.Added && e.obj.GetUID() == now })
			if del < 0 || add < 0 || del > add {
				t.Errorf("%s: old one deleted at event %d, new one created at %d: want deleted first", k, del, add)
			}
			i := slices.IndexFunc(res.Steps, func(st Step) bool { return st.Action == "delete-hook" && kindName(st.Key) == k })
			j := slices.IndexFunc(res.Steps, func(st Step) bool { return st.Action == "hook" && kindName(st.Key) == k })
			if i < 0 || i > j {
				t.Errorf("%s: steps %v lack its delete-hook before the hook", k, res.Steps)
			}
		case now != uid:
			t.Errorf("%s of the first sync was deleted (a generateName hook of the next sync has another name)", k)
		}
	}
}

// checkSync checks one sync's steps and the events the API server reported during it.
// On a re-sync only hooks are created (the rest is unchanged), so creation order and wave
// gating are checked among them.
func checkSync(t *testing.T, s *Syncer, c orderCase, ns string, res *Result, events []event, start int64, resync bool) {
	t.Helper()
	var ran []Step // applies and hook runs, in order
	for _, st := range res.Steps {
		if st.Action == "apply" || st.Action == "hook" {
			ran = append(ran, st)
		}
	}
	got := make([]string, len(ran))
	for i, st := range ran {
		got[i] = fmt.Sprintf("%s/%d %s", st.Phase, st.Wave, kindName(st.Key))
	}
	if want := expand(c.want, ns, start); !matchAll(got, want) {
		t.Fatalf("applied and ran\n%q\nwant\n%q", got, want)
	}

	// What the server created, in its order: the first ADDED of each object the sync
	// applied. Kinds that a CRD of this sync defines could not be watched before it; an
	// object of such a kind that was never changed after its creation still carries the
	// resourceVersion it was created at.
	created := map[string]event{}
	for _, e := range events {
		if _, dup := created[e.kindName()]; e.typ == watch.Added && !dup {
			created[e.kindName()] = e
		}
	}
	var order []Step
	for _, st := range ran {
		k := kindName(st.Key)
		if _, ok := created[k]; !ok && !resync {
			if e, ok := lateCreated(t, s, st.Key); ok {
				created[k] = e
			}
		}
		if _, ok := created[k]; ok {
			order = append(order, st)
		} else if !resync || st.Action == "hook" {
			t.Fatalf("no creation of %s was seen", k)
		}
	}
	seen := slices.Clone(order)
	slices.SortStableFunc(seen, func(a, b Step) int { return int(created[kindName(a.Key)].rv - created[kindName(b.Key)].rv) })
	if !slices.Equal(seen, order) {
		t.Errorf("the API server saw creations in order\n%v\nwant the sync's order\n%v", stepNames(seen), stepNames(order))
	}

	// Each phase/wave starts only once everything before it that has a health is Healthy;
	// a hook is Healthy when it has run to completion.
	for i := 1; i < len(order); i++ {
		prev, next := order[i-1], order[i]
		if prev.Phase == next.Phase && prev.Wave == next.Wave {
			continue
		}
		startedAt := created[kindName(next.Key)].rv
		for _, p := range order[:i] {
			if p.Phase != prev.Phase || p.Wave != prev.Wave {
				continue
			}
			first := created[kindName(p.Key)]
			if _, has := Assess(first.obj); !has {
				continue
			}
			at := healthyAt(events, first.obj.GetUID())
			if at < 0 || at > startedAt {
				t.Errorf("%s/%d began (%s created at rv %d) before %s was Healthy (rv %d)",
					next.Phase, next.Wave, kindName(next.Key), startedAt, kindName(p.Key), at)
			}
		}
	}

	// Hook delete policies, applied once the sync succeeded.
	last := int64(0)
	for _, e := range created {
		last = max(last, e.rv)
	}
	for _, k := range expand(c.deleted, ns, start) {
		e, ok := created[k]
		if !ok {
			t.Errorf("%s was never created", k)
			continue
		}
		uid := e.obj.GetUID()
		i := slices.IndexFunc(events, func(e event) bool { return e.typ == watch.Deleted && e.obj.GetUID() == uid })
		if i < 0 || events[i].rv < last {
			t.Errorf("%s (HookSucceeded) was not deleted after the sync", k)
		}
		if liveUID(t, s, ns, k) != "" {
			t.Errorf("%s (HookSucceeded) is still there", k)
		}
		if !slices.ContainsFunc(res.Steps, func(st Step) bool { return st.Action == "delete-hook" && kindName(st.Key) == k }) {
			t.Errorf("steps %v lack the delete-hook of %s", res.Steps, k)
		}
	}
	for _, k := range expand(c.kept, ns, start) {
		if liveUID(t, s, ns, k) == "" {
			t.Errorf("%s (BeforeHookCreation) is gone after the sync", k)
		}
	}
	for _, k := range c.never {
		if slices.ContainsFunc(events, func(e event) bool { return e.kindName() == k }) || liveUID(t, s, ns, k) != "" {
			t.Errorf("%s was created", k)
		}
	}
}

// healthyAt is the resourceVersion at which the object with uid was first seen Healthy, or -1.
func healthyAt(events []event, uid types.UID) int64 {
	for _, e := range events {
		if e.obj.GetUID() != uid || e.typ == watch.Deleted {
			continue
		}
		if h, _ := Assess(e.obj); h.Status == Healthy {
			return e.rv
		}
	}
	return -1
}

// lateCreated reads the creation of an object whose kind could not be watched before the
// sync: its resourceVersion, if it was never changed after creation.
func lateCreated(t *testing.T, s *Syncer, key string) (event, bool) {
	t.Helper()
	parts := strings.Split(key, "/")
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: parts[0], Kind: parts[1]})
	m, err := s.mapper.RESTMapping(o.GroupVersionKind().GroupKind())
	if err != nil {
		return event{}, false
	}
	live, err := s.cluster.Dynamic.Resource(m.Resource).Namespace(parts[2]).Get(context.Background(), parts[3], metav1.GetOptions{})
	if err != nil || live.GetGeneration() != 1 || len(live.GetManagedFields()) != 1 {
		t.Fatalf("%s: %v (generation %d, managedFields %d): cannot tell when it was created", key, err, live.GetGeneration(), len(live.GetManagedFields()))
	}
	rv, _ := strconv.ParseInt(live.GetResourceVersion(), 10, 64)
	return event{rv: rv, typ: watch.Added, obj: live}, true
}

// targetsFor is what to watch for objs: each namespaced type in ns, each cluster-scoped
// object by name, and Jobs and Pods. Kinds the server does not serve yet are left out.
func targetsFor(t *testing.T, s *Syncer, objs []*unstructured.Unstructured, ns string) []target {
	t.Helper()
	seen := map[target]bool{{gvr: gvrJob, namespace: ns}: true, {gvr: gvrPod, namespace: ns}: true}
	for _, o := range objs {
		m, err := s.mapping(o.GroupVersionKind())
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		tg := target{gvr: m.Resource, namespace: ns}
		if m.Scope.Name() != meta.RESTScopeNameNamespace {
			tg = target{gvr: m.Resource, name: o.GetName()}
		}
		seen[tg] = true
	}
	var out []target
	for tg := range seen {
		out = append(out, tg)
	}
	return out
}

// cleanCRD waits out a CRD left terminating by an earlier run and deletes it after the test.
func cleanCRD(t *testing.T, s *Syncer, name string) {
	t.Helper()
	crds := s.cluster.Dynamic.Resource(gvrCRD)
	gone := func() {
		for range 600 {
			if _, err := crds.Get(context.Background(), name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("CRD %s is still there after 60 s", name)
	}
	if live, err := crds.Get(context.Background(), name, metav1.GetOptions{}); err == nil && live.GetDeletionTimestamp() != nil {
		gone()
	}
	t.Cleanup(func() {
		if err := crds.Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
		gone()
	})
}

// liveUID is the UID of the live "Kind/name" object in ns, or "" when there is none.
func liveUID(t *testing.T, s *Syncer, ns, kindName string) types.UID {
	t.Helper()
	kind, name, _ := strings.Cut(kindName, "/")
	gvr := map[string]schema.GroupVersionResource{"Job": gvrJob, "Pod": gvrPod}[kind]
	live, err := s.cluster.Dynamic.Resource(gvr).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return live.GetUID()
}

// kindName turns a Key (group/kind/namespace/name) into "Kind/name".
func kindName(key string) string {
	p := strings.Split(key, "/")
	return p[1] + "/" + p[3]
}

func stepNames(steps []Step) []string {
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = kindName(st.Key)
	}
	return out
}

func expand(patterns []string, ns string, start int64) []string {
	r := strings.NewReplacer("{ns}", ns, "{T}", strconv.FormatInt(start, 10))
	out := make([]string, len(patterns))
	for i, p := range patterns {
		out[i] = r.Replace(p)
	}
	return out
}

func matchAll(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if w, ok := strings.CutSuffix(want[i], "*"); ok && strings.HasPrefix(got[i], w) {
			continue
		}
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

// TestPruneSparesClusterMadeObjects syncs a Deployment whose pods carry the app's label
// (as a chart labelling its pods like the app would) and a Service, then prunes: what the
// controllers made from them (the ReplicaSet, which also copies the Deployment's tracking
// annotation, its pods, the Service's Endpoints and EndpointSlices, which copy its labels)
// is neither tracked nor pruned nor deleted by down; only the object dropped from the
// desired set goes.
func TestPruneSparesClusterMadeObjects(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs := parse(t, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, loop.dev/app: shop}}
    spec:
      containers: [{name: web, image: example.com/web:1}]
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
metadata: {name: old}
`)
	opts := Options{App: "shop", Namespace: ns, Prune: true, WaveTimeout: time.Minute}
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	dyn := s.cluster.Dynamic
	list := func(gvr schema.GroupVersionResource) []unstructured.Unstructured {
		l, err := dyn.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=shop"})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	made := map[schema.GroupVersionResource]int{gvrReplicaSet: 1, gvrPod: 2, gvrSlices: 1, gvrEndpoints: 1}
	waitFor(t, ctx, "the controllers' objects", func() bool {
		for gvr, n := range made {
			if len(list(gvr)) < n {
				return false
			}
		}
		return true
	})
	// What must outlive the prune: what the controllers made, and the objects they were
	// made from (deleting those would let the garbage collector take the rest later).
	kept := maps.Clone(made)
	kept[gvrDeployment], kept[gvrService] = 1, 1
	uids := map[types.UID]string{}
	for gvr := range kept {
		for _, o := range list(gvr) {
			uids[o.GetUID()] = o.GetKind() + "/" + o.GetName()
		}
	}
	// What makes the ReplicaSet look like loop's own to a careless prune.
	rs := list(gvrReplicaSet)[0]
	if got, want := rs.GetAnnotations()[AnnTrackingID], "shop:apps/Deployment:"+ns+"/web"; got != want {
		t.Fatalf("ReplicaSet tracking annotation %q, want %q copied from its Deployment", got, want)
	}

	tracked, err := s.Tracked(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range tracked {
		keys = append(keys, Key(o))
	}
	slices.Sort(keys)
	want := []string{"/ConfigMap/" + ns + "/old", "/Service/" + ns + "/web", "apps/Deployment/" + ns + "/web"}
	if !slices.Equal(keys, want) {
		t.Errorf("tracked %v, want only what loop applied %v", keys, want)
	}

	res, err := s.Sync(ctx, objs[:2], opts)
	if err != nil || !res.Succeeded {
		t.Fatalf("prune sync: %v %+v", err, res)
	}
	var pruned []string
	for _, st := range res.Steps {
		if st.Action == "prune" {
			pruned = append(pruned, st.Key)
		}
	}
	if want := []string{"/ConfigMap/" + ns + "/old"}; !slices.Equal(pruned, want) {
		t.Errorf("pruned %v, want %v", pruned, want)
	}
	// Sync returns after the API server has answered every delete it sent, and a list
	// reads the latest state: a deletion by the prune shows now as a missing UID or a
	// deletionTimestamp, with no need to wait. A deleted owner (Deployment, Service) is
	// caught here too, before its garbage collection would reach what it made.
	for gvr := range kept {
		for _, o := range list(gvr) {
			if o.GetDeletionTimestamp() == nil {
				delete(uids, o.GetUID())
			}
		}
	}
	if len(uids) > 0 {
		t.Errorf("prune deleted what the cluster made or its owners: %v", uids)
	}

	deleted, err := s.Down(ctx, "shop", model.ArgoSync{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(deleted)
	if want := []string{"/Service/" + ns + "/web", "apps/Deployment/" + ns + "/web"}; !slices.Equal(deleted, want) {
		t.Errorf("down deleted %v, want %v", deleted, want)
	}
}

// TestSelfHeal edits, deletes and adds objects behind loop's back and lets a Healer put
// the app back; then a sync the server refuses backs off 5 s, 10 s, and a good one resets.
func TestSelfHeal(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	objs := parse(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: desired}
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
      containers: [{name: web, image: example.com/web:1}]
`)
	opts := Options{App: "heal", Namespace: ns, Prune: true, WaveTimeout: time.Minute}
	h := s.NewHealer()
	now := time.Unix(1700000000, 0)
	h.Now = func() time.Time { return now }
	keyCM, keyDeploy := "/ConfigMap/"+ns+"/settings", "apps/Deployment/"+ns+"/web"
	heal := func(objs []*unstructured.Unstructured) HealResult {
		t.Helper()
		r, err := h.Heal(ctx, objs, opts)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	healed := func(r HealResult, drifted ...string) {
		t.Helper()
		slices.Sort(r.Drifted)
		slices.Sort(drifted)
		if !slices.Equal(r.Drifted, drifted) || r.Sync == nil || !r.Sync.Succeeded || !r.RetryAt.IsZero() {
			t.Fatalf("heal = %+v, want %v re-synced", r, drifted)
		}
		if r := heal(objs); len(r.Drifted) != 0 || r.Sync != nil {
			t.Fatalf("after healing, heal = %+v, want nothing to do", r)
		}
	}
	healed(heal(objs), keyCM, keyDeploy) // nothing there yet: all missing

	// Edits by someone else: data changed, the Deployment scaled.
	cms := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns)
	deps := s.cluster.Dynamic.Resource(gvrDeployment).Namespace(ns)
	cm, err := cms.Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(cm.Object, "edited", "data", "mode")
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	d, err := deps.Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(d.Object, int64(3), "spec", "replicas")
	if _, err := deps.Update(ctx, d, metav1.UpdateOptions{FieldManager: "kubectl-scale"}); err != nil {
		t.Fatal(err)
	}
	healed(heal(objs), keyCM, keyDeploy)
	if cm, _ = cms.Get(ctx, "settings", metav1.GetOptions{}); str(cm, "data", "mode") != "desired" {
		t.Errorf("data.mode = %q after healing", str(cm, "data", "mode"))
	}
	if d, _ = deps.Get(ctx, "web", metav1.GetOptions{}); num(d, "spec", "replicas") != 1 {
		t.Errorf("replicas = %d after healing", num(d, "spec", "replicas"))
	}

	// Deleted by someone: made again.
	if err := cms.Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	healed(heal(objs), keyCM)

	// Left over from an earlier desired set: pruned.
	extra := parse(t, "{apiVersion: v1, kind: ConfigMap, metadata: {name: extra}}")
	if res, err := s.Sync(ctx, append(slices.Clone(objs), extra...), opts); err != nil || !res.Succeeded {
		t.Fatalf("sync with extra: %v %+v", err, res)
	}
	healed(heal(objs), "/ConfigMap/"+ns+"/extra")

	// A desired set the server refuses: back off.
	bad := append(slices.Clone(objs), parse(t, "{apiVersion: v1, kind: ConfigMap, metadata: {name: Not_A_Name}}")...)
	for i, wait := range []time.Duration{5 * time.Second, 10 * time.Second} {
		r := heal(bad)
		if r.Sync == nil || r.Sync.Succeeded || !r.RetryAt.Equal(now.Add(wait)) {
			t.Fatalf("failing heal %d = %+v, want a failed sync and a retry in %v", i, r, wait)
		}
		now = now.Add(wait - time.Second)
		if r := heal(bad); r.Sync != nil || !r.RetryAt.Equal(now.Add(time.Second)) {
			t.Fatalf("heal within the back-off = %+v, want it held back", r)
		}
		now = now.Add(time.Second)
	}
	// A good sync resets the back-off.
	if err := cms.Delete(ctx, "settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	healed(heal(objs), keyCM)
	if r := heal(bad); r.Sync == nil || !r.RetryAt.Equal(now.Add(5*time.Second)) {
		t.Fatalf("failing heal after a good one = %+v, want a retry in 5s", r)
	}
}
