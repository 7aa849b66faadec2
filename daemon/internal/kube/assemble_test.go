package kube

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// doc joins YAML documents.
func doc(parts ...string) string { return strings.Join(parts, "\n---\n") }

func deploy(name, ns, image string, labels string) string {
	meta := "{name: " + name + "}"
	if ns != "" {
		meta = "{name: " + name + ", namespace: " + ns + "}"
	}
	return `apiVersion: apps/v1
kind: Deployment
metadata: ` + meta + `
spec:
  selector: {matchLabels: ` + labels + `}
  template:
    metadata: {labels: ` + labels + `}
    spec: {containers: [{name: c, image: ` + image + `}]}`
}

func service(name, ns, selector string) string {
	meta := "{name: " + name + "}"
	if ns != "" {
		meta = "{name: " + name + ", namespace: " + ns + "}"
	}
	sel := ""
	if selector != "" {
		sel = "\nspec: {selector: " + selector + ", ports: [{port: 80}]}"
	}
	return "apiVersion: v1\nkind: Service\nmetadata: " + meta + sel
}

func object(apiVersion, kind, name string) string {
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata: {name: " + name + "}"
}

// show lists groups in order as "name: Kind/namespace/name ...".
func show(groups []*Group) []string {
	var out []string
	for _, g := range groups {
		var objs []string
		for _, o := range g.Objects {
			objs = append(objs, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
		}
		out = append(out, g.Name+": "+strings.Join(objs, " "))
	}
	return out
}

// TestAssembleRules: one case per rule of Tilt's assembly (internal/tiltfile/
// tiltfile_state.go and internal/k8s), each with manifests written for it.
func TestAssembleRules(t *testing.T) {
	pos := model.Position{File: "/p/Tiltfile", Line: 7, Col: 1}
	for _, tc := range []struct {
		name  string
		yaml  string
		cfg   model.Config
		want  []string
		error string
	}{{
		name: "a Service whose selector matches the pod template joins the workload",
		yaml: doc(deploy("web", "", "example/web", "{app: web}"), service("web", "", "{app: web}")),
		want: []string{"web: Deployment//web Service//web"},
	}, {
		name: "a selector that is a subset of the template's labels matches",
		yaml: doc(deploy("web", "", "example/web", "{app: web, tier: front}"), service("web-svc", "", "{app: web}")),
		want: []string{"web: Deployment//web Service//web-svc"},
	}, {
		name: "a selector with a label the template lacks, or none, matches nothing",
		yaml: doc(deploy("web", "", "example/web", "{app: web}"), service("a", "", "{app: web, tier: x}"), service("b", "", "")),
		want: []string{"web: Deployment//web", "uncategorized: Service//a Service//b"},
	}, {
		name: "a Service in another namespace stays uncategorized; none or default matches any",
		yaml: doc(deploy("web", "shop", "example/web", "{app: web}"),
			service("other", "billing", "{app: web}"), service("same", "shop", "{app: web}"),
			service("bare", "", "{app: web}"), service("dflt", "default", "{app: web}")),
		want: []string{"web: Deployment/shop/web Service/shop/same Service//bare Service/default/dflt", "uncategorized: Service/billing/other"},
	}, {
		name: "the first workload whose template matches takes the Service",
		yaml: doc(deploy("a", "", "example/a", "{app: x}"), deploy("b", "", "example/b", "{app: x}"), service("x", "", "{app: x}")),
		want: []string{"a: Deployment//a Service//x", "b: Deployment//b"},
	}, {
		name: "a bare Pod has no template: a Service selecting it stays uncategorized",
		yaml: doc("apiVersion: v1\nkind: Pod\nmetadata: {name: p, labels: {app: p}}\nspec: {containers: [{name: c, image: busybox}]}",
			service("p", "", "{app: p}")),
		want: []string{"p: Pod//p", "uncategorized: Service//p"},
	}, {
		name: "every kind that runs pods is a workload, an image built here or not",
		yaml: doc(
			"apiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec: {template: {spec: {containers: [{name: c, image: example/db}]}}}",
			"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: nightly}\nspec: {jobTemplate: {spec: {template: {metadata: {labels: {app: nightly}}, spec: {containers: [{name: c, image: busybox}]}}}}}",
			"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {template: {spec: {initContainers: [{name: i, image: busybox}]}}}",
			"apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent}\nspec: {template: {spec: {containers: [{name: c, image: busybox}]}}}",
			service("nightly", "", "{app: nightly}")),
		want: []string{"migrate: Job//migrate", "nightly: CronJob//nightly Service//nightly", "db: StatefulSet//db", "agent: DaemonSet//agent"},
	}, {
		name: "ConfigMaps, Secrets, PVCs, Namespaces, CRDs and custom resources are uncategorized, in render order",
		yaml: doc(object("v1", "Namespace", "shop"), deploy("web", "", "example/web", "{app: web}"),
			object("v1", "ConfigMap", "web-config"), object("v1", "Secret", "web-secret"),
			object("v1", "PersistentVolumeClaim", "data"),
			object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "widgets.example.com"),
			"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: gizmo}\nspec: {template: {spec: {containers: [{name: c, image: example/web}]}}}"),
		want: []string{"web: Deployment//web",
			"uncategorized: Namespace//shop ConfigMap//web-config Secret//web-secret PersistentVolumeClaim//data CustomResourceDefinition//widgets.example.com Widget//gizmo"},
	}, {
		name: "a kind of another API group is not a built-in workload",
		yaml: "apiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: fake}\nspec: {template: {spec: {containers: [{name: c, image: x}]}}}",
		want: []string{"uncategorized: Deployment//fake"},
	}, {
		name: "k8s_kind makes a custom resource a workload, matching kind and api_version in part, any case",
		yaml: doc("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: gizmo}",
			"apiVersion: other.io/v1\nkind: Widget\nmetadata: {name: other}",
			"apiVersion: example.com/v1\nkind: SuperWidgetSet\nmetadata: {name: set}"),
		cfg:  model.Config{K8sKinds: []*model.K8sKind{{Kind: "widget", APIVersion: "example"}}},
		want: []string{"gizmo: Widget//gizmo", "set: SuperWidgetSet//set", "uncategorized: Widget//other"},
	}, {
		name: "names: name, then name:kind, then name:kind:namespace, then with the group, lower case",
		yaml: doc(deploy("Web", "", "a", "{app: a}"),
			"apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: web}\nspec: {template: {spec: {containers: [{name: c, image: b}]}}}",
			deploy("api", "a", "c", "{app: c}"), deploy("api", "b", "d", "{app: d}"), deploy("solo", "", "e", "{app: e}"),
			"apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: api, namespace: a}\nspec: {template: {spec: {containers: [{name: c, image: f}]}}}"),
		want: []string{"web:deployment: Deployment//Web", "web:statefulset: StatefulSet//web",
			"api:deployment:a:apps: Deployment/a/api", "api:deployment:b: Deployment/b/api", "solo: Deployment//solo",
			"api:deployment:a:extensions: Deployment/a/api"},
	}, {
		name: "no namespace is the default namespace in names",
		yaml: doc(deploy("api", "", "c", "{app: c}"), deploy("api", "b", "d", "{app: d}")),
		want: []string{"api:deployment:default: Deployment//api", "api:deployment:b: Deployment/b/api"},
	}, {
		name: "the same object twice gets its index",
		yaml: doc(deploy("web", "", "a", "{app: a}"), deploy("web", "", "b", "{app: b}")),
		want: []string{"web:deployment:default:apps:0: Deployment//web", "web:deployment:default:apps:1: Deployment//web"},
	}, {
		name: "an object with a pod template and no image joins the resource of its name",
		yaml: doc("apiVersion: batch/v1\nkind: Job\nmetadata: {name: api}\nspec: {template: {spec: {containers: [{name: c, image: example/api}]}}}",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {template: {metadata: {labels: {app: api}}, spec: {containers: [{name: c}]}}}",
			"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: lone}\nspec: {template: {metadata: {labels: {app: lone}}, spec: {containers: [{name: c}]}}}",
			service("api", "", "{app: api}"), service("lone", "", "{app: lone}")),
		want: []string{"api: Job//api Deployment//api Service//api", "lone: Deployment//lone Service//lone"},
	}, {
		name: "k8s_resource(new_name, objects) groups objects by name, name:kind or name:kind:namespace, any case",
		yaml: doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "cfg"),
			object("v1", "Secret", "db"), object("v1", "Namespace", "shop"), object("v1", "ConfigMap", "left")),
		cfg: model.Config{K8sResources: []*model.K8sResource{
			{NewName: "setup", Objects: []string{"SHOP", "db:secret", "cfg:ConfigMap:default"}},
		}},
		want: []string{"web: Deployment//web", "setup: Namespace//shop Secret//db ConfigMap//cfg", "uncategorized: ConfigMap//left"},
	}, {
		name: "k8s_resource(workload, objects) attaches objects to the workload",
		yaml: doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "web-config")),
		cfg:  model.Config{K8sResources: []*model.K8sResource{{Workload: "web", Objects: []string{"web-config"}}}},
		want: []string{"web: Deployment//web ConfigMap//web-config"},
	}, {
		name: "k8s_resource calls add up; new_name renames at once and later calls use the new name",
		yaml: doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "a"), object("v1", "ConfigMap", "b")),
		cfg: model.Config{K8sResources: []*model.K8sResource{
			{Workload: "web", Objects: []string{"a"}, Labels: []string{"x"}, PortForwards: []model.PortForward{{LocalPort: 1}}},
			{Workload: "web", NewName: "frontend"},
			{Workload: "frontend", Objects: []string{"b"}, Labels: []string{"y", "x"}, PortForwards: []model.PortForward{{LocalPort: 2}}},
		}},
		want: []string{"frontend: Deployment//web ConfigMap//a ConfigMap//b"},
	}, {
		name:  "the old name after a rename is unknown",
		yaml:  deploy("web", "", "example/web", "{app: web}"),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{Workload: "web", NewName: "frontend"}, {Workload: "web", Pos: pos}}},
		error: `/p/Tiltfile:7:1: k8s_resource("web"): no Kubernetes resource of that name; resources: frontend`,
	}, {
		name:  "a workload that does not exist is an error, with objects too",
		yaml:  doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "c")),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{Workload: "nope", Objects: []string{"c"}, Pos: pos}}},
		error: `/p/Tiltfile:7:1: k8s_resource("nope"): no Kubernetes resource of that name; resources: web`,
	}, {
		name:  "a fragment that names no object",
		yaml:  doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "c")),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{Workload: "web", Objects: []string{"missing"}, Pos: pos}}},
		error: `k8s_resource("web"): objects="missing" names no object; objects: "web:Deployment:default", "c:ConfigMap:default"`,
	}, {
		name:  "a fragment that names two objects",
		yaml:  doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "db"), object("v1", "Secret", "db")),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{NewName: "db", Objects: []string{"db"}, Pos: pos}}},
		error: `k8s_resource("db"): objects="db" names more than one object: "db:ConfigMap:default", "db:Secret:default"`,
	}, {
		name:  "a fragment that names an object another resource has",
		yaml:  doc(deploy("web", "", "example/web", "{app: web}"), service("web", "", "{app: web}")),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{NewName: "net", Objects: []string{"web:service"}, Pos: pos}}},
		error: `k8s_resource("net"): objects="web:service" names an object another resource has; unclaimed objects: none`,
	}, {
		name:  "a selector of more than three parts",
		yaml:  doc(deploy("web", "", "example/web", "{app: web}"), object("v1", "ConfigMap", "c")),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{NewName: "x", Objects: []string{"c:configmap:default:core"}}}},
		error: `4 parts, want name[:kind[:namespace]]`,
	}, {
		name:  "new_name of a resource that exists",
		yaml:  doc(deploy("web", "", "a", "{app: a}"), deploy("api", "", "b", "{app: b}")),
		cfg:   model.Config{K8sResources: []*model.K8sResource{{Workload: "web", NewName: "api", Pos: pos}}},
		error: `/p/Tiltfile:7:1: k8s_resource("web"): rename to "api": a Kubernetes resource named "api" exists already`,
	}, {
		name: "new_name of a local_resource",
		yaml: doc(deploy("web", "", "a", "{app: a}"), object("v1", "ConfigMap", "c")),
		cfg: model.Config{LocalResources: []*model.LocalResource{{Name: "build"}},
			K8sResources: []*model.K8sResource{{NewName: "build", Objects: []string{"c"}}}},
		error: `k8s_resource(new_name="build"): a local_resource named "build" exists already`,
	}, {
		name: "workload_to_resource_function names the workloads' resources",
		yaml: doc(deploy("web", "shop", "a", "{app: a}"), service("web", "shop", "{app: a}"), deploy("api", "", "b", "{app: b}")),
		cfg: model.Config{WorkloadToResource: &model.WorkloadToResource{Name: func(id model.ObjectID) (string, error) {
			return id.Namespace + "-" + id.Name + "-" + strings.ToLower(id.Kind) + "-" + id.Group, nil
		}}},
		want: []string{"shop-web-deployment-apps: Deployment/shop/web Service/shop/web", "default-api-deployment-apps: Deployment//api"},
	}, {
		name: "workload_to_resource_function giving two workloads one name",
		yaml: doc(deploy("web", "", "a", "{app: a}"), deploy("api", "", "b", "{app: b}")),
		cfg: model.Config{WorkloadToResource: &model.WorkloadToResource{Pos: pos, Name: func(model.ObjectID) (string, error) {
			return "same", nil
		}}},
		error: `/p/Tiltfile:7:1: workload_to_resource_function: both web:Deployment:default and api:Deployment:default mapped to resource name "same"`,
	}, {
		name: "a k8s_image_json_path by name makes the objects it selects workloads",
		yaml: doc(object("example.com/v1", "Widget", "um-one"), object("example.com/v1", "Widget", "other")),
		cfg:  model.Config{K8sKinds: []*model.K8sKind{{Name: "^um-", ImageJSONPath: []string{"{.spec.image}"}, ByPath: true}}},
		want: []string{"um-one: Widget//um-one", "uncategorized: Widget//other"},
	}, {
		name:  "a workload named as a local_resource",
		yaml:  deploy("web", "", "a", "{app: a}"),
		cfg:   model.Config{LocalResources: []*model.LocalResource{{Name: "web"}}},
		error: `make the resource of workload web:Deployment:default: a local_resource named "web" exists already`,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := render.Parse([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			groups, err := Assemble(objs, &tc.cfg)
			if tc.error != "" {
				if err == nil || !strings.Contains(err.Error(), tc.error) {
					t.Fatalf("error %v, want %q", err, tc.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := show(groups); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("groups:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestAssembleMergesK8sResourceCalls: the spec of a resource configured by more
// than one k8s_resource call is their sum.
func TestAssembleMergesK8sResourceCalls(t *testing.T) {
	objs, err := render.Parse([]byte(deploy("web", "", "example/web", "{app: web}")))
	if err != nil {
		t.Fatal(err)
	}
	no, yes := false, true
	groups, err := Assemble(objs, &model.Config{K8sResources: []*model.K8sResource{
		{Workload: "web", Labels: []string{"x"}, ResourceDeps: []string{"db"}, TriggerMode: model.TriggerManual, AutoInit: &no,
			PortForwards: []model.PortForward{{LocalPort: 1}}, Links: []model.Link{{URL: "http://a"}}},
		{Workload: "web", NewName: "frontend", Labels: []string{"y", "x"}, ResourceDeps: []string{"cache"}, AutoInit: &yes,
			PortForwards: []model.PortForward{{LocalPort: 2}}, ExtraPodSelectors: []map[string]string{{"a": "b"}}, SelectorsOnly: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s := groups[0].Spec
	got := fmt.Sprintln(groups[0].Name, s.Labels, s.ResourceDeps, s.TriggerMode, *s.AutoInit, len(s.PortForwards), len(s.Links), s.ExtraPodSelectors, s.SelectorsOnly)
	if want := "frontend [x y] [db cache] manual true 2 1 [map[a:b]] true\n"; got != want {
		t.Errorf("merged spec = %s, want %s", got, want)
	}
}

func TestAssembleImages(t *testing.T) {
	objs, err := render.Parse([]byte(doc(deploy("web", "", "example/web", "{app: web}"),
		"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: gizmo}\nspec: {image: example/web}")))
	if err != nil {
		t.Fatal(err)
	}
	imgs := []*model.Image{{Ref: "example/web"}, {Ref: "example/other"}, {Ref: "example/unused"}}
	var refs []string
	for _, img := range Images(objs[:1], imgs, nil) {
		refs = append(refs, img.Ref)
	}
	if strings.Join(refs, " ") != "example/web" {
		t.Errorf("images of web = %v, want example/web", refs)
	}
	kinds := []*model.K8sKind{{Kind: "Widget", ImageJSONPath: []string{"{.spec.image}"}}}
	if got := Images(objs[1:], imgs, kinds); len(got) != 1 || got[0].Ref != "example/web" {
		t.Errorf("images of the Widget = %v, want example/web through image_json_path", got)
	}
}

// TestSubstituteImagesAsTilt: k8s_image_json_path's name and namespace select the
// objects its paths apply to; k8s_kind(image_object=) replaces an image split into
// repository and tag fields.
func TestSubstituteImagesAsTilt(t *testing.T) {
	objs, err := render.Parse([]byte(doc(
		"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: um-a, namespace: shop}\nspec: {image: example/web}",
		"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: um-b}\nspec: {image: example/web}",
		"apiVersion: example.com/v1\nkind: Environment\nmetadata: {name: env}\nspec: {runtimes: [{repo: example/web, tag: old}, {repo: nginx, tag: stable}]}")))
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := kindSelectors([]*model.K8sKind{
		{Name: "^um-", Namespace: "shop", ImageJSONPath: []string{"{.spec.image}"}, ByPath: true},
		{Kind: "Environment", ImageObject: &model.ImageObject{JSONPath: "{.spec.runtimes[*]}", RepoField: "repo", TagField: "tag"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	used := substituteImages(objs, render.Images{"example/web": "localhost:5000/example_web:loop-1"}, kinds)
	var got []string
	for _, o := range objs {
		b, _ := json.Marshal(o.Object["spec"])
		got = append(got, string(b))
	}
	want := []string{
		`{"image":"localhost:5000/example_web:loop-1"}`,
		`{"image":"example/web"}`,
		`{"runtimes":[{"repo":"localhost:5000/example_web","tag":"loop-1"},{"repo":"nginx","tag":"stable"}]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || !used["docker.io/example/web"] {
		t.Errorf("substituted:\n%s\nwant:\n%s (used %v)", strings.Join(got, "\n"), strings.Join(want, "\n"), used)
	}
}

func TestSplitEscaped(t *testing.T) {
	for in, want := range map[string]string{`a:b:c`: "[a b c]", `a\:d:b`: "[a:d b]", `a\\d:b`: `[a\d b]`, `web`: "[web]"} {
		got, err := splitEscaped(in)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("splitEscaped(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := splitEscaped(`a\d`); err == nil {
		t.Error(`splitEscaped("a\\d") accepted an invalid escape`)
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
