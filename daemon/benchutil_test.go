package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/internal/testenv"
)

// project is `loop up` on a directory, for benchmarks (testing.TB, unlike
// harness): it keeps each resource's last status, and its finished updates
// in a metrics.Store, the same way the daemon does.
type project struct {
	tb     testing.TB
	tf     string
	cancel context.CancelFunc
	done   chan error
	timing *metrics.Store

	mu     sync.Mutex
	status map[string]api.ResourceStatus
	wake   chan struct{}
}

// upProject runs `loop up` on dir/Tiltfile until the benchmark ends, then
// removes what it created.
func upProject(tb testing.TB, dir string) *project {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &project{
		tb: tb, tf: filepath.Join(dir, "Tiltfile"), cancel: cancel, done: make(chan error, 1),
		timing: metrics.Open(metrics.Options{Keep: 100000}),
		status: map[string]api.ResourceStatus{}, wake: make(chan struct{}, 1),
	}
	go func() {
		p.done <- daemon.Up(ctx, daemon.Options{Tiltfile: p.tf, Sink: p.sink})
	}()
	tb.Cleanup(func() {
		p.cancel()
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			tb.Errorf("up did not stop within 30s")
		}
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		if err := daemon.Down(dctx, daemon.Options{Tiltfile: p.tf}, true); err != nil {
			tb.Logf("down: %v", err)
		}
	})
	return p
}

func (p *project) sink(ev api.Event) {
	p.timing.Observe(ev)
	if ev.Kind != api.EventStatus || ev.Status == nil {
		return
	}
	p.mu.Lock()
	p.status[ev.Status.Name] = *ev.Status
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// waitFor polls cond on the statuses until it holds; fails after timeout.
func (p *project) waitFor(what string, timeout time.Duration, cond func(map[string]api.ResourceStatus) bool) {
	p.tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		ok := cond(p.status)
		p.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-p.wake:
		case <-time.After(20 * time.Millisecond):
		case err := <-p.done:
			p.done <- err
			p.tb.Fatalf("up ended while waiting for %s: %v", what, err)
		}
	}
}

// waitReady waits until every named resource is ready and not updating.
func (p *project) waitReady(timeout time.Duration, names ...string) map[string]api.ResourceStatus {
	p.tb.Helper()
	p.waitFor(strings.Join(names, ", ")+" to be ready", timeout, func(st map[string]api.ResourceStatus) bool {
		for _, n := range names {
			if s, ok := st[n]; !ok || s.Phase != api.PhaseReady || s.PendingFiles > 0 {
				if ok && s.Phase == api.PhaseError {
					p.tb.Fatalf("%s failed: %s", n, s.Error)
				}
				return false
			}
		}
		return true
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]api.ResourceStatus{}
	for k, v := range p.status {
		out[k] = v
	}
	return out
}

// updatesSince returns the finished updates of a resource started after t.
func (p *project) updatesSince(name string, t time.Time) []api.Update {
	var out []api.Update
	for _, tr := range p.timing.Recent() {
		if tr.Resource == name && tr.Started.After(t) {
			out = append(out, tr.Update)
		}
	}
	return out
}

// addrOf returns a container's address on its first network.
func addrOf(tb testing.TB, id string) string {
	tb.Helper()
	insp, err := testenv.Docker(tb).ContainerInspect(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range insp.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
	}
	tb.Fatalf("container %s has no IP address", id)
	return ""
}

// reportSpread reports the median, p95 and the spread (max−min) of
// durations in milliseconds under the given prefix.
func reportSpread(b *testing.B, prefix string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	b.ReportMetric(ms(metrics.Percentile(s, 50)), prefix+"p50-ms")
	b.ReportMetric(ms(metrics.Percentile(s, 95)), prefix+"p95-ms")
	b.ReportMetric(ms(s[len(s)-1]-s[0]), prefix+"spread-ms")
}

// uniqueName returns a compose project name unique to this run.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1000000)
}
