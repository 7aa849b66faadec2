package tiltfile

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// objectsOf renders the config's Kubernetes sources the way the engine does.
func objectsOf(t *testing.T, cfg *model.Config) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, src := range cfg.K8sSources {
		objs, err := render.Source(context.Background(), src)
		if err != nil {
			t.Fatalf("render source at line %d: %v", src.Pos.Line, err)
		}
		out = append(out, objs...)
	}
	return out
}

func objectKeys(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, render.Key(o))
	}
	return ks
}

// helm() and kustomize() return the rendered YAML at load time, so the
// Tiltfile can read, filter and edit it, as in Tilt.
func TestHelmAndKustomizeRenderAtLoad(t *testing.T) {
	cases := []struct {
		name  string
		src   string
		check func(t *testing.T, r loadResult)
	}{
		{"helm defaults as Tilt", `
objs = decode_yaml_stream(helm('chart'))
names = sorted([o['metadata']['name'] for o in objs])
if names != ['chart-cfg', 'chart-reader']: fail('names %r (release "chart", tests/ left out)' % names)
cm = [o for o in objs if o['kind'] == 'ConfigMap'][0]
if cm['data'] != {'replicas': '1', 'greeting': 'hello', 'namespace': 'default'}: fail('data %r' % cm['data'])
if 'namespace' in cm['metadata']: fail('no namespace= sets none')
`, nil},
		{"helm values, set, namespace", `
y = helm('chart', name='web', namespace='shop', values='chart/values-dev.yaml', set=['greeting=hi'])
objs = decode_yaml_stream(y)
cm = [o for o in objs if o['kind'] == 'ConfigMap'][0]
if cm['metadata']['namespace'] != 'shop': fail('namespaced object gets namespace=: %r' % cm['metadata'])
if cm['data'] != {'replicas': '2', 'greeting': 'hi', 'namespace': 'shop'}: fail('data %r' % cm['data'])
role = [o for o in objs if o['kind'] == 'ClusterRole'][0]
if 'namespace' in role['metadata']: fail('cluster-scoped object got a namespace')
k8s_yaml(y)
`, func(t *testing.T, r loadResult) {
			eq(t, "objects", objectKeys(objectsOf(t, r.cfg)),
				[]string{"/ConfigMap/shop/web-cfg", "rbac.authorization.k8s.io/ClusterRole//web-reader"})
		}},
		{"kustomize read, filtered and edited", `
y = kustomize('kust')
if type(y) != 'blob': fail(type(y))
objs = decode_yaml_stream(y)
kinds = [o['kind'] for o in objs]
if kinds != ['ConfigMap', 'Service', 'Deployment']: fail('kinds %r (kustomize build order)' % kinds)
deploys = [o for o in objs if o['kind'] == 'Deployment']
k8s_yaml(encode_yaml_stream(deploys))
k8s_yaml(blob(str(y).replace('example/web', 'example/web2')))
`, func(t *testing.T, r loadResult) {
			s := r.cfg.K8sSources
			eq(t, "sources", len(s), 3)
			// The decoded-and-encoded render lost its provenance: the render
			// itself is kept (last) so the kustomization stays watched.
			eq(t, "first has no provenance", s[0].Kustomize, (*model.KustomizeArgs)(nil))
			eq(t, "watch-only", [2]any{s[2].YAML, s[2].Kustomize.Dir}, [2]any{"", filepath.Join(r.dir, "kust")})
			objs := objectsOf(t, r.cfg)
			eq(t, "objects", objectKeys(objs), []string{"apps/Deployment//dev-web",
				"/ConfigMap/other/dev-web-config", "/Service//dev-web", "apps/Deployment//dev-web"})
			img, _, _ := unstructured.NestedSlice(objs[3].Object, "spec", "template", "spec", "containers")
			eq(t, "replaced image", img[0].(map[string]any)["image"], any("example/web2"))
		}},
		{"k8s_yaml of a render", `k8s_yaml(kustomize('kust'))`, func(t *testing.T, r loadResult) {
			s := r.cfg.K8sSources
			eq(t, "one source", len(s), 1)
			eq(t, "plain yaml, inputs kept", [2]any{s[0].Kind, s[0].Kustomize.Dir}, [2]any{model.K8sYAML, filepath.Join(r.dir, "kust")})
			want, err := render.Kustomize(filepath.Join(r.dir, "kust"), render.KustomizeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := objectsOf(t, r.cfg)
			if !reflect.DeepEqual(objectKeys(got), objectKeys(want)) {
				t.Fatalf("objects %v, want %v", objectKeys(got), objectKeys(want))
			}
			for i := range want {
				eq(t, "object "+render.Key(want[i]), got[i].Object, want[i].Object)
			}
		}},
		{"filter_yaml of a render", `
web, rest = filter_yaml(kustomize('kust'), kind='deployment')
k8s_yaml(web)
svc, _ = filter_yaml(rest, labels={'tier': 'front'})
k8s_yaml(svc)
`, func(t *testing.T, r loadResult) {
			eq(t, "objects", objectKeys(objectsOf(t, r.cfg)), []string{"apps/Deployment//dev-web", "/Service//dev-web"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := loadSrc(t, c.src, Options{})
			if r.err != nil {
				t.Fatalf("load: %v\n%s", r.err, r.out)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// helm() renders what `helm template` prints (the expected file was made by the
// Helm CLI), with namespace= set on namespaced objects as Tilt does.
func TestHelmMatchesCLI(t *testing.T) {
	chart, err := filepath.Abs(filepath.Join("..", "..", "daemon", "gitops", "render", "testdata", "helm", "web"))
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(`CHART = 'X'
k8s_yaml(helm(CHART, name='shop', namespace='shop', values=[CHART + '/values-dev.yaml', CHART + '/values-local.yaml']))`, "X", chart)
	r := loadSrc(t, src, Options{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	data, err := os.ReadFile(chart + ".expected.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := render.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	render.DefaultNamespace(want, "shop")
	got := objectsOf(t, r.cfg)
	if !reflect.DeepEqual(objectKeys(got), objectKeys(want)) {
		t.Fatalf("objects %v, the CLI's %v", objectKeys(got), objectKeys(want))
	}
	for i := range want {
		eq(t, "object "+render.Key(want[i]), got[i].Object, want[i].Object)
	}
	// Watched: the chart and both values files.
	h := r.cfg.K8sSources[0].Helm
	eq(t, "watched inputs", append([]string{h.Chart}, h.Values...),
		[]string{chart, chart + "/values-dev.yaml", chart + "/values-local.yaml"})
}

// A chart or kustomization that fails to render is a load error at the call,
// and every file under it is recorded so that fixing one re-runs the Tiltfile.
func TestRenderErrors(t *testing.T) {
	broken := map[string]string{
		"bad/Chart.yaml":            "apiVersion: v2\nname: bad\nversion: 0.1.0\n",
		"bad/templates/x.yaml":      "{{ .Values.nope.deeper }}\n",
		"badk/kustomization.yaml":   "resources: [missing.yaml]\n",
		"empty/Chart.yaml":          "apiVersion: v2\nname: empty\nversion: 0.1.0\n",
		"empty/templates/none.yaml": "{{- if false }}x: 1{{ end }}\n",
	}
	for _, c := range []struct {
		src, want, recorded string
		line                int
	}{
		{"\nhelm('bad')", "helm: helm template", "bad/templates/x.yaml", 2},
		{"\n\nkustomize('badk')", "kustomize: kustomize build", "badk/kustomization.yaml", 3},
		{"k8s_yaml(helm('empty'))", "k8s_yaml: empty or invalid YAML", "empty/Chart.yaml", 1},
		{"kustomize('kust', flags=['--build-metadata'])", "kustomize: kustomize: unsupported flag \"--build-metadata\"", "kust", 1},
	} {
		t.Run(c.src, func(t *testing.T) {
			r := loadSrc(t, c.src, Options{}, broken)
			assertErrAt(t, r, "Tiltfile", c.line, c.want)
			if !contains(r.cfg.Files, filepath.Join(r.dir, c.recorded)) {
				t.Errorf("files %q do not record %s", r.cfg.Files, c.recorded)
			}
		})
	}
}
