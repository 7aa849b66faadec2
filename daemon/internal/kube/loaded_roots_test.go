package kube

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/starlark/tiltfile"
)

// TestSourceRootsOfLoadTimeRenders: helm() and kustomize() render while the
// Tiltfile loads, and their inputs stay watched roots (an edit re-runs the
// Tiltfile) whether the YAML went to k8s_yaml directly or through
// decode_yaml_stream and filter_yaml — and nothing is rendered twice.
func TestSourceRootsOfLoadTimeRenders(t *testing.T) {
	examples, err := filepath.Abs(filepath.Join("..", "..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	kust := filepath.Join(examples, "kubernetes", "deploy", "overlays", "dev")
	chart := filepath.Join(examples, "tiltfile-example", "chart")
	dir := t.TempDir()
	values := filepath.Join(dir, "values.yaml")
	src := strings.NewReplacer("KUST", kust, "CHART", chart).Replace(`
k8s_yaml(kustomize('KUST'))
cms, _ = filter_yaml(helm('CHART', values='values.yaml'), kind='ConfigMap')
k8s_yaml(encode_yaml_stream(decode_yaml_stream(cms)))
`)
	for name, content := range map[string]string{"Tiltfile": src, "values.yaml": "greeting: hey\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := tiltfile.Load(context.Background(), filepath.Join(dir, "Tiltfile"), tiltfile.Options{Output: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(SourceRoots(cfg), " ")
	want := strings.Join([]string{kust, filepath.Join(examples, "kubernetes", "deploy", "base"), chart, values}, " ")
	if got != want {
		t.Errorf("roots = %s\nwant    %s", got, want)
	}
	groups, err := Render(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range groups {
		for _, o := range g.Objects {
			names = append(names, o.GetKind()+"/"+o.GetName())
		}
	}
	joined := strings.Join(names, " ")
	for _, w := range []string{"Deployment/loop-example-web", "ConfigMap/chart-greeting"} {
		if !strings.Contains(joined, w) {
			t.Errorf("rendered %s, want %s among them", joined, w)
		}
	}
}
