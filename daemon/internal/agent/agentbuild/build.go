// Package agentbuild compiles the sync agent (cmd/loop-agent) as a small
// static Linux binary. go generate uses it to fill daemon/internal/agent/bin;
// tests use TestDir so that `go test` works on a clean checkout.
package agentbuild

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// Package is the agent's import path.
const Package = "github.com/loop-dev/loop/cmd/loop-agent"

// Build writes loop-agent-linux-<arch> into outDir for each arch. It runs the
// go command, so it must run inside the loop module.
func Build(outDir string, arches ...string) error {
	for _, arch := range arches {
		out := filepath.Join(outDir, "loop-agent-linux-"+arch)
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, Package)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s for linux/%s: %w\n%s", Package, arch, err, b)
		}
	}
	return nil
}

// TestDir prepares $LOOP_AGENT_DIR for a test binary: when it is unset, it
// builds the agent for this machine's architecture into a new temp dir and
// sets the variable. Call the returned cleanup when the tests are done.
func TestDir() (cleanup func(), err error) {
	if os.Getenv("LOOP_AGENT_DIR") != "" {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "loop-agent-")
	if err != nil {
		return nil, err
	}
	if err := Build(dir, runtime.GOARCH); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := os.Setenv("LOOP_AGENT_DIR", dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return func() { _ = os.Unsetenv("LOOP_AGENT_DIR"); _ = os.RemoveAll(dir) }, nil
}
