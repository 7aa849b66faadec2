package tiltfile

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

// BenchmarkLoad700Lines loads a generated ~700-line Tiltfile of the shape
// large projects have: many images with live updates, local resources,
// k8s_yaml of blobs, helpers and stubbed local() calls.
func BenchmarkLoad700Lines(b *testing.B) {
	dir := b.TempDir()
	var src strings.Builder
	src.WriteString("load('./lib.star', 'svc_name')\nconfig.define_string_list('to-run', args=True)\ncfg = config.parse()\n")
	for i := 0; src.Len() == 0 || strings.Count(src.String(), "\n") < 700; i++ {
		fmt.Fprintf(&src, `
# service %[1]d
docker_build(svc_name(%[1]d), 'svc%[1]d', build_args={'N': '%[1]d'}, ignore=['*.tmp'], live_update=[
    sync('svc%[1]d/src', '/app/src'),
    run('make -C /app', trigger=['svc%[1]d/src/Makefile']),
])
k8s_yaml(encode_yaml({'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 'svc%[1]d'}}))
k8s_resource('svc%[1]d', port_forwards=[%[2]d], labels=['group%[3]d'])
local_resource('gen%[1]d', 'go generate ./svc%[1]d/...', deps=['svc%[1]d/api'], resource_deps=['gen%[4]d'] if %[1]d > 0 else [])
rev%[1]d = str(local('git rev-parse HEAD', quiet=True)).strip()
`, i, 9000+i, i%5, max(i-1, 0))
	}
	if err := os.WriteFile(filepath.Join(dir, "lib.star"), []byte("def svc_name(i):\n    return 'example/svc%d' % i\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte(src.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	opts := Options{
		Env:    []string{"HOME=/home/bench"},
		Output: io.Discard,
		Local: func(context.Context, model.Cmd, string, []string, string) ([]byte, error) {
			return []byte("0123456789abcdef\n"), nil
		},
	}
	b.ReportMetric(float64(strings.Count(src.String(), "\n")), "lines")
	b.ResetTimer()
	for b.Loop() {
		cfg, err := Load(context.Background(), filepath.Join(dir, "Tiltfile"), opts)
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Images) < 50 {
			b.Fatalf("loaded %d images", len(cfg.Images))
		}
	}
}
