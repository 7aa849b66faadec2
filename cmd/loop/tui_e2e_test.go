package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// tmux drives loop in a real terminal: a private tmux server per test.
type tmux struct {
	t      *testing.T
	server string
}

func newTmux(t *testing.T) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed for the terminal UI tests (make setup installs it): %v", err)
	}
	tm := &tmux{t: t, server: fmt.Sprintf("loop-e2e-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(func() { _ = exec.Command("tmux", "-L", tm.server, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.server}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// start runs argv in a new 120×30 session named name, in dir, with env. A
// shell around it prints the exit status when it ends and holds the pane,
// so the test reads how loop ended off the screen.
func (tm *tmux) start(name, dir string, env []string, argv ...string) {
	tm.t.Helper()
	args := []string{"new-session", "-d", "-s", name, "-x", "120", "-y", "30", "-c", dir}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	script := `"$@"; echo "exited with status $?"; exec sleep 600`
	tm.run(append(append(args, "--", "sh", "-c", script, "sh"), argv...)...)
}

func (tm *tmux) capture(name string) string {
	tm.t.Helper()
	return tm.run("capture-pane", "-p", "-t", name)
}

// wait polls the pane until every want appears (and no unwanted text), or fails.
func (tm *tmux) wait(name string, timeout time.Duration, ok func(screen string) bool, what string) string {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := tm.capture(name)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s: not on screen within %s:\n%s%s", name, timeout, s, tm.stacks(name))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitExit waits until the program in a pane has exited with status 0.
func (tm *tmux) waitExit(name string, timeout time.Duration) {
	tm.t.Helper()
	s := tm.wait(name, timeout, contains("exited with status"), "exit")
	if !strings.Contains(s, "exited with status 0") {
		tm.t.Fatalf("%s did not exit cleanly:\n%s", name, s)
	}
}

// stacks asks the program in a pane for its goroutine stacks (SIGQUIT to
// the children of the pane's shell) and returns the pane's whole history:
// what a stuck loop was waiting on.
func (tm *tmux) stacks(name string) string {
	pid, err := exec.Command("tmux", "-L", tm.server, "display-message", "-p", "-t", name, "#{pane_pid}").Output()
	if err != nil {
		return fmt.Sprintf("\n(pane of %s: %v)", name, err)
	}
	if err := exec.Command("pkill", "-QUIT", "-P", strings.TrimSpace(string(pid)), "loop").Run(); err != nil {
		return fmt.Sprintf("\n(no loop process in pane %s: %v)", name, err)
	}
	time.Sleep(time.Second)
	hist, _ := exec.Command("tmux", "-L", tm.server, "capture-pane", "-p", "-J", "-S", "-", "-t", name).Output()
	return "\n--- goroutines of loop in " + name + " ---\n" + string(hist)
}

func contains(all ...string) func(string) bool {
	return func(s string) bool {
		for _, w := range all {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}
}

// row returns the table row of a resource.
func row(screen, name string) string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "▸")); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTUIComposeEndToEnd runs `loop up` with its UI in tmux on
// examples/compose, edits a synced file and reads the live update off the
// screen; then `loop ui` attaches to the same daemon and shows the same.
func TestTUIComposeEndToEnd(t *testing.T) {
	testenv.BusyboxAs(t, "loop/busybox:latest")
	dir := filepath.Join(t.TempDir(), "compose")
	copyDir(t, filepath.Join("..", "..", "examples", "compose"), dir)
	state := t.TempDir()
	env := []string{"LOOP_STATE_DIR=" + state}
	t.Cleanup(func() {
		cmd := exec.Command(loopBin, "down")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("loop down: %v\n%s", err, out)
		}
	})
	tm := newTmux(t)
	tm.start("up", dir, env, loopBin, "up")
	ready := func(s string) bool {
		return strings.Contains(row(s, "web"), "● ready") && strings.Contains(row(s, "store"), "● ready")
	}
	tm.wait("up", 3*time.Minute, ready, "web and store ready")

	if err := os.WriteFile(filepath.Join(dir, "web", "site", "index.html"), []byte("<h1>edited by the tui test</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := tm.wait("up", time.Minute, func(s string) bool {
		return strings.Contains(row(s, "web"), "live ") && strings.Contains(row(s, "web"), "● ready")
	}, "web live-updated")
	t.Logf("after the edit:\n%s", s)

	// A second client: loop ui on the same daemon shows the same rows.
	tm.start("ui", dir, env, loopBin, "ui")
	ui := tm.wait("ui", 60*time.Second, func(s string) bool {
		return strings.Contains(s, "● connected") && strings.Contains(row(s, "web"), "live ")
	}, "loop ui attached")
	for _, name := range []string{"web", "store"} {
		up, other := strings.Fields(row(tm.capture("up"), name)), strings.Fields(row(ui, name))
		if len(up) < 4 || len(other) < 4 || strings.Join(up[:4], " ") != strings.Join(other[:4], " ") {
			t.Errorf("%s differs between the two UIs:\nup: %v\nui: %v", name, up, other)
		}
	}
	// The status verb agrees.
	cmd := exec.Command(loopBin, "status", "-o", "json")
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("loop status: %v", err)
	}
	var snap api.Snapshot
	if err := json.Unmarshal(out, &snap); err != nil {
		t.Fatalf("status json: %v\n%s", err, out)
	}
	var web *api.ResourceStatus
	for i := range snap.Resources {
		if snap.Resources[i].Name == "web" {
			web = &snap.Resources[i]
		}
	}
	if web == nil || web.LastUpdate == nil || web.LastUpdate.Kind != api.UpdateLive {
		t.Fatalf("status of web = %+v, want its last update live", web)
	}

	// q in loop ui leaves the daemon running; q y in loop up stops it.
	tm.run("send-keys", "-t", "ui", "q")
	tm.waitExit("ui", 30*time.Second)
	if s := tm.capture("up"); !strings.Contains(s, "● connected") {
		t.Fatalf("loop up lost its daemon when loop ui quit:\n%s", s)
	}
	tm.run("send-keys", "-t", "up", "q")
	tm.wait("up", 5*time.Second, contains("Stop the daemon and quit? (y/n)"), "quit question")
	tm.run("send-keys", "-t", "up", "y")
	tm.waitExit("up", 30*time.Second)
}

// TestUIReconnectsWhenTheDaemonReturns kills the daemon under an attached
// `loop ui`: the UI says it is disconnected, then shows the new daemon.
func TestUIReconnectsWhenTheDaemonReturns(t *testing.T) {
	dir := t.TempDir()
	tf := "local_resource('ticker', serve_cmd='while true; do echo tick; sleep 0.2; done')\n"
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte(tf), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"LOOP_STATE_DIR=" + t.TempDir()}
	startDaemon := func() *exec.Cmd {
		cmd := exec.Command(loopBin, "daemon")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	d := startDaemon()
	tm := newTmux(t)
	tm.start("ui", dir, env, loopBin, "ui")
	tm.wait("ui", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "● connected") && strings.Contains(row(s, "ticker"), "● ready") && strings.Contains(s, "tick")
	}, "attached")
	if err := d.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = d.Wait()
	s := tm.wait("ui", 10*time.Second, contains("✗ disconnected", "lost the daemon"), "disconnected")
	if !strings.Contains(row(s, "ticker"), "ticker") {
		t.Fatalf("the last state is gone while disconnected:\n%s", s)
	}
	startDaemon()
	tm.wait("ui", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "● connected") && !strings.Contains(s, "disconnected") && strings.Contains(row(s, "ticker"), "● ready")
	}, "reconnected")
}
