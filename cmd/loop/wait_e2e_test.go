package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// daemonProc is a `loop daemon` run by the built binary.
type daemonProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (d *daemonProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.Write(p)
}

func (d *daemonProc) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// startDaemon runs `loop daemon` in dir until the test ends and waits until
// its API answers.
func startDaemon(t testing.TB, dir string) *daemonProc {
	t.Helper()
	d := &daemonProc{done: make(chan struct{})}
	d.cmd = exec.Command(loopBin, "daemon")
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.output())
		}
	})
	deadline := time.Now().Add(time.Minute)
	for {
		if _, _, code := runLoop(t, dir, "status"); code == 0 {
			return d
		}
		select {
		case <-d.done:
			t.Fatalf("the daemon ended before serving:\n%s", d.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not serve within a minute:\n%s", d.output())
		}
	}
}

func (d *daemonProc) stop(t testing.TB) {
	_ = d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		t.Errorf("the daemon did not stop within 30s of SIGINT")
	}
}

// waitJSON runs `loop wait -o json ARGS` and decodes the verdict.
func waitJSON(t *testing.T, dir string, args ...string) (api.Verdict, string, int) {
	t.Helper()
	out, errOut, code := runLoop(t, dir, append([]string{"wait", "-o", "json"}, args...)...)
	var v api.Verdict
	if code != exitNoDaemon {
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("loop wait %v (exit %d): output is not a verdict: %v\n%s\n%s", args, code, err, out, errOut)
		}
	}
	return v, errOut, code
}

func resourceVerdict(v api.Verdict, name string) (api.ResourceVerdict, bool) {
	i := slices.IndexFunc(v.Resources, func(r api.ResourceVerdict) bool { return r.Name == name })
	if i < 0 {
		return api.ResourceVerdict{}, false
	}
	return v.Resources[i], true
}

func writeFile(t testing.TB, dir, name, data string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestWaitLocal drives `loop wait` against a daemon of local commands: no
// daemon, nothing changed, a change, a timeout, a Tiltfile reload, a flood
// of output, two clients at once.
func TestWaitLocal(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "slow.txt", "quick\n")
	writeFile(t, dir, "flood.txt", "1\n")
	writeFile(t, dir, "echo.txt", "one\n")
	writeFile(t, dir, "check.txt", "ok\n")
	const tiltfile = `
local_resource('echo', cmd='cat echo.txt', deps=['echo.txt'])
local_resource('check', cmd='grep -q ok check.txt || { echo "check: want ok, got $(cat check.txt)"; exit 2; }', deps=['check.txt'])
local_resource('slow', cmd='if grep -q hang slow.txt; then sleep 600; fi; echo slow done', deps=['slow.txt'])
local_resource('flood', cmd='seq 1 100000', deps=['flood.txt'])
`
	writeFile(t, dir, "Tiltfile", tiltfile)

	// No daemon: exit 4 and what to do.
	_, errOut, code := waitJSON(t, dir)
	if code != exitNoDaemon || !strings.Contains(errOut, "no loop daemon is running") {
		t.Fatalf("wait without a daemon: exit %d, stderr %q; want %d and a clear error", code, errOut, exitNoDaemon)
	}

	d := startDaemon(t, dir)
	// The first wait covers the first updates.
	v, errOut, code := waitJSON(t, dir, "--timeout", "2m")
	if code != 0 || v.Result != api.ResultReady {
		t.Fatalf("first wait: exit %d %s %+v", code, errOut, v)
	}
	// Nothing changed: at once, the current state, the same change.
	first := v.Change
	v, _, code = waitJSON(t, dir, "echo")
	if r, ok := resourceVerdict(v, "echo"); code != 0 || !ok || r.Phase != api.PhaseReady || len(v.Resources) != 1 || v.Change != first {
		t.Fatalf("wait with nothing changed: exit %d %+v (first change %d)", code, v, first)
	}

	// A change: the verdict has the update, its file, trace and output.
	writeFile(t, dir, "echo.txt", "two\n")
	v, _, code = waitJSON(t, dir)
	r, ok := resourceVerdict(v, "echo")
	if code != 0 || !ok || !r.Affected || r.Update == nil || !slices.Contains(r.Update.Paths, "echo.txt") ||
		r.Update.Kind != api.UpdateLocal || len(r.Update.Spans) == 0 || !slices.Contains(r.Logs, "two") {
		t.Fatalf("wait after a change: exit %d %+v", code, v)
	}
	if _, ok := resourceVerdict(v, "flood"); ok {
		t.Errorf("the verdict lists flood, which the change did not reach: %+v", v)
	}
	// The change's verdict is there afterwards, and its logs.
	out, errOut, code := runLoop(t, dir, "changes", "-o", "json")
	var list []api.ChangeSummary
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) == 0 || list[0].ID != v.Change {
		t.Fatalf("loop changes: exit %d %s %s", code, out, errOut)
	}
	out, _, code = runLoop(t, dir, "logs", "echo", "--since-change", strings.TrimSpace(jsonNumber(v.Change)), "--grep", "^tw")
	if code != 0 || strings.TrimSpace(out) != "two" {
		t.Fatalf("logs --since-change --grep: exit %d %q", code, out)
	}

	// A failure: exit 1 naming it; the text verdict shows its lines.
	writeFile(t, dir, "check.txt", "bad\n")
	out, errOut, code = runLoop(t, dir, "wait")
	if code != exitFailure || !strings.Contains(errOut, "check failed: cmd ") || !strings.Contains(errOut, "exit code 2") ||
		!strings.Contains(out, "| check: want ok, got bad") || !strings.HasPrefix(out, "failed (change ") {
		t.Fatalf("failed wait: exit %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	writeFile(t, dir, "check.txt", "ok\n")
	if out, errOut, code = runLoop(t, dir, "wait", "check"); code != 0 || !strings.HasPrefix(out, "ready") {
		t.Fatalf("fixed wait: exit %d %s %s", code, out, errOut)
	}

	// A flood of output: the verdict stays within its bound and says how
	// many lines it left out.
	writeFile(t, dir, "flood.txt", "2\n")
	out, _, code = runLoop(t, dir, "wait", "-o", "json", "flood")
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != 0 {
		t.Fatalf("flood wait: exit %d %v", code, err)
	}
	r, _ = resourceVerdict(v, "flood")
	if len(r.Logs) > api.DefaultVerdictLines+1 || r.LogsOmitted < 100000-api.DefaultVerdictLines || len(out) > 64<<10 {
		t.Fatalf("flood verdict: %d lines, %d left out, %d bytes", len(r.Logs), r.LogsOmitted, len(out))
	}
	if r.Logs[len(r.Logs)-1] != "100000" {
		t.Errorf("flood verdict ends with %q, want the last line", r.Logs[len(r.Logs)-1])
	}

	// Two clients at once, each sees the change made before it.
	writeFile(t, dir, "echo.txt", "three\n")
	var wg sync.WaitGroup
	verdicts := make([]api.Verdict, 2)
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, _, c := runLoop(t, dir, "wait", "-o", "json")
			codes[i] = c
			_ = json.Unmarshal([]byte(out), &verdicts[i])
		}()
	}
	wg.Wait()
	for i, v := range verdicts {
		r, _ := resourceVerdict(v, "echo")
		if codes[i] != 0 || !slices.Contains(r.Logs, "three") {
			t.Fatalf("client %d: exit %d %+v", i, codes[i], v)
		}
	}

	// A Tiltfile reload: the wait covers the resource it adds.
	writeFile(t, dir, "Tiltfile", tiltfile+"local_resource('added', cmd='echo added ran')\n")
	v, _, code = waitJSON(t, dir)
	r, ok = resourceVerdict(v, "added")
	if code != 0 || !ok || !r.Affected || r.Phase != api.PhaseReady || !slices.Contains(r.Logs, "added ran") {
		t.Fatalf("wait after a reload: exit %d %+v", code, v)
	}

	// A timeout: exit 3, the JSON verdict names what it waited for.
	writeFile(t, dir, "slow.txt", "hang\n")
	v, errOut, code = waitJSON(t, dir, "--timeout", "500ms")
	r, _ = resourceVerdict(v, "slow")
	if code != exitTimeout || v.Result != api.ResultTimeout || r.Note != "updating" || !strings.Contains(errOut, "slow (updating)") {
		t.Fatalf("timeout: exit %d, stderr %q, verdict %+v", code, errOut, v)
	}
	// The waits left no trace in the project.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !slices.Contains([]string{"Tiltfile", "slow.txt", "flood.txt", "echo.txt", "check.txt"}, e.Name()) {
			t.Errorf("the project holds %s, which loop wrote", e.Name())
		}
	}

	// The daemon stopped: a clear error, exit 4.
	d.stop(t)
	_, errOut, code = waitJSON(t, dir)
	if code != exitNoDaemon || !strings.Contains(errOut, "no loop daemon is running") {
		t.Fatalf("wait after the daemon stopped: exit %d, stderr %q", code, errOut)
	}
}

func jsonNumber(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
