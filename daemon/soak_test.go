package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// The resource soak: edits stream into examples/compose while the daemon's
// RSS, goroutines and open files are sampled. In `go test` it runs a few
// seconds (the sampling and the checks are exercised); `make soak` runs it
// for an hour, sampling every minute:
//
//	LOOP_SOAK_DURATION=1h   how long to edit (default 8s)
//	LOOP_SOAK_EVERY=1m      sampling interval (default 2s)
//	LOOP_SOAK_OUT=file      also write the samples there (a Markdown table)
//
// A leak fails it: goroutines or open files more than 10 above the first
// sample, or, for runs of 5 minutes and more, RSS more than 10 % above it.

type soakSample struct {
	at                     time.Duration
	rssKB                  int
	goroutines, fds, edits int
	updates                int
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

func rssKB(t *testing.T) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func openFiles(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// soakState is a sink that keeps only the latest status per resource and
// counts updates: a recording harness would itself grow for an hour.
type soakState struct {
	mu      sync.Mutex
	status  map[string]api.ResourceStatus
	started map[string]time.Time
	updates int
}

func (s *soakState) sink(ev api.Event) {
	if ev.Kind != api.EventStatus || ev.Status == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status[ev.Resource] = *ev.Status
	if u := ev.Status.LastUpdate; u != nil && !u.Started.Equal(s.started[ev.Resource]) {
		s.started[ev.Resource] = u.Started
		s.updates++
	}
}

func (s *soakState) get(name string) (api.ResourceStatus, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[name], s.updates
}

func TestSoakResources(t *testing.T) {
	duration := envDuration(t, "LOOP_SOAK_DURATION", 8*time.Second)
	every := envDuration(t, "LOOP_SOAK_EVERY", 2*time.Second)
	ensureExampleBase(t)
	dir := copyExample(t, "compose")
	// Another run of the example may hold its port and project name.
	compose := filepath.Join(dir, "compose.yaml")
	b, err := os.ReadFile(compose)
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"compose.yaml": strings.Replace(string(b), "127.0.0.1:8080:8080", "127.0.0.1::8080", 1)})
	tf, err := os.ReadFile(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"Tiltfile": strings.Replace(string(tf), "project_name='loop-compose'", "project_name='"+projectName(t)+"'", 1)})

	st := &soakState{status: map[string]api.ResourceStatus{}, started: map[string]time.Time{}}
	opts := daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile"), Sink: st.sink}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Up(ctx, opts) }()
	t.Cleanup(func() {
		cancel()
		<-done
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		if err := daemon.Down(dctx, opts, true); err != nil {
			t.Logf("down: %v", err)
		}
	})
	waitIdle := func(what string, timeout time.Duration) api.ResourceStatus {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for {
			s, _ := st.get("web")
			if s.Phase == api.PhaseReady && s.PendingFiles == 0 {
				return s
			}
			if s.Phase == api.PhaseError {
				t.Fatalf("web failed %s: %s", what, s.Error)
			}
			if time.Now().After(deadline) {
				t.Fatalf("web not idle %s after %s: %+v", what, timeout, s)
			}
			select {
			case err := <-done:
				t.Fatalf("up ended: %v", err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	waitIdle("at start", 3*time.Minute)

	page := filepath.Join(dir, "web", "site", "index.html")
	var samples []soakSample
	sample := func(start time.Time, edits int) {
		waitIdle("before a sample", time.Minute)
		runtime.GC()
		_, updates := st.get("web")
		s := soakSample{at: time.Since(start).Round(time.Second), rssKB: rssKB(t), goroutines: runtime.NumGoroutine(), fds: openFiles(t), edits: edits, updates: updates}
		samples = append(samples, s)
		t.Logf("t=%-6s rss=%6d kB goroutines=%4d open files=%4d edits=%6d updates=%6d", s.at, s.rssKB, s.goroutines, s.fds, s.edits, s.updates)
	}
	start := time.Now()
	edits := 0
	sample(start, edits)
	next := start.Add(every)
	for time.Since(start) < duration {
		edits++
		if err := os.WriteFile(page, []byte(fmt.Sprintf("<p>edit %d</p>\n", edits)), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		if time.Now().After(next) {
			sample(start, edits)
			next = next.Add(every)
		}
	}
	sample(start, edits)

	// The last edit is what the container serves.
	s := waitIdle("at the end", time.Minute)
	eventually(t, 20*time.Second, func() error {
		got, _ := containerFile(t, s.ContainerID, "/www/index.html")
		if want := fmt.Sprintf("<p>edit %d</p>\n", edits); got != want {
			return fmt.Errorf("/www/index.html = %q, want %q", got, want)
		}
		return nil
	})
	testenv.Docker(t) // the engine is still there (the checks above used it)

	first, last := samples[0], samples[len(samples)-1]
	if out := os.Getenv("LOOP_SOAK_OUT"); out != "" {
		var sb strings.Builder
		sb.WriteString("| t | RSS (kB) | goroutines | open files | edits | updates |\n|---|---|---|---|---|---|\n")
		for _, s := range samples {
			fmt.Fprintf(&sb, "| %s | %d | %d | %d | %d | %d |\n", s.at, s.rssKB, s.goroutines, s.fds, s.edits, s.updates)
		}
		if err := os.WriteFile(out, []byte(sb.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	if last.goroutines > first.goroutines+10 {
		t.Errorf("goroutines grew from %d to %d over %s of edits", first.goroutines, last.goroutines, last.at)
	}
	if last.fds > first.fds+10 {
		t.Errorf("open files grew from %d to %d over %s of edits", first.fds, last.fds, last.at)
	}
	growth := float64(last.rssKB-first.rssKB) / float64(first.rssKB)
	if duration >= 5*time.Minute && growth > 0.10 {
		t.Errorf("RSS grew %.1f%% (%d kB to %d kB) over %s of edits", 100*growth, first.rssKB, last.rssKB, last.at)
	}
	t.Logf("soak: %d edits, %d updates over %s; RSS %+.1f%%, goroutines %d -> %d, open files %d -> %d",
		edits, last.updates-first.updates, last.at, 100*growth, first.goroutines, last.goroutines, first.fds, last.fds)
}
