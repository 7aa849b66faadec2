package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/client"
)

// `loop up --detach` returns once the daemon answers, leaves it running
// after the command has exited, reuses it when run again, and `loop down`
// stops it before removing what it started.
func TestUpDetachThenDown(t *testing.T) {
	dir := t.TempDir()
	// The serve_cmd proves the daemon runs the project, not just its API.
	tf := "local_resource('tick', serve_cmd='echo $$ > serve.pid; while true; do date +%s%N > ticks; sleep 0.05; done')\n"
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runLoop(t, dir, "up", "--detach")
	if code != 0 || !strings.Contains(out, "in the background (pid ") {
		t.Fatalf("loop up --detach: exit %d\n%s%s", code, out, errOut)
	}
	pid := detachedPID(t, out)
	sock, err := daemon.SocketPath(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(client.Options{Socket: sock})
	t.Cleanup(func() { // a failed test leaves no daemon behind
		_ = c.Stop(context.Background())
	})
	snap, err := c.State(context.Background(), 0)
	if err != nil || snap.PID != pid {
		t.Fatalf("after loop up --detach returned: state %+v, err %v (want pid %d)", snap, err, pid)
	}
	waitFor(t, 30*time.Second, "the serve_cmd to run under the detached daemon", func() bool {
		_, err := os.Stat(filepath.Join(dir, "ticks"))
		return err == nil
	})
	log, err := os.ReadFile(filepath.Join(filepath.Dir(sock), DaemonLogName))
	if err != nil || !strings.Contains(string(log), "tick") {
		t.Errorf("the daemon log does not show the resource: %v\n%s", err, log)
	}

	out, errOut, code = runLoop(t, dir, "up", "--detach")
	if code != 0 || !strings.Contains(out, "already running") || !strings.Contains(out, strconv.Itoa(pid)) {
		t.Errorf("second loop up --detach: exit %d, want the running daemon reused\n%s%s", code, out, errOut)
	}

	out, errOut, code = runLoop(t, dir, "down")
	if code != 0 || !strings.Contains(out, "stopped the loop daemon") {
		t.Fatalf("loop down: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := c.State(context.Background(), 0); err == nil {
		t.Errorf("the daemon still answers after loop down")
	}
	if err := processGone(pid); err != nil {
		t.Error(err)
	}
	// The serve_cmd's own process has ended, not just gone quiet.
	b, err := os.ReadFile(filepath.Join(dir, "serve.pid"))
	if err != nil {
		t.Fatal(err)
	}
	servePID, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := processGone(servePID); err != nil {
		t.Errorf("the serve_cmd: %v", err)
	}
}

// A daemon that cannot start makes `loop up --detach` fail with its log,
// instead of returning success for a process that is already gone.
func TestUpDetachReportsAFailedStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte("local_resource('a', cmd='true')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runLoop(t, dir, "up", "--detach", "--listen", "192.0.2.1:9")
	if code != 1 || !strings.Contains(errOut, "before its API answered") || !strings.Contains(errOut, "loopback") {
		t.Errorf("loop up --detach with a bad --listen: exit %d, want 1 with the daemon's error\n%s", code, errOut)
	}
}

func detachedPID(t *testing.T, out string) int {
	t.Helper()
	_, rest, ok := strings.Cut(out, "(pid ")
	num, _, ok2 := strings.Cut(rest, ")")
	pid, err := strconv.Atoi(num)
	if !ok || !ok2 || err != nil {
		t.Fatalf("no pid in %q", out)
	}
	return pid
}

// processGone says whether pid has ended (it is not this test's child: the
// detached daemon was started by a loop process that has exited).
func processGone(pid int) error {
	for range 100 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return nil
		}
		// A zombie waiting for init to reap it has ended too.
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("process %d still runs", pid)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
