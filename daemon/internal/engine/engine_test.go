package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/model"
)

// The engine's decisions, tested with a fake kind: no Docker, no cluster,
// no processes. Runtimes record what they are asked and block where a test
// says so; events are read from the sink.

// fakeDef is what a test declares of one resource.
type fakeDef struct {
	name     string
	deps     []string
	dir      string // a dep directory: changes below it concern the resource
	hash     string
	trigger  model.TriggerMode
	readyLog string
	probe    bool
	// builtFrom names a file the resource's image is built from (a
	// Dockerfile): a change of it is both a config change and the resource's.
	builtFrom string
	// hostCmd marks a local command (Resource.HostCommand).
	hostCmd bool
}

// project is a running engine on fake definitions.
type project struct {
	t    *testing.T
	dir  string
	eng  *Engine
	stop func()

	mu      sync.Mutex
	defs    []fakeDef
	loadErr error
	// loadGate, when set, blocks each load until a value is received.
	loadGate chan struct{}
	loads    int
	// declared is what each load's Tiltfile declared ("resources: a b"),
	// read before the load waits at loadGate.
	declared map[*model.Config][]string
	events   []api.Event
	// removed lists Remove calls, with whether the runtime had closed first.
	removed []string
	changed chan struct{}
	// runtimes by resource name, newest last.
	rts map[string][]*fakeRuntime
	// updateHook runs inside every update, on the supervisor's goroutine.
	updateHook func(name string, j Job) Outcome
}

type fakeRuntime struct {
	p       *project
	name    string
	h       Host
	opened  time.Time
	mu      sync.Mutex
	jobs    []Job
	closing chan struct{} // closed when Close starts
	closed  chan struct{} // closed when Close returns
	// hold, when set, keeps Close from returning until it is closed.
	hold chan struct{}
}

func (rt *fakeRuntime) Update(_ context.Context, j Job) Outcome {
	rt.mu.Lock()
	rt.jobs = append(rt.jobs, j)
	rt.mu.Unlock()
	rt.p.mu.Lock()
	hook := rt.p.updateHook
	rt.p.mu.Unlock()
	if hook != nil {
		return hook(rt.name, j)
	}
	kind := api.UpdateInit
	if j.Changes != nil {
		kind = api.UpdateRebuild
	}
	return Outcome{Update: api.Update{Kind: kind, Started: j.Started, Edit: j.Edit, Batched: j.Batched, Ready: time.Now()}}
}

func (rt *fakeRuntime) Close() {
	close(rt.closing)
	if rt.hold != nil {
		<-rt.hold
	}
	close(rt.closed)
}

func (p *project) Load(_ context.Context, cfg *model.Config) (Loaded, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out Loaded
	names, only := p.declared[cfg]
	for _, d := range p.defs {
		d := d
		if only && !slices.Contains(names, d.name) {
			continue
		}
		r := &Resource{Name: d.name, Type: "fake", Deps: d.deps, Trigger: d.trigger, AutoInit: true, Hash: d.hash + d.name, ProbeGated: d.probe, HostCommand: d.hostCmd}
		if r.Trigger == "" {
			r.Trigger = DefaultTrigger(cfg)
		}
		if d.dir != "" {
			r.Inputs.Deps = []string{d.dir}
			r.Immediate = true
		}
		if d.builtFrom != "" {
			r.Inputs.Images = []ImageInput{{Context: filepath.Join(filepath.Dir(d.builtFrom), "ctx"), Dockerfile: d.builtFrom}}
		}
		if d.readyLog != "" {
			r.ReadyLog = regexp.MustCompile(d.readyLog)
		}
		r.Open = func(h Host) Runtime {
			rt := &fakeRuntime{p: p, name: d.name, h: h, opened: time.Now(), closing: make(chan struct{}), closed: make(chan struct{})}
			p.mu.Lock()
			p.rts[d.name] = append(p.rts[d.name], rt)
			p.mu.Unlock()
			p.notify()
			return rt
		}
		r.Remove = func(context.Context, io.Writer) {
			p.mu.Lock()
			closed := "open"
			if rs := p.rts[d.name]; len(rs) > 0 {
				select {
				case <-rs[len(rs)-1].closed:
					closed = "closed"
				default:
				}
			}
			p.removed = append(p.removed, d.name+" "+closed)
			p.mu.Unlock()
			p.notify()
		}
		out.Resources = append(out.Resources, r)
	}
	return out, p.loadErr
}

func (p *project) notify() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

func newProject(t *testing.T, mode Mode, defs ...fakeDef) *project {
	t.Helper()
	return newProjectHook(t, mode, nil, defs...)
}

// newProjectHook starts a project whose updates run hook.
func newProjectHook(t *testing.T, mode Mode, hook func(name string, j Job) Outcome, defs ...fakeDef) *project {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "Tiltfile")
	if err := os.WriteFile(tf, []byte("# v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &project{t: t, dir: dir, defs: defs, rts: map[string][]*fakeRuntime{}, changed: make(chan struct{}, 1),
		declared: map[*model.Config][]string{}, updateHook: hook}
	load := func(ctx context.Context) (*model.Config, error) {
		b, err := os.ReadFile(tf)
		if err != nil {
			return nil, err
		}
		cfg := &model.Config{Tiltfile: tf, Files: []string{tf}}
		p.mu.Lock()
		p.loads++
		gate := p.loadGate
		if list, ok := strings.CutPrefix(string(b), "resources:"); ok {
			p.declared[cfg] = strings.Fields(list)
		}
		p.mu.Unlock()
		p.notify()
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		if strings.Contains(string(b), "broken") {
			return cfg, errors.New("Tiltfile:1:1: broken")
		}
		return cfg, nil
	}
	p.eng = New(Options{Mode: mode, Load: load, Kinds: []Kind{p}, Env: []string{}, Sink: func(ev api.Event) {
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		p.notify()
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.eng.Run(ctx) }()
	p.stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("engine did not stop")
		}
	}
	t.Cleanup(p.stop)
	select {
	case <-p.eng.watching:
	case <-time.After(15 * time.Second):
		t.Fatal("the watcher did not start")
	}
	return p
}

// waitFor waits until cond holds (checked after every event and runtime
// change), failing the test after a generous limit: the tests wait for
// events, never for time to pass.
func (p *project) waitFor(what string, cond func() bool) {
	p.t.Helper()
	limit := time.After(15 * time.Second)
	for {
		p.mu.Lock()
		ok := cond()
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-p.changed:
		case <-time.After(50 * time.Millisecond):
		case <-limit:
			p.t.Fatalf("timed out waiting for %s; events:\n%s", what, p.dump())
		}
	}
}

func (p *project) dump() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, ev := range p.events {
		switch {
		case ev.Status != nil:
			fmt.Fprintf(&b, "  %s %s %s\n", ev.Resource, ev.Status.Phase, ev.Status.Error)
		default:
			fmt.Fprintf(&b, "  %s %s %q\n", ev.Kind, ev.Resource, ev.Text)
		}
	}
	return b.String()
}

// phase is the resource's last reported phase; call with p.mu held.
func (p *project) phase(name string) api.Phase {
	for i := len(p.events) - 1; i >= 0; i-- {
		if ev := p.events[i]; ev.Status != nil && ev.Resource == name {
			return ev.Status.Phase
		}
	}
	return ""
}

func (p *project) waitPhase(name string, want api.Phase) {
	p.t.Helper()
	p.waitFor(fmt.Sprintf("%s %s", name, want), func() bool { return p.phase(name) == want })
}

// runtime returns the resource's newest runtime.
func (p *project) runtime(name string) *fakeRuntime {
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.rts[name]
	if len(rs) == 0 {
		p.t.Fatalf("%s has no runtime", name)
	}
	return rs[len(rs)-1]
}

func (rt *fakeRuntime) jobCount() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return len(rt.jobs)
}

// writeTiltfile saves the Tiltfile as editors do, with a rename: one event.
func (p *project) writeTiltfile(text string) {
	p.t.Helper()
	tmp := filepath.Join(p.dir, ".Tiltfile.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(p.dir, "Tiltfile")); err != nil {
		p.t.Fatal(err)
	}
}

func (p *project) setDefs(defs ...fakeDef) {
	p.mu.Lock()
	p.defs = defs
	p.mu.Unlock()
}

func TestDepsWaitForReady(t *testing.T) {
	gate := make(chan struct{})
	p := newProjectHook(t, ModeUp, func(name string, j Job) Outcome {
		if name == "db" {
			<-gate
		}
		return Outcome{Update: api.Update{Kind: api.UpdateInit, Started: j.Started, Ready: time.Now()}}
	}, fakeDef{name: "db"}, fakeDef{name: "web", deps: []string{"db"}})
	p.waitPhase("db", api.PhaseUpdating)
	p.mu.Lock()
	webStarted := len(p.rts["web"]) > 0
	webPhase := p.phase("web")
	p.mu.Unlock()
	if webStarted || webPhase != api.PhasePending {
		t.Fatalf("web started (%v, phase %s) before its dependency db was ready", webStarted, webPhase)
	}
	close(gate)
	p.waitPhase("db", api.PhaseReady)
	p.waitPhase("web", api.PhaseReady)
}

func TestFileChangeUpdatesOnlyItsResource(t *testing.T) {
	p := newProject(t, ModeUp)
	a, b := filepath.Join(p.dir, "a"), filepath.Join(p.dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p.setDefs(fakeDef{name: "a", dir: a}, fakeDef{name: "b", dir: b})
	p.writeTiltfile("# v2\n")
	p.waitPhase("a", api.PhaseReady)
	p.waitPhase("b", api.PhaseReady)
	ra, rb := p.runtime("a"), p.runtime("b")
	// The watcher walks new roots on its own goroutine; a file created
	// before its directory is watched is missed, so create until seen.
	file := filepath.Join(a, "main.go")
	p.waitFor("a's change", func() bool {
		_ = os.WriteFile(file, []byte(time.Now().String()), 0o644)
		return ra.jobCount() >= 2
	})
	ra.mu.Lock()
	j := ra.jobs[len(ra.jobs)-1]
	ra.mu.Unlock()
	if len(j.Changes) != 1 || j.Changes[0].Path != file || j.Edit.IsZero() {
		t.Fatalf("a's update got %+v, want the one change of %s with its edit time", j.Changes, file)
	}
	if n := rb.jobCount(); n != 1 {
		t.Fatalf("b ran %d updates, want only its first: the change was a's", n)
	}
}

func TestManualTriggerWaitsForTrigger(t *testing.T) {
	p := newProject(t, ModeUp)
	src := filepath.Join(p.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	p.setDefs(fakeDef{name: "m", dir: src, trigger: model.TriggerManual})
	p.writeTiltfile("# v2\n")
	p.waitPhase("m", api.PhaseReady)
	rt := p.runtime("m")
	p.waitFor("a pending change", func() bool {
		_ = os.WriteFile(filepath.Join(src, "x"), []byte(time.Now().String()), 0o644)
		for i := len(p.events) - 1; i >= 0; i-- {
			if ev := p.events[i]; ev.Status != nil && ev.Resource == "m" {
				return ev.Status.PendingFiles > 0
			}
		}
		return false
	})
	if n := rt.jobCount(); n != 1 {
		t.Fatalf("manual resource ran %d updates without a trigger, want 1 (its first)", n)
	}
	if err := p.eng.Trigger(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("the triggered update", func() bool { return rt.jobCount() == 2 })
	rt.mu.Lock()
	j := rt.jobs[1]
	rt.mu.Unlock()
	if len(j.Changes) == 0 {
		t.Fatal("the trigger ran a full update; want the pending changes")
	}
}

func TestProbeGatedReadiness(t *testing.T) {
	p := newProject(t, ModeUp, fakeDef{name: "srv", probe: true})
	p.waitPhase("srv", api.PhaseRunning)
	rt := p.runtime("srv")
	rt.h.Report(Report{Probe: true, Ready: true})
	p.waitPhase("srv", api.PhaseReady)
	rt.h.Report(Report{Probe: true, Ready: false})
	p.waitPhase("srv", api.PhaseRunning)
	rt.h.Report(Report{Probe: true, Err: errors.New("serve_cmd exited: exit code 3")})
	p.waitPhase("srv", api.PhaseError)
}

func TestReadyLogLine(t *testing.T) {
	p := newProject(t, ModeUp, fakeDef{name: "api", readyLog: `listening on \d+`})
	p.waitPhase("api", api.PhaseRunning)
	rt := p.runtime("api")
	fmt.Fprintln(rt.h.ProcessLog, "starting")
	fmt.Fprintln(rt.h.ProcessLog, "listening on 8080")
	p.waitPhase("api", api.PhaseReady)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if ev := p.events[i]; ev.Status != nil && ev.Resource == "api" {
			if u := ev.Status.LastUpdate; u == nil || u.Ready.IsZero() {
				t.Fatalf("ready by its log line but the update has no ready time: %+v", u)
			}
			return
		}
	}
}

// A resource whose stop hangs (a serve_cmd that ignores SIGTERM, waiting out
// its grace period) must not hold up anything else: the engine goroutine
// never waits for a stop.
func TestHangingStopDelaysNothingElse(t *testing.T) {
	p := newProject(t, ModeUp)
	src := filepath.Join(p.dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	p.setDefs(fakeDef{name: "stuck"}, fakeDef{name: "other", dir: src})
	p.writeTiltfile("# v2\n")
	p.waitPhase("stuck", api.PhaseReady)
	p.waitPhase("other", api.PhaseReady)
	stuck, other := p.runtime("stuck"), p.runtime("other")
	hold := make(chan struct{})
	stuck.hold = hold
	defer close(hold)

	if err := p.eng.SetEnabled(context.Background(), "stuck", false); err != nil {
		t.Fatal(err)
	}
	<-stuck.closing
	// While stuck's Close hangs: a trigger and a file batch of another
	// resource both go through.
	if err := p.eng.Trigger(context.Background(), "other"); err != nil {
		t.Fatal(err)
	}
	p.waitFor("other's triggered update", func() bool { return other.jobCount() >= 2 })
	n := other.jobCount()
	p.waitFor("other's file change", func() bool {
		_ = os.WriteFile(filepath.Join(src, "f"), []byte(time.Now().String()), 0o644)
		return other.jobCount() > n
	})
	select {
	case <-stuck.closed:
		t.Fatal("stuck's Close returned while held")
	default:
	}
	p.waitPhase("stuck", api.PhaseDisabled)
}

// A config file saved while a load runs is read by one more load: the last
// save always wins.
func TestSaveDuringReloadLoadsAgain(t *testing.T) {
	p := newProject(t, ModeUp)
	tf := filepath.Join(p.dir, "Tiltfile")
	// "img" is built from the Tiltfile (as from a Dockerfile), so the engine
	// reports each batch that reaches it with the Tiltfile in it: the test's
	// barrier.
	p.setDefs(fakeDef{name: "img", builtFrom: tf}, fakeDef{name: "b"}, fakeDef{name: "c"})
	p.writeTiltfile("resources: img\n")
	p.waitPhase("img", api.PhaseReady)
	seen := func() int { // status events of img with the Tiltfile pending
		n := 0
		for _, ev := range p.events {
			if ev.Status != nil && ev.Resource == "img" && ev.Status.PendingFiles > 0 {
				n++
			}
		}
		return n
	}
	gate := make(chan struct{})
	p.mu.Lock()
	p.loadGate = gate
	before := p.loads
	p.mu.Unlock()

	p.writeTiltfile("resources: img b\n")
	p.waitFor("the reload to start", func() bool { return p.loads == before+1 })
	n := 0
	p.waitFor("the engine to see the save", func() bool { n = seen(); return n > 0 })
	// Saved while the load that read "img b" still runs.
	p.writeTiltfile("resources: img b c\n")
	p.waitFor("the engine to see the second save", func() bool { return seen() > n })
	gate <- struct{}{}
	p.waitPhase("b", api.PhaseReady)
	p.waitFor("one more load", func() bool { return p.loads == before+2 })
	gate <- struct{}{}
	p.waitPhase("c", api.PhaseReady)
	p.mu.Lock()
	p.loadGate = nil
	loads := p.loads - before
	p.mu.Unlock()
	if loads != 2 {
		t.Fatalf("%d loads for two saves, want 2", loads)
	}
}

func TestBrokenReloadKeepsRunning(t *testing.T) {
	p := newProject(t, ModeUp, fakeDef{name: "a"})
	p.waitPhase("a", api.PhaseReady)
	rt := p.runtime("a")
	p.writeTiltfile("broken\n")
	p.waitFor("the config error", func() bool {
		for _, ev := range p.events {
			if ev.Kind == api.EventConfig && strings.Contains(ev.Text, "broken") {
				return true
			}
		}
		return false
	})
	select {
	case <-rt.closing:
		t.Fatal("a broken Tiltfile stopped a running resource")
	default:
	}
	// The fix is seen: the same definition keeps its runtime.
	p.writeTiltfile("# fixed\n")
	p.waitFor("the fixed load", func() bool {
		ev := p.events[len(p.events)-1]
		return ev.Kind == api.EventConfig && ev.Text == ""
	})
	if got := p.runtime("a"); got != rt {
		t.Fatal("an unchanged definition got a new runtime")
	}
}

// A changed definition replaces the runtime; the new one opens only after
// the old one has closed (a serve_cmd lets go of its port first).
func TestReplacedDefinitionOpensAfterOldCloses(t *testing.T) {
	p := newProject(t, ModeUp, fakeDef{name: "a", hash: "v1"})
	p.waitPhase("a", api.PhaseReady)
	old := p.runtime("a")
	hold := make(chan struct{})
	old.hold = hold
	p.setDefs(fakeDef{name: "a", hash: "v2"})
	p.writeTiltfile("# v2\n")
	<-old.closing
	p.mu.Lock()
	n := len(p.rts["a"])
	p.mu.Unlock()
	if n != 1 {
		t.Fatal("the new definition opened before the old one closed")
	}
	close(hold)
	p.waitFor("the new runtime", func() bool { return len(p.rts["a"]) == 2 })
	p.waitPhase("a", api.PhaseReady)
}

func TestRemovedResourceIsRemoved(t *testing.T) {
	p := newProject(t, ModeUp, fakeDef{name: "a"}, fakeDef{name: "b"})
	p.waitPhase("b", api.PhaseReady)
	p.writeTiltfile("broken\n")
	p.waitFor("the config error", func() bool {
		ev := p.events[len(p.events)-1]
		return ev.Kind == api.EventConfig && ev.Text != ""
	})
	p.setDefs(fakeDef{name: "a"})
	p.writeTiltfile("# v2\n")
	// Removed once, after its runtime closed; the broken load removed nothing.
	p.waitFor("b's removal", func() bool { return len(p.removed) > 0 })
	p.mu.Lock()
	defer p.mu.Unlock()
	if strings.Join(p.removed, ",") != "b closed" {
		t.Fatalf("removals %q, want [b closed]", p.removed)
	}
}

func TestCIModeReturnsFirstFailure(t *testing.T) {
	p := &project{t: t, rts: map[string][]*fakeRuntime{}, changed: make(chan struct{}, 1),
		defs: []fakeDef{{name: "ok"}, {name: "bad"}}}
	p.updateHook = func(name string, j Job) Outcome {
		if name == "bad" {
			return Outcome{Err: errors.New("build bad: exit code 1")}
		}
		return Outcome{Update: api.Update{Started: j.Started, Ready: time.Now()}}
	}
	dir := t.TempDir()
	e := New(Options{Mode: ModeCI, Kinds: []Kind{p}, Env: []string{}, Load: func(context.Context) (*model.Config, error) {
		return &model.Config{Tiltfile: filepath.Join(dir, "Tiltfile")}, nil
	}})
	err := e.Run(context.Background())
	if !errors.Is(err, ErrResourceFailed) || !strings.Contains(err.Error(), "bad") {
		t.Fatalf("ci: %v, want the failure of bad", err)
	}
}

// TestCITimeouts: a CI run whose resource never becomes ready ends with
// ErrCITimeout: ci_settings(readiness_timeout=) after the resource's update,
// ci_settings(timeout=) in place of Options.CITimeout for the whole run.
func TestCITimeouts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings model.Settings
		opt      time.Duration
		want     string
	}{
		{"readiness_timeout", model.Settings{CIReadinessTimeout: 20 * time.Millisecond}, time.Hour, "srv was not ready within 20ms of its update"},
		{"ci_settings timeout over the flag", model.Settings{CITimeout: 20 * time.Millisecond}, time.Hour, "not every resource was ready within 20ms (waiting for srv)"},
		{"the flag", model.Settings{}, 20 * time.Millisecond, "not every resource was ready within 20ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &project{t: t, rts: map[string][]*fakeRuntime{}, changed: make(chan struct{}, 1),
				defs: []fakeDef{{name: "srv", probe: true}}} // never reports its probe
			dir := t.TempDir()
			e := New(Options{Mode: ModeCI, Kinds: []Kind{p}, Env: []string{}, CITimeout: tc.opt, Load: func(context.Context) (*model.Config, error) {
				return &model.Config{Tiltfile: filepath.Join(dir, "Tiltfile"), Settings: tc.settings}, nil
			}})
			err := e.Run(context.Background())
			if !errors.Is(err, ErrCITimeout) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ci: %v, want %q", err, tc.want)
			}
		})
	}
}
