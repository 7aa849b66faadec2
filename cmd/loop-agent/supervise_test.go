package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loop-dev/loop/internal/agentwire"
)

// superviseEnv makes the test binary run as `loop-agent supervise`: the
// supervisor catches every signal and reaps every child, which must not
// happen inside the test process itself.
const superviseEnv = "LOOP_AGENT_TEST_SUPERVISE"

func TestMain(m *testing.M) {
	if os.Getenv(superviseEnv) == "1" {
		os.Exit(superviseMain(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// syncBuffer is an output buffer safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type supervised struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	sock   string
	out    *syncBuffer
	waited chan struct{} // closed when the supervisor exited
	code   int
}

// superviseScript runs `supervise -- sh -c script` in a temp directory
// (the script's working directory).
func superviseScript(t *testing.T, script string, flags ...string) *supervised {
	t.Helper()
	dir := t.TempDir()
	s := &supervised{t: t, dir: dir, sock: filepath.Join(dir, "sup.sock"), out: &syncBuffer{}, waited: make(chan struct{})}
	s.cmd = exec.Command(os.Args[0], append(append([]string{"-socket", s.sock}, flags...), "--", "sh", "-c", script)...)
	s.cmd.Dir = dir
	s.cmd.Env = append(os.Environ(), superviseEnv+"=1")
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.waited)
		_ = s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
	}()
	// Output pipes stay open while a descendant holds them.
	s.cmd.WaitDelay = 2 * time.Second
	t.Cleanup(func() {
		for _, pid := range descendants(s.cmd.Process.Pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.waited
	})
	return s
}

func (s *supervised) wait() int {
	s.t.Helper()
	select {
	case <-s.waited:
		return s.code
	case <-time.After(20 * time.Second):
		s.t.Fatalf("supervisor did not exit; output:\n%s", s.out.String())
		return 0
	}
}

func (s *supervised) signal(sig syscall.Signal) {
	s.t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatal(err)
	}
}

// file waits until the named file in the script's directory holds at least
// n lines and returns them.
func (s *supervised) file(name string, n int) []string {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(s.dir, name))
		lines := strings.Fields(string(b))
		if len(lines) >= n {
			return lines
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s has %d lines, want %d; output:\n%s", name, len(lines), n, s.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// descendants lists the processes below pid.
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(p); pp != 0 {
			children[pp] = append(children[pp], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func TestSuperviseExitCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"echo out; echo err >&2; exit 7", 7},
		{"exit 0", 0},
		{"kill -TERM $$", 128 + 15},
		{"kill -KILL $$", 128 + 9},
	} {
		s := superviseScript(t, tc.script)
		if got := s.wait(); got != tc.want {
			t.Errorf("%q: supervisor exited %d, want %d", tc.script, got, tc.want)
		}
		if tc.want == 7 && (!strings.Contains(s.out.String(), "out\n") || !strings.Contains(s.out.String(), "err\n")) {
			t.Errorf("the command's output did not pass through: %q", s.out.String())
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-socket", filepath.Join(dir, "s"), "--", "no-such-command-here")
	cmd.Env = append(os.Environ(), superviseEnv+"=1")
	out, _ := cmd.CombinedOutput()
	if got := cmd.ProcessState.ExitCode(); got != 127 {
		t.Errorf("missing command: exit %d, want 127 (%s)", got, out)
	}
}

func TestSuperviseForwardsSignals(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `
trap 'echo usr1 >> sigs' USR1
trap 'echo hup >> sigs' HUP
trap 'echo term >> sigs; exit 3' TERM
echo $$ > pid
while :; do sleep 0.05; done`)
	s.file("pid", 1)
	s.signal(syscall.SIGUSR1)
	s.file("sigs", 1)
	s.signal(syscall.SIGHUP)
	s.file("sigs", 2)
	s.signal(syscall.SIGTERM)
	if got := s.wait(); got != 3 {
		t.Fatalf("exit code after SIGTERM = %d, want the command's 3; output:\n%s", got, s.out.String())
	}
	if got := strings.Join(s.file("sigs", 3), ","); got != "usr1,hup,term" {
		t.Errorf("the command saw %s", got)
	}
}

func TestSuperviseRestart(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `echo $$ >> starts; echo started $$; exec sleep 1000`)
	first := s.file("starts", 1)[0]
	pid, err := restartProcess(s.sock, 0)
	if err != nil {
		t.Fatalf("restart: %v; output:\n%s", err, s.out.String())
	}
	starts := s.file("starts", 2)
	if strconv.Itoa(pid) != starts[1] || starts[1] == first {
		t.Errorf("restart returned pid %d; starts %v", pid, starts)
	}
	old, _ := strconv.Atoi(first)
	if alive(old) {
		t.Errorf("old process %d still runs", old)
	}
	if !alive(pid) {
		t.Errorf("new process %d does not run", pid)
	}
	// Concurrent requests during one restart share it or follow it; each
	// gets the PID of a process that was started for it.
	var wg sync.WaitGroup
	pids := make([]int, 3)
	errs := make([]error, 3)
	for i := range pids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pids[i], errs[i] = restartProcess(s.sock, 0)
		}()
	}
	wg.Wait()
	for i := range pids {
		if errs[i] != nil || pids[i] == pid || pids[i] == 0 {
			t.Errorf("concurrent restart %d: pid %d, %v", i, pids[i], errs[i])
		}
	}
	if !strings.Contains(s.out.String(), "started "+starts[1]) {
		t.Errorf("restarted command's output missing: %q", s.out.String())
	}
	s.signal(syscall.SIGTERM)
	if got := s.wait(); got != 128+15 {
		t.Errorf("exit after SIGTERM = %d, want 143", got)
	}
	if _, err := os.Stat(s.sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind: %v", err)
	}
}

// TestSuperviseRestartKillsAfterGrace: a command ignoring SIGTERM is killed
// after the grace period, together with what it left in its group.
func TestSuperviseRestartKillsAfterGrace(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `trap '' TERM; sleep 1000 & echo $! >> kids; echo $$ >> starts; while :; do sleep 0.05; done`)
	first := s.file("starts", 1)[0]
	kid, _ := strconv.Atoi(s.file("kids", 1)[0])
	pid, err := restartProcess(s.sock, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if starts := s.file("starts", 2); starts[1] != strconv.Itoa(pid) || starts[0] != first {
		t.Errorf("starts %v, restart pid %d", starts, pid)
	}
	if old, _ := strconv.Atoi(first); alive(old) {
		t.Errorf("old process %d survived SIGKILL", old)
	}
	waitGone(t, kid)
}

// waitGone waits until pid no longer exists: neither running nor a zombie.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d is still there: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces; cut after ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 2 {
		return 0
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// TestSuperviseReapsOrphans: a process orphaned by the command is
// re-parented to the supervisor, which reaps it when it exits (a zombie
// would stay in /proc).
func TestSuperviseReapsOrphans(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `(sleep 2 & echo $! > orphan); echo $$ > pid; exec sleep 1000`)
	orphan, _ := strconv.Atoi(s.file("orphan", 1)[0])
	// The subshell exits right after writing the file.
	deadline := time.Now().Add(time.Second)
	for ppid(orphan) != s.cmd.Process.Pid && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := ppid(orphan); got != s.cmd.Process.Pid {
		t.Fatalf("orphan %d has parent %d, want the supervisor %d", orphan, got, s.cmd.Process.Pid)
	}
	waitGone(t, orphan)
}

// TestSuperviseStopDuringRestart: SIGTERM while the old process is being
// stopped ends the container rather than starting the command again.
func TestSuperviseStopDuringRestart(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `trap 'echo term >> sigs' TERM; echo $$ >> starts; while :; do sleep 0.05; done`)
	s.file("starts", 1)
	done := make(chan error, 1)
	go func() {
		_, err := restartProcess(s.sock, 500*time.Millisecond)
		done <- err
	}()
	// Wait until the restart is under way (the old process got SIGTERM,
	// which it survives), then stop the container.
	s.file("sigs", 1)
	s.signal(syscall.SIGTERM)
	if got := s.wait(); got != 128+9 {
		t.Errorf("exit = %d, want 137 (killed after the grace period)", got)
	}
	if err := <-done; err == nil {
		t.Errorf("restart succeeded although the container was stopping")
	}
	if got := len(s.file("starts", 1)); got != 1 {
		t.Errorf("command started %d times, want once", got)
	}
}

func TestRestartProcessWithoutSupervisor(t *testing.T) {
	old := superviseSocket
	superviseSocket = filepath.Join(t.TempDir(), "none.sock")
	t.Cleanup(func() { superviseSocket = old })
	rep := roundTrip(t, &agentwire.Request{Kind: agentwire.ReqRestartProcess, Grace: time.Second})[0]
	if !strings.Contains(rep.Err, errNoSupervisor.Error()) || rep.PID != 0 {
		t.Errorf("reply = %+v, want a no-supervisor error", rep)
	}
}

// -keep-on-exit (restart_process' exit_policy='continue'): the command's own
// exit leaves the supervisor (the container) running; a restart request
// starts it again; a stop signal then ends the supervisor with the
// command's last exit code.
func TestSuperviseKeepOnExit(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `echo $$ >> starts; exit 5`, "-keep-on-exit")
	first := s.file("starts", 1)[0]
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(s.out.String(), "exited with code 5") {
		if time.Now().After(deadline) {
			t.Fatalf("no word of the exit; output:\n%s", s.out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-s.waited:
		t.Fatalf("the supervisor exited with the command (code %d)", s.code)
	default:
	}
	pid, err := restartProcess(s.sock, 0)
	if err != nil {
		t.Fatalf("restart after the exit: %v; output:\n%s", err, s.out.String())
	}
	if starts := s.file("starts", 2); starts[1] == first || starts[1] != strconv.Itoa(pid) {
		t.Errorf("restart returned pid %d; starts %v", pid, starts)
	}
	s.signal(syscall.SIGTERM)
	if got := s.wait(); got != 5 && got != 128+15 {
		t.Errorf("exit after SIGTERM = %d, want the command's 5 (it had exited) or 143", got)
	}
}

// With -keep-on-exit, an exit after a stop signal was passed on is final:
// the supervisor ends with the command's code.
func TestSuperviseKeepOnExitStops(t *testing.T) {
	t.Parallel()
	s := superviseScript(t, `trap 'sleep 0.2; exit 4' TERM; echo $$ > pid; while :; do sleep 0.05; done`, "-keep-on-exit")
	s.file("pid", 1)
	s.signal(syscall.SIGTERM)
	if got := s.wait(); got != 4 {
		t.Errorf("exit after SIGTERM = %d, want the command's 4; output:\n%s", got, s.out.String())
	}
}
