package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

// TestKubeCompatAssembles: the Kubernetes patterns of testdata/kubecompat
// assemble as Tilt assembles them: an extension under tilt_modules finds its
// data folder; helm_resource's chart is one resource of its name (Deployment,
// Service and ConfigMap), its image dep injected through image_keys and built,
// its k8s_resource arguments applied; helm_remote's objects are grouped by
// workload; k8s_custom_deploy is a resource whose objects its apply_cmd prints
// when it runs, its deps watched.
func TestKubeCompatAssembles(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "kubecompat"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg, err := tiltfile.Load(ctx, filepath.Join(dir, "Tiltfile"), tiltfile.Options{
		Subcommand: "dump", ExtensionsDir: filepath.Join(dir, "tilt_modules"), Output: &strings.Builder{}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	rs, err := daemon.Resources(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string { return strings.TrimPrefix(p, dir+"/") }
	var got []string
	for _, r := range rs {
		line := fmt.Sprintf("%s %s deps=%v labels=%v", r.Name, r.Type, r.ResourceDeps, r.Labels)
		for _, o := range r.Objects {
			line += " " + o.Kind + "/" + o.Namespace + "/" + o.Name
		}
		for _, img := range r.Images {
			line += " image=" + img.Ref + "@" + rel(img.Context)
		}
		if c := r.Custom; c != nil {
			line += " apply=" + strings.Join(c.ApplyCmd, " ") + " watches=" + rel(strings.Join(c.Deps, ","))
		}
		for _, l := range r.Links {
			line += " link=" + l.URL
		}
		got = append(got, line)
	}
	want := []string{
		"charts local deps=[] labels=[charts]",
		"web k8s deps=[charts] labels=[charts] Namespace//kubecompat ConfigMap/kubecompat/web-config Service/kubecompat/web Deployment/kubecompat/web image=example/hello@hello link=http://localhost:18080",
		`custom k8s deps=[web] labels=[] apply=sh -c sed "s/NAMESPACE/$NS/" custom.yaml | tee applied.yaml watches=custom.yaml`,
		"remote k8s deps=[web] labels=[] Deployment/kubecompat/remote Service/kubecompat/remote ConfigMap/kubecompat/remote-config",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
