// Package engine decides what a running project does next. One goroutine
// (Run) holds every resource's state and is its only writer: file batches,
// update outcomes, readiness and config reloads reach it as messages, and it
// hands work to each resource's supervisor (supervisor.go), which owns the
// resource's runtime and reports back. The loop itself does no I/O and never
// waits: loading runs on a loader goroutine, root changes are a request to
// the watcher's goroutine, stops and updates run in supervisors. Resource
// kinds (local commands, Compose, Kubernetes) reach the engine through the
// Kind interface; the engine imports neither Docker nor Kubernetes.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/watch"
	"github.com/loop-dev/loop/daemon/model"
)

// Mode says when Run returns.
type Mode int

// Modes of a run.
const (
	// ModeUp runs until the context is done.
	ModeUp Mode = iota
	// ModeCI returns when every resource is ready (nil) or one fails (error).
	ModeCI
)

// Loader (re)loads the Tiltfile. On error it still returns a config whose
// Files say what to watch for a fix.
type Loader func(ctx context.Context) (*model.Config, error)

// Options configure an Engine.
type Options struct {
	Mode Mode
	Load Loader
	// Kinds make resources from a loaded config, in this order.
	Kinds []Kind
	// Env is the environment whose secret values are masked; nil means os.Environ().
	Env []string
	// Only limits the run to these resources (and their resource_deps).
	Only []string
	// Sink receives every event; it is called from the engine goroutine and
	// from supervisors and must not block for long.
	Sink func(api.Event)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// CITimeout bounds a ModeCI run (loop ci --timeout); the config's
	// ci_settings(timeout=) takes its place, as in Tilt. Zero: no bound.
	CITimeout time.Duration
}

// ErrResourceFailed wraps a resource failure in ModeCI.
var ErrResourceFailed = errors.New("resource failed")

// ErrCITimeout wraps the failure of a ModeCI run that was not ready in time:
// the whole run (ci_settings timeout, loop ci --timeout) or one resource
// after its update (ci_settings readiness_timeout).
var ErrCITimeout = errors.New("not ready in time")

// Engine runs one project. Create it with New and call Run once.
type Engine struct {
	opts Options
	now  func() time.Time

	// Owned by the Run goroutine.
	ciStart   time.Time // when a ModeCI run started, for its timeout
	cfg       *model.Config
	resources map[string]*state
	order     []string
	gens      map[string]int // the last generation per name, across removals
	watcher   *watch.Watcher
	running   int
	// configFiles are the files whose change re-runs the Tiltfile.
	configFiles map[string]bool
	// ignore is the project-wide ignore matcher of the current config.
	ignore *ignore.Matcher
	// files are the config files of the last good load (Tiltfile, loaded
	// files, compose and env files).
	files []string
	// sources are the files and directories Kubernetes sources render from:
	// an edit under one reloads the config, which re-renders.
	sources []string
	// reloading: a load runs; reloadAgain: a config file changed meanwhile,
	// so one more load follows it (the running one may have read it before).
	reloading, reloadAgain bool
	// ending are supervisors of replaced or removed definitions that have
	// not ended yet: their successors wait for them.
	ending map[string]*supervisor

	// changeSeq numbers changes (a batch of file events, a trigger, a
	// config load), updateSeq updates; doneSeq counts finished updates.
	changeSeq, updateSeq, doneSeq uint64
	// loadWant counts load requests; loadCovers is what the running load
	// covers, loadDone what the last applied load covered. loadErr is the
	// last load's error.
	loadWant, loadCovers, loadDone uint64
	loadErr                        string
	// waits are the clients' waits in progress (wait.go).
	waits    map[uint64]*waiter
	barriers map[uint64]*waiter // by outstanding barrier token
	waitSeq  uint64
	waitsKey string
	// chains are the open chains by root change ID; origins say which
	// chains each change continues (chain.go).
	chains  map[uint64]*chain
	origins map[uint64]origin

	// mask hides secret values in every event (set from Env and the
	// config's Settings.Secrets; read by emit from any goroutine).
	mask atomic.Pointer[masker]

	msgs    chan any
	control chan controlMsg
	stopped chan struct{} // closed when Run returns
	// watching is closed once the first config's roots are watched.
	watching chan struct{}
	workers  sync.WaitGroup
}

// New returns an engine; nothing runs until Run.
func New(opts Options) *Engine {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Env == nil {
		opts.Env = os.Environ()
	}
	e := &Engine{
		opts:      opts,
		now:       now,
		resources: map[string]*state{},
		gens:      map[string]int{},
		ending:    map[string]*supervisor{},
		waits:     map[uint64]*waiter{},
		barriers:  map[uint64]*waiter{},
		msgs:      make(chan any),
		control:   make(chan controlMsg),
		stopped:   make(chan struct{}),
		watching:  make(chan struct{}),
	}
	e.mask.Store(newMasker(opts.Env, nil))
	return e
}

// loaded is a config with its resources, from a loader goroutine.
type loaded struct {
	cfg       *model.Config
	resources []*Resource
	// files are every config file: the loader's, the kinds', the ignore files'.
	files   []string
	sources []string
	ignore  *ignore.Matcher
	err     error
}

// load runs the Tiltfile, the kinds and reads the project's ignore files; it
// runs on a loader goroutine.
func (e *Engine) load(ctx context.Context) loaded {
	cfg, err := e.opts.Load(ctx)
	if err != nil {
		m := loaded{cfg: cfg, err: err}
		if cfg != nil {
			m.files = cfg.Files
		}
		return m
	}
	m := loaded{cfg: cfg, files: append([]string(nil), cfg.Files...), ignore: globalIgnore(cfg)}
	names := map[string]bool{}
	for _, k := range e.opts.Kinds {
		l, err := k.Load(ctx, cfg)
		m.files = append(m.files, l.Files...)
		m.sources = append(m.sources, l.Sources...)
		if err != nil {
			m.err = err
			continue
		}
		for _, r := range l.Resources {
			if names[r.Name] && m.err == nil {
				m.err = fmt.Errorf("resource %q is declared twice", r.Name)
			}
			names[r.Name] = true
			m.resources = append(m.resources, r)
		}
	}
	m.files = append(m.files, m.sources...)
	if m.err != nil {
		return m
	}
	for _, r := range m.resources {
		for _, d := range r.Deps {
			if !names[d] {
				m.err = fmt.Errorf("resource %q: resource_deps names %q, which is not a resource", r.Name, d)
				return m
			}
		}
	}
	return m
}

// globalIgnore reads the project-wide ignore rules: editor temp files and
// .git, .tiltignore, watch_settings(ignore=).
func globalIgnore(cfg *model.Config) *ignore.Matcher {
	ms := []*ignore.Matcher{ignore.Defaults()}
	dir := filepath.Dir(cfg.Tiltfile)
	if m, err := ignore.TiltIgnore(dir); err == nil {
		ms = append(ms, m)
	}
	if len(cfg.Settings.WatchIgnore) > 0 {
		if m, err := ignore.FromPatterns(dir, cfg.Settings.WatchIgnore); err == nil {
			ms = append(ms, m)
		}
	}
	return ignore.Any(ms...)
}

// emit masks and stamps an event for the sink; the API server's store numbers
// events (one numbering, the one clients resume from).
func (e *Engine) emit(ev api.Event) {
	if e.opts.Sink == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.mask.Load().event(&ev)
	e.opts.Sink(ev)
}

// readyLine is a ready_log match, from a process log writer.
type readyLine struct {
	name string
	gen  int
	at   time.Time
}

// processLog returns the writer of a resource's running process's output:
// with a ready_log pattern, a matching line is reported to the engine
// goroutine as readiness. A send gives up when ctx (the supervisor's) ends.
func (e *Engine) processLog(ctx context.Context, r *state) io.Writer {
	re := r.res.ReadyLog
	if re == nil {
		return e.logWriter(r.name())
	}
	name, gen := r.name(), r.gen
	plain := e.logWriter(name)
	return &lineWriter{emit: func(line string) {
		_, _ = io.WriteString(plain, line+"\n")
		if re.MatchString(line) {
			select {
			case e.msgs <- readyLine{name: name, gen: gen, at: e.now()}:
			case <-ctx.Done():
			}
		}
	}}
}

func (e *Engine) logWriter(name string) io.Writer {
	return &lineWriter{emit: func(line string) {
		e.emit(api.Event{Kind: api.EventLog, Resource: name, Text: line})
	}}
}

// Run loads the config, starts every resource and serves changes until ctx
// is done (ModeUp) or every resource is ready or one failed (ModeCI). It
// stops what it started (serve commands, log streams) before returning;
// containers keep running (`loop down` removes them).
func (e *Engine) Run(ctx context.Context) (err error) {
	defer close(e.stopped)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	e.ciStart = e.now()
	first := e.load(ctx)
	if first.err != nil {
		e.emit(api.Event{Kind: api.EventConfig, Text: first.err.Error()})
		if e.opts.Mode == ModeCI || first.files == nil {
			return first.err
		}
	}

	w, werr := watch.New(watch.Options{Now: e.now, OnError: func(err error) {
		e.emit(api.Event{Kind: api.EventConfig, Text: fmt.Sprintf("watch: %v", err)})
	}})
	if werr != nil {
		return fmt.Errorf("start watching: %w", werr)
	}
	e.watcher = w
	batcher := watch.NewBatcher(watch.LiveQuiet, watch.LiveMax, e.now)

	// The first config's roots are requested before the watcher starts: its
	// first walk covers them.
	e.onLoaded(ctx, first)

	var bg sync.WaitGroup
	bg.Add(4)
	go func() {
		defer bg.Done()
		select {
		case <-w.Ready():
			close(e.watching)
		case <-ctx.Done():
		}
	}()
	go func() { defer bg.Done(); _ = w.Run(ctx) }()
	go func() { defer bg.Done(); batcher.Run(ctx) }()
	go func() {
		defer bg.Done()
		for evs := range w.Events() {
			batcher.Add(evs)
		}
	}()
	defer func() {
		cancel()
		e.shutdown()
		bg.Wait()
	}()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.schedule()
		e.checkWaits()
		e.checkChains(false)
		if e.opts.Mode == ModeCI {
			if done, cerr := e.ciDone(); done {
				e.checkChains(true)
				return cerr
			}
		}
		d, ok := e.nextDue()
		if c, cok := e.ciDue(); cok && (!ok || c < d) {
			d, ok = c, true
		}
		if c, cok := e.chainDue(); cok && (!ok || c < d) {
			d, ok = c, true
		}
		if ok {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil
		case b, ok := <-batcher.Batches():
			if !ok {
				return nil
			}
			e.onFiles(ctx, b.Events)
			e.onBarriers(b.Barriers)
		case m := <-e.msgs:
			e.onMsg(ctx, m)
		case m := <-e.control:
			m.reply <- e.onControl(m)
		case <-timer.C:
		}
	}
}

func (e *Engine) onMsg(ctx context.Context, m any) {
	switch m := m.(type) {
	case supResult:
		e.onResult(m)
	case supReport:
		e.onReport(m)
	case readyLine:
		e.onReadyLine(m)
	case supEnded:
		if s := e.ending[m.name]; s != nil && s.gen == m.gen {
			delete(e.ending, m.name)
		}
	case loaded:
		e.onLoaded(ctx, m)
	}
}

// shutdown ends every supervisor and waits for them and for loaders,
// handling their last messages meanwhile (results keep counts true).
func (e *Engine) shutdown() {
	for _, r := range e.resources {
		r.sup.interrupt(command{op: cmdEnd})
	}
	done := make(chan struct{})
	go func() { e.workers.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		case m := <-e.msgs:
			if res, ok := m.(supResult); ok {
				e.onResult(res)
			}
		}
	}
}

// ciDone reports whether a CI run is over and how: every resource ready, one
// failed, the run past its timeout, or one resource not ready within the
// readiness timeout after its update.
func (e *Engine) ciDone() (bool, error) {
	if len(e.order) == 0 {
		return true, nil
	}
	now := e.now()
	allReady := true
	var waiting []string
	for _, name := range e.order {
		r := e.resources[name]
		switch r.phase {
		case api.PhaseError:
			return true, fmt.Errorf("%w: %s: %s", ErrResourceFailed, name, r.errText)
		case api.PhaseReady, api.PhaseDisabled:
		default:
			allReady = false
			waiting = append(waiting, name)
			if t := e.ciSettings().CIReadinessTimeout; t > 0 && r.phase == api.PhaseRunning && !r.lastDone.IsZero() && now.Sub(r.lastDone) >= t {
				return true, fmt.Errorf("%w: %s was not ready within %s of its update (ci_settings readiness_timeout)", ErrCITimeout, name, t)
			}
		}
	}
	if t := e.ciTimeout(); !allReady && t > 0 && now.Sub(e.ciStart) >= t {
		return true, fmt.Errorf("%w: not every resource was ready within %s (waiting for %s)", ErrCITimeout, t, strings.Join(waiting, ", "))
	}
	return allReady, nil
}

func (e *Engine) ciSettings() model.Settings {
	if e.cfg == nil {
		return model.Settings{}
	}
	return e.cfg.Settings
}

// ciTimeout bounds the CI run: ci_settings(timeout=), else Options.CITimeout.
func (e *Engine) ciTimeout() time.Duration {
	if t := e.ciSettings().CITimeout; t > 0 {
		return t
	}
	return e.opts.CITimeout
}

// ciDue is how long until a CI deadline passes (the run's timeout, a
// resource's readiness timeout), so that ciDone is asked then.
func (e *Engine) ciDue() (time.Duration, bool) {
	if e.opts.Mode != ModeCI {
		return 0, false
	}
	var best time.Time
	consider := func(t time.Time) {
		if best.IsZero() || t.Before(best) {
			best = t
		}
	}
	if t := e.ciTimeout(); t > 0 {
		consider(e.ciStart.Add(t))
	}
	if t := e.ciSettings().CIReadinessTimeout; t > 0 {
		for _, r := range e.resources {
			if r.phase == api.PhaseRunning && !r.lastDone.IsZero() {
				consider(r.lastDone.Add(t))
			}
		}
	}
	if best.IsZero() {
		return 0, false
	}
	return max(best.Sub(e.now()), 0), true
}

// onLoaded applies a load: on success the new resource set, on failure only
// what to watch for a fix (whatever runs keeps running). A config file saved
// while that load ran starts one more.
func (e *Engine) onLoaded(ctx context.Context, m loaded) {
	e.reloading = false
	e.loadDone = e.loadCovers
	e.loadErr = ""
	if m.err != nil {
		e.loadErr = m.err.Error()
	}
	defer func() {
		if e.reloadAgain {
			e.reloadAgain = false
			e.startLoad(ctx)
		}
	}()
	if m.err != nil {
		e.emit(api.Event{Kind: api.EventConfig, Text: m.err.Error()})
		// Keep what runs; watch the files of the broken load too, for the fix,
		// and the old sources as well as any new ones.
		e.sources = mergeFiles(e.sources, m.sources)
		e.updateRoots(mergeFiles(m.files, e.files))
		return
	}
	e.emit(api.Event{Kind: api.EventConfig})
	e.sources = m.sources
	e.ignore = m.ignore
	e.changeSeq++ // a load is a change: what it starts or replaces carries it
	e.newChain(e.changeSeq, api.CauseLoad, "", e.now())
	e.applyConfig(ctx, m.cfg, m.resources, m.files)
}

func (e *Engine) startLoad(ctx context.Context) {
	e.loadWant++
	if e.reloading {
		e.reloadAgain = true
		return
	}
	e.reloading = true
	e.loadCovers = e.loadWant
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		m := e.load(ctx)
		select {
		case e.msgs <- m:
		case <-ctx.Done():
		}
	}()
}

// applyConfig replaces the resource set, keeping resources whose definition
// did not change and replacing the others. Replaced and removed resources'
// supervisors end on their own goroutines; a replacement starts once its
// predecessor has ended.
func (e *Engine) applyConfig(ctx context.Context, cfg *model.Config, defs []*Resource, files []string) {
	e.cfg = cfg
	e.mask.Store(newMasker(secretEnv(e.opts.Env, cfg), cfg.Settings.Secrets))
	next := map[string]*state{}
	var order []string
	for _, d := range defs {
		order = append(order, d.Name)
		old, found := e.resources[d.Name]
		if found && old.res.Hash == d.Hash {
			// Same definition; but the ignore files (.dockerignore) were read
			// again and may say otherwise now.
			res := *old.res
			res.Inputs = d.Inputs
			old.res = &res
			next[d.Name] = old
			continue
		}
		e.gens[d.Name]++
		st := &state{res: d, gen: e.gens[d.Name], phase: ""}
		var after <-chan struct{}
		if found {
			old.sup.interrupt(command{op: cmdEnd})
			e.ending[d.Name] = old.sup
			after = old.sup.done
			st.containerID, st.image = old.containerID, old.image
			st.last, st.everReady, st.started, st.chain = old.last, old.everReady, old.started, old.chain
		} else if prev := e.ending[d.Name]; prev != nil {
			after = prev.done // removed and back again before it ended
		}
		st.sup = e.newSupervisor(ctx, st, after)
		next[d.Name] = st
	}
	for name, old := range e.resources {
		if _, keep := next[name]; !keep {
			// Left the config: what it deployed is deleted once it has stopped.
			old.sup.interrupt(command{op: cmdEnd, remove: old.started})
			e.ending[name] = old.sup
		}
	}
	e.resources = next
	e.order = order
	e.files = files
	for _, name := range order {
		if r := next[name]; r.phase == "" {
			e.initState(r)
		}
	}
	e.updateRoots(files)
}

func (e *Engine) initState(r *state) {
	r.phase = api.PhasePending
	r.addChangeID(e.changeSeq)
	if !e.selected(r.name()) {
		r.phase = api.PhaseDisabled
		e.emitStatus(r)
		return
	}
	switch r.res.Trigger {
	case model.TriggerAutoNoInit, model.TriggerManualNoInit:
	default:
		r.needsInit = r.res.AutoInit
	}
	if e.opts.Mode == ModeCI {
		r.needsInit = true
	}
	e.emitStatus(r)
}

// selected reports whether a resource is part of this run (Only and
// config.set_enabled_resources, with resource_deps followed).
func (e *Engine) selected(name string) bool {
	want := e.opts.Only
	if len(want) == 0 && e.cfg != nil {
		want = e.cfg.Settings.EnabledResources
	}
	if len(want) == 0 {
		return true
	}
	seen := map[string]bool{}
	var visit func(n string) bool
	visit = func(n string) bool {
		if n == name {
			return true
		}
		if seen[n] {
			return false
		}
		seen[n] = true
		if r, ok := e.resources[n]; ok {
			for _, d := range r.res.Deps {
				if visit(d) {
					return true
				}
			}
		}
		return false
	}
	for _, w := range want {
		if visit(w) {
			return true
		}
	}
	return false
}

// onFiles routes a batch of file events to the resources they concern and
// to a config reload.
func (e *Engine) onFiles(ctx context.Context, evs []watch.Event) {
	reload := false
	now := e.now()
	global := e.ignore
	// The batch is one change, numbered when it first concerns something;
	// the output of a command's update (chain.go) is one more per command.
	var cid uint64
	outs := map[*state]uint64{}
	change := func(r *state, ev watch.Event) {
		id := cid
		if p := e.producer(ev.Path, ev.Time); p != nil {
			if id = outs[p]; id == 0 {
				id = e.outputChange(p)
				outs[p] = id
			}
		} else if id == 0 {
			e.changeSeq++
			cid, id = e.changeSeq, e.changeSeq
			e.newChain(cid, api.CauseSave, e.relPaths([]string{ev.Path})[0], ev.Time)
		} else if c := e.chains[cid]; c != nil && ev.Time.Before(c.root) {
			c.root = ev.Time
		}
		r.addChange(ev, now)
		r.addChangeID(id)
	}
	for _, ev := range evs {
		if e.configFiles[ev.Path] || (underRoot(ev.Path, e.sources) && !ignored(global, ev.Path)) {
			// Config files re-run the Tiltfile; resources whose definition
			// changed are then updated. They do not update a resource
			// directly, except a Dockerfile or .dockerignore (docker_build
			// reads it, but the definition names only its path): its image
			// is rebuilt; and a file the resource names in its deps.
			reload = true
			for _, name := range e.order {
				if r := e.resources[name]; r.phase != api.PhaseDisabled && (r.res.Inputs.builtFrom(ev.Path) || r.res.Inputs.inDeps(ev.Path)) {
					change(r, ev)
				}
			}
			continue
		}
		if ignored(global, ev.Path) {
			continue
		}
		for _, name := range e.order {
			r := e.resources[name]
			if r.phase == api.PhaseDisabled || !r.res.Inputs.concerns(ev.Path) {
				continue
			}
			change(r, ev)
		}
	}
	for _, name := range e.order {
		r := e.resources[name]
		if len(r.pending) > 0 {
			r.classify(now)
			e.emitStatus(r)
		}
	}
	if reload {
		e.startLoad(ctx)
	}
}

func mergeFiles(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range [][]string{a, b} {
		for _, f := range l {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// nextDue returns how long until the earliest pending batch is due.
func (e *Engine) nextDue() (time.Duration, bool) {
	var best time.Time
	for _, r := range e.resources {
		if len(r.pending) == 0 || r.updating || (!r.autoTrigger() && !r.triggered) {
			continue
		}
		if best.IsZero() || r.due.Before(best) {
			best = r.due
		}
	}
	if best.IsZero() {
		return 0, false
	}
	d := best.Sub(e.now())
	if d < 0 {
		d = 0
	}
	return d, true
}

// schedule starts every update that is due, in declaration order, within
// max_parallel_updates.
func (e *Engine) schedule() {
	maxPar := model.DefaultMaxParallelUpdates
	if e.cfg != nil && e.cfg.Settings.MaxParallelUpdates > 0 {
		maxPar = e.cfg.Settings.MaxParallelUpdates
	}
	now := e.now()
	for _, name := range e.order {
		if e.running >= maxPar {
			return
		}
		r := e.resources[name]
		if r.updating || r.phase == api.PhaseDisabled || !e.depsReady(r) {
			continue
		}
		switch {
		case r.needsInit:
			r.needsInit = false
			// A full update reads the current files: what changed before
			// it starts is in it already.
			r.takePending()
			e.start(r, nil)
		case len(r.pending) > 0 && r.started && !now.Before(r.due) && (r.autoTrigger() || r.triggered):
			r.triggered = false
			b := r.takePending()
			if len(b.changes) == 0 {
				// Only transient files came and went: nothing to do.
				r.changeIDs = nil
				e.emitStatus(r)
				continue
			}
			e.start(r, &b)
		}
	}
}

// depsReady reports whether every resource_dep has been ready once.
func (e *Engine) depsReady(r *state) bool {
	for _, d := range r.res.Deps {
		dep, ok := e.resources[d]
		if !ok {
			continue // validated at load time
		}
		if dep.phase == api.PhaseDisabled {
			continue
		}
		if !dep.everReady {
			return false
		}
	}
	return true
}

// start hands an update to the resource's supervisor: b's changes, or a
// full update when b is nil.
func (e *Engine) start(r *state, b *batch) {
	r.updating = true
	r.started = true
	r.phase = api.PhaseUpdating
	e.running++
	e.updateSeq++
	r.cur = updateRef{id: e.updateSeq, changes: r.changeIDs}
	r.changeIDs = nil
	started := e.now()
	e.startLinks(r, started)
	if b != nil {
		paths := make([]string, len(b.changes))
		for i, c := range b.changes {
			paths[i] = c.Path
		}
		r.cur.paths, r.cur.files = e.relPaths(paths), len(paths)
	}
	e.emitStatus(r)
	j := Job{Started: started, Config: e.cfg, Carried: r.carried(), Skip: ignore.Any(e.ignore, r.res.Inputs.LiveIgnore)}
	if b != nil {
		j.Changes, j.Live, j.Edit, j.Batched = b.changes, b.plan, b.edit, b.batched
		if b.fallBack != nil {
			e.emit(api.Event{Kind: api.EventLog, Resource: r.name(), Text: fmt.Sprintf("rebuild: %s: %s", b.fallBack.Path, b.fallBack.Reason)})
		}
	}
	r.sup.send(command{op: cmdUpdate, job: j})
}

func (e *Engine) onResult(m supResult) {
	e.running--
	e.doneSeq++
	r, ok := e.resources[m.name]
	if !ok || r.gen != m.gen {
		return // a replaced or removed definition's last update
	}
	r.updating = false
	r.done = e.doneSeq
	r.lastDone = e.now()
	r.endOutput(r.lastDone)
	o := m.outcome
	r.live = o.Live
	if o.ContainerID != "" {
		r.containerID = o.ContainerID
	}
	if o.Image != "" {
		r.image = o.Image
	}
	if o.Err == nil {
		r.drift = nil // just applied
	}
	if len(r.pending) > 0 {
		r.classify(r.lastDone)
	}
	u := o.Update
	u.ID, u.Changes, u.Paths, u.Chains = r.cur.id, r.cur.changes, r.cur.paths, r.cur.chains
	if u.Files == 0 {
		u.Files = r.cur.files
	}
	r.last = &u
	switch {
	case r.phase == api.PhaseDisabled:
		// Disabled while it ran: it stays so.
	case o.Err != nil:
		r.phase = api.PhaseError
		r.errText = o.Err.Error()
		e.emit(api.Event{Kind: api.EventLog, Resource: r.name(), Text: "ERROR: " + o.Err.Error()})
	case r.res.ReadyLog != nil && needsReadyLine(u):
		r.errText = ""
		if !r.logReadyAt.Before(u.Started) {
			// The line came while the update was finishing.
			r.phase = api.PhaseReady
			r.everReady = true
		} else {
			r.phase = api.PhaseRunning
			r.awaitLog = true
			r.last.Ready = time.Time{}
		}
	case r.readyNow():
		r.errText = ""
		r.phase = api.PhaseReady
		r.everReady = true
	default:
		// Ready when the probe passes; the trace ends then.
		r.errText = ""
		r.phase = api.PhaseRunning
		r.last.Ready = time.Time{}
	}
	e.emitStatus(r)
}

// needsReadyLine reports whether an update started a process, so that a
// ready_log pattern decides when it is ready (a plain sync does not).
func needsReadyLine(u api.Update) bool {
	if u.Kind != api.UpdateLive {
		return true
	}
	for _, s := range u.Spans {
		if s.Name == api.SpanRestart {
			return true
		}
	}
	return false
}

func (e *Engine) onReadyLine(m readyLine) {
	r, ok := e.resources[m.name]
	if !ok || r.gen != m.gen {
		return
	}
	r.logReadyAt = m.at
	if !r.awaitLog || r.updating || r.last == nil || m.at.Before(r.last.Started) {
		return
	}
	r.awaitLog = false
	r.phase = api.PhaseReady
	r.everReady = true
	r.last.Ready = m.at
	e.emitStatus(r)
}

func (e *Engine) onReport(m supReport) {
	r, ok := e.resources[m.name]
	if !ok || r.gen != m.gen || r.phase == api.PhaseDisabled {
		return
	}
	rep := m.report
	if rep.DriftSet {
		if r.updating {
			return // the update's deploy decides
		}
		r.drift = rep.Drift
		e.emitStatus(r)
	}
	if !rep.Probe {
		return
	}
	ready := rep.Ready
	if r.res.ReadyLog != nil && ready {
		// With ready_log, a running serve_cmd is not ready until its line.
		ready = false
		if r.phase != api.PhaseReady {
			return
		}
	}
	r.probeReady = ready
	if r.updating {
		return
	}
	switch {
	case rep.Err != nil:
		r.phase = api.PhaseError
		r.errText = rep.Err.Error()
	case ready && r.phase != api.PhaseError:
		r.phase = api.PhaseReady
		r.everReady = true
		if r.last != nil && r.last.Ready.IsZero() {
			r.last.Ready = e.now()
		}
	case !ready && r.phase == api.PhaseReady:
		r.phase = api.PhaseRunning
	}
	e.emitStatus(r)
}

func (e *Engine) emitStatus(r *state) {
	st := r.status()
	e.emit(api.Event{Kind: api.EventStatus, Resource: r.name(), Status: &st})
}

// Op is a client's request about one resource.
type Op int

// Client requests.
const (
	OpTrigger Op = iota
	OpEnable
	OpDisable
)

// Requests about waits (wait.go).
const (
	opWait Op = iota + 100
	opWaitEnd
)

// controlMsg is a request from a client.
type controlMsg struct {
	op    Op
	name  string
	wait  *waiter
	reply chan error
}

// ErrUnknownResource is returned for a resource the config does not declare.
var ErrUnknownResource = errors.New("unknown resource")

// ErrNotRunning is returned by control calls when Run is not running.
var ErrNotRunning = errors.New("engine is not running")

func (e *Engine) call(ctx context.Context, op Op, name string) error {
	m := controlMsg{op: op, name: name, reply: make(chan error, 1)}
	select {
	case e.control <- m:
	case <-e.stopped:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-m.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Trigger updates a resource now: its pending changes if it has any (also
// in manual trigger mode), else a full update (rebuild, or re-run cmd).
func (e *Engine) Trigger(ctx context.Context, name string) error { return e.call(ctx, OpTrigger, name) }

// SetEnabled enables or disables a resource. A disabled resource gets no
// updates and its serve command and log stream stop; enabling starts it.
func (e *Engine) SetEnabled(ctx context.Context, name string, on bool) error {
	op := OpDisable
	if on {
		op = OpEnable
	}
	return e.call(ctx, op, name)
}

func (e *Engine) onControl(m controlMsg) error {
	if m.wait != nil {
		return e.onWaitControl(m)
	}
	r, ok := e.resources[m.name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownResource, m.name)
	}
	switch m.op {
	case OpTrigger:
		if r.phase == api.PhaseDisabled {
			return fmt.Errorf("trigger %s: resource is disabled", m.name)
		}
		if len(r.pending) > 0 && r.started {
			r.triggered = true
			r.due = e.now()
		} else {
			r.needsInit = true
		}
		e.changeSeq++
		e.newChain(e.changeSeq, api.CauseTrigger, "", e.now())
		r.addChangeID(e.changeSeq)
	case OpDisable:
		if r.phase != api.PhaseDisabled {
			// The supervisor stops the runtime, however long that takes.
			r.sup.interrupt(command{op: cmdClose})
			r.phase = api.PhaseDisabled
			r.live = false
		}
	case OpEnable:
		if r.phase == api.PhaseDisabled {
			r.phase = api.PhasePending
			r.needsInit = true
			e.changeSeq++
			e.newChain(e.changeSeq, api.CauseTrigger, "", e.now())
			r.addChangeID(e.changeSeq)
		}
	}
	e.emitStatus(r)
	return nil
}
