package tiltfile

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden loads every examples/*/Tiltfile and Tiltfile.example and
// compares the Config, as JSON with paths relative to the repository root,
// to testdata/golden. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tiltfiles, err := filepath.Glob(filepath.Join(root, "examples", "*", "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	tiltfiles = append(tiltfiles, filepath.Join(root, "Tiltfile.example"))
	for _, tf := range tiltfiles {
		rel, _ := filepath.Rel(root, tf)
		name := strings.ReplaceAll(strings.TrimSuffix(rel, "/Tiltfile"), "/", "_") + ".json"
		t.Run(rel, func(t *testing.T) {
			var out bytes.Buffer
			cfg, err := Load(context.Background(), tf, Options{
				Subcommand:    "up",
				Env:           []string{"HOME=/home/loop", "PATH=" + os.Getenv("PATH")},
				ExtensionsDir: filepath.Join(root, "starlark", "tiltfile", "testdata", "extensions"),
				Output:        &out,
			})
			if err != nil {
				t.Fatalf("load %s: %v\noutput:\n%s", rel, err, out.String())
			}
			got, err := json.MarshalIndent(cfg, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = bytes.ReplaceAll(got, []byte(root+string(filepath.Separator)), nil)
			got = bytes.ReplaceAll(got, []byte(root), []byte("."))
			got = append(got, '\n')
			path := filepath.Join("testdata", "golden", name)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run go test ./starlark/tiltfile -run Golden -update): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (rerun with -update if the change is intended):\n%s", rel, path, firstDiff(string(want), string(got)))
			}
		})
	}
}

// firstDiff shows the first differing line with a little context.
func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return "(no line differs)"
}
