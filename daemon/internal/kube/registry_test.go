package kube

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

func TestParseRegistryHosting(t *testing.T) {
	for _, c := range []struct {
		data      string
		host, pul string
		err       bool
	}{
		{data: "host: \"localhost:5001\"\nhelp: \"https://kind.sigs.k8s.io/docs/user/local-registry/\"\n", host: "localhost:5001", pul: "localhost:5001"},
		{data: "host: localhost:5001\nhostFromContainerRuntime: kind-registry:5000\nhostFromClusterNetwork: kind-registry:5000\n", host: "localhost:5001", pul: "kind-registry:5000"},
		{data: "help: no host\n"},
		{data: "host: [broken", err: true},
	} {
		r, err := parseRegistryHosting(c.data)
		if (err != nil) != c.err {
			t.Fatalf("%q: error %v, want error %v", c.data, err, c.err)
		}
		if c.host == "" {
			if r != nil {
				t.Fatalf("%q: registry %+v, want none", c.data, r)
			}
			continue
		}
		if r == nil || r.Host != c.host || r.HostFromCluster != c.pul {
			t.Fatalf("%q: registry %+v, want push %s pull %s", c.data, r, c.host, c.pul)
		}
	}
}

func TestRegistryRefs(t *testing.T) {
	r := &Registry{Host: "localhost:5001", HostFromCluster: "kind-registry:5000"}
	for built, want := range map[string][2]string{
		"loop/web:loop-abc":                 {"localhost:5001/loop_web:loop-abc", "kind-registry:5000/loop_web:loop-abc"},
		"web:loop-abc":                      {"localhost:5001/web:loop-abc", "kind-registry:5000/web:loop-abc"},
		"gcr.io/team/web:loop-abc":          {"localhost:5001/gcr.io_team_web:loop-abc", "kind-registry:5000/gcr.io_team_web:loop-abc"},
		"localhost:5000/team/web:loop-abc1": {"localhost:5001/localhost_5000_team_web:loop-abc1", "kind-registry:5000/localhost_5000_team_web:loop-abc1"},
	} {
		push, pull, err := r.Refs(built)
		if err != nil || push != want[0] || pull != want[1] {
			t.Errorf("Refs(%s) = %s, %s, %v; want %s, %s", built, push, pull, err, want[0], want[1])
		}
	}
	single := &Registry{Host: "localhost:5001", HostFromCluster: "localhost:5001", SingleName: "dev"}
	if push, _, err := single.Refs("loop/web:loop-abc"); err != nil || push != "localhost:5001/dev:loop-abc" {
		t.Errorf("single name: %s, %v", push, err)
	}
	if _, _, err := r.Refs("loop/web"); err == nil {
		t.Error("a ref without a tag was accepted")
	}
}

// TestRegistryPushToClusterRegistry reads the registry the test cluster advertises
// (scripts/test-cluster.sh writes the KEP-1755 ConfigMap and runs the registry), pushes
// a built image there through the real Docker engine and finds its manifest in the
// registry under the name the cluster would pull. default_registry() wins over it.
func TestRegistryPushToClusterRegistry(t *testing.T) {
	d, _ := testDeployer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg, err := d.Registry(ctx, nil)
	if err != nil || reg == nil {
		t.Fatalf("the test cluster's registry: %+v, %v", reg, err)
	}
	if !strings.HasPrefix(reg.Host, "127.0.0.1:") || reg.HostFromCluster != reg.Host || !strings.Contains(reg.Source, "local-registry-hosting") {
		t.Fatalf("registry %+v, want the loopback one the test cluster advertises", reg)
	}
	if def, _ := d.Registry(ctx, &model.Registry{Host: "registry.example:5000"}); def == nil || def.Host != "registry.example:5000" || def.HostFromCluster != "registry.example:5000" {
		t.Fatalf("default_registry did not win: %+v", def)
	}

	tag := fmt.Sprintf("loop-push-%d", time.Now().UnixNano()%1000000)
	img := testenv.BuildImage(t, "loop/push-test:"+tag, map[string][]byte{
		"Dockerfile": []byte("FROM " + testenv.Busybox(t) + "\nLABEL loop.test=" + tag + "\n"),
	})
	push, pull, err := reg.Refs(img)
	if err != nil {
		t.Fatal(err)
	}
	cli := testenv.Docker(t)
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), push, image.RemoveOptions{}) })
	var logs bytes.Buffer
	if err := build.New(cli).Push(ctx, img, push, &logs); err != nil {
		t.Fatalf("push: %v", err)
	}
	if !strings.Contains(logs.String(), "pushed "+push+" (sha256:") {
		t.Fatalf("push logs: %q", logs.String())
	}
	testenv.RegistryHas(t, pull)
}
