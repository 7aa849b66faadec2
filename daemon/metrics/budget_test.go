package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

func TestParseBudget(t *testing.T) {
	for _, c := range []struct {
		spec string
		want []Limit
	}{
		{"2s", []Limit{{Percentile: 95, Max: 2 * time.Second, Name: "p95"}}},
		{"p95=2s,live.p50=50ms", []Limit{
			{Percentile: 95, Max: 2 * time.Second, Name: "p95"},
			{Kind: api.UpdateLive, Percentile: 50, Max: 50 * time.Millisecond, Name: "live.p50"},
		}},
		{" web.p99 = 1s , max=10s", []Limit{
			{Resource: "web", Percentile: 99, Max: time.Second, Name: "web.p99"},
			{Percentile: 100, Max: 10 * time.Second, Name: "max"},
		}},
		{"web.live.p99.9=100ms", []Limit{{Resource: "web", Kind: api.UpdateLive, Percentile: 99.9, Max: 100 * time.Millisecond, Name: "web.live.p99.9"}}},
		{"my.svc.rebuild.p90=30s", []Limit{{Resource: "my.svc", Kind: api.UpdateRebuild, Percentile: 90, Max: 30 * time.Second, Name: "my.svc.rebuild.p90"}}},
		{"p99.9=1s", []Limit{{Percentile: 99.9, Max: time.Second, Name: "p99.9"}}},
	} {
		got, err := ParseBudget(c.spec)
		if err != nil {
			t.Errorf("ParseBudget(%q): %v", c.spec, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("ParseBudget(%q) = %+v, want %+v", c.spec, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("ParseBudget(%q)[%d] = %+v, want %+v", c.spec, i, got[i], c.want[i])
			}
		}
	}
}

func TestParseBudgetErrors(t *testing.T) {
	for _, c := range []struct{ spec, mention string }{
		{"", "empty"},
		{" , ", "empty"},
		{"p95=fast", `"fast" is not a duration`},
		{"p95=-1s", "positive"},
		{"live.p0=1s", `"p0" is not a percentile`},
		{"p101=1s", `"p101" is not a percentile`},
		{"live=1s", `"live" does not end in a percentile`},
		{"live.p50", `"live.p50" is not a duration`},
		{"p95=2s,live.q50=1ms", `"live.q50" does not end in a percentile`},
	} {
		_, err := ParseBudget(c.spec)
		if err == nil {
			t.Errorf("ParseBudget(%q) succeeded", c.spec)
			continue
		}
		if !errors.Is(err, ErrBudget) || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("ParseBudget(%q) = %v, want ErrBudget mentioning %q", c.spec, err, c.mention)
		}
	}
}

func TestBudgetCheckBothSides(t *testing.T) {
	var traces []api.Trace
	for i := 1; i <= 100; i++ {
		traces = append(traces, api.Trace{Resource: "web", Update: live(time.Duration(i)*time.Second, time.Duration(i)*time.Millisecond)})
	}
	traces = append(traces,
		api.Trace{Resource: "api", Update: api.Update{Kind: api.UpdateInit, Started: t0, Ready: t0.Add(4 * time.Second)}},
		api.Trace{Resource: "web", Update: api.Update{Kind: api.UpdateLive, Edit: t0, Started: t0, Error: "failed"}},
	)
	check := func(spec string) []Result {
		b, err := ParseBudget(spec)
		if err != nil {
			t.Fatal(err)
		}
		return b.Check(traces, nil)
	}
	// live p50 is 50ms: a budget of exactly 50ms holds, 49ms does not.
	if r := check("live.p50=50ms"); len(Exceeded(r)) != 0 || r[0].Got != 50*time.Millisecond || r[0].Count != 100 {
		t.Errorf("live.p50=50ms: %v", r)
	}
	if r := Exceeded(check("live.p50=49ms")); len(r) != 1 || !strings.Contains(r[0].String(), "live.p50 = 50ms exceeds the budget of 49ms") {
		t.Errorf("live.p50=49ms: %v", r)
	}
	// Over every update, max is the 4s init of api.
	if r := Exceeded(check("max=4s,api.p50=4s")); len(r) != 0 {
		t.Errorf("max=4s: %v", r)
	}
	r := check("p95=2s,max=3999ms,web.p95=95ms,rebuild.p50=1ms")
	ex := Exceeded(r)
	if len(ex) != 1 || ex[0].Name != "max" {
		t.Errorf("exceeded = %v, want only max", ex)
	}
	if r[3].Count != 0 || r[3].Exceeded() || !strings.Contains(r[3].String(), "no updates") {
		t.Errorf("rebuild.p50 with no rebuilds = %v", r[3])
	}
}

// chain and chain.RESOURCE judge chains, not updates.
func TestBudgetChains(t *testing.T) {
	chain := func(end string, total time.Duration, failed string) api.Chain {
		return api.Chain{End: end, Root: t0, Ready: t0.Add(total), Error: failed}
	}
	chains := []api.Chain{chain("hello", time.Second, ""), chain("hello", 3*time.Second, ""), chain("web", 2*time.Second, ""), chain("web", 0, "compile: exit 1")}
	traces := []api.Trace{{Resource: "hello", Update: live(time.Second, 10*time.Millisecond)}}
	b, err := ParseBudget("chain.p50=2s,chain.hello.max=2s,chain.live.p50=1s,live.p50=5ms")
	if err != nil {
		t.Fatal(err)
	}
	r := b.Check(traces, chains)
	if !r[0].Chain || r[0].Count != 3 || r[0].Got != 2*time.Second || r[0].Exceeded() {
		t.Errorf("chain.p50 = %+v, want 2s over 3 chains", r[0])
	}
	if r[1].Resource != "hello" || r[1].Count != 2 || !r[1].Exceeded() || !strings.Contains(r[1].String(), "exceeds the budget of 2s (2 chains)") {
		t.Errorf("chain.hello.max = %+v (%s)", r[1], r[1])
	}
	if r[2].Count != 0 || !strings.Contains(r[2].String(), "no chains") {
		t.Errorf("chain.live.p50 (chains ending at a resource named live) = %+v", r[2])
	}
	if r[3].Chain || r[3].Count != 1 || !r[3].Exceeded() {
		t.Errorf("live.p50 = %+v, want the live update judged", r[3])
	}
}
