package tiltfile

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

// FuzzLoad runs arbitrary Tiltfiles. local() is stubbed (a fuzzer must never
// run shell commands) and a run is cut off after a second (while loops).
// Load must never panic; it returns a config or an error, and an error
// raised by the program says where (file:line).
func FuzzLoad(f *testing.F) {
	for _, ex := range []string{"hello", "compose", "local", "devcontainer", "tiltfile-example"} {
		if b, err := os.ReadFile(filepath.Join("..", "..", "examples", ex, "Tiltfile")); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("docker_build('a', '.', live_update=[sync('.', '/app'), run('make', trigger=['x'])])\n")
	f.Add("x = [i*i for i in range(10)]\nif len(x) > 3:\n    fail('too long: %d' % len(x))\n")
	f.Add("load('./nope.star', 'f')\n")
	f.Add("def f(n):\n    return f(n-1) if n else 0\nf(100)\n")
	f.Add("config.define_string('env')\ncfg = config.parse()\nprint(cfg.get('env', 'dev'))\n")
	f.Add("k8s_yaml(blob('apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: a}\\n'))\nallow_k8s_contexts('kind-kind')\n")
	f.Add("local_resource('x', cmd='echo hi', deps=['a'], serve_cmd=['sleep', '1'])\nsecret_settings(names=['K'])\n")
	f.Add("s = decode_json('{\"a\": [1, 2]}')\nencode_yaml(s)\nread_yaml('missing.yaml', default={})\n")
	f.Fuzz(func(t *testing.T, src string) {
		dir := t.TempDir()
		tf := filepath.Join(dir, "Tiltfile")
		if err := os.WriteFile(tf, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cfg, err := Load(ctx, tf, Options{
			ExtensionsDir: filepath.Join(dir, "ext"),
			Env:           []string{"HOME=" + dir},
			Output:        io.Discard,
			Local: func(context.Context, model.Cmd, string, []string, string) ([]byte, error) {
				return []byte("stub\n"), nil
			},
		})
		if err == nil {
			if cfg == nil {
				t.Fatal("Load returned neither a config nor an error")
			}
			return
		}
		var le *Error
		if errors.As(err, &le) && le.Pos.File == "" {
			t.Fatalf("load error without a file: %v", err)
		}
	})
}
