package render

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

// writeTree writes files (slash paths relative to dir).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(text), 0o644))
	}
}

// A multi-source app whose sources are all this work tree: a Helm chart taking a value
// file from the source whose ref is "values", and a directory whose ConfigMap replaces
// the chart's of the same name.
func TestMultiSourceFromWorkTree(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		".git/config":                     "[core]\n\tbare = false\n[remote \"origin\"]\n\turl = git@github.com:Example/Shop.git\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n",
		"charts/web/Chart.yaml":           "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":          "greeting: hello\n",
		"charts/web/templates/cm.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {greeting: {{ .Values.greeting | quote }}}\n",
		"charts/web/templates/other.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {from: chart}\n",
		"envs/dev/values.yaml":            "greeting: hi from dev\n",
		"extra/shared.yaml":               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {from: extra}\n",
		"apps/app.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  destination: {namespace: shop}
  sources:
    - repoURL: https://github.com/example/shop
      path: charts/web
      helm:
        valueFiles: [$values/envs/dev/values.yaml]
    - repoURL: https://github.com/example/shop.git
      ref: values
    - repoURL: git@github.com:example/shop.git
      path: extra
`,
	})
	apps, err := ArgoApps(context.Background(), filepath.Join(dir, "apps/app.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	if a.Tool != "Helm+Directory" || a.Path != "charts/web" {
		t.Errorf("Tool, Path = %q, %q; want Helm+Directory, charts/web", a.Tool, a.Path)
	}
	got := map[string]map[string]any{}
	for _, o := range a.Objects {
		data, _ := o.Object["data"].(map[string]any)
		got[o.GetName()] = data
	}
	if len(a.Objects) != 2 || got["web"]["greeting"] != "hi from dev" || got["shared"]["from"] != "extra" {
		t.Errorf("objects = %v; want web greeting from $values/envs/dev/values.yaml and shared from the later source", got)
	}

	// A source of another repository is refused, naming it.
	other := strings.Replace(mustRead(t, filepath.Join(dir, "apps/app.yaml")), "git@github.com:example/shop.git", "https://github.com/example/other", 1)
	writeTree(t, dir, map[string]string{"apps/other.yaml": other})
	_, err = ArgoApps(context.Background(), filepath.Join(dir, "apps/other.yaml"), dir)
	if err == nil || !strings.Contains(err.Error(), "spec.sources[2]: repoURL https://github.com/example/other is not the repository of the work tree") {
		t.Errorf("err = %v, want spec.sources[2] refused as another repository", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func TestApplicationSyncPolicy(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"m/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"app.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: a}
spec:
  source: {path: m}
  syncPolicy:
    syncOptions: [CreateNamespace=true, " ServerSideApply=true"]
    managedNamespaceMetadata: {labels: {team: shop}, annotations: {owner: me}}
    retry: {limit: 3, backoff: {duration: "2", factor: 3, maxDuration: 1m}}
  ignoreDifferences:
    - {group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}
`,
	})
	apps, err := ArgoApps(context.Background(), filepath.Join(dir, "app.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := apps[0].Sync
	if strings.Join(s.Options, ",") != "CreateNamespace=true,ServerSideApply=true" {
		t.Errorf("Options = %q", s.Options)
	}
	if s.NamespaceLabels["team"] != "shop" || s.NamespaceAnnotations["owner"] != "me" {
		t.Errorf("namespace metadata = %v %v", s.NamespaceLabels, s.NamespaceAnnotations)
	}
	if r := s.Retry; r == nil || *r != (model.ArgoRetry{Limit: 3, Backoff: 2e9, Factor: 3, MaxDuration: 60e9}) {
		t.Errorf("Retry = %+v, want limit 3, 2s, factor 3, 1m", r)
	}
	if len(s.IgnoreDifferences) != 1 || s.IgnoreDifferences[0].JSONPointers[0] != "/spec/replicas" {
		t.Errorf("IgnoreDifferences = %+v", s.IgnoreDifferences)
	}
}
