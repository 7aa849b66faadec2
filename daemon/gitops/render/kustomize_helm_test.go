package render

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// kustomize --enable-helm: an overlay over a base whose helmCharts name a
// chart in the chart home. The chart is rendered in process (values file,
// inline values over it, namespace, release name, CRDs only when asked),
// the overlay's edits reach its objects, and nothing is written to the tree.
func TestKustomizeHelmCharts(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"base/kustomization.yaml": `resources:
- plain.yaml
helmCharts:
- name: demo
  releaseName: r1
  namespace: apps
  valuesFile: values.yaml
  valuesInline:
    color: blue
- name: demo
  releaseName: r2
  valuesMerge: merge
  valuesFile: values.yaml
  valuesInline:
    color: blue
    size: small
  includeCRDs: true
`,
		"base/plain.yaml":              "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\n",
		"base/values.yaml":             "color: red\nsize: large\n",
		"base/charts/demo/Chart.yaml":  "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
		"base/charts/demo/values.yaml": "color: green\nsize: medium\n",
		"base/charts/demo/templates/cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
  namespace: {{ .Release.Namespace }}
data:
  color: {{ .Values.color }}
  size: {{ .Values.size }}
`,
		"base/charts/demo/crds/crd.yaml": `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object}}}]
`,
		"overlay/kustomization.yaml": "resources:\n- ../base\nnamePrefix: dev-\n",
	})
	before := listTree(t, root)

	if _, err := Kustomize(filepath.Join(root, "overlay"), KustomizeOptions{}); err == nil || !strings.Contains(err.Error(), "--enable-helm") {
		t.Errorf("without --enable-helm: err = %v, want kustomize's own error naming --enable-helm", err)
	}
	opts, err := KustomizeFlags([]string{"--enable-helm"})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Kustomize(filepath.Join(root, "overlay"), opts)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range objs {
		m, _, _ := unstructured.NestedStringMap(o.Object, "data")
		var pairs []string
		for k, v := range m {
			pairs = append(pairs, k+"="+v)
		}
		slices.Sort(pairs)
		data := strings.Join(pairs, " ")
		got[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = data
	}
	want := map[string]string{
		"ConfigMap//dev-plain":                          "",
		"ConfigMap/apps/dev-r1-cm":                      "color=blue size=large", // inline over the file
		"ConfigMap/default/dev-r2-cm":                   "color=red size=large",  // merge: the file wins
		"CustomResourceDefinition//widgets.example.com": "",
	}
	if len(got) != len(want) {
		t.Errorf("objects %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: %q (present %v), want %q", k, g, ok, v)
		}
	}
	if after := listTree(t, root); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Errorf("the tree changed: %v → %v", before, after)
	}

	// A chart not in the chart home: an error naming where and how to get it.
	if err := os.RemoveAll(filepath.Join(root, "base", "charts")); err != nil {
		t.Fatal(err)
	}
	_, err = Kustomize(filepath.Join(root, "overlay"), opts)
	if err == nil || !strings.Contains(err.Error(), "no chart at "+filepath.Join(root, "base", "charts", "demo")) ||
		!strings.Contains(err.Error(), "helm pull --untar") {
		t.Errorf("missing chart: err = %v", err)
	}
}

func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
