package render

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/model"
)

// sameAsCLI compares rendered objects, in order, with the CLI's output checked in as
// testdata (regenerate with testdata/gen.sh).
func sameAsCLI(t *testing.T, got []*unstructured.Unstructured, expectedFile string) {
	t.Helper()
	data, err := os.ReadFile(expectedFile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Parse(data)
	if err != nil {
		t.Fatalf("parse %s: %v", expectedFile, err)
	}
	if len(want) == 0 {
		t.Fatalf("%s holds no objects", expectedFile)
	}
	if len(got) != len(want) {
		t.Fatalf("rendered %d objects %v, the CLI %d %v", len(got), keys(got), len(want), keys(want))
	}
	for i := range want {
		if !reflect.DeepEqual(got[i].Object, want[i].Object) {
			g, _ := yaml.Marshal(got[i].Object)
			w, _ := yaml.Marshal(want[i].Object)
			t.Errorf("object %d differs from the CLI's\n--- loop\n%s--- cli\n%s", i, g, w)
		}
	}
}

func keys(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, Key(o))
	}
	return ks
}

func TestKustomizeMatchesCLI(t *testing.T) {
	objs, err := Kustomize("testdata/kustomize/overlay", KustomizeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameAsCLI(t, objs, "testdata/kustomize/overlay.expected.yaml")
	// The legacy order puts the Namespace first although it is listed last.
	if objs[0].GetKind() != "Namespace" {
		t.Errorf("first object is %s, want the Namespace (legacy reorder)", Key(objs[0]))
	}
}

func TestHelmMatchesCLI(t *testing.T) {
	objs, err := Helm(context.Background(), HelmOptions{Chart: "testdata/helm/web", ReleaseName: "shop", Namespace: "shop",
		ValueFiles: []string{"values-dev.yaml", "values-local.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	sameAsCLI(t, objs, "testdata/helm/web.expected.yaml")
}

func TestHelmValuesPrecedence(t *testing.T) {
	objs, err := Helm(context.Background(), HelmOptions{Chart: "testdata/helm/web", ReleaseName: "r",
		ValueFiles: []string{"values-dev.yaml"}, ValuesObject: map[string]any{"greeting": "obj", "replicas": 5},
		Set: []string{"replicas=7"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		r, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
		if r != 7 {
			t.Errorf("replicas = %d, want 7 from --set over valuesObject", r)
		}
		y, _ := yaml.Marshal(o.Object)
		if !strings.Contains(string(y), "value: obj") {
			t.Errorf("valuesObject greeting not applied:\n%s", y)
		}
		return
	}
	t.Fatal("no Deployment rendered")
}

func TestHelmEmptyRenderIsAnError(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: empty\nversion: 0.1.0\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "templates"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "templates", "x.yaml"), []byte("{{- if false }}\nkind: X\n{{- end }}\n"), 0o644))
	_, err := Helm(context.Background(), HelmOptions{Chart: dir})
	if err == nil || !strings.Contains(err.Error(), "no objects") {
		t.Fatalf("err = %v, want an error saying the chart rendered no objects", err)
	}
}

func TestHelmBuildsLocalDependency(t *testing.T) {
	dir := t.TempDir()
	parent, sub := filepath.Join(dir, "parent"), filepath.Join(dir, "sub")
	must(t, os.MkdirAll(filepath.Join(sub, "templates"), 0o755))
	must(t, os.MkdirAll(filepath.Join(parent, "templates"), 0o755))
	must(t, os.WriteFile(filepath.Join(sub, "Chart.yaml"), []byte("apiVersion: v2\nname: sub\nversion: 0.2.0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(sub, "templates", "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-sub\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(parent, "Chart.yaml"), []byte(
		"apiVersion: v2\nname: parent\nversion: 0.1.0\ndependencies:\n  - name: sub\n    version: 0.2.0\n    repository: file://../sub\n"), 0o644))
	objs, err := Helm(context.Background(), HelmOptions{Chart: parent})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetName() != "from-sub" {
		t.Fatalf("rendered %v, want the subchart's ConfigMap", keys(objs))
	}
}

func TestDirectory(t *testing.T) {
	cases := []struct {
		name string
		opts DirectoryOptions
		want []string
	}{
		{"flat", DirectoryOptions{}, []string{"a", "list-item", "b"}},
		{"recurse", DirectoryOptions{Recurse: true}, []string{"a", "list-item", "b", "c"}},
		{"include", DirectoryOptions{Recurse: true, Include: "{*.yml,b.json}"}, []string{"b", "c"}},
		{"exclude", DirectoryOptions{Recurse: true, Exclude: "a.yaml"}, []string{"b", "c"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs, err := Directory("testdata/dir", c.opts)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, o := range objs {
				names = append(names, o.GetName())
			}
			if !reflect.DeepEqual(names, c.want) {
				t.Errorf("names = %v, want %v", names, c.want)
			}
		})
	}
}

func TestSourceKustomizeEdits(t *testing.T) {
	objs, err := Kustomize("testdata/kustomize/overlay", KustomizeOptions{NamePrefix: "argo-", NameSuffix: "-x",
		Images: []string{"example/web=example/other:v9"}, CommonLabels: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	var dep *unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			dep = o
		}
	}
	if dep == nil || dep.GetName() != "argo-web-x" || dep.GetLabels()["team"] != "a" {
		t.Fatalf("deployment = %v, want name argo-web-x with label team=a", dep)
	}
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if img := cs[0].(map[string]any)["image"]; img != "example/other:v9" {
		t.Errorf("image = %v, want example/other:v9", img)
	}
	// The tree on disk is untouched.
	data, _ := os.ReadFile("testdata/kustomize/overlay/kustomization.yaml")
	if strings.Contains(string(data), "argo-") {
		t.Error("kustomization.yaml on disk was edited")
	}
}

func TestSourceYAML(t *testing.T) {
	objs, err := Source(context.Background(), &model.K8sSource{Kind: model.K8sYAML,
		YAML: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: inline}\n", Paths: []string{"testdata/dir/b.json"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(objs); !reflect.DeepEqual(got, []string{"/ConfigMap//inline", "/ConfigMap//b"}) {
		t.Errorf("keys = %v", got)
	}
}

func TestSubstituteImages(t *testing.T) {
	objs, err := Parse([]byte(`apiVersion: batch/v1
kind: CronJob
metadata: {name: cj}
spec:
  jobTemplate:
    spec:
      template:
        spec:
          initContainers: [{name: i, image: "docker.io/example/web:old"}]
          containers: [{name: c, image: other/thing, imagePullPolicy: Always}]
---
apiVersion: example.com/v1
kind: Thing
metadata: {name: t}
spec:
  workers: [{image: example/web}, {image: nope}]
`))
	must(t, err)
	used := SubstituteImages(objs, Images{"example/web": "example/web:loop-1"},
		map[string][]ImagePath{"Thing": {ParseImagePath("{.spec.workers[*].image}")}})
	if !used["docker.io/example/web"] || len(used) != 1 {
		t.Errorf("used = %v", used)
	}
	y, _ := Encode(objs)
	s := string(y)
	for _, want := range []string{"image: example/web:loop-1\n            imagePullPolicy: IfNotPresent", "image: other/thing\n            imagePullPolicy: Always", "- image: example/web:loop-1\n  - image: nope"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestArgoApps(t *testing.T) {
	apps, err := ArgoApps(context.Background(), "testdata/apps", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 3 {
		t.Fatalf("got %d apps", len(apps))
	}
	web, overlay, plain := apps[0], apps[1], apps[2]
	if web.Tool != "Helm" || !web.Prune || !web.SelfHeal || web.Namespace != "shop" {
		t.Errorf("web = %+v", web)
	}
	var dep *unstructured.Unstructured
	for _, o := range web.Objects {
		if o.GetKind() == "Deployment" {
			dep = o
		}
	}
	if dep == nil || dep.GetName() != "web-web" {
		t.Fatalf("web objects %v, want Deployment web-web (release name = app name)", keys(web.Objects))
	}
	if r, _, _ := unstructured.NestedInt64(dep.Object, "spec", "replicas"); r != 3 {
		t.Errorf("replicas = %d, want 3 from the parameter", r)
	}
	// Argo CD sets namePrefix in the kustomization, replacing the overlay's own "dev-".
	if overlay.Tool != "Kustomize" || overlay.Objects[2].GetName() != "argo-web" {
		t.Errorf("overlay = %s %v", overlay.Tool, keys(overlay.Objects))
	}
	if plain.Tool != "Directory" || len(plain.Objects) != 2 {
		t.Errorf("plain = %s %v", plain.Tool, keys(plain.Objects))
	}
}
