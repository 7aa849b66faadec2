package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// goChain is a save of path that a compile and a sync served in total.
func goChain(id uint64, at time.Duration, path string, total time.Duration) api.Chain {
	root := t0.Add(at)
	cmd := total * 6 / 10
	return api.Chain{
		ID: id, Cause: api.CauseSave, Path: path, Root: root, Ready: root.Add(total), End: "hello",
		Links: []api.ChainLink{{Resource: "compile", Update: 1}, {Resource: "hello", Update: 2, Parent: 1}},
		Phases: []api.ChainPhase{
			{Resource: "compile", Name: api.PhaseBatch, Duration: 2 * time.Millisecond},
			{Resource: "compile", Name: api.SpanCmd, Start: 2 * time.Millisecond, Duration: cmd},
			{Resource: "hello", Name: api.SpanSync, Start: 2*time.Millisecond + cmd, Duration: total - cmd - 2*time.Millisecond},
		},
	}
}

func TestRootPattern(t *testing.T) {
	for _, c := range []struct {
		chain api.Chain
		want  string
	}{
		{api.Chain{Cause: api.CauseSave, Path: "main.go"}, "*.go"},
		{api.Chain{Cause: api.CauseSave, Path: "cmd/api/x.go"}, "cmd/api/*.go"},
		{api.Chain{Cause: api.CauseSave, Path: "web/Makefile"}, "web/*"},
		{api.Chain{Cause: api.CauseLoad}, "(load)"},
		{api.Chain{Cause: api.CauseTrigger}, "(trigger)"},
	} {
		if got := RootPattern(c.chain); got != c.want {
			t.Errorf("RootPattern(%+v) = %q, want %q", c.chain, got, c.want)
		}
	}
}

// Chains are recorded once however many status events carry them, kept in
// the history file next to the traces, and summarized from it after a
// restart (a new Store on the same directory).
func TestChainsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := Open(Options{Dir: dir})
	for i := range 10 {
		c := goChain(uint64(i+1), time.Duration(i)*time.Second, "main.go", time.Duration(i+1)*100*time.Millisecond)
		for range 3 {
			s.Observe(api.Event{Kind: api.EventStatus, Status: &api.ResourceStatus{Name: "hello", Chain: &c}})
		}
		s.Record("hello", live(time.Duration(i)*time.Second, 10*time.Millisecond))
	}
	if got := len(s.RecentChains()); got != 10 {
		t.Fatalf("%d chains recorded from 30 events carrying 10, want 10", got)
	}
	rec := httptest.NewRecorder()
	s.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), `loop_chain_seconds_count{end="hello",root="*.go"} 10`) ||
		!strings.Contains(string(body), `loop_chain_phase_seconds_count{end="hello",phase="cmd",resource="compile",root="*.go"} 10`) {
		t.Errorf("Prometheus output lacks the chain histograms:\n%s", body)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := Open(Options{Dir: dir})
	defer s2.Close()
	sum, err := s2.History(time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Traces != 10 {
		t.Errorf("%d traces in the history, want 10 (chain lines are not traces)", sum.Traces)
	}
	var g api.ChainStats
	for _, c := range sum.Chains {
		if c.Root == "*.go" && c.End == "hello" {
			g = c
		}
	}
	if g.Count != 10 || g.P50 != 500*time.Millisecond || g.Max != time.Second {
		t.Fatalf("chain group after restart %+v, want 10 chains, p50 500ms, max 1s", g)
	}
	var sum2 time.Duration
	for _, p := range g.Phases {
		sum2 += p.Duration
	}
	if sum2 != g.Mean || len(g.Phases) != 3 || g.Phases[1].Resource != "compile" || g.Phases[1].Name != api.SpanCmd {
		t.Errorf("mean phases %+v add up to %v, mean %v", g.Phases, sum2, g.Mean)
	}
	if last := sum.Chains[len(sum.Chains)-1]; last.Root != "" || last.End != "" || last.Count != 10 {
		t.Errorf("last group %+v, want all chains", last)
	}
	if traces, err := ReadHistory(dir, time.Time{}); err != nil || len(traces) != 10 {
		t.Errorf("ReadHistory: %d traces, %v; want the 10 traces only", len(traces), err)
	}
}
