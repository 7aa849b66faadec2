package daemon_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/internal/testenv"
)

// Fault tests: each breaks something under a running `up` and checks that
// loop recovers, or keeps the last good state and says clearly why.

// waitSynced waits until the container's tree equals the host's.
func (h *harness) waitSynced(t *testing.T, root string) {
	t.Helper()
	if diff := h.settleAndCompare(t, root); diff != "" {
		t.Fatalf("container tree differs from the host:\n%s", diff)
	}
}

// TestFaultKillContainerDuringSync kills the container while edits stream
// into it; the next change must bring a running container with every file.
func TestFaultKillContainerDuringSync(t *testing.T) {
	dir := nolossProject(t)
	h := startUp(t, dir, "up")
	id := h.waitUpdates("app", 1, 2*time.Minute).ContainerID
	g := newTreeGen(42, filepath.Join(dir, "src"))
	for i := 0; i < 60; i++ {
		g.step()
		if i == 30 {
			if err := testenv.Docker(t).ContainerKill(context.Background(), id, "KILL"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Whatever the edits during the kill did, one more change recovers.
	writeFiles(t, filepath.Join(dir, "src"), map[string]string{"after-kill.txt": "x\n"})
	h.waitFor("app ready again", 2*time.Minute, func() bool {
		s := h.status["app"]
		return s.Phase == api.PhaseReady && s.PendingFiles == 0
	})
	h.waitSynced(t, g.root)
	insp, err := testenv.Docker(t).ContainerInspect(context.Background(), h.statusOf("app").ContainerID)
	if err != nil || !insp.State.Running {
		t.Fatalf("container after recovery: running=%v, err=%v", insp.State != nil && insp.State.Running, err)
	}
}

// dockerProxy forwards a unix socket to the real engine until Down closes
// the listener and every open connection; Up listens again.
type dockerProxy struct {
	t    *testing.T
	path string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newDockerProxy(t *testing.T) *dockerProxy {
	p := &dockerProxy{t: t, path: filepath.Join(t.TempDir(), "docker.sock"), conns: map[net.Conn]bool{}}
	p.Up()
	t.Cleanup(func() { p.Down(); p.wg.Wait() })
	return p
}

func (p *dockerProxy) Up() {
	_ = os.Remove(p.path)
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() { // ends when Down closes ln
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("unix", "/var/run/docker.sock")
			if err != nil {
				_ = c.Close()
				continue
			}
			if !p.track(c, up) {
				return
			}
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(up, c); closeWrite(up) }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, up); closeWrite(c) }()
		}
	}()
}

func closeWrite(c net.Conn) {
	if uc, ok := c.(*net.UnixConn); ok {
		_ = uc.CloseWrite()
	}
}

func (p *dockerProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = true
	}
	return true
}

// Down makes the engine unreachable: no new connection, every open one cut.
func (p *dockerProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// TestFaultDockerUnreachable cuts loop off the Docker engine (through a proxy
// socket in DOCKER_HOST, never the machine's dockerd): a change then fails
// with an error naming the engine; once the engine answers again the next
// change recovers.
func TestFaultDockerUnreachable(t *testing.T) {
	dir := nolossProject(t) // creates the test's own Docker client first
	proxy := newDockerProxy(t)
	t.Setenv("DOCKER_HOST", "unix://"+proxy.path)
	h := startUp(t, dir, "up")
	id := h.waitUpdates("app", 1, 2*time.Minute).ContainerID
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string]string{"one.txt": "1\n"})
	h.waitSynced(t, src)

	proxy.Down()
	writeFiles(t, src, map[string]string{"two.txt": "2\n"})
	h.waitFor("an error while the engine is away", time.Minute, func() bool {
		return h.status["app"].Phase == api.PhaseError
	})
	msg := h.statusOf("app").Error
	if !strings.Contains(msg, proxy.path) && !strings.Contains(strings.ToLower(msg), "docker") {
		t.Errorf("error while the engine is unreachable does not say which engine: %q", msg)
	}
	t.Logf("error shown while the engine was unreachable: %s", msg)

	proxy.Up()
	writeFiles(t, src, map[string]string{"three.txt": "3\n"})
	h.waitFor("app ready after the engine came back", 2*time.Minute, func() bool {
		s := h.status["app"]
		return s.Phase == api.PhaseReady && s.PendingFiles == 0
	})
	h.waitSynced(t, src)
	if got := h.statusOf("app").ContainerID; got != id {
		t.Logf("container replaced on recovery: %s -> %s", id[:12], got[:12])
	}
}

var fileLine = regexp.MustCompile(`Tiltfile:\d+:\d+: `)

// TestFaultBrokenConfigKeepsLastGood breaks the Tiltfile and then the compose
// file while up runs: each gives a config error naming the file and line,
// the container keeps running and keeps receiving live updates, and the fix
// clears the error.
func TestFaultBrokenConfigKeepsLastGood(t *testing.T) {
	dir := nolossProject(t)
	h := startUp(t, dir, "up")
	id := h.waitUpdates("app", 1, 2*time.Minute).ContainerID
	src := filepath.Join(dir, "src")
	lastConfig := func() (string, bool) {
		for i := len(h.events) - 1; i >= 0; i-- {
			if ev := h.events[i]; ev.Kind == api.EventConfig {
				return ev.Text, true
			}
		}
		return "", false
	}
	breakAndFix := func(file, broken string, wantErr func(string) bool) {
		t.Helper()
		p := filepath.Join(dir, file)
		good, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, dir, map[string]string{file: broken})
		var msg string
		h.waitFor("a config error for "+file, 30*time.Second, func() bool {
			msg, _ = lastConfig()
			return msg != ""
		})
		if !wantErr(msg) {
			t.Errorf("config error for a broken %s = %q: want the file and line", file, msg)
		}
		t.Logf("broken %s: %s", file, msg)
		// The last good state keeps running and keeps syncing.
		name := "while-broken-" + strings.ReplaceAll(file, ".", "-") + ".txt"
		writeFiles(t, src, map[string]string{name: "still syncing\n"})
		h.waitSynced(t, src)
		if got := h.statusOf("app").ContainerID; got != id {
			t.Fatalf("a broken %s replaced the container: %s -> %s", file, id, got)
		}
		writeFiles(t, dir, map[string]string{file: string(good)})
		h.waitFor("the config error to clear after fixing "+file, 30*time.Second, func() bool {
			m, ok := lastConfig()
			return ok && m == ""
		})
		writeFiles(t, src, map[string]string{"after-fix-" + name: "fixed\n"})
		h.waitSynced(t, src)
	}
	tf, err := os.ReadFile(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	breakAndFix("Tiltfile", string(tf)+"\ndocker_build('x', \n", func(m string) bool {
		return fileLine.MatchString(m)
	})
	breakAndFix("compose.yaml", "services:\n  app:\n    image: [looptest/noloss\n", func(m string) bool {
		return strings.Contains(m, filepath.Join(dir, "compose.yaml")) && strings.Contains(m, "line ")
	})
	if got := h.statusOf("app").ContainerID; got != id {
		t.Fatalf("container replaced although the fixed config is unchanged: %s -> %s", id, got)
	}
}

// TestFaultFullDiskKeepsHistoryWhole writes the timing history onto a tiny
// tmpfs that fills up: writes fail and are counted, every line in the file
// stays whole JSON, and once space is freed writing resumes.
func TestFaultFullDiskKeepsHistoryWhole(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount a 64k tmpfs (the test needs root to fill a disk for real): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	// Leave about 12k free.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 52<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	s := metrics.Open(metrics.Options{Dir: mnt, MaxBytes: 1 << 20})
	defer s.Close()
	start := time.Now()
	n := 0
	record := func() {
		n++
		u := api.Update{Kind: api.UpdateLive, Started: start.Add(time.Duration(n) * time.Millisecond), Files: n}
		u.Ready = u.Started.Add(10 * time.Millisecond)
		for i := 0; i < 8; i++ {
			u.Spans = append(u.Spans, api.Span{Name: api.SpanName(fmt.Sprintf("phase-%d", i)), Duration: time.Millisecond})
		}
		if !s.Record("app", u) {
			t.Fatalf("record %d: not recorded", n)
		}
	}
	failedOnce := false
	for i := 0; i < 2000 && !failedOnce; i++ {
		record()
		if i%20 == 19 {
			time.Sleep(5 * time.Millisecond) // let the writer keep up: failures, not drops
			_, failed := s.Lost()
			failedOnce = failed > 0
		}
	}
	eventually(t, 10*time.Second, func() error {
		if _, failed := s.Lost(); failed == 0 {
			return fmt.Errorf("no write failed after %d records on a full disk", n)
		}
		return nil
	})
	before := checkHistoryWhole(t, mnt)
	if before == 0 {
		t.Fatal("nothing was written before the disk filled")
	}
	// Free the space: later records reach the file again.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		record()
	}
	eventually(t, 10*time.Second, func() error {
		got, err := historyLines(mnt)
		if err == nil && got < before+20 {
			err = fmt.Errorf("%d lines after freeing space, want at least %d", got, before+20)
		}
		return err
	})
	traces, err := metrics.ReadHistory(mnt, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := checkHistoryWhole(t, mnt); len(traces) != got {
		t.Fatalf("ReadHistory returned %d traces from %d whole lines", len(traces), got)
	}
	dropped, failed := s.Lost()
	t.Logf("%d records: %d lines on disk, %d failed writes, %d dropped", n, len(traces), failed, dropped)
}

// checkHistoryWhole fails the test unless every line of the history files
// is one whole JSON trace, and returns the number of lines. A reader can catch
// the writer in the middle of a line (or of cutting back a line the full disk
// tore), so it looks again for up to 10 s: only a torn line that stays fails.
func checkHistoryWhole(t *testing.T, dir string) int {
	t.Helper()
	var lines int
	eventually(t, 10*time.Second, func() error {
		var err error
		lines, err = historyLines(dir)
		return err
	})
	return lines
}

// historyLines counts the lines of the history files, or says which is not a
// whole trace.
func historyLines(dir string) (int, error) {
	lines := 0
	for _, name := range []string{metrics.RotatedFile, metrics.HistoryFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			return 0, fmt.Errorf("%s ends in a torn line: %q", name, tail(b))
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			var tr api.Trace
			if err := json.Unmarshal(sc.Bytes(), &tr); err != nil || tr.Resource == "" {
				return 0, fmt.Errorf("%s line %d is not a whole trace (%w): %q", name, lines+1, err, sc.Text())
			}
			lines++
		}
	}
	return lines, nil
}

func tail(b []byte) []byte {
	if len(b) > 80 {
		return b[len(b)-80:]
	}
	return b
}
