package sync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

var gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

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
