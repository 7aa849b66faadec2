package daemon_test

import (
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
	return copyTree(t, filepath.Join("..", "examples", name))
}
