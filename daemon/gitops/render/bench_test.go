package render

import (
	"context"
	"testing"
)

// BenchmarkKustomize renders the Kustomize fixture in process (compare: `kustomize build`).
func BenchmarkKustomize(b *testing.B) {
	for b.Loop() {
		if _, err := Kustomize("testdata/kustomize/overlay", KustomizeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHelm renders the Helm fixture in process (compare: `helm template`).
func BenchmarkHelm(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		if _, err := Helm(ctx, HelmOptions{Chart: "testdata/helm/web", ReleaseName: "shop", Namespace: "shop",
			ValueFiles: []string{"values-dev.yaml", "values-local.yaml"}}); err != nil {
			b.Fatal(err)
		}
	}
}
