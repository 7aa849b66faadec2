package render

import (
	"context"
	"fmt"
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

// byKey indexes objects by kind/name.
func byKey(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		m[o.GetKind()+"/"+o.GetName()] = o
	}
	return m
}

func str(t *testing.T, o *unstructured.Unstructured, path ...string) string {
	t.Helper()
	if o == nil {
		t.Fatalf("no object for %v", path)
	}
	v, found, err := unstructured.NestedFieldNoCopy(o.Object, path...)
	if err != nil || !found {
		t.Fatalf("%s has no %v", Key(o), path)
	}
	return fmt.Sprint(v)
}

func image(t *testing.T, o *unstructured.Unstructured, path ...string) string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(o.Object, append(path, "containers")...)
	if len(cs) == 0 {
		t.Fatalf("%s has no containers", Key(o))
	}
	return cs[0].(map[string]any)["image"].(string)
}

func argoFixture(t *testing.T) map[string]*App {
	t.Helper()
	apps, err := ArgoApps(context.Background(), "testdata/argo/apps", "testdata/argo")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*App{}
	for _, a := range apps {
		m[a.Name] = a
	}
	return m
}

// Helm as the repo server runs it: release name = app name, value files relative to the
// chart (or, starting with "/", to the repository root) in order, a missing one skipped
// with ignoreMissingValueFiles, valuesObject over them, parameters (escaped commas,
// $ARGOCD_ variables, forceString) over everything.
func TestArgoHelmValuesFilesParametersValuesObject(t *testing.T) {
	shop := argoFixture(t)["shop"]
	if shop.Tool != "Helm" || shop.Namespace != "shop" || !shop.Prune || !shop.SelfHeal || shop.Path != "charts/shop" {
		t.Fatalf("shop = %+v", shop)
	}
	if !strings.HasSuffix(shop.Manifest, filepath.Join("testdata", "argo", "apps", "apps.yaml")) {
		t.Errorf("manifest = %s", shop.Manifest)
	}
	objs := byKey(shop.Objects)
	cm := objs["ConfigMap/shop-settings"]
	for field, want := range map[string]string{
		"greeting":  "dev-shop-in-shop", // forceString parameter, after envsubst
		"color":     "green",            // second value file over the first
		"size":      "xl",               // valuesObject over the value files
		"label":     "a,b",              // the comma is escaped, not a list separator
		"namespace": "shop",             // the destination namespace
	} {
		if got := str(t, cm, "data", field); got != want {
			t.Errorf("data.%s = %q, want %q", field, got, want)
		}
	}
	if got := str(t, objs["Deployment/shop-web"], "spec", "replicas"); got != "4" {
		t.Errorf("replicas = %s, want 4 from the parameter", got)
	}
}

// .argocd-source-<app>.yaml is merged into spec.source: a JSON merge patch replaces the
// parameter list; automated with enabled: false is no automation.
func TestArgoAppSourceOverrideFile(t *testing.T) {
	tuned := argoFixture(t)["tuned"]
	objs := byKey(tuned.Objects)
	if got := str(t, objs["Deployment/fine-web"], "spec", "replicas"); got != "9" {
		t.Errorf("replicas = %s, want 9 from .argocd-source-tuned.yaml", got)
	}
	if got := str(t, objs["ConfigMap/fine-settings"], "data", "size"); got != "s" {
		t.Errorf("size = %s, want s: the override file replaced the whole parameter list", got)
	}
	if tuned.Prune || tuned.SelfHeal {
		t.Errorf("tuned automation = prune %v selfHeal %v, want off (enabled: false)", tuned.Prune, tuned.SelfHeal)
	}
	// The other app on the same chart does not see that file.
	if got := str(t, byKey(argoFixture(t)["shop"].Objects)["Deployment/shop-web"], "spec", "replicas"); got != "4" {
		t.Errorf("shop replicas = %s, want 4", got)
	}
}

// .argocd-source.yaml applies to every app of the directory, then the app's own file;
// discovery picks Kustomize after the merge; the override cannot move the path.
func TestArgoSourceOverridesKustomize(t *testing.T) {
	app := argoFixture(t)["override"]
	if app.Tool != "Kustomize" || app.Path != "kustomize/src" {
		t.Fatalf("override = %s %s", app.Tool, app.Path)
	}
	objs := byKey(app.Objects)
	if img := image(t, objs["Pod/src-runner"], "spec"); img != "example/src:v3" {
		t.Errorf("image = %s, want example/src:v3 from .argocd-source-override.yaml", img)
	}
	if objs["ConfigMap/src-settings"] == nil {
		t.Errorf("objects %v, want the namePrefix src- from .argocd-source.yaml", keys(app.Objects))
	}
}

func TestArgoKustomizeEdits(t *testing.T) {
	front := argoFixture(t)["front"]
	dep := byKey(front.Objects)["Deployment/argo-front"]
	if dep == nil {
		t.Fatalf("objects %v, want argo-front (Argo CD's namePrefix replaces the overlay's dev-)", keys(front.Objects))
	}
	if img := image(t, dep, "spec", "template", "spec"); img != "example/front:v2" {
		t.Errorf("image = %s", img)
	}
	if dep.GetLabels()["team"] != "shop" || str(t, dep, "spec", "replicas") != "3" {
		t.Errorf("deployment labels %v replicas %s, want team=shop and 3", dep.GetLabels(), str(t, dep, "spec", "replicas"))
	}
}

// A directory source: recurse, include "*.yaml" crossing directories as Argo CD's glob
// does, an exclude list, and a values file that is not a manifest skipped.
func TestArgoDirectoryRecurseIncludeExclude(t *testing.T) {
	raw := argoFixture(t)["raw"]
	if raw.Tool != "Directory" {
		t.Fatalf("tool = %s", raw.Tool)
	}
	var names []string
	for _, o := range raw.Objects {
		names = append(names, o.GetName())
	}
	if want := []string{"a", "c", "c-reader"}; !reflect.DeepEqual(names, want) {
		t.Errorf("names = %v, want %v", names, want)
	}
}

func TestArgoAppErrors(t *testing.T) {
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "both"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "both", "a.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"), 0o644))
	app := func(spec string) string {
		return "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x}\nspec:\n" + spec
	}
	cases := map[string]struct{ manifest, want string }{
		"two tools":     {app("  source: {path: both, helm: {releaseName: r}, directory: {recurse: true}}\n"), "multiple application sources defined: Helm,Directory"},
		"helm repo":     {app("  source: {repoURL: https://charts.example.com, chart: redis}\n"), "chart from a Helm repository"},
		"outside":       {app("  source: {path: ../elsewhere}\n"), "leaves the repository root"},
		"missing dir":   {app("  source: {path: nope}\n"), "no directory"},
		"multi remote":  {app("  sources: [{repoURL: https://a.example/x.git, path: both}, {repoURL: https://b.example/y.git, path: both}]\n"), "has no Git remote to tell which is local"},
		"multi chart":   {app("  sources: [{repoURL: https://charts.example.com, chart: redis}, {path: both}]\n"), "spec.sources[0].chart"},
		"multi no ref":  {app("  sources: [{path: both, helm: {valueFiles: [$vals/v.yaml]}}, {ref: values}]\n"), `no source of spec.sources has ref "vals"`},
		"bad option":    {app("  source: {path: both}\n  syncPolicy: {syncOptions: [CreateNamespace=yes]}\n"), "sync option CreateNamespace=yes: want true, false"},
		"unknown opt":   {app("  source: {path: both}\n  syncPolicy: {syncOptions: [Foo=true]}\n"), `unknown sync option "Foo"`},
		"resource opt":  {app("  source: {path: both}\n  syncPolicy: {syncOptions: [Prune=true, ApplyOutOfSyncOnly=true, CreateNamespace]}\n"), "is not Name=value"},
		"bad jq":        {app("  source: {path: both}\n  ignoreDifferences: [{kind: ConfigMap, jqPathExpressions: ['.data[']}]\n"), "spec.ignoreDifferences[0]: jqPathExpressions"},
		"bad pointer":   {app("  source: {path: both}\n  ignoreDifferences: [{kind: ConfigMap, jsonPointers: [data]}]\n"), "does not start with /"},
		"bad retry":     {app("  source: {path: both}\n  syncPolicy: {retry: {backoff: {duration: soon}}}\n"), "retry.backoff.duration"},
		"no source":     {app("  destination: {namespace: x}\n"), "no spec.source"},
		"remote values": {app("  source: {path: both, helm: {valueFiles: [https://example.com/v.yaml]}}\n"), "remote"},
		"no apps":       {"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "no Application manifests"},
		"bad yaml":      {"kind: [\n", "parse"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
			must(t, os.WriteFile(f, []byte(c.manifest), 0o644))
			_, err := ArgoApps(context.Background(), f, dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestExpandAppSetListAndGitDirectories(t *testing.T) {
	data, err := os.ReadFile("testdata/argo/appsets/appsets.yaml")
	must(t, err)
	sets, err := Parse(data)
	must(t, err)
	envs, err := ExpandAppSet(sets[0], "testdata/argo")
	must(t, err)
	if len(envs) != 2 || envs[0].GetName() != "shop-dev" || envs[1].GetName() != "shop-prod" {
		t.Fatalf("envs generated %v", names(envs))
	}
	// Unknown parameters stay as written; map keys are templated too.
	if l := envs[0].GetLabels(); l["tier"] != "{{values.tier}}" || l["dev"] != "yes" {
		t.Errorf("dev labels = %v", l)
	}
	if l := envs[1].GetLabels(); l["tier"] != "critical" || l["prod"] != "yes" {
		t.Errorf("prod labels = %v", l)
	}
	if ns := str(t, envs[1], "spec", "destination", "namespace"); ns != "shop-prod" || envs[1].GetNamespace() != "argocd" {
		t.Errorf("prod destination %s, namespace %s", ns, envs[1].GetNamespace())
	}

	svcs, err := ExpandAppSet(sets[1], "testdata/argo")
	must(t, err)
	// services/* matches one level (path.Match); legacy is excluded, .hidden never listed.
	if got := names(svcs); !reflect.DeepEqual(got, []string{"svc-web-ui", "svc-api"}) {
		t.Fatalf("services generated %v", got)
	}
	if p, ns := str(t, svcs[0], "spec", "source", "path"), str(t, svcs[0], "spec", "destination", "namespace"); p != "services/Web_UI" || ns != "services-web-ui" {
		t.Errorf("web-ui path %s namespace %s", p, ns)
	}
	if team := svcs[1].GetLabels()["team"]; team != "api-team" {
		t.Errorf("api team label = %q, want api-team from the generator's values", team)
	}
	// The generator's own template is filled in from spec.template.
	if prune, _, _ := unstructured.NestedBool(svcs[1].Object, "spec", "syncPolicy", "automated", "prune"); !prune {
		t.Errorf("api app has no automated prune from the generator template: %v", svcs[1].Object["spec"])
	}
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetName())
	}
	return out
}

func TestArgoAppSetsRender(t *testing.T) {
	apps, err := ArgoAppSets(context.Background(), "testdata/argo/appsets/appsets.yaml", "testdata/argo")
	must(t, err)
	var got []string
	for _, a := range apps {
		got = append(got, a.AppSet+"/"+a.Name+"/"+a.Tool+"/"+a.Namespace)
	}
	want := []string{"envs/shop-dev/Helm/shop-dev", "envs/shop-prod/Helm/shop-prod",
		"services/svc-web-ui/Directory/services-web-ui", "services/svc-api/Directory/services-api"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("apps = %v, want %v", got, want)
	}
	cm := byKey(apps[1].Objects)["ConfigMap/shop-prod-settings"]
	if g := str(t, cm, "data", "greeting"); g != "hello-prod" {
		t.Errorf("greeting = %s, want hello-prod from the templated parameter", g)
	}
	if d := str(t, apps[3].Objects[0], "data", "dir"); d != "api" || len(apps[3].Objects) != 1 {
		t.Errorf("svc-api renders %v (dir %s), want only services/api/cm.yaml", keys(apps[3].Objects), d)
	}
}

func TestExpandAppSetErrors(t *testing.T) {
	set := func(spec string) *unstructured.Unstructured {
		objs, err := Parse([]byte("apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: s}\nspec:\n" + spec))
		must(t, err)
		return objs[0]
	}
	tmpl := "  template: {metadata: {name: 'a-{{x}}'}, spec: {source: {path: manifests}}}\n"
	cases := map[string]struct{ spec, want string }{
		"go template missing key": {"  goTemplate: true\n  goTemplateOptions: [missingkey=error]\n  generators: [{list: {elements: [{y: a}]}}]\n" +
			"  template: {metadata: {name: '{{ .x }}'}, spec: {source: {path: manifests}}}\n", "map has no entry for key \"x\""},
		"go template option": {"  goTemplate: true\n  goTemplateOptions: [strict]\n  generators: [{list: {elements: [{x: a}]}}]\n" + tmpl, "goTemplateOptions"},
		"template patch":     {"  templatePatch: x\n  generators: [{list: {elements: [{x: a}]}}]\n" + tmpl, "templatePatch is not supported"},
		"clusters":           {"  generators: [{clusters: {}}]\n" + tmpl, "generator 0 (clusters): only the list and git directories"},
		"git files":          {"  generators: [{git: {files: [{path: x.json}]}}]\n" + tmpl, "git files generator"},
		"duplicate":          {"  generators: [{list: {elements: [{x: a}, {x: a}]}}]\n" + tmpl, "two Applications named \"a-a\""},
		"non-string":         {"  generators: [{list: {elements: [{x: 1}]}}]\n" + tmpl, "x is not a string"},
		"no template":        {"  generators: [{list: {elements: [{x: a}]}}]\n", "no spec.template"},
		"unclosed tag":       {"  generators: [{list: {elements: [{x: a}]}}]\n  template: {metadata: {name: 'a-{{x'}}\n", "no closing }}"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ExpandAppSet(set(c.spec), "testdata/argo")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// Config renders the Tiltfile's own objects and every Argo CD app, applies destination
// namespaces to namespaced objects only, and substitutes built images in all of them.
func TestConfigIncludesArgoApps(t *testing.T) {
	root, err := filepath.Abs("testdata/argo")
	must(t, err)
	cfg := &model.Config{
		Tiltfile:   "/projects/My_Shop/Tiltfile",
		K8sSources: []*model.K8sSource{{Kind: model.K8sYAML, YAML: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own}\n"}},
		ArgoApps: []*model.ArgoApp{
			{Name: "front", Manifest: filepath.Join(root, "apps", "apps.yaml"), RepoRoot: root},
			{Name: "raw", Manifest: filepath.Join(root, "apps", "apps.yaml"), RepoRoot: root},
		},
		ArgoAppSets: []*model.ArgoAppSet{{Name: "services", Manifest: filepath.Join(root, "appsets", "appsets.yaml"), RepoRoot: root}},
	}
	apps, err := Apps(context.Background(), cfg, Images{"example/front": "example/front:loop-1"})
	must(t, err)
	var got []string
	for _, a := range apps {
		got = append(got, a.Name)
	}
	if want := []string{"my-shop", "front", "raw", "svc-web-ui", "svc-api"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("apps = %v, want %v", got, want)
	}
	objs, err := Config(context.Background(), cfg, Images{"example/front": "example/front:loop-1"})
	must(t, err)
	ns := map[string]string{}
	for _, o := range objs {
		ns[o.GetKind()+"/"+o.GetName()] = o.GetNamespace()
	}
	for k, want := range map[string]string{"ConfigMap/own": "", "Deployment/argo-front": "front", "ConfigMap/a": "raw-ns",
		"ClusterRole/c-reader": ""} {
		if got, ok := ns[k]; !ok || got != want {
			t.Errorf("%s namespace = %q (present %v), want %q", k, got, ok, want)
		}
	}
	if img := image(t, byKey(objs)["Deployment/argo-front"], "spec", "template", "spec"); img != "example/front:loop-1" {
		t.Errorf("front image = %s, want the built ref", img)
	}

	// A missing manifest is reported at the declaring call.
	cfg.ArgoApps[0].Pos = model.Position{File: "/p/Tiltfile", Line: 7}
	cfg.ArgoApps[0].Manifest = filepath.Join(root, "gone.yaml")
	if _, err := Config(context.Background(), cfg, nil); err == nil || !strings.HasPrefix(err.Error(), "/p/Tiltfile:7: ") {
		t.Errorf("err = %v, want it at /p/Tiltfile:7", err)
	}
	// Two apps may not share a name.
	raw := &model.ArgoApp{Name: "raw", Manifest: filepath.Join(root, "apps", "apps.yaml"), RepoRoot: root}
	cfg.ArgoApps = []*model.ArgoApp{raw, raw}
	if _, err := Apps(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), `two apps are named "raw"`) {
		t.Errorf("err = %v, want a duplicate app name", err)
	}
	// The Tiltfile's default app name may equal an Argo CD app's.
	cfg.ArgoApps, cfg.Tiltfile = cfg.ArgoApps[:1], "/projects/raw/Tiltfile"
	if _, err := Apps(context.Background(), cfg, nil); err != nil {
		t.Errorf("Tiltfile dir named like an app: %v", err)
	}
}

func TestDirectoryIgnoresNonManifestYAML(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("replicas: 2\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "cm.yaml"), []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"), 0o644))
	objs, err := Directory(dir, DirectoryOptions{})
	if err != nil || len(objs) != 1 {
		t.Fatalf("objs %v err %v, want the ConfigMap only", keys(objs), err)
	}
	// A file that looks like a manifest but is broken is still an error.
	must(t, os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: v1\nmetadata: {name: x}\nkind: [\n"), 0o644))
	if _, err := Directory(dir, DirectoryOptions{}); err == nil {
		t.Fatal("a broken manifest rendered without error")
	}
	if _, err := Directory(dir, DirectoryOptions{Include: "[a"}); err == nil || !strings.Contains(err.Error(), "include pattern") {
		t.Fatalf("bad include pattern: err %v", err)
	}
}

// With goTemplate the parameters are structured and the templates are Go templates with
// sprig's functions, as the controller renders them.
func TestExpandAppSetGoTemplate(t *testing.T) {
	objs, err := Parse([]byte(`apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: envs}
spec:
  goTemplate: true
  goTemplateOptions: [missingkey=error]
  generators:
    - list:
        elements:
          - {env: Dev_One, cfg: {replicas: 3}}
  template:
    metadata:
      name: '{{ normalize .env }}'
      annotations: {replicas: '{{ .cfg.replicas }}', upper: '{{ upper .env }}', '{{ .env }}': key}
    spec: {source: {path: manifests}}
---
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: services}
spec:
  goTemplate: true
  generators:
    - git:
        directories: [{path: 'services/*'}, {path: services/legacy, exclude: true}]
        pathParamPrefix: svc
        values: {owner: '{{ .svc.path.basename }}-team'}
  template:
    metadata:
      name: 'svc-{{ .svc.path.basenameNormalized }}'
      annotations: {first: '{{ index .svc.path.segments 0 }}', owner: '{{ .values.owner }}', missing: '{{ .nope }}'}
    spec: {source: {path: '{{ .svc.path.path }}'}}
`))
	must(t, err)
	envs, err := ExpandAppSet(objs[0], "testdata/argo")
	must(t, err)
	if len(envs) != 1 || envs[0].GetName() != "dev-one" {
		t.Fatalf("envs = %v", names(envs))
	}
	if a := envs[0].GetAnnotations(); a["replicas"] != "3" || a["upper"] != "DEV_ONE" || a["Dev_One"] != "key" {
		t.Errorf("annotations = %v", a)
	}
	svcs, err := ExpandAppSet(objs[1], "testdata/argo")
	must(t, err)
	if got := names(svcs); !reflect.DeepEqual(got, []string{"svc-web-ui", "svc-api"}) {
		t.Fatalf("services = %v", got)
	}
	a := svcs[1].GetAnnotations()
	if a["first"] != "services" || a["owner"] != "api-team" || a["missing"] != "<no value>" {
		t.Errorf("annotations = %v", a)
	}
	if p := str(t, svcs[1], "spec", "source", "path"); p != "services/api" {
		t.Errorf("path = %s", p)
	}
}

// TestParseErrorNamesTheStreamLine: an error in a later document of a stream names its
// line in the whole stream, not in the document.
func TestParseErrorNamesTheStreamLine(t *testing.T) {
	stream := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# second\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\napiVersion: v1\nkind: [broken\n"
	_, err := Parse([]byte(stream))
	if err == nil || !strings.Contains(err.Error(), "line 13") {
		t.Fatalf("error %v, want it at line 13 of the stream", err)
	}
	_, err = Parse([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---  # next\nmetadata: {name: nokind}\n"))
	if err == nil || !strings.Contains(err.Error(), "line 5") || !strings.Contains(err.Error(), "no kind") {
		t.Fatalf("error %v, want the object without a kind placed at line 5", err)
	}
	objs, err := Parse([]byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n"))
	if err != nil || len(objs) != 2 || objs[1].GetKind() != "Secret" {
		t.Fatalf("parse with empty documents: %v %v", objs, err)
	}
}
