package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/internal/testenv"
)

// harness runs daemon.Up (or CI) on a project directory, for tests and
// benchmarks: it records every event, each resource's last status, and the
// finished updates in a metrics.Store, the same way the daemon does.
type harness struct {
	t        testing.TB
	dir      string
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once

	mu     sync.Mutex
	events []api.Event
	status map[string]api.ResourceStatus
	wake   chan struct{}
	timing *metrics.Store
}

// writeFiles writes files (relative paths → contents) below dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var projectUnsafe = regexp.MustCompile(`[^a-z0-9]+`)

// projectName returns a compose project name unique to the test.
func projectName(t *testing.T) string {
	n := strings.Trim(projectUnsafe.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	return fmt.Sprintf("looptest-%s-%d", n, time.Now().UnixNano()%100000)
}

func startUp(t testing.TB, dir string, mode string) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, done: make(chan error, 1), status: map[string]api.ResourceStatus{}, wake: make(chan struct{}, 1),
		timing: metrics.Open(metrics.Options{Keep: 100000})}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	opts := daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile"), Sink: h.sink}
	go func() {
		var err error
		if mode == "ci" {
			err = daemon.CI(ctx, opts)
		} else {
			err = daemon.Up(ctx, opts)
		}
		h.done <- err
	}()
	t.Cleanup(func() {
		h.stop()
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		if err := daemon.Down(dctx, daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")}, true); err != nil {
			t.Logf("down: %v", err)
		}
		if t.Failed() {
			h.dump()
		}
	})
	return h
}

func (h *harness) stop() {
	h.stopOnce.Do(func() {
		h.cancel()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			h.t.Errorf("up did not stop within 30s of cancel")
		}
	})
}

func (h *harness) sink(ev api.Event) {
	h.timing.Observe(ev)
	h.mu.Lock()
	h.events = append(h.events, ev)
	if ev.Kind == api.EventStatus && ev.Status != nil {
		h.status[ev.Status.Name] = *ev.Status
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *harness) dump() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range h.events {
		switch ev.Kind {
		case api.EventStatus:
			h.t.Logf("%s status %s %s", ev.Resource, ev.Status.Phase, ev.Status.Error)
		default:
			h.t.Logf("%s %s %s", ev.Resource, ev.Kind, ev.Text)
		}
	}
}

// waitFor polls cond (under the lock) until it holds or the timeout passes.
func (h *harness) waitFor(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		h.mu.Lock()
		ok := cond()
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-h.wake:
		case <-time.After(50 * time.Millisecond):
		case err := <-h.done:
			h.done <- err
			h.t.Fatalf("up ended while waiting for %s: %v", what, err)
		}
	}
}

// updates counts finished updates of a resource (status events that carry
// a last update with a new start time).
// logged is a waitFor condition: resource res logged a line containing text.
// Call it only from waitFor (which holds the lock).
func (h *harness) logged(res, text string) func() bool {
	return func() bool {
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == res && strings.Contains(ev.Text, text) {
				return true
			}
		}
		return false
	}
}

func (h *harness) updates(name string) []api.Update {
	var out []api.Update
	var last time.Time
	for _, ev := range h.events {
		if ev.Kind != api.EventStatus || ev.Resource != name || ev.Status.LastUpdate == nil {
			continue
		}
		u := *ev.Status.LastUpdate
		if !u.Started.Equal(last) && (ev.Status.Phase == api.PhaseReady || ev.Status.Phase == api.PhaseRunning || ev.Status.Phase == api.PhaseError) {
			out = append(out, u)
			last = u.Started
		}
	}
	return out
}

// waitReady waits until name is ready after n finished updates.
func (h *harness) waitUpdates(name string, n int, timeout time.Duration) api.ResourceStatus {
	h.t.Helper()
	h.waitFor(fmt.Sprintf("%s to finish %d updates", name, n), timeout, func() bool {
		return len(h.updates(name)) >= n && h.status[name].Phase != api.PhaseUpdating
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.status[name]
	if st.Phase == api.PhaseError {
		h.t.Fatalf("%s failed: %s", name, st.Error)
	}
	return st
}

// waitReady waits until every named resource is ready with nothing pending
// and returns the statuses; a resource in error fails at once.
func (h *harness) waitReady(timeout time.Duration, names ...string) map[string]api.ResourceStatus {
	h.t.Helper()
	h.waitFor(strings.Join(names, ", ")+" to be ready", timeout, func() bool {
		for _, n := range names {
			if s, ok := h.status[n]; !ok || s.Phase != api.PhaseReady || s.PendingFiles > 0 {
				if ok && s.Phase == api.PhaseError {
					h.t.Fatalf("%s failed: %s", n, s.Error)
				}
				return false
			}
		}
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]api.ResourceStatus{}
	for k, v := range h.status {
		out[k] = v
	}
	return out
}

// updatesSince returns the finished updates of a resource started after t.
func (h *harness) updatesSince(name string, t time.Time) []api.Update {
	var out []api.Update
	for _, tr := range h.timing.Recent() {
		if tr.Resource == name && tr.Started.After(t) {
			out = append(out, tr.Update)
		}
	}
	return out
}

func (h *harness) statusOf(name string) api.ResourceStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status[name]
}

// configLoads returns the config events so far, loads and failed loads.
func (h *harness) configLoads() []api.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.configLoadsLocked()
}

// configLoadsLocked is configLoads for a caller holding h.mu (waitFor's cond).
func (h *harness) configLoadsLocked() []api.Event {
	var out []api.Event
	for _, ev := range h.events {
		if ev.Kind == api.EventConfig {
			out = append(out, ev)
		}
	}
	return out
}

func (h *harness) configErrors() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, ev := range h.events {
		if ev.Kind == api.EventConfig && ev.Text != "" {
			out = append(out, ev.Text)
		}
	}
	return out
}

// containerFile reads a file in a container; "" and false when missing.
func containerFile(t *testing.T, id, path string) (string, bool) {
	t.Helper()
	out, code := testenv.ExecCode(t, id, "cat", path)
	return out, code == 0
}

// eventually retries check until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
