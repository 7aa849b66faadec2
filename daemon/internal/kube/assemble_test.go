package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

const objects = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: a}
spec: {template: {spec: {containers: [{name: c, image: example/web}]}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: b}
spec: {template: {spec: {containers: [{name: c, image: example/other}]}}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec: {template: {spec: {containers: [{name: c, image: example/web}]}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: a}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
---
apiVersion: v1
kind: Secret
metadata: {name: db}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: gizmo}
spec: {image: example/web}
`

func names(groups []*Group) map[string][]string {
	out := map[string][]string{}
	for _, g := range groups {
		for _, o := range g.Objects {
			out[g.Name] = append(out[g.Name], o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
	}
	return out
}

func TestAssemble(t *testing.T) {
	objs, err := render.Parse([]byte(objects))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &model.Config{
		K8sKinds: []*model.K8sKind{{Kind: "Widget", ImageJSONPath: []string{"{.spec.image}"}}},
		K8sResources: []*model.K8sResource{
			{Workload: "web:deployment:a", NewName: "frontend", Objects: []string{"web-config", "web:service:a"}},
			{NewName: "secrets", Objects: []string{"db:Secret"}},
		},
	}
	groups, err := Assemble(objs, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := names(groups)
	want := map[string][]string{
		// Two Deployments named web in two namespaces: name:kind:namespace.
		"frontend":         {"Deployment/a/web", "ConfigMap/a/web-config", "Service/a/web"},
		"web:deployment:b": {"Deployment/b/web"},
		"migrate":          {"Job//migrate"},
		"gizmo":            {"Widget//gizmo"}, // a k8s_kind with an image path is a workload
		"secrets":          {"Secret//db"},
	}
	if len(got) != len(want) {
		t.Fatalf("groups = %v, want %v", got, want)
	}
	for name, objs := range want {
		if strings.Join(got[name], " ") != strings.Join(objs, " ") {
			t.Errorf("group %s = %v, want %v", name, got[name], objs)
		}
	}
	if _, ok := got[Uncategorized]; ok {
		t.Errorf("nothing is left over, yet there is an uncategorized group: %v", got[Uncategorized])
	}

	// Without k8s_resource the leftovers are uncategorized.
	groups, err = Assemble(objs, &model.Config{})
	if err != nil {
		t.Fatal(err)
	}
	got = names(groups)
	if u := strings.Join(got[Uncategorized], " "); u != "ConfigMap/a/web-config Service/a/web Secret//db Widget//gizmo" {
		t.Errorf("uncategorized = %s", u)
	}

	// Images: the built images a group's objects use.
	imgs := []*model.Image{{Ref: "example/web"}, {Ref: "example/other"}, {Ref: "example/unused"}}
	var refs []string
	for _, img := range Images(objs[:1], imgs, nil) {
		refs = append(refs, img.Ref)
	}
	if strings.Join(refs, " ") != "example/web" {
		t.Errorf("images of web = %v, want example/web", refs)
	}
	if got := Images(objs[6:], imgs, cfg.K8sKinds); len(got) != 1 || got[0].Ref != "example/web" {
		t.Errorf("images of the Widget = %v, want example/web through image_json_path", got)
	}
}

func TestAssembleErrors(t *testing.T) {
	objs, err := render.Parse([]byte(objects))
	if err != nil {
		t.Fatal(err)
	}
	pos := model.Position{File: "/p/Tiltfile", Line: 7}
	for _, tc := range []struct {
		kr   model.K8sResource
		want string
	}{
		{model.K8sResource{Workload: "nope", Pos: pos}, `/p/Tiltfile:7: k8s_resource("nope"): no workload of that name; workloads: gizmo, migrate, web:deployment:a, web:deployment:b`},
		{model.K8sResource{Workload: "migrate", Objects: []string{"missing"}, Pos: pos}, `objects="missing" matches no unclaimed object`},
		{model.K8sResource{Objects: []string{"db"}, Pos: pos}, "objects without a workload need new_name"},
		{model.K8sResource{Workload: "migrate", NewName: "gizmo", Pos: pos}, `new_name "gizmo" is taken`},
	} {
		kinds := []*model.K8sKind{{Kind: "Widget", ImageJSONPath: []string{"{.spec.image}"}}}
		_, err := Assemble(objs, &model.Config{K8sKinds: kinds, K8sResources: []*model.K8sResource{&tc.kr}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("k8s_resource %+v: error %v, want %q", tc.kr, err, tc.want)
		}
	}
}

func TestAppName(t *testing.T) {
	for in, want := range map[string]string{
		"web":                   "web",
		"web:deployment:b":      "web-deployment-b",
		"::":                    "loop",
		strings.Repeat("x", 70): strings.Repeat("x", 63),
	} {
		if got := AppName(in); got != want {
			t.Errorf("AppName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSourceRootsFollowKustomizeBases: an overlay's base in a parent directory is a
// root too, so editing it re-renders.
func TestSourceRootsFollowKustomizeBases(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "examples", "kubernetes", "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &model.Config{K8sSources: []*model.K8sSource{
		{Kind: model.K8sKustomize, Kustomize: &model.KustomizeArgs{Dir: filepath.Join(dir, "overlays", "dev")}},
		{Kind: model.K8sYAML, Paths: []string{"/p/a.yaml"}},
	}}
	got := strings.Join(SourceRoots(cfg), " ")
	want := filepath.Join(dir, "overlays", "dev") + " " + filepath.Join(dir, "base") + " /p/a.yaml"
	if got != want {
		t.Fatalf("roots = %s, want %s", got, want)
	}
}

// TestSourceRootsAbsoluteBaseWithDotDot: an absolute resource spelled through
// the overlay ("<overlay>/../base") is outside the overlay and a root of its own.
func TestSourceRootsAbsoluteBaseWithDotDot(t *testing.T) {
	dir := t.TempDir()
	overlay, base := filepath.Join(dir, "overlay"), filepath.Join(dir, "base")
	for _, d := range []string{overlay, base} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	k := "resources:\n- " + overlay + "/../base\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := &model.Config{K8sSources: []*model.K8sSource{
		{Kind: model.K8sKustomize, Kustomize: &model.KustomizeArgs{Dir: overlay}},
	}}
	if got, want := strings.Join(SourceRoots(cfg), " "), overlay+" "+base; got != want {
		t.Fatalf("roots = %s, want %s", got, want)
	}
}
