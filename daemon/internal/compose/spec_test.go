package compose

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/daemon/model"
)

func loadSpec(t *testing.T, compose string) (*Project, *containerSpec) {
	t.Helper()
	dir := writeFiles(t, map[string]string{"compose.yaml": compose})
	p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"}, []string{})
	if err != nil {
		t.Fatal(err)
	}
	sp, err := p.spec(p.Services[0], "img:1", "sha256:abc", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

func TestSpecHealthcheckAndRestart(t *testing.T) {
	p, sp := loadSpec(t, `
services:
  s:
    image: x
    restart: on-failure:3
    healthcheck:
      test: curl -f http://localhost
      interval: 2s
      timeout: 500ms
      retries: 4
      start_period: 10s
`)
	want := &container.HealthConfig{
		Test:     []string{"CMD-SHELL", "curl -f http://localhost"},
		Interval: 2 * time.Second, Timeout: 500 * time.Millisecond, Retries: 4, StartPeriod: 10 * time.Second,
	}
	if !reflect.DeepEqual(sp.Config.Healthcheck, want) {
		t.Errorf("healthcheck = %+v, want %+v", sp.Config.Healthcheck, want)
	}
	if rp := sp.Host.RestartPolicy; rp.Name != container.RestartPolicyOnFailure || rp.MaximumRetryCount != 3 {
		t.Errorf("restart policy = %+v", rp)
	}
	if !p.Services[0].HasHealthcheck {
		t.Error("HasHealthcheck false")
	}

	p, sp = loadSpec(t, "services:\n  s:\n    image: x\n    healthcheck:\n      disable: true\n")
	if !reflect.DeepEqual(sp.Config.Healthcheck, &container.HealthConfig{Test: []string{"NONE"}}) {
		t.Errorf("disabled healthcheck = %+v", sp.Config.Healthcheck)
	}
	if p.Services[0].HasHealthcheck {
		t.Error("HasHealthcheck true for a disabled healthcheck")
	}
}

func TestSpecHash(t *testing.T) {
	const compose = `
services:
  s:
    image: x
    environment: {A: "${A}", B: "2", C: "3"}
    ports: ["127.0.0.1:8080:80", "9090:90/udp"]
    volumes: [./src:/src, data:/data]
    tmpfs: [/t1, /t2]
volumes:
  data:
`
	dir := writeFiles(t, map[string]string{"compose.yaml": compose})
	hash := func(env, imageID string) string {
		p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: "p"}, []string{env})
		if err != nil {
			t.Fatal(err)
		}
		sp, err := p.spec(p.Services[0], "img:1", imageID, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if sp.Config.Labels[LabelConfigHash] != sp.Hash {
			t.Errorf("hash label %q != hash %q", sp.Config.Labels[LabelConfigHash], sp.Hash)
		}
		return sp.Hash
	}
	base := hash("A=1", "sha256:abc")
	for i := 0; i < 5; i++ {
		if h := hash("A=1", "sha256:abc"); h != base {
			t.Fatalf("hash not stable across loads: %s vs %s", h, base)
		}
	}
	if hash("A=2", "sha256:abc") == base {
		t.Error("changed environment value kept the hash")
	}
	if hash("A=1", "sha256:def") == base {
		t.Error("changed image ID kept the hash")
	}
}
