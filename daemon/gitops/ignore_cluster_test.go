package gitops

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/loop-dev/loop/daemon/gitops/argosync"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// loop diff leaves out what the app's ignoreDifferences name: a field another actor
// changed is in sync; without the rule it is a changed object.
func TestDiffHonoursIgnoreDifferences(t *testing.T) {
	testenv.UseTestCluster(t)
	c, err := argosync.Connect("", nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := argosync.NewSyncer(c)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := fmt.Sprintf("loop-diff-ignore-%d", rand.IntN(1e6))
	nsRes := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	t.Cleanup(func() { _ = nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	objs, err := render.Parse([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {k: desired}\n"))
	if err != nil {
		t.Fatal(err)
	}
	app := &render.App{Name: "diffignore", Namespace: ns, Tool: "Directory", Objects: objs, Sync: model.ArgoSync{
		Options:           []string{"CreateNamespace=true"},
		IgnoreDifferences: []model.IgnoreDifference{{Kind: "ConfigMap", JQPathExpressions: []string{`.data.k`}}},
	}}
	if res, err := s.Sync(ctx, objs, argosync.Options{App: app.Name, Namespace: ns, Policy: app.Sync}); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	cms := c.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}).Namespace(ns)
	live, err := cms.Get(ctx, "c", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = unstructured.SetNestedField(live.Object, "theirs", "data", "k")
	if _, err := cms.Update(ctx, live, metav1.UpdateOptions{FieldManager: "actor"}); err != nil {
		t.Fatal(err)
	}
	d := &differ{s: s}
	rep, err := d.run(ctx, []*render.App{app})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Differ != 0 {
		t.Errorf("with ignoreDifferences: %d differ: %+v", rep.Differ, rep.Objects)
	}
	app.Sync.IgnoreDifferences = nil
	if rep, err = d.run(ctx, []*render.App{app}); err != nil {
		t.Fatal(err)
	}
	if rep.Differ != 1 || rep.Objects[0].State != Changed {
		t.Errorf("without: %+v, want the ConfigMap changed", rep.Objects)
	}
}
