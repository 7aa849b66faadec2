package compose

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

// FuzzLoad converts arbitrary compose YAML into loop's services. It must never
// panic; a project that loads has services with a name, an image and a
// container name, and live-update rules (from develop.watch) with absolute
// paths.
func FuzzLoad(f *testing.F) {
	f.Add("services:\n  web:\n    image: busybox\n    ports: ['8080:80']\n")
	f.Add("services:\n  web:\n    build: .\n    develop:\n      watch:\n        - action: sync\n          path: ./src\n          target: /app\n        - action: rebuild\n          path: go.mod\n")
	f.Add("services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_healthy}\n  b:\n    image: y\n    healthcheck: {test: ['CMD', 'true']}\n")
	f.Add("services:\n  a:\n    image: ${IMG:-busybox}\n    container_name: fixed\n    profiles: [dev]\n")
	f.Add("name: p\nservices:\n  a:\n    image: x\n    volumes: ['./d:/d', 'named:/n']\nvolumes:\n  named: {}\n")
	f.Fuzz(func(t *testing.T, yaml string) {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p, err := Load(ctx, &model.ComposeProject{Inline: yaml, ProjectName: "fuzz", Pos: model.Position{File: filepath.Join(dir, "Tiltfile")}}, []string{"HOME=" + dir})
		if err != nil {
			return
		}
		for _, svc := range p.Services {
			if svc.Name == "" || svc.Image == "" || svc.ContainerName == "" {
				t.Fatalf("service %+v lacks a name, image or container name", svc)
			}
			if lu := svc.LiveUpdate; lu != nil {
				for _, s := range lu.Syncs {
					if !filepath.IsAbs(s.LocalPath) || len(s.ContainerPath) == 0 || s.ContainerPath[0] != '/' {
						t.Fatalf("service %s: sync %+v is not absolute on both sides", svc.Name, s)
					}
				}
			}
		}
	})
}
