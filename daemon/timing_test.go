package daemon_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/daemon/statedir"
)

// TestHelloTimingAddsUp edits examples/hello under `loop up` and reads the
// timing history the daemon wrote to the state directory: every trace's
// phases add up to its change-to-result time, and the summary's mean
// phases add up to its mean, on real traces.
func TestHelloTimingAddsUp(t *testing.T) {
	t.Setenv(statedir.Env, t.TempDir())
	dir := helloProject(t)
	h := startUp(t, dir, "up")
	h.waitUpdates("hello", 1, 5*time.Minute)
	count := func(name string, kind api.UpdateKind) int {
		n := 0
		for _, u := range h.updates(name) {
			if u.Kind == kind && u.Error == "" {
				n++
			}
		}
		return n
	}
	for i := 1; i <= 2; i++ {
		setMessage(t, dir, "timing edit "+time.Now().Format(time.RFC3339Nano))
		h.waitFor(fmt.Sprintf("edit %d compiled and live-updated", i), 2*time.Minute, func() bool {
			return count("hello-compile", api.UpdateLocal) >= i && count("hello", api.UpdateLive) >= i
		})
	}

	sd, err := statedir.For(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	// The daemon appends to the history file off the engine's goroutine.
	var traces []api.Trace
	eventually(t, 10*time.Second, func() error {
		traces, err = metrics.ReadHistory(sd, time.Time{})
		live := 0
		for _, tr := range traces {
			if tr.Resource == "hello" && tr.Kind == api.UpdateLive {
				live++
			}
		}
		if err == nil && live < 2 {
			err = fmt.Errorf("%d hello live traces in the history, want 2", live)
		}
		return err
	})
	kinds := map[string]int{}
	for _, tr := range traces {
		kinds[tr.Resource+"/"+string(tr.Kind)]++
		total := tr.Total()
		if total <= 0 {
			t.Errorf("%s %s has no total: %+v", tr.Resource, tr.Kind, tr.Update)
			continue
		}
		var sum time.Duration
		names := map[api.SpanName]bool{}
		for _, p := range api.Breakdown(tr.Update) {
			sum += p.Duration
			names[p.Name] = true
			if p.Duration < 0 {
				t.Errorf("%s %s: phase %s is negative (%s)", tr.Resource, tr.Kind, p.Name, p.Duration)
			}
		}
		if sum != total {
			t.Errorf("%s %s: phases add to %s, total %s", tr.Resource, tr.Kind, sum, total)
		}
		switch {
		case tr.Resource == "hello" && tr.Kind == api.UpdateLive:
			if !names["batch"] || !names["sync"] || !names["restart"] {
				t.Errorf("hello live update lacks batch, sync or restart: %v", api.Breakdown(tr.Update))
			}
		case tr.Resource == "hello-compile" && tr.Kind == api.UpdateLocal:
			if !names["cmd"] {
				t.Errorf("compile lacks its cmd phase: %v", api.Breakdown(tr.Update))
			}
		}
	}
	for _, k := range []string{"hello/init", "hello-compile/init", "hello/live", "hello-compile/local"} {
		if kinds[k] == 0 {
			t.Errorf("no %s trace in the history (%v)", k, kinds)
		}
	}
	if kinds["hello/live"] < 2 || kinds["hello-compile/local"] < 2 {
		t.Errorf("want at least 2 edits of each resource in the history: %v", kinds)
	}
	for _, g := range metrics.Summarize(traces, time.Time{}).Groups {
		var sum time.Duration
		for _, p := range g.Phases {
			sum += p.Duration
		}
		if g.Count > 0 && sum != g.Mean {
			t.Errorf("%s/%s: mean phases add to %s, mean %s", g.Resource, g.Kind, sum, g.Mean)
		}
	}
}
