package argosync

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestWatchAppReportsChanges: on the real API server, WatchApp reports the app's
// objects once listed, then an edit and a deletion of one behind loop's back.
func TestWatchAppReportsChanges(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := []*unstructured.Unstructured{obj("v1", "ConfigMap", ns, "watched", nil)}
	res, err := s.Sync(ctx, objs, Options{App: "watch-app", Namespace: ns})
	if err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	cms := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns)

	var n atomic.Int64
	wctx, stop := context.WithCancel(ctx)
	wait := s.WatchApp(wctx, objs, Options{App: "watch-app", Namespace: ns}, func() { n.Add(1) })
	defer func() { stop(); wait() }()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reported in 20 s (%d calls)", what, n.Load())
			}
		}
	}
	waitFor("the initial list", func() bool { return n.Load() == 1 })

	o, err := cms.Get(ctx, "watched", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(o.Object, "edited", "data", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := cms.Update(ctx, o, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("an edit", func() bool { return n.Load() == 2 })
	if err := cms.Delete(ctx, "watched", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("a deletion", func() bool { return n.Load() == 3 })
}
