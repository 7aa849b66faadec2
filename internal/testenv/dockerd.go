//go:build linux

package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/internal/pathrule"
)

// Dockerd is a Docker engine of the test's own: the machine's dockerd binary
// with its own data root, exec root (so its own containerd), socket and
// containerd namespaces, a bridge of its own and no iptables. A test may stop and start
// it; the machine's shared engine is never touched. live-restore stays off
// (Debian's default), so stopping it stops its containers.
type Dockerd struct {
	t      testing.TB
	dir    string
	Host   string // DOCKER_HOST value: unix://<dir>/docker.sock
	cli    *client.Client
	args   []string
	bridge string // its own bridge interface, deleted at cleanup
	// hadDocker0: the shared engine's bridge existed before; it must afterwards.
	hadDocker0 bool

	exited chan struct{} // closed when the running process has been waited for
	proc   *os.Process
}

// StartDockerd starts a private engine and stops it, removing everything it
// left, when the test ends. It needs root, like dockerd itself.
func StartDockerd(t testing.TB) *Dockerd {
	t.Helper()
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		t.Fatalf("private docker engine: dockerd not found (install docker.io): %v", err)
	}
	// Short: the socket path must fit a sockaddr_un (108 bytes).
	dir, err := os.MkdirTemp("", "lfd")
	if err != nil {
		t.Fatal(err)
	}
	ns := "loop-test-" + filepath.Base(dir)
	// A bridge of its own: with --bridge=none dockerd deletes the host's docker0,
	// the shared engine's default network.
	br := "lfb" + strings.TrimPrefix(filepath.Base(dir), "lfd")
	if len(br) > 15 {
		br = br[:15]
	}
	subnet := fmt.Sprintf("10.254.%d.1/24", 1+time.Now().UnixNano()%250)
	for _, args := range [][]string{{"link", "add", br, "type", "bridge"}, {"addr", "add", subnet, "dev", br}, {"link", "set", br, "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "link", "del", br).Run()
			t.Fatalf("private docker engine: ip %v: %v: %s", args, err, out)
		}
	}
	_, err = net.InterfaceByName("docker0")
	d := &Dockerd{t: t, dir: dir, bridge: br, hadDocker0: err == nil, Host: "unix://" + filepath.Join(dir, "docker.sock")}
	d.args = []string{bin,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "dockerd.pid"),
		"--host", d.Host,
		"--bridge=" + br, "--iptables=false", "--ip6tables=false",
		"--containerd-namespace", ns,
		"--containerd-plugins-namespace", ns + "-plugins",
	}
	d.cli, err = client.NewClientWithOpts(client.WithHost(d.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.cleanup)
	d.Start()
	return d
}

// Client returns a client of the private engine; it keeps working across
// restarts.
func (d *Dockerd) Client() *client.Client { return d.cli }

// Start starts the engine with the same flags and waits until it answers.
func (d *Dockerd) Start() {
	d.t.Helper()
	if d.exited != nil {
		select {
		case <-d.exited:
		default:
			d.t.Fatal("private dockerd: start while it runs")
		}
	}
	logf, err := os.OpenFile(d.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(d.args[0], d.args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// SIGTERM (a clean shutdown) if the test binary dies before its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	started := make(chan error, 1)
	exited := make(chan struct{})
	// Owns the process: starts it and waits for its exit, on one locked OS
	// thread because Pdeathsig fires when the starting thread ends.
	go func() {
		defer close(exited)
		defer logf.Close()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait()
	}()
	if err := <-started; err != nil {
		d.t.Fatalf("start private dockerd: %v", err)
	}
	d.proc, d.exited = cmd.Process, exited

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := d.cli.Ping(ctx)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-exited:
			d.t.Fatalf("private dockerd exited during start: %v\n%s", err, d.logTail())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("private dockerd did not answer within 30s: %v\n%s", err, d.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits for the engine to exit, its containers
// stopped.
func (d *Dockerd) Stop() {
	d.t.Helper()
	if err := d.stop(time.Minute); err != nil {
		d.t.Fatalf("stop private dockerd: %v\n%s", err, d.logTail())
	}
}

func (d *Dockerd) stop(timeout time.Duration) error {
	if d.exited == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	if err := d.proc.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal dockerd %d: %w", d.proc.Pid, err)
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("dockerd %d still runs %s after SIGTERM", d.proc.Pid, timeout)
	}
}

// cleanup stops the engine (killing it if it hangs), then removes whatever a
// killed engine leaves: containers, shims, mounts and the directory.
func (d *Dockerd) cleanup() {
	if err := d.stop(30 * time.Second); err != nil {
		d.t.Logf("private dockerd: %v; killing it\n%s", err, d.logTail())
		_ = d.proc.Kill()
		<-d.exited
	}
	_ = d.cli.Close()
	// Containers of a killed engine keep running under their shims.
	runcRoots, _ := filepath.Glob(filepath.Join(d.dir, "exec", "runtime-runc", "*"))
	for _, root := range runcRoots {
		ids, _ := os.ReadDir(root)
		for _, id := range ids {
			if out, err := exec.Command("runc", "--root", root, "delete", "--force", id.Name()).CombinedOutput(); err != nil {
				d.t.Logf("runc delete %s: %v: %s", id.Name(), err, out)
			}
		}
	}
	for _, pid := range d.leftoverPIDs() {
		if p, err := os.FindProcess(pid); err == nil {
			_ = p.Kill()
		}
	}
	for _, m := range d.mounts() {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			d.t.Logf("unmount %s: %v", m, err)
		}
	}
	if err := os.RemoveAll(d.dir); err != nil {
		d.t.Errorf("remove private dockerd's directory: %v", err)
	}
	if out, err := exec.Command("ip", "link", "del", d.bridge).CombinedOutput(); err != nil {
		d.t.Logf("delete bridge %s: %v: %s", d.bridge, err, out)
	}
	if _, err := net.InterfaceByName("docker0"); d.hadDocker0 && err != nil {
		d.t.Errorf("the private engine took the shared engine's docker0 bridge with it: %v", err)
	}
}

// leftoverPIDs lists processes the engine started that outlived it (shims,
// containerd): their command line names the engine's directory.
func (d *Dockerd) leftoverPIDs() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(d.dir+"/")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// mounts lists mount points below the engine's directory, deepest first.
func (d *Dockerd) mounts() []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && pathrule.Within(d.dir, f[4]) {
			out = append(out, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func (d *Dockerd) logPath() string { return filepath.Join(d.dir, "dockerd.log") }

// logTail returns the last lines of the engine's log, for failure messages.
func (d *Dockerd) logTail() string {
	b, _ := os.ReadFile(d.logPath())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "dockerd log (last lines):\n" + strings.Join(lines, "\n")
}

// BusyboxOn imports the busybox image under ref into the engine cli talks
// to (Busybox uses the shared engine), unless it exists.
func BusyboxOn(t testing.TB, cli *client.Client, ref string) string {
	t.Helper()
	busyboxMu.Lock()
	defer busyboxMu.Unlock()
	if err := importBusybox(cli, ref); err != nil {
		t.Fatalf("import busybox image %s: %v", ref, err)
	}
	return ref
}
