// Package hostpath maps paths seen by loop to paths seen by the Docker
// engine. When loop runs inside a container that talks to the host's engine
// (the socket is mounted, as in a dev container), a bind mount source such
// as /workspaces/app/data must be given to the engine as the host path it
// came from (/home/me/app/data). Detect finds loop's own container through
// the engine and maps every path under one of its bind (or volume) mounts to
// that mount's source.
//
// LOCAL_WORKSPACE_FOLDER (set by dev container configs that mount the
// host's socket) overrides the source of the workspace folder: the folder
// named by CONTAINER_WORKSPACE_FOLDER, or else the mount holding the current
// directory. LOOP_HOST_PATH_MAPPING=off turns mapping off.
package hostpath

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/internal/pathrule"
)

// EnvDisable names the variable that turns mapping off when set to "off".
const EnvDisable = "LOOP_HOST_PATH_MAPPING"

// DockerAPI is the part of the Docker client Detect uses.
type DockerAPI interface {
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
}

// Mapper maps local paths to engine paths. The zero value (and a nil
// *Mapper) maps nothing. It is immutable and safe for concurrent use.
type Mapper struct {
	containerID string
	// mounts are sorted longest destination first.
	mounts []Mount
	desc   string
	off    bool
}

// Mount is one mapping: paths under Dest (in loop's container) are Source
// on the engine's host.
type Mount struct {
	Dest, Source string
}

// Env is what Detect reads from the process; tests replace it.
type Env struct {
	// Getenv reads a variable (os.Getenv).
	Getenv func(string) string
	// ProcRoot is where /proc is ("/proc").
	ProcRoot string
	// Hostname is os.Hostname.
	Hostname func() (string, error)
	// Getwd is os.Getwd.
	Getwd func() (string, error)
}

// OSEnv is the real process environment.
func OSEnv() Env {
	return Env{Getenv: os.Getenv, ProcRoot: "/proc", Hostname: os.Hostname, Getwd: os.Getwd}
}

// Detect finds out whether loop runs in a container of the engine cli
// talks to, and returns the mapping (inactive when not). It fails only when
// the engine does not answer as expected.
func Detect(ctx context.Context, cli DockerAPI) (*Mapper, error) {
	return DetectEnv(ctx, cli, OSEnv())
}

// DetectEnv is Detect with the process environment given.
func DetectEnv(ctx context.Context, cli DockerAPI, env Env) (*Mapper, error) {
	if strings.EqualFold(env.Getenv(EnvDisable), "off") {
		return &Mapper{off: true, desc: "host-path mapping off (" + EnvDisable + "=off)"}, nil
	}
	m := &Mapper{}
	for _, id := range candidateIDs(env) {
		insp, err := cli.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("detect host paths: inspect container %s: %w", id, err)
		}
		if !strings.HasPrefix(insp.ID, id) {
			continue
		}
		m.containerID = insp.ID
		for _, mp := range insp.Mounts {
			if mp.Source == "" || mp.Destination == "" {
				continue
			}
			if mp.Type != "bind" && mp.Type != "volume" {
				continue
			}
			m.mounts = append(m.mounts, Mount{Dest: filepath.Clean(mp.Destination), Source: filepath.Clean(mp.Source)})
		}
		break
	}
	if local := env.Getenv("LOCAL_WORKSPACE_FOLDER"); local != "" {
		folder := env.Getenv("CONTAINER_WORKSPACE_FOLDER")
		if folder == "" {
			folder = m.mountOf(env)
		}
		if folder != "" {
			m.mounts = replaceDest(m.mounts, Mount{Dest: filepath.Clean(folder), Source: filepath.Clean(local)})
		}
	}
	sort.SliceStable(m.mounts, func(i, j int) bool { return len(m.mounts[i].Dest) > len(m.mounts[j].Dest) })
	m.desc = m.describe()
	return m, nil
}

// mountOf returns the destination of the mount holding the current
// directory, or the directory itself.
func (m *Mapper) mountOf(env Env) string {
	wd, err := env.Getwd()
	if err != nil {
		return ""
	}
	for _, mp := range m.mounts {
		if pathrule.Within(mp.Dest, wd) {
			return mp.Dest
		}
	}
	return wd
}

func replaceDest(ms []Mount, n Mount) []Mount {
	out := []Mount{n}
	for _, m := range ms {
		if m.Dest != n.Dest {
			out = append(out, m)
		}
	}
	return out
}

var (
	hex64   = regexp.MustCompile(`[0-9a-f]{64}`)
	hexOnly = regexp.MustCompile(`^[0-9a-f]+$`)
)

// candidateIDs lists what may be loop's container ID, best first: the ID in
// the paths of the engine-managed files mounted into every container
// (/etc/hostname and friends, cgroup v1 and v2 alike), the cgroup path, and
// the hostname (a short ID unless the container sets one).
func candidateIDs(env Env) []string {
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if f, err := os.Open(filepath.Join(env.ProcRoot, "self", "mountinfo")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "/containers/"); i >= 0 && strings.Contains(line, "/hostname") {
				add(hex64.FindString(line[i:]))
			}
		}
		_ = f.Close()
	}
	for _, p := range []string{filepath.Join(env.ProcRoot, "self", "cgroup"), filepath.Join(env.ProcRoot, "1", "cpuset")} {
		if b, err := os.ReadFile(p); err == nil {
			add(hex64.FindString(string(b)))
		}
	}
	if h, err := env.Hostname(); err == nil && len(h) >= 12 && hexOnly.MatchString(h) {
		add(h)
	}
	return ids
}

// ToHost returns the engine's path for p: p with the longest mount
// destination it lies under replaced by that mount's source, or p itself
// (cleaned) when no mount holds it; relative paths are returned as given.
func (m *Mapper) ToHost(p string) string {
	if m == nil || !filepath.IsAbs(p) {
		return p
	}
	for _, mp := range m.mounts {
		if rel, ok := pathrule.Rel(mp.Dest, p); ok {
			return filepath.Join(mp.Source, rel)
		}
	}
	return filepath.Clean(p)
}

// Active reports whether any path is mapped.
func (m *Mapper) Active() bool { return m != nil && len(m.mounts) > 0 }

// Off reports whether mapping was turned off with LOOP_HOST_PATH_MAPPING=off.
func (m *Mapper) Off() bool { return m != nil && m.off }

// Mounts returns the mappings, longest destination first.
func (m *Mapper) Mounts() []Mount {
	if m == nil {
		return nil
	}
	return append([]Mount(nil), m.mounts...)
}

// String is a one-line description for loop's header.
func (m *Mapper) String() string {
	if m == nil {
		return "host-path mapping inactive"
	}
	return m.desc
}

func (m *Mapper) describe() string {
	if len(m.mounts) == 0 {
		return "host-path mapping inactive (not in a container of this Docker engine)"
	}
	// Show the workspace's mapping when there is one, and count the rest.
	// (mounts are longest first: the last match is the workspace root).
	first := m.mounts[0]
	for i := len(m.mounts) - 1; i >= 0; i-- {
		if strings.HasPrefix(m.mounts[i].Dest, "/workspaces/") {
			first = m.mounts[i]
			break
		}
	}
	s := fmt.Sprintf("host-path mapping active: %s → %s", first.Dest, first.Source)
	if n := len(m.mounts) - 1; n > 0 {
		s += fmt.Sprintf(" (+%d more)", n)
	}
	if m.containerID != "" {
		s += " in container " + m.containerID[:12]
	}
	return s
}
