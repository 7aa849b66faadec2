package daemon_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/loop-dev/loop/internal/testenv"
)

// ensureExampleBase makes sure the examples' base image exists.
func ensureExampleBase(t *testing.T) {
	t.Helper()
	testenv.BusyboxAs(t, "loop/busybox:latest")
}

// copyExample copies examples/NAME into a temp dir so the test can edit it.
func copyExample(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("..", "examples", name)
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy example %s: %v", name, err)
	}
	return dst
}
