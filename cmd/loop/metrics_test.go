package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// TestCILatencyBudget: loop ci passes under a budget its updates meet and
// fails naming the budget they exceed; a malformed budget is a usage error.
func TestCILatencyBudget(t *testing.T) {
	t.Setenv("LOOP_STATE_DIR", t.TempDir())
	dir := t.TempDir()
	// The command takes at least 300ms, so its init's change-to-result does.
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte("local_resource('slow', cmd='sleep 0.3')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runLoop(t, dir, "ci", "--timeout", "1m", "--latency-budget", "p95=1h,live.p50=1ms")
	if code != 0 {
		t.Fatalf("ci under budget: exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "p95 = ") || !strings.Contains(out, "within 1h0m0s (1 updates)") || !strings.Contains(out, "live.p50 ≤ 1ms: no updates to judge") {
		t.Errorf("ci output does not report the budget: %s", out)
	}
	// The load's chain (the load → slow ready) is judged by chain selectors.
	out, errOut, code = runLoop(t, dir, "ci", "--timeout", "1m", "--latency-budget", "chain.p95=1h,chain.slow.max=100ms")
	if code != 1 || !strings.Contains(out, "chain.p95 = ") || !strings.Contains(out, "within 1h0m0s (1 chains)") ||
		!strings.Contains(errOut, "latency budget exceeded: chain.slow.max") {
		t.Errorf("ci with a chain budget: exit %d, want 1 naming chain.slow.max: %s %s", code, out, errOut)
	}
	out, errOut, code = runLoop(t, dir, "ci", "--timeout", "1m", "--latency-budget", "max=1h,slow.init.p95=100ms")
	if code != 1 {
		t.Fatalf("ci over budget: exit %d, want 1: %s %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "latency budget exceeded: slow.init.p95") || strings.Contains(errOut, "max (") {
		t.Errorf("stderr should name only the exceeded budget: %s", errOut)
	}
	_, errOut, code = runLoop(t, dir, "ci", "--latency-budget", "p95=soon")
	if code != 2 || !strings.Contains(errOut, `"soon" is not a duration`) {
		t.Errorf("bad budget: exit %d, stderr %q; want 2 explaining", code, errOut)
	}
}

// TestMetricsReadsHistory: after a loop ci run, loop metrics (no daemon
// running) reports the resource with phases adding up to the mean.
func TestMetricsReadsHistory(t *testing.T) {
	t.Setenv("LOOP_STATE_DIR", t.TempDir())
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte("local_resource('gen', cmd='sleep 0.05')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, code := runLoop(t, dir, "metrics")
	if code != 0 || !strings.Contains(out, "no updates recorded") {
		t.Fatalf("metrics before any run: exit %d: %s", code, out)
	}
	for range 2 {
		if out, errOut, code := runLoop(t, dir, "ci", "--timeout", "1m"); code != 0 {
			t.Fatalf("ci: exit %d: %s %s", code, out, errOut)
		}
	}
	out, errOut, code := runLoop(t, dir, "metrics", "--json")
	if code != 0 {
		t.Fatalf("metrics --json: exit %d: %s", code, errOut)
	}
	var s api.MetricsSummary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	g, ok := s.Group("gen", api.UpdateInit)
	if !ok || g.Count != 2 || g.P50 < 50*time.Millisecond {
		t.Fatalf("gen/init = %+v (ok %v), want 2 updates of at least 50ms", g, ok)
	}
	var sum time.Duration
	var cmd bool
	for _, p := range g.Phases {
		sum += p.Duration
		cmd = cmd || (p.Name == "cmd" && p.Duration >= 50*time.Millisecond)
	}
	if sum != g.Mean || !cmd {
		t.Errorf("phases %+v add to %s, mean %s; want a cmd phase of at least 50ms", g.Phases, sum, g.Mean)
	}
	// Each run's load is a chain ending at gen, kept in the history.
	var chains int
	for _, c := range s.Chains {
		if c.Root == "(load)" && c.End == "gen" {
			chains = c.Count
		}
	}
	if chains != 2 {
		t.Errorf("chain groups %+v, want 2 chains (load) → gen", s.Chains)
	}
	out, _, code = runLoop(t, dir, "metrics", "--since", "1h")
	if code != 0 || !strings.Contains(out, "gen") || !strings.Contains(out, "cmd ") || !strings.Contains(out, "(load) → gen") {
		t.Errorf("metrics table: exit %d:\n%s", code, out)
	}
	out, _, _ = runLoop(t, dir, "metrics", "--json", "--since", "1ns")
	if err := json.Unmarshal([]byte(out), &s); err != nil || s.Traces != 0 {
		t.Errorf("--since 1ns: %d traces (%v), want none", s.Traces, err)
	}
}
