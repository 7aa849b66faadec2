package tiltfile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// helm_resource's chart is one resource: its objects are a source of that
// name, rendered with the image keys set to the image deps' refs (the deploy
// puts the built refs in their place) and flags honoured.
func TestHelmResourceBuiltin(t *testing.T) {
	files := map[string]string{
		"img/Chart.yaml":             "apiVersion: v2\nname: img\nversion: 0.1.0\n",
		"img/values.yaml":            "image: {repository: nginx, tag: stable, registry: docker.io}\nfull: nginx\ncount: 1\n",
		"img/prod.yaml":              "count: 3\n",
		"img/templates/cm.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata:\n  split: {{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag }}\n  full: {{ .Values.full }}\n  count: {{ .Values.count | quote }}\n  ns: {{ .Release.Namespace }}\n",
		"img/templates/tests/t.yaml": "apiVersion: v1\nkind: Pod\nmetadata: {name: t}\n",
	}
	r := loadSrc(t, `
load('ext://helm_resource', 'helm_resource', 'helm_repo')
helm_repo('bitnami', 'https://charts.example.com')
helm_resource('rel', 'img', release_name='r1', namespace='apps',
    image_deps=['example/app', 'reg.local:5000/team/api:dev'],
    image_keys=[('image.registry', 'image.repository', 'image.tag'), ['full']],
    flags=['--values', 'img/prod.yaml', '--set=extra=1', '--wait'],
    deps=['img/prod.yaml'], uninstall_flags=['--keep-history', '--ignore-not-found'],
    resource_deps=['bitnami'], labels=['db'], auto_init=False)
`, Options{}, files)
	if r.err != nil {
		t.Fatalf("load: %v\n%s", r.err, r.out)
	}
	src := r.cfg.K8sSources[len(r.cfg.K8sSources)-1]
	eq(t, "resource", src.Resource, "rel")
	eq(t, "chart watched", src.Helm.Chart, filepath.Join(r.dir, "img"))
	eq(t, "release", *src.Release, model.HelmRelease{Name: "r1", Namespace: "apps", Chart: filepath.Join(r.dir, "img"),
		Deps: []string{filepath.Join(r.dir, "img/prod.yaml")}, KeepHistory: true})
	objs, err := render.Parse([]byte(src.YAML))
	if err != nil || len(objs) != 1 {
		t.Fatalf("objects %d, %v:\n%s", len(objs), err, src.YAML)
	}
	data := objs[0].Object["data"].(map[string]any)
	eq(t, "data", data, map[string]any{"split": "docker.io/example/app:latest", "full": "reg.local:5000/team/api:dev", "count": "3", "ns": "apps"})
	eq(t, "namespace set", objs[0].GetNamespace(), "apps")
	kr := r.cfg.K8sResources[0]
	eq(t, "k8s_resource", []any{kr.Workload, kr.ResourceDeps, kr.Labels, *kr.AutoInit}, []any{"rel", []string{"bitnami"}, []string{"db"}, false})
	eq(t, "helm_repo resource", r.cfg.LocalResources[0].Name, "bitnami")
	if len(r.cfg.Warnings) != 1 || !strings.Contains(r.cfg.Warnings[0], "--wait is ignored") {
		t.Errorf("warnings = %q, want one about --wait", r.cfg.Warnings)
	}

	for _, c := range []struct{ name, src, want string }{
		{"remote chart", "load('ext://helm_resource', 'helm_resource', 'helm_repo')\nhelm_repo('bitnami', 'https://charts.example.com')\nhelm_resource('db', 'bitnami/redis')\n",
			`chart "redis" from https://charts.example.com is not on this machine (looked in ` + filepath.Join("CACHE", "bitnami", "latest", "redis") + ") and loading uses no network: run `loop fetch`"},
		{"oci chart", "load('ext://helm_resource', 'helm_resource')\nhelm_resource('db', 'oci://reg.example.com/charts/redis', flags=['--version', '2.0.0'])\n",
			`chart "redis" from oci://reg.example.com/charts version 2.0.0 is not on this machine (looked in ` + filepath.Join("CACHE", "oci:", "reg.example.com", "charts", "2.0.0", "redis") + ")"},
		{"neither local nor a repo's", "load('ext://helm_resource', 'helm_resource')\nhelm_resource('db', 'charts/none')\n",
			`chart "charts/none" is neither a local chart directory nor a packaged chart`},
		{"live_update without a selector", "load('ext://helm_resource', 'helm_resource')\nhelm_resource('db', 'img', live_update=[sync('.', '/app')])\n", "live_update needs image_selector or container_selector"},
		{"live_update with two selectors", "load('ext://helm_resource', 'helm_resource')\nhelm_resource('db', 'img', live_update=[sync('.', '/app')], image_selector='a', container_selector='b')\n", "cannot specify more than one Live Update selector"},
		{"image keys", "load('ext://helm_resource', 'helm_resource')\nhelm_resource('db', 'img', image_deps=['a'])\n", "image_deps and image_keys must have the same length"},
		{"helm_remote not cached", "load('ext://helm_remote', 'helm_remote')\nhelm_remote('redis', repo_url='https://charts.example.com', version='1.2.3')\n",
			`chart "redis" from https://charts.example.com version 1.2.3 is not on this machine (looked in ` + filepath.Join("CACHE", "redis", "1.2.3", "redis") + ")"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			t.Setenv("TILT_HELM_REMOTE_CACHE_DIR", cache)
			r := loadSrc(t, c.src, Options{}, files)
			if want := strings.ReplaceAll(c.want, "CACHE", cache); r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Errorf("err = %v, want %q", r.err, c.want)
			}
		})
	}
}

// helm_remote finds a chart in its cache (where the extension pulled it) or
// in a local repo_url, and deploys it like k8s_yaml(helm(...)).
func TestHelmRemoteBuiltin(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("TILT_HELM_REMOTE_CACHE_DIR", cache)
	chart := map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: redis\nversion: 1.2.3\n",
		"templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {v: {{ .Values.v | quote }}}\n",
		"values.yaml":       "v: default\n",
	}
	for name, content := range chart {
		write(t, filepath.Join(cache, "bitnami", "1.2.3", "redis", name), content)
	}
	files := map[string]string{}
	for name, content := range chart {
		files["charts/redis/"+name] = content
	}
	r := loadSrc(t, `
load('ext://helm_remote', 'helm_remote', 'helm_remote_yaml')
y = helm_remote('redis', repo_url='https://charts.example.com', repo_name='bitnami', version='1.2.3', set=['v=set'], create_namespace=True, namespace='cache')
if 'kind: Namespace' not in str(y) or 'v: set' not in str(y): fail(str(y))
y2 = helm_remote_yaml('redis', repo_url='file://' + os.path.abspath('charts'), release_name='local')
if 'name: local' not in str(y2): fail(str(y2))
`, Options{}, files)
	if r.err != nil {
		t.Fatalf("load: %v\n%s", r.err, r.out)
	}
	var deployed int
	for _, s := range r.cfg.K8sSources {
		if s.YAML != "" {
			deployed++
		}
	}
	eq(t, "sources deployed (helm_remote_yaml deploys nothing)", deployed, 1)
}

// --no-builtin-extensions loads the Starlark extension from the extensions
// directory instead.
func TestNoBuiltinExtensions(t *testing.T) {
	files := map[string]string{"ext/helm_resource/Tiltfile": "def helm_resource(name, chart):\n    print('starlark ' + name)\n"}
	r := loadSrc(t, "load('ext://helm_resource', 'helm_resource')\nhelm_resource('x', 'nowhere')\n", Options{NoBuiltinExtensions: true}, files)
	if r.err != nil || !strings.Contains(r.out, "starlark x") {
		t.Errorf("err %v, output %q: want the Starlark extension", r.err, r.out)
	}
}
