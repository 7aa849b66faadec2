// Package testenv gives integration tests the real parts they run against: a
// Docker engine and small base images made without a registry. A test that
// needs Docker fails (it does not skip) when no engine answers: `make setup`
// starts one, and CI runs it first.
package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// TestLabel marks every container, image and network a test creates, so that
// Cleanup (and a developer) can find leftovers.
const TestLabel = "dev.loop.test"

// BusyboxRef is the busybox image imported from Debian's busybox-static.
const BusyboxRef = "loop-test/busybox:latest"

var (
	dockerOnce sync.Once
	dockerCli  *client.Client
	dockerErr  error
)

// Docker returns a client of the real Docker engine (API version negotiated).
// It fails the test when no engine answers.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	dockerOnce.Do(func() {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			dockerErr = fmt.Errorf("create docker client: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx); err != nil {
			dockerErr = fmt.Errorf("ping docker engine (run `make setup` to start one): %w", err)
			return
		}
		cli.NegotiateAPIVersion(ctx)
		dockerCli = cli
	})
	if dockerErr != nil {
		t.Fatalf("docker engine: %v", dockerErr)
	}
	return dockerCli
}

var busyboxMu sync.Mutex

// Busybox returns BusyboxRef, importing it from /bin/busybox (Debian's
// busybox-static) with a symlink per applet on first use.
func Busybox(t testing.TB) string {
	t.Helper()
	return BusyboxAs(t, BusyboxRef)
}

// BusyboxAs imports the busybox image under ref unless it exists.
func BusyboxAs(t testing.TB, ref string) string {
	t.Helper()
	cli := Docker(t)
	busyboxMu.Lock()
	defer busyboxMu.Unlock()
	if err := importBusybox(cli, ref); err != nil {
		t.Fatalf("import busybox image %s: %v", ref, err)
	}
	return ref
}

func importBusybox(cli *client.Client, ref string) error {
	ctx := context.Background()
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return nil
	}
	bin, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("read /bin/busybox (install busybox-static): %w", err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		return fmt.Errorf("list busybox applets: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"bin/", "tmp/", "etc/", "var/", "www/", "root/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode}); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return err
	}
	if _, err := tw.Write(bin); err != nil {
		return err
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}); err != nil {
			return err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
	if err := tw.WriteHeader(&tar.Header{Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd))}); err != nil {
		return err
	}
	if _, err := tw.Write([]byte(passwd)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	rc, err := cli.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref,
		image.ImportOptions{Changes: []string{`CMD ["/bin/sh"]`, `ENV PATH=/bin`}})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

// StaticBinary compiles the Go main package in pkgDir (CGO off, for linux on
// this machine's architecture) and returns the binary's path in a temp dir.
func StaticBinary(t testing.TB, pkgDir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkgDir))
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkgDir, err, b)
	}
	return out
}

// BuildImage builds ref from an in-memory context through the Docker API.
// files maps context paths to contents; a "Dockerfile" entry is required.
// The image is labelled TestLabel and removed when the test ends.
func BuildImage(t testing.TB, ref string, files map[string][]byte) string {
	t.Helper()
	cli := Docker(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{ref}, Remove: true, ForceRemove: true,
		Labels: map[string]string{TestLabel: "1"},
	})
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	defer resp.Body.Close()
	var log bytes.Buffer
	if err := jsonmessage.DisplayJSONMessagesStream(resp.Body, &log, 0, false, nil); err != nil {
		t.Fatalf("build %s: %v\n%s", ref, err, log.String())
	}
	t.Cleanup(func() {
		// Untag only: the layers below may be the build cache of a test in another
		// package building at the same moment (pruning them failed that build).
		_, _ = cli.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true})
	})
	return ref
}

// RunContainer creates and starts a container labelled TestLabel and removes
// it (with its anonymous volumes) when the test ends. It returns the id.
func RunContainer(t testing.TB, cfg *container.Config, hostCfg *container.HostConfig) string {
	t.Helper()
	cli := Docker(t)
	ctx := context.Background()
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[TestLabel] = "1"
	created, err := cli.ContainerCreate(ctx, cfg, hostCfg, nil, nil, "")
	if err != nil {
		t.Fatalf("create container from %s: %v", cfg.Image, err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", created.ID, err)
	}
	return created.ID
}

// Exec runs argv in a container and returns its combined output; it fails the
// test on a non-zero exit.
func Exec(t testing.TB, id string, argv ...string) string {
	t.Helper()
	out, code := ExecCode(t, id, argv...)
	if code != 0 {
		t.Fatalf("exec %v in %s: exit %d: %s", argv, id, code, out)
	}
	return out
}

// ExecCode runs argv in a container and returns its combined output and exit code.
func ExecCode(t testing.TB, id string, argv ...string) (string, int) {
	t.Helper()
	cli := Docker(t)
	ctx := context.Background()
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec create %v: %v", argv, err)
	}
	att, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("exec attach %v: %v", argv, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopyDemux(&out, att.Reader); err != nil {
		t.Fatalf("exec read %v: %v", argv, err)
	}
	insp, err := cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		t.Fatalf("exec inspect %v: %v", argv, err)
	}
	return out.String(), insp.ExitCode
}

// CleanupLabelled removes containers left by earlier test runs.
func CleanupLabelled(t testing.TB) {
	t.Helper()
	cli := Docker(t)
	ctx := context.Background()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", TestLabel))})
	if err != nil {
		t.Fatalf("list test containers: %v", err)
	}
	for _, c := range list {
		_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listened on a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
