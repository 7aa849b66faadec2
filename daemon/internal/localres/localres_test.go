//go:build unix

package localres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"

	"github.com/loop-dev/loop/internal/testenv"
)

// The test binary doubles as a tiny HTTP server for serve_cmd, started with
// helperEnv set: it listens on HELPER_ADDR, answers 200, and exits with code
// 4 when asked for /exit.
const helperEnv = "LOCALRES_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "http" {
		runHelperServer()
		return
	}
	os.Exit(m.Run())
}

func runHelperServer() {
	l, err := net.Listen("tcp", os.Getenv("HELPER_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper listen:", err)
		os.Exit(2)
	}
	fmt.Println("helper listening")
	http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/exit" {
			os.Exit(4)
		}
		fmt.Fprintln(w, "ok")
	}))
}

func sh(script string) model.Cmd {
	return model.Cmd{Argv: []string{"sh", "-c", script}, Shell: true}
}

// logSink records every write the runner makes.
type logSink struct {
	mu     sync.Mutex
	writes [][]byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes = append(l.writes, bytes.Clone(p))
	return len(p), nil
}

func (l *logSink) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, w := range l.writes {
		out = append(out, string(w))
	}
	return out
}

func newRunner(t *testing.T, r *model.LocalResource, logs *logSink) *Runner {
	t.Helper()
	if r.Name == "" {
		r.Name = t.Name()
	}
	rn := New(r, logs, WithGracePeriod(200*time.Millisecond))
	t.Cleanup(func() { rn.Close() })
	return rn
}

// waitFor reads changes until one satisfies ok.
func waitFor(t *testing.T, ch <-chan Status, what string, ok func(Status) bool) Status {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("waiting for %s: changes closed", what)
			}
			if ok(s) {
				return s
			}
		case <-timeout:
			t.Fatalf("waiting for %s: timed out", what)
		}
	}
}

// waitFile waits for path to exist with content and returns it trimmed.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("file %s never written", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pidFile(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(waitFile(t, path))
	if err != nil {
		t.Fatalf("pid in %s: %v", path, err)
	}
	return pid
}

// alive reports whether pid runs (a zombie counts as gone: nothing can reap
// a reparented process synchronously).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || !bytes.HasPrefix(b[i+1:], []byte(" Z"))
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCmdSuccessLogsBothStreams(t *testing.T) {
	logs := &logSink{}
	rn := newRunner(t, &model.LocalResource{Cmd: sh("echo to-out; echo to-err >&2; printf no-newline >&2")}, logs)
	res, err := rn.Update(context.Background())
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if res.Duration <= 0 || res.ServePID != 0 {
		t.Errorf("result %+v: want a duration and no serve pid", res)
	}
	got := strings.Join(logs.lines(), "|")
	for _, want := range []string{"to-out\n", "to-err\n", "no-newline\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("logs %q lack %q", got, want)
		}
	}
	if s := rn.Status(); s.Phase != Ready || !s.Ready || !rn.Ready() {
		t.Errorf("status %+v: want ready", s)
	}
}

func TestCmdFailureNamesCommandAndCode(t *testing.T) {
	rn := newRunner(t, &model.LocalResource{Cmd: sh("echo building; exit 3")}, &logSink{})
	_, err := rn.Update(context.Background())
	var exitErr *ExitError
	if !errors.As(err, &exitErr) || exitErr.Code != 3 {
		t.Fatalf("got %v, want an ExitError with code 3", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "echo building; exit 3") || !strings.Contains(msg, "exit code 3") {
		t.Errorf("error %q does not name the command and code", msg)
	}
	if s := rn.Status(); s.Phase != Failed || s.Ready || s.ExitCode != 3 || s.Err == nil {
		t.Errorf("status %+v: want failed with code 3", s)
	}
	// A list command (no shell) that does not exist fails to start.
	rn2 := newRunner(t, &model.LocalResource{Cmd: model.Cmd{Argv: []string{"/nonexistent/build"}}}, nil)
	if _, err := rn2.Update(context.Background()); err == nil || !strings.Contains(err.Error(), "/nonexistent/build") {
		t.Errorf("missing command: got %v", err)
	}
}

func TestEnvAndDirHonoured(t *testing.T) {
	cmdDir, serveDir := t.TempDir(), t.TempDir()
	rn := newRunner(t, &model.LocalResource{
		Cmd:      sh(`echo "$BUILD_VAR/$SERVE_VAR/$(pwd)" > cmd.txt`),
		Dir:      cmdDir,
		Env:      map[string]string{"BUILD_VAR": "b1"},
		ServeCmd: sh(`echo "$BUILD_VAR/$SERVE_VAR/$(pwd)" > serve.txt; exec sleep 60`),
		ServeDir: serveDir,
		ServeEnv: map[string]string{"SERVE_VAR": "s1"},
	}, &logSink{})
	if _, err := rn.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := waitFile(t, filepath.Join(cmdDir, "cmd.txt")), "b1//"+cmdDir; got != want {
		t.Errorf("cmd saw %q, want %q", got, want)
	}
	if got, want := waitFile(t, filepath.Join(serveDir, "serve.txt")), "/s1/"+serveDir; got != want {
		t.Errorf("serve_cmd saw %q, want %q", got, want)
	}
}

func TestServeRestartedOnlyAfterSuccessfulCmd(t *testing.T) {
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	rn := newRunner(t, &model.LocalResource{
		Dir:      dir,
		Cmd:      sh("test ! -e fail"),
		ServeCmd: sh("exec sleep 60"),
	}, &logSink{})
	ctx := context.Background()

	first, err := rn.Update(ctx)
	if err != nil || first.ServePID == 0 {
		t.Fatalf("first update: %+v, %v", first, err)
	}
	if s := rn.Status(); s.Phase != Ready || !s.Ready || s.PID != first.ServePID {
		t.Errorf("status %+v: want ready with pid %d (no probe)", s, first.ServePID)
	}
	second, err := rn.Update(ctx)
	if err != nil || second.ServePID == 0 || second.ServePID == first.ServePID {
		t.Fatalf("second update: %+v, %v; want a new pid", second, err)
	}
	waitGone(t, first.ServePID)

	if err := os.WriteFile(fail, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	third, err := rn.Update(ctx)
	if err == nil || third.ServePID != 0 {
		t.Fatalf("failing update: %+v, %v; want an error and no new serve", third, err)
	}
	if !alive(second.ServePID) {
		t.Error("a failing cmd stopped the running serve_cmd")
	}
	if s := rn.Status(); s.Phase != Failed || !s.Ready || s.PID != second.ServePID {
		t.Errorf("status %+v: want failed, still serving pid %d", s, second.ServePID)
	}
}

func TestServeNotStartedWhenFirstCmdFails(t *testing.T) {
	dir := t.TempDir()
	rn := newRunner(t, &model.LocalResource{
		Dir:      dir,
		Cmd:      sh("exit 1"),
		ServeCmd: sh("touch started; exec sleep 60"),
	}, &logSink{})
	res, err := rn.Update(context.Background())
	if err == nil || res.ServePID != 0 {
		t.Fatalf("got %+v, %v; want an error and no serve", res, err)
	}
	if s := rn.Status(); s.Phase != Failed || s.Ready || s.PID != 0 {
		t.Errorf("status %+v", s)
	}
	if err := rn.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "started")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve_cmd ran: stat says %v", err)
	}
}

func TestReadinessProbeAndExit(t *testing.T) {
	port := testenv.FreePort(t)
	logs := &logSink{}
	rn := newRunner(t, &model.LocalResource{
		ServeCmd: model.Cmd{Argv: []string{os.Args[0], "-test.run=^$"}},
		ServeEnv: map[string]string{helperEnv: "http", "HELPER_ADDR": fmt.Sprintf("127.0.0.1:%d", port)},
		ReadinessProbe: &model.Probe{Period: 10 * time.Millisecond,
			HTTPGet: &model.HTTPGetAction{Port: port}},
	}, logs)
	ch := rn.Changes()
	res, err := rn.Update(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, ch, "serving", func(s Status) bool { return s.PID == res.ServePID })
	if s.Phase != Serving || s.Ready {
		t.Errorf("first status of the serve: %+v, want serving, not ready", s)
	}
	s = waitFor(t, ch, "ready", func(s Status) bool { return s.Ready })
	if s.Phase != Ready || s.PID != res.ServePID || !rn.Ready() {
		t.Errorf("ready status %+v", s)
	}
	if !strings.Contains(strings.Join(logs.lines(), ""), "helper listening\n") {
		t.Errorf("serve_cmd output not logged: %q", logs.lines())
	}

	// The server exits on its own: Exited with its code, not restarted.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/exit", port))
	if err == nil {
		resp.Body.Close()
	}
	s = waitFor(t, ch, "exited", func(s Status) bool { return s.Phase != Ready })
	if s.Phase != Exited || s.ExitCode != 4 || s.Ready || s.PID != 0 || s.Err == nil {
		t.Errorf("after exit: %+v, want exited with code 4", s)
	}
	waitGone(t, res.ServePID)

	// The next update starts it again.
	res2, err := rn.Update(context.Background())
	if err != nil || res2.ServePID == 0 {
		t.Fatalf("restart: %+v, %v", res2, err)
	}
	waitFor(t, ch, "ready again", func(s Status) bool { return s.Ready && s.PID == res2.ServePID })
}

func TestNoOrphans(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		exits        bool
	}{
		{"close", "sleep 60 & echo $! > child; echo $$ > parent; wait", false},
		// Both ignore SIGTERM (an ignored signal stays ignored across exec):
		// only the SIGKILL after the grace period ends them.
		{"close ignoring TERM", "trap '' TERM; sleep 60 & echo $! > child; echo $$ > parent; wait", false},
		{"leader exits", "sleep 60 & echo $! > child; echo $$ > parent; read x < go; exit 2", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.exits {
				if err := syscall.Mkfifo(filepath.Join(dir, "go"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			rn := newRunner(t, &model.LocalResource{ServeCmd: sh(tc.script), ServeDir: dir}, &logSink{})
			ch := rn.Changes()
			if _, err := rn.Update(context.Background()); err != nil {
				t.Fatal(err)
			}
			parent, child := pidFile(t, filepath.Join(dir, "parent")), pidFile(t, filepath.Join(dir, "child"))
			if !alive(parent) || !alive(child) {
				t.Fatalf("processes not running: parent %v child %v", alive(parent), alive(child))
			}
			if tc.exits {
				if err := os.WriteFile(filepath.Join(dir, "go"), []byte("\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				s := waitFor(t, ch, "exited", func(s Status) bool { return s.Phase == Exited })
				if s.ExitCode != 2 {
					t.Errorf("exit code %d, want 2", s.ExitCode)
				}
			} else if err := rn.Close(); err != nil {
				t.Fatal(err)
			}
			waitGone(t, parent)
			waitGone(t, child)
		})
	}
}

func TestContextCancelStopsCmd(t *testing.T) {
	dir := t.TempDir()
	rn := newRunner(t, &model.LocalResource{Dir: dir, Cmd: sh("echo $$ > pid; sleep 60 & wait")}, &logSink{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := rn.Update(ctx)
		errc <- err
	}()
	pid := pidFile(t, filepath.Join(dir, "pid"))
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	waitGone(t, pid)
	if s := rn.Status(); s.Phase != Failed {
		t.Errorf("status %+v, want failed", s)
	}
}

func TestCloseStopsRunningCmdAndIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	rn := New(&model.LocalResource{Dir: dir, Cmd: sh("echo $$ > pid; exec sleep 60")}, nil, WithGracePeriod(200*time.Millisecond))
	errc := make(chan error, 1)
	go func() {
		_, err := rn.Update(context.Background())
		errc <- err
	}()
	pid := pidFile(t, filepath.Join(dir, "pid"))
	if err := rn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil {
		t.Error("update interrupted by Close returned nil")
	}
	waitGone(t, pid)
	if err := rn.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	if _, err := rn.Update(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("update after close: %v, want ErrClosed", err)
	}
	for range rn.Changes() { // closed: the loop ends
	}
}

func TestLongLinesSplitNotLost(t *testing.T) {
	logs := &logSink{}
	const n = 150_000
	// A line of n bytes, one of exactly maxLine, then a short one.
	script := fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a; echo; head -c %d /dev/zero | tr '\\0' b; echo; echo short", n, maxLine)
	rn := newRunner(t, &model.LocalResource{Cmd: sh(script)}, logs)
	if _, err := rn.Update(context.Background()); err != nil {
		t.Fatal(err)
	}
	var as, bs int
	var sawShort bool
	for _, l := range logs.lines() {
		if !strings.HasSuffix(l, "\n") || len(l) > maxLine+1 {
			t.Fatalf("write of %d bytes is not one bounded line", len(l))
		}
		if l == "\n" {
			t.Error("empty line written")
		}
		as += strings.Count(l, "a")
		bs += strings.Count(l, "b")
		sawShort = sawShort || l == "short\n"
	}
	if as != n || bs != maxLine || !sawShort {
		t.Errorf("got %d a, %d b, short line %v; want %d, %d, true", as, bs, sawShort, n, maxLine)
	}
}

func TestConcurrentUpdatesSerialised(t *testing.T) {
	dir := t.TempDir()
	// mkdir fails if another run holds the lock directory.
	rn := newRunner(t, &model.LocalResource{Dir: dir, Cmd: sh("mkdir lock || exit 9; sleep 0.05; rmdir lock")}, &logSink{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			_, err := rn.Update(context.Background())
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("overlapping update: %v", err)
		}
	}
}

func TestChangesKeepNewestWhenReaderIsBehind(t *testing.T) {
	rn := newRunner(t, &model.LocalResource{Cmd: sh("true")}, nil)
	for range changesBuffer + 10 {
		rn.update(func(s *Status) { s.ExitCode++ })
	}
	var last Status
	n := 0
	for len(rn.Changes()) > 0 {
		last = <-rn.Changes()
		n++
	}
	if n != changesBuffer || last.ExitCode != changesBuffer+10 {
		t.Errorf("read %d, last %+v; want %d values ending with the newest", n, last, changesBuffer)
	}
}
