package daemon_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
)

// TestHelloChain: examples/hello on the real Docker engine — a save of
// main.go is compiled by hello-compile, whose binary hello's live_update
// syncs and restarts. The save is one chain: its phases go compile → sync →
// restart in order, add up to its total, and the total is the time measured
// from outside (write main.go, poll HTTP until the new answer) within 10 %.
func TestHelloChain(t *testing.T) {
	// The start is a chain of its own (the load → compile → hello); the
	// edits come after it has ended.
	p, dir, get := startHello(t)

	const edits = 3
	for i := range edits {
		msg := fmt.Sprintf("chain edit %d %d", i, time.Now().UnixNano())
		t0 := time.Now()
		setMessage(t, dir, msg)
		for get() != msg+"\n" {
			if time.Since(t0) > 2*time.Minute {
				t.Fatalf("edit %d not served within 2 minutes", i)
			}
			time.Sleep(2 * time.Millisecond)
		}
		served := time.Since(t0)
		c := p.waitChain(time.Minute, "hello", t0)

		if c.Cause != api.CauseSave || c.Path != "main.go" || c.End != "hello" {
			t.Errorf("edit %d: chain %s %q ending at %s, want a save of main.go ending at hello", i, c.Cause, c.Path, c.End)
		}
		if len(c.Links) != 2 || c.Links[0].Resource != "hello-compile" || c.Links[1].Resource != "hello" || c.Links[1].Parent != c.Links[0].Update {
			t.Errorf("edit %d: links %+v, want hello-compile then hello caused by it", i, c.Links)
		}
		var names []string
		var sum time.Duration
		for _, ph := range c.Phases {
			names = append(names, ph.Resource+" "+string(ph.Name))
			sum += ph.Duration
		}
		if sum != c.Total() {
			t.Errorf("edit %d: phases add up to %v, total %v", i, sum, c.Total())
		}
		order := []string{"hello-compile batch", "hello-compile cmd", "hello sync", "hello restart"}
		at := 0
		for _, n := range names {
			if at < len(order) && n == order[at] {
				at++
			}
		}
		if at != len(order) {
			t.Errorf("edit %d: phases %v, want %v in this order", i, names, order)
		}
		diff := c.Total() - served
		t.Logf("edit %d: served after %v from outside, chain %v (%+.1f%%): %v", i, served, c.Total(), 100*float64(diff)/float64(served), c.Phases)
		if diff < 0 {
			diff = -diff
		}
		if diff*10 > served {
			t.Errorf("edit %d: chain total %v differs from the save → served time %v by more than 10 %%", i, c.Total(), served)
		}
	}

	// loop metrics' summary has the chains of main.go ending at hello.
	var g api.ChainStats
	for _, s := range metrics.SummarizeChains(p.timing.RecentChains(), time.Time{}) {
		if s.Root == "*.go" && s.End == "hello" {
			g = s
		}
	}
	if g.Count != edits {
		t.Errorf("chain group *.go → hello has %d chains, want %d", g.Count, edits)
	}
}

// waitChain waits for a finished chain that ended at name, rooted after
// since, and returns the first.
func (h *harness) waitChain(timeout time.Duration, name string, since time.Time) api.Chain {
	h.t.Helper()
	var got api.Chain
	h.waitFor("a chain ending at "+name, timeout, func() bool {
		i := slices.IndexFunc(h.timing.RecentChains(), func(c api.Chain) bool { return c.End == name && c.Root.After(since) })
		if i < 0 {
			return false
		}
		got = h.timing.RecentChains()[i]
		return true
	})
	return got
}
