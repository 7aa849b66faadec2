// Package agentbuild compiles the sync agent (cmd/loop-agent) as a small
// static Linux binary, the same bytes on every machine.
//
// The agents loop embeds are committed in daemon/internal/agent/prebuilt, so
// that `go build ./cmd/loop` and `go install …/cmd/loop@version` work without
// a generate step. `make agent` (go generate) rewrites them with Generate;
// `make check-agent` runs Check, which rebuilds them from the current sources
// and fails when a byte differs: an agent source changed without `make agent`.
// Tests use TestDir, which builds the agent for this machine with the local
// toolchain.
package agentbuild

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

// Package is the agent's import path.
const Package = "github.com/loop-dev/loop/cmd/loop-agent"

// Toolchain is the Go toolchain Generate and Check build with (GOTOOLCHAIN),
// so that the committed agents are reproducible on any machine: a different
// compiler gives different bytes. Change it together with the project's Go
// version, run `make agent` and commit the result.
const Toolchain = "go1.26.8"

// Arches are the architectures loop embeds an agent for.
var Arches = []string{"amd64", "arm64"}

// Name is the file name of the agent for linux/arch.
func Name(arch string) string { return "loop-agent-linux-" + arch }

// Build writes Name(arch) into outDir for each arch with the go command on
// PATH and its own toolchain. It must run inside the loop module.
func Build(outDir string, arches ...string) error {
	return build(outDir, "local", arches)
}

// Generate writes the agents for every arch in Arches into outDir with the
// pinned Toolchain: what `make agent` commits.
func Generate(outDir string) error {
	return build(outDir, Toolchain, Arches)
}

// Check rebuilds the agents as Generate does and compares them with those in
// dir. It returns an error naming every file that differs, is missing or
// should not be there.
func Check(dir string) error {
	tmp, err := os.MkdirTemp("", "loop-agent-check-")
	if err != nil {
		return fmt.Errorf("check agents: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	if err := Generate(tmp); err != nil {
		return fmt.Errorf("check agents: %w", err)
	}
	var problems []string
	for _, arch := range Arches {
		want, err := os.ReadFile(filepath.Join(tmp, Name(arch)))
		if err != nil {
			return fmt.Errorf("check agents: %w", err)
		}
		got, err := os.ReadFile(filepath.Join(dir, Name(arch)))
		switch {
		case errors.Is(err, os.ErrNotExist):
			problems = append(problems, Name(arch)+" is missing")
		case err != nil:
			return fmt.Errorf("check agents: %w", err)
		case !bytes.Equal(got, want):
			problems = append(problems, Name(arch)+" differs from what its sources build")
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check agents: %w", err)
	}
	for _, e := range entries {
		if !slices.ContainsFunc(Arches, func(a string) bool { return Name(a) == e.Name() }) {
			problems = append(problems, e.Name()+" is not an agent Generate builds")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("check agents in %s: %s; run `make agent` and commit the result", dir, strings.Join(problems, "; "))
	}
	return nil
}

// build compiles the agent for each arch with fixed flags and a fixed
// environment: static (CGO_ENABLED=0), no paths (-trimpath), no VCS stamp
// and no build ID (they would change with every commit), symbols stripped,
// the baseline instruction set. Variables of the caller's environment that
// change the output (GOFLAGS, GOEXPERIMENT, ...) are dropped.
func build(outDir, toolchain string, arches []string) error {
	env := []string{"CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=", "GOEXPERIMENT=", "GOAMD64=v1", "GOARM64=v8.0", "GOTOOLCHAIN=" + toolchain}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(env, func(s string) bool { return strings.HasPrefix(s, name+"=") }) &&
			name != "GOARCH" && !strings.HasPrefix(name, "CGO_") {
			env = append(env, kv)
		}
	}
	for _, arch := range arches {
		out := filepath.Join(outDir, Name(arch))
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, Package)
		cmd.Env = append(slices.Clone(env), "GOARCH="+arch)
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
