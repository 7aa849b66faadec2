// Package agent puts loop's sync agent (cmd/loop-agent) into a container and
// talks to it. It owns the embedded agent binaries, their installation
// (one CopyToContainer, off the change path), starting the agent through the
// exec API, and the Session that streams batches of file changes over that
// held exec stream with one acknowledgement per batch. A container created
// with Supervisor() in front of its command runs that command under the
// agent, and Session.RestartProcess restarts it without restarting the
// container.
package agent

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/loop-dev/loop/internal/agentwire"
)

// The agents are committed in prebuilt/ so that `go build` and `go install`
// need no generate step; `make agent` rewrites them from cmd/loop-agent and
// `make check-agent` verifies they match their sources (see agentbuild).
//go:generate go run ./agentbuild/gen -o prebuilt

//go:embed prebuilt
var binFS embed.FS

// Path is where Install puts the agent inside a container.
const Path = "/.loop/agent"

// Supervisor is the entrypoint prefix that runs a container's command under
// the agent's supervisor (see cmd/loop-agent), so that Session.RestartProcess
// can restart the command without restarting the container. The agent must
// be installed (Install) before such a container starts.
func Supervisor() []string { return []string{Path, "supervise", "--"} }

// SupervisorFor is Supervisor, or with keepOnExit the prefix whose
// supervisor keeps the container running when the command exits on its own
// and starts it again at the next restart (restart_process'
// exit_policy='continue').
func SupervisorFor(keepOnExit bool) []string {
	if keepOnExit {
		return []string{Path, "supervise", "-keep-on-exit", "--"}
	}
	return Supervisor()
}

// IsSupervised reports whether a container's entrypoint runs the agent's
// supervisor (Supervisor or SupervisorFor).
func IsSupervised(entrypoint []string) bool {
	sup := []string{Path, "supervise"}
	if len(entrypoint) < len(sup) {
		return false
	}
	for i, a := range sup {
		if entrypoint[i] != a {
			return false
		}
	}
	return true
}

// DirEnv names a directory holding loop-agent-linux-<arch> binaries that
// Binary reads instead of the embedded ones (tests build the agent there).
const DirEnv = "LOOP_AGENT_DIR"

var (
	// ErrNoBinary means no agent exists for the container's architecture.
	ErrNoBinary = errors.New("no sync agent binary")
	// ErrClosed means the agent's stream is gone (the agent exited, the
	// container stopped or restarted, or a request was cancelled midway).
	// Start a new Session.
	ErrClosed = errors.New("sync agent stream closed")
	// ErrNotInstalled means the agent could not be executed in the container.
	ErrNotInstalled = errors.New("sync agent not installed")
)

// Op is one file change; Entry one listed file. See package agentwire.
type (
	Op      = agentwire.Op
	Entry   = agentwire.Entry
	OpError = agentwire.OpError
)

// Write returns an op replacing path with data (atomically, parents created).
func Write(path string, mode os.FileMode, data []byte) Op {
	return Op{Kind: agentwire.OpWrite, Path: path, Mode: mode, Data: data}
}

// Remove returns an op removing path recursively; missing is fine.
func Remove(path string) Op { return Op{Kind: agentwire.OpRemove, Path: path} }

// Mkdir returns an op creating directory path with mode.
func Mkdir(path string, mode os.FileMode) Op {
	return Op{Kind: agentwire.OpMkdir, Path: path, Mode: mode}
}

// Symlink returns an op making path a link to target (which must stay
// inside the batch's root).
func Symlink(path, target string) Op {
	return Op{Kind: agentwire.OpSymlink, Path: path, Target: target}
}

// NormalizeArch maps the architecture names Docker reports to Go's.
func NormalizeArch(arch string) string {
	switch arch {
	case "x86_64", "x86-64":
		return "amd64"
	case "aarch64", "arm64/v8":
		return "arm64"
	}
	return arch
}

// Binary returns the agent for linux/arch: from $LOOP_AGENT_DIR when set,
// otherwise the one embedded at build time. It returns an error wrapping
// ErrNoBinary that says how to build it when there is none.
func Binary(arch string) ([]byte, error) {
	name := "loop-agent-linux-" + NormalizeArch(arch)
	if dir := os.Getenv(DirEnv); dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s from $%s: %w (%w)", name, DirEnv, ErrNoBinary, err)
		}
		return b, nil
	}
	b, err := binFS.ReadFile("prebuilt/" + name)
	if err != nil {
		return nil, fmt.Errorf("%w for linux/%s: loop embeds agents for %s only; set $%s to a directory holding %s",
			ErrNoBinary, arch, strings.Join(Arches(), ", "), DirEnv, name)
	}
	return b, nil
}

// Arches lists the architectures of the agents embedded in this binary
// (linux/ARCH), sorted.
func Arches() []string {
	entries, _ := binFS.ReadDir("prebuilt")
	var arches []string
	for _, e := range entries {
		if a, ok := strings.CutPrefix(e.Name(), "loop-agent-linux-"); ok {
			arches = append(arches, a)
		}
	}
	return arches
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
