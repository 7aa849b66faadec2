package hostpath

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

const ownID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type fakeDocker map[string]container.InspectResponse

func (f fakeDocker) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	for full, insp := range f {
		if strings.HasPrefix(full, id) {
			return insp, nil
		}
	}
	return container.InspectResponse{}, cerrdefs.ErrNotFound
}

func inContainer(mounts ...container.MountPoint) fakeDocker {
	insp := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{ID: ownID}, Mounts: mounts}
	return fakeDocker{ownID: insp}
}

// procWith writes a fake /proc whose mountinfo names id (empty: none).
func procWith(t *testing.T, id string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	info := "100 90 0:50 / / rw - overlay overlay rw\n"
	if id != "" {
		info += "110 100 8:1 /var/lib/docker/containers/" + id + "/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
	}
	if err := os.WriteFile(filepath.Join(root, "self", "mountinfo"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "self", "cgroup"), []byte("0::/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func testEnv(proc string, vars map[string]string, host, wd string) Env {
	return Env{
		Getenv:   func(k string) string { return vars[k] },
		ProcRoot: proc,
		Hostname: func() (string, error) { return host, nil },
		Getwd:    func() (string, error) { return wd, nil },
	}
}

func TestDetectMapsUnderMounts(t *testing.T) {
	cli := inContainer(
		container.MountPoint{Type: "bind", Source: "/home/me/app", Destination: "/workspaces/app"},
		container.MountPoint{Type: "bind", Source: "/home/me/app/.cache", Destination: "/workspaces/app/.cache"},
		container.MountPoint{Type: "bind", Source: "/var/run/docker.sock", Destination: "/var/run/docker.sock"},
		container.MountPoint{Type: "volume", Source: "/var/lib/docker/volumes/gomod/_data", Destination: "/go/pkg"},
	)
	m, err := DetectEnv(context.Background(), cli, testEnv(procWith(t, ownID), nil, "devbox", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if !m.Active() {
		t.Fatalf("Active = false, want true (%s)", m)
	}
	for in, want := range map[string]string{
		"/workspaces/app":             "/home/me/app",
		"/workspaces/app/data/x.txt":  "/home/me/app/data/x.txt",
		"/workspaces/app/.cache/b":    "/home/me/app/.cache/b",
		"/workspaces/application":     "/workspaces/application",
		"/go/pkg/mod":                 "/var/lib/docker/volumes/gomod/_data/mod",
		"/etc/passwd":                 "/etc/passwd",
		"relative/path":               "relative/path",
		"/workspaces/app/../other/id": "/workspaces/other/id",
	} {
		if got := m.ToHost(in); got != want {
			t.Errorf("ToHost(%q) = %q, want %q", in, got, want)
		}
	}
	if s := m.String(); !strings.Contains(s, "/workspaces/app → /home/me/app") || !strings.Contains(s, ownID[:12]) {
		t.Errorf("String() = %q", s)
	}
}

func TestDetectByHostname(t *testing.T) {
	cli := inContainer(container.MountPoint{Type: "bind", Source: "/h/ws", Destination: "/ws"})
	m, err := DetectEnv(context.Background(), cli, testEnv(procWith(t, ""), nil, ownID[:12], "/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ToHost("/ws/a"); got != "/h/ws/a" {
		t.Errorf("ToHost via the hostname's container: got %q", got)
	}
}

func TestDetectNotInContainer(t *testing.T) {
	m, err := DetectEnv(context.Background(), fakeDocker{}, testEnv(procWith(t, ownID), nil, "laptop", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Active() || m.ToHost("/home/me/x") != "/home/me/x" {
		t.Errorf("outside a container of this engine: Active=%v ToHost changed the path", m.Active())
	}
}

func TestLocalWorkspaceFolder(t *testing.T) {
	cli := inContainer(container.MountPoint{Type: "bind", Source: "/host_mnt/Users/me/app", Destination: "/workspaces/app"})
	vars := map[string]string{"LOCAL_WORKSPACE_FOLDER": "/Users/me/app"}
	m, err := DetectEnv(context.Background(), cli, testEnv(procWith(t, ownID), vars, "x", "/workspaces/app/sub"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ToHost("/workspaces/app/data"); got != "/Users/me/app/data" {
		t.Errorf("LOCAL_WORKSPACE_FOLDER for the mount holding the cwd: got %q", got)
	}
	// Without engine access, CONTAINER_WORKSPACE_FOLDER names the folder.
	vars["CONTAINER_WORKSPACE_FOLDER"] = "/src"
	m, err = DetectEnv(context.Background(), fakeDocker{}, testEnv(procWith(t, ""), vars, "x", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.ToHost("/src/a"); got != "/Users/me/app/a" {
		t.Errorf("LOCAL_WORKSPACE_FOLDER with CONTAINER_WORKSPACE_FOLDER: got %q", got)
	}
}

func TestDisabled(t *testing.T) {
	cli := inContainer(container.MountPoint{Type: "bind", Source: "/h", Destination: "/ws"})
	m, err := DetectEnv(context.Background(), cli, testEnv(procWith(t, ownID), map[string]string{EnvDisable: "off"}, "x", "/"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Active() || !m.Off() || m.ToHost("/ws/a") != "/ws/a" {
		t.Errorf("%s=off: Active=%v Off=%v ToHost=%q", EnvDisable, m.Active(), m.Off(), m.ToHost("/ws/a"))
	}
}

type failingDocker struct{}

func (failingDocker) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	return container.InspectResponse{}, errors.New("engine gone")
}

func TestDetectEngineError(t *testing.T) {
	if _, err := DetectEnv(context.Background(), failingDocker{}, testEnv(procWith(t, ownID), nil, "x", "/")); err == nil {
		t.Error("an engine error must be returned")
	}
}
