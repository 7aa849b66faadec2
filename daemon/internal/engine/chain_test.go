package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/watch"
	"github.com/loop-dev/loop/daemon/model"
)

// Chains on a clock the test sets: the engine's handlers are called as Run
// calls them, with supervisors that only queue (no goroutine, no runtime).

// chainRig is a compile (a host command watching main.go) whose output
// build/app an app resource syncs, both ready.
type chainRig struct {
	t     *testing.T
	e     *Engine
	clock time.Time
}

func newChainRig(t *testing.T, appDeps ...string) *chainRig {
	g := &chainRig{t: t, clock: t0}
	g.e = New(Options{Now: func() time.Time { return g.clock }, Env: []string{}})
	g.e.cfg = &model.Config{Tiltfile: "/p/Tiltfile"}
	add := func(res *Resource) {
		st := &state{res: res, gen: 1, phase: api.PhaseReady, started: true, everReady: true,
			sup: &supervisor{wake: make(chan struct{}, 1)}}
		g.e.resources[res.Name] = st
		g.e.order = append(g.e.order, res.Name)
	}
	add(&Resource{Name: "compile", HostCommand: true, Immediate: true, AutoInit: true, Inputs: Inputs{Deps: []string{"/p/main.go"}}})
	add(&Resource{Name: "app", Immediate: true, AutoInit: true, Deps: appDeps, Inputs: Inputs{Deps: []string{"/p/build", "/p/static"}}})
	return g
}

// at sets the clock to t0+d.
func (g *chainRig) at(d time.Duration) { g.clock = t0.Add(d) }

// files hands the engine a batch read at t0+read, arriving now.
func (g *chainRig) files(read time.Duration, paths ...string) {
	var evs []watch.Event
	for _, p := range paths {
		evs = append(evs, watch.Event{Path: p, Op: watch.Write, Time: t0.Add(read)})
	}
	g.e.onFiles(context.Background(), evs)
}

// result finishes name's running update now with spans laid end to end
// from its start, ready at once.
func (g *chainRig) result(name string, kind api.UpdateKind, spans ...api.Span) {
	r := g.e.resources[name]
	j := r.sup.queue[len(r.sup.queue)-1].job
	g.e.onResult(supResult{name: name, gen: 1, outcome: Outcome{Live: true, Update: api.Update{
		Kind: kind, Started: j.Started, Edit: j.Edit, Batched: j.Batched, Spans: spans, Ready: g.clock}}})
}

// loadStart makes the rig a fresh start: nothing ever ready, the load's
// chain open and every resource waiting to start with it.
func (g *chainRig) loadStart() {
	for _, name := range g.e.order {
		r := g.e.resources[name]
		r.everReady, r.started, r.phase = false, false, api.PhasePending
	}
	g.e.changeSeq++
	g.e.newChain(g.e.changeSeq, api.CauseLoad, "", g.clock)
	for _, name := range g.e.order {
		g.e.initState(g.e.resources[name])
	}
}

func (g *chainRig) step() {
	g.e.schedule()
	g.e.checkChains(false)
}

func span(n api.SpanName, d time.Duration) api.Span { return api.Span{Name: n, Duration: d} }

const ms = time.Millisecond

// phaseNames lists a chain's phases as "resource name".
func phaseNames(c *api.Chain) []string {
	var out []string
	for _, p := range c.Phases {
		out = append(out, p.Resource+" "+string(p.Name))
	}
	return out
}

func checkSum(t *testing.T, c *api.Chain) {
	t.Helper()
	var sum time.Duration
	for i, p := range c.Phases {
		if i > 0 && p.Start != c.Phases[i-1].Start+c.Phases[i-1].Duration {
			t.Errorf("phase %d starts at %v, the one before ends at %v", i, p.Start, c.Phases[i-1].Start+c.Phases[i-1].Duration)
		}
		sum += p.Duration
	}
	if sum != c.Total() {
		t.Errorf("phases add up to %v, total %v: %+v", sum, c.Total(), c.Phases)
	}
}

// The Go flow: save main.go → compile writes build/app → app syncs it and
// restarts. One chain, ending at app, with the gaps as phases.
func TestChainFollowsACompilesOutput(t *testing.T) {
	g := newChainRig(t)
	g.at(2 * ms)
	g.files(0, "/p/main.go")
	g.step() // compile starts at 2ms
	g.at(700 * ms)
	g.result("compile", api.UpdateLocal, span(api.SpanCmd, 690*ms))
	g.step()
	if c := g.e.resources["compile"].chain; c != nil {
		t.Fatalf("the chain ended at the compile before its output came: %+v", c)
	}
	// The binary's events, read after the command ended, within OutputSettle.
	g.at(760 * ms)
	g.files(750*ms, "/p/build/app")
	g.step() // app starts at 760ms
	if got := g.e.resources["app"].cur.chains; len(got) != 1 {
		t.Fatalf("app's update continues chains %v, want the save's", got)
	}
	g.at(900 * ms)
	g.result("app", api.UpdateLive, span(api.SpanSync, 80*ms), span(api.SpanRestart, 20*ms))
	g.step()
	if c := g.e.resources["app"].chain; c != nil {
		t.Fatalf("the chain ended while the compile's output may still come: %+v", c)
	}
	g.at(700*ms + OutputSettle)
	g.step()
	c := g.e.resources["app"].chain
	if c == nil {
		t.Fatal("no chain ended at app")
	}
	if c.Cause != api.CauseSave || c.Path != "main.go" || !c.Root.Equal(t0) || c.End != "app" {
		t.Errorf("chain %+v, want a save of main.go at t0 ending at app", c)
	}
	if c.Total() != 900*ms {
		t.Errorf("total %v, want 900ms (save → app ready)", c.Total())
	}
	want := []string{"compile batch", "compile cmd", "compile other", "app handoff", "app sync", "app restart", "app other"}
	if got := phaseNames(c); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	checkSum(t, c)
	if len(c.Links) != 2 || c.Links[1].Parent != c.Links[0].Update {
		t.Errorf("links %+v: app's parent should be the compile's update", c.Links)
	}
	if g.e.resources["compile"].chain != nil {
		t.Errorf("the chain also ended at the compile")
	}
}

// A save of main.go while the compile runs is the user's, not the
// compile's output: it roots a chain of its own (the compile watches it).
// Events before the command started or after its OutputSettle are roots too.
func TestChainAttribution(t *testing.T) {
	g := newChainRig(t)
	g.at(2 * ms)
	g.files(0, "/p/main.go")
	g.step()
	first := g.e.resources["compile"].cur.chains
	if len(first) != 1 {
		t.Fatalf("compile continues %v, want one chain", first)
	}

	g.at(302 * ms)
	g.files(300*ms, "/p/main.go")
	ids := g.e.resources["compile"].changeIDs
	if len(ids) != 1 || g.e.origins[ids[0]].parent != 0 || slices.Contains(g.e.origins[ids[0]].chains, first[0]) {
		t.Fatalf("a save of main.go during the compile joined its chain: %+v", g.e.origins[ids[0]])
	}
	second := g.e.chains[ids[0]]
	if second == nil || second.path != "main.go" || !second.root.Equal(t0.Add(300*ms)) {
		t.Fatalf("the save during the compile has chain %+v, want a root at +300ms", second)
	}

	if p := g.e.producer("/p/build/app", t0.Add(-ms)); p != nil {
		t.Errorf("an event read before the compile started is its output")
	}
	if p := g.e.producer("/p/build/app", t0.Add(400*ms)); p == nil || p.name() != "compile" {
		t.Errorf("an event read while the compile runs is not its output")
	}
	g.at(700 * ms)
	g.result("compile", api.UpdateLocal, span(api.SpanCmd, 690*ms))
	if p := g.e.producer("/p/build/app", t0.Add(700*ms+OutputSettle)); p == nil {
		t.Errorf("an event read OutputSettle after the compile ended is not its output")
	}
	if p := g.e.producer("/p/build/app", t0.Add(701*ms+OutputSettle)); p != nil {
		t.Errorf("an event read later than OutputSettle after the compile ended is its output")
	}
	g.at(702*ms + OutputSettle)
	g.files(701*ms+OutputSettle, "/p/static/index.html")
	ids = g.e.resources["app"].changeIDs
	if len(ids) != 1 || g.e.origins[ids[0]].parent != 0 {
		t.Fatalf("a save after the window is not a root: %+v", g.e.origins[ids[0]])
	}

	// The follow-up compile (the second save) continues the second chain,
	// and its output continues that one, not the first.
	g.step()
	if got := g.e.resources["compile"].cur.chains; !slices.Equal(got, []uint64{second.id}) {
		t.Fatalf("follow-up compile continues %v, want [%d]", got, second.id)
	}
	g.at(1500 * ms)
	g.files(1490*ms, "/p/build/app")
	ids = g.e.resources["app"].changeIDs
	if o := g.e.origins[ids[len(ids)-1]]; !slices.Equal(o.chains, []uint64{second.id}) || o.parent != g.e.resources["compile"].cur.id {
		t.Fatalf("the follow-up's output continues %+v, want the second save's chain %d", o, second.id)
	}
}

// A resource_deps chain: the load starts the compile; app waits for it to be
// ready, and its start continues the load's chain with the compile as parent.
func TestChainThroughResourceDeps(t *testing.T) {
	g := newChainRig(t, "compile")
	g.loadStart()
	g.at(5 * ms)
	g.step()
	if g.e.resources["app"].updating {
		t.Fatal("app started before its dependency was ready")
	}
	g.at(600 * ms)
	g.result("compile", api.UpdateInit, span(api.SpanCmd, 590*ms))
	g.at(610 * ms)
	g.step()
	g.at(1800 * ms)
	g.result("app", api.UpdateInit, span(api.SpanBuild, 1000*ms), span(api.SpanDeploy, 150*ms))
	g.at(1800*ms + OutputSettle)
	g.step()
	c := g.e.resources["app"].chain
	if c == nil || c.Cause != api.CauseLoad || c.Total() != 1800*ms {
		t.Fatalf("chain %+v, want the load's, 1.8s", c)
	}
	want := []string{"compile queue", "compile cmd", "compile other", "app queue", "app build", "app deploy", "app other"}
	if got := phaseNames(c); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	checkSum(t, c)
}

// A save that reaches only one resource is a chain of one update: its total
// is that update's change-to-result time.
func TestChainOfOneUpdate(t *testing.T) {
	g := newChainRig(t)
	g.at(3 * ms)
	g.files(0, "/p/static/index.html")
	g.step()
	g.at(40 * ms)
	g.result("app", api.UpdateLive, span(api.SpanSync, 30*ms))
	g.step()
	c := g.e.resources["app"].chain
	if c == nil || len(c.Links) != 1 {
		t.Fatalf("chain %+v, want one link", c)
	}
	if u := g.e.resources["app"].last; c.Total() != u.Total() {
		t.Errorf("chain total %v, update total %v", c.Total(), u.Total())
	}
	checkSum(t, c)
}

// A chain whose next resource waits for a dependency that failed ends at
// the failure: the dependent's pending start waits for a fix, not for it.
func TestChainEndsAtAFailedDependency(t *testing.T) {
	g := newChainRig(t, "compile")
	g.loadStart()
	g.step()
	g.at(300 * ms)
	r := g.e.resources["compile"]
	g.e.onResult(supResult{name: "compile", gen: 1, outcome: Outcome{Err: errors.New("exit status 1"), Update: api.Update{
		Kind: api.UpdateInit, Started: t0, Error: "exit status 1"}}})
	g.at(300*ms + OutputSettle)
	g.step()
	c := r.chain
	if c == nil || c.Error == "" || c.End != "compile" || c.Total() != 0 {
		t.Fatalf("chain %+v, want a failed chain ending at compile", c)
	}
	if g.e.resources["app"].updating || len(g.e.chains) != 0 {
		t.Errorf("app started, or chains left open: %v", g.e.chains)
	}
}

// The service can be ready before the compile's process has exited (its
// output was written, seen and synced meanwhile): the chain still ends at
// the service, and the compile's phase stops where its output was seen.
func TestChainEndsAtTheServiceWhenTheCompileEndsLater(t *testing.T) {
	g := newChainRig(t)
	g.at(2 * ms)
	g.files(0, "/p/main.go")
	g.step()
	g.at(610 * ms)
	g.files(600*ms, "/p/build/app") // the binary, written before the compile exits
	g.step()
	g.at(800 * ms)
	g.result("app", api.UpdateLive, span(api.SpanSync, 150*ms), span(api.SpanRestart, 20*ms))
	g.step()
	g.at(900 * ms)
	g.result("compile", api.UpdateLocal, span(api.SpanCmd, 895*ms))
	g.at(900*ms + OutputSettle)
	g.step()
	c := g.e.resources["app"].chain
	if c == nil || c.End != "app" || c.Total() != 800*ms {
		t.Fatalf("chain %+v, want one ending at app after 800ms", c)
	}
	if g.e.resources["compile"].chain != nil {
		t.Errorf("the chain also ended at the compile")
	}
	want := []string{"compile batch", "compile cmd", "app sync", "app restart", "app other"}
	if got := phaseNames(c); !slices.Equal(got, want) {
		t.Errorf("phases %v, want %v", got, want)
	}
	if p := c.Phases[1]; p.Start+p.Duration != 610*ms {
		t.Errorf("the compile's phase ends at %v, want where its output's batch came (610ms)", p.Start+p.Duration)
	}
	checkSum(t, c)
}
