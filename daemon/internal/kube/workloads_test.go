package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/internal/testenv"
)

func deployment(ns string, match map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": ns},
		"spec":     map[string]any{"selector": map[string]any{"matchLabels": match}},
	}}
}

// TestWorkloadSelectors: extra_pod_selectors select in the workloads' namespaces (the
// default one without workloads), next to the workloads' own selectors unless
// discovery_strategy='selectors-only'.
func TestWorkloadSelectors(t *testing.T) {
	show := func(sels []podSelector) []string {
		var out []string
		for _, s := range sels {
			out = append(out, s.namespace+" "+s.selector.String())
		}
		return out
	}
	w := Workloads{Objects: []*unstructured.Unstructured{deployment("shop", map[string]any{"app": "web"})}, Extra: []map[string]string{{"role": "side"}}}
	eq := func(what string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %q, want %q", what, got, want)
		}
	}
	eq("workload and extra", show(w.selectors("default")), "shop app=web", "shop role=side")
	w.SelectorsOnly = true
	eq("selectors only", show(w.selectors("default")), "shop role=side")
	eq("no workload", show(Workloads{Extra: []map[string]string{{"role": "side"}}}.selectors("dev")), "dev role=side")
}

// TestExtraSelectorFindsPods: on the test cluster, a pod no workload of the resource
// owns is found through an extra selector by the pods' watch, with its container, for
// logs, forwards and live update; without the selector it is not.
func TestExtraSelectorFindsPods(t *testing.T) {
	d, core := testDeployer(t)
	name := fmt.Sprintf("extra-sel-%d", time.Now().UnixNano()%1000000)
	p := testenv.ExecPod(t, name, "loop/extra:1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := []*unstructured.Unstructured{deployment(p.Namespace, map[string]any{"app": "nothing-" + name})}
	watched := func(w Workloads) []corev1.Pod {
		t.Helper()
		wctx, stop := context.WithCancel(ctx)
		pw := watchPods(wctx, core, w.selectors(d.cluster.Namespace))
		defer func() { stop(); pw.wait() }()
		if !pw.synced(ctx) {
			t.Fatal("pods not listed")
		}
		return pw.pods()
	}

	if pods := watched(Workloads{Objects: objs}); len(pods) != 0 {
		t.Fatalf("without the extra selector: %d pods, want none", len(pods))
	}
	// Selected twice (the extra selector given twice): listed once.
	w := Workloads{Objects: objs, Extra: []map[string]string{{"loop.dev/test": name}, {"loop.dev/test": name}}}
	pods := watched(w)
	if len(pods) != 1 || pods[0].Name != name {
		t.Fatalf("with the extra selector: %d pods, want %s once", len(pods), name)
	}
	pcs := d.containersOf(ctx, core, pods, func(c corev1.Container) bool { return c.Image == "loop/extra:1" })
	if len(pcs) != 1 || pcs[0].Pod != name || pcs[0].Container != "app" || pcs[0].UID != string(p.UID) || pcs[0].Arch == "" {
		t.Fatalf("containers running loop/extra:1: %+v", pcs)
	}
}
