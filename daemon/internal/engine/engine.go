// Package engine owns the state of a running project. One goroutine (Run)
// holds every resource's state and is its only writer: file batches, update
// results, readiness changes and config reloads reach it as messages, and it
// starts updates on worker goroutines that report back. No blocking I/O
// happens in that goroutine; readers get copies through the event sink.
package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/internal/compose"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/kube"
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
	Mode   Mode
	Load   Loader
	Docker *client.Client
	// Env is the environment for compose files' interpolation; nil means os.Environ().
	Env []string
	// MapPath turns a local path into the Docker engine's path for bind
	// mounts (loop in a dev container on the host's engine); nil is identity.
	MapPath func(string) string
	// Only limits the run to these resources (and their resource_deps).
	Only []string
	// Sink receives every event; it is called from the engine goroutine and
	// from workers and must not block for long.
	Sink func(api.Event)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KubeConnect connects to the current kube context, refusing one that is not
	// local unless allowed names it; called when a Kubernetes resource first deploys.
	KubeConnect func(allowed []string) (Kube, error)
}

// ErrResourceFailed wraps a resource failure in ModeCI.
var ErrResourceFailed = errors.New("resource failed")

// Engine runs one project. Create it with New and call Run once.
type Engine struct {
	opts Options
	now  func() time.Time

	// Owned by the Run goroutine.
	cfg       *model.Config
	resources map[string]*resource
	order     []string
	watcher   *watch.Watcher
	running   int
	// configFiles are the files whose change re-runs the Tiltfile.
	configFiles map[string]bool
	// ignore is the project-wide ignore matcher of the current config.
	ignore *ignore.Matcher
	// files are the config files of the last good load (Tiltfile, loaded
	// files, compose and env files).
	files []string
	// k8sRoots are the files and directories Kubernetes sources render from: an
	// edit under one reloads the config, which re-renders.
	k8sRoots  []string
	reloading bool
	configErr string

	seqMu sync.Mutex
	seq   uint64
	// mask hides secret values in every event (set from Env and the
	// config's Settings.Secrets; read by emit from any goroutine).
	mask atomic.Pointer[masker]

	builder *build.Builder
	compose *compose.Controller

	kubeMu  sync.Mutex
	kube    Kube
	kubeKey string

	results   chan result
	control   chan controlMsg
	stopped   chan struct{} // closed when Run returns
	readiness chan readyMsg
	reloads   chan reloadMsg
	drifts    chan driftMsg
	workers   sync.WaitGroup
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
	ctl := compose.New(opts.Docker)
	ctl.MapPath = opts.MapPath
	e := &Engine{
		opts:      opts,
		now:       now,
		builder:   build.New(opts.Docker),
		compose:   ctl,
		resources: map[string]*resource{},
		results:   make(chan result),
		control:   make(chan controlMsg),
		stopped:   make(chan struct{}),
		readiness: make(chan readyMsg),
		reloads:   make(chan reloadMsg),
		drifts:    make(chan driftMsg),
	}
	e.mask.Store(newMasker(opts.Env, nil))
	return e
}

type result struct {
	name   string
	update api.Update
	err    error
	// apply mutates the resource's state in the engine goroutine.
	apply func(r *resource)
}

type readyMsg struct {
	name  string
	gen   int
	ready bool
	err   error
	// logAt is set when a log line matched the resource's ready_log.
	logAt time.Time
}

// reloadMsg is a loaded config with its resource definitions, or the error.
type reloadMsg struct {
	cfg   *model.Config
	specs []*resource
	files []string
	// k8sRoots are what the config's Kubernetes sources render from.
	k8sRoots []string
	err      error
}

// load runs the Tiltfile and derives resource definitions (reading compose
// files); it runs on a worker.
func (e *Engine) load(ctx context.Context) reloadMsg {
	cfg, err := e.opts.Load(ctx)
	if err != nil {
		m := reloadMsg{cfg: cfg, err: err}
		if cfg != nil {
			m.files = cfg.Files
			m.k8sRoots = kube.SourceRoots(cfg)
		}
		return m
	}
	// What Kubernetes sources render from is watched as config: read once per load.
	roots := kube.SourceRoots(cfg)
	specs, files, err := resourcesFor(ctx, cfg, e.opts.Env)
	return reloadMsg{cfg: cfg, specs: specs, files: append(files, roots...), k8sRoots: roots, err: err}
}

func (e *Engine) emit(ev api.Event) {
	if e.opts.Sink == nil {
		return
	}
	e.seqMu.Lock()
	e.seq++
	ev.Seq = e.seq
	e.seqMu.Unlock()
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.mask.Load().event(&ev)
	e.opts.Sink(ev)
}

// logWriter returns a writer whose lines become log events of a resource.
// resourceLog is the log of a resource's running process (container output,
// serve_cmd): with a ready_log pattern, a matching line is reported to the
// engine goroutine as readiness.
//
// ctx is the resource's background context: a send gives up when it ends
// (the engine goroutine may be the one stopping the resource).
func (e *Engine) resourceLog(ctx context.Context, r *resource) io.Writer {
	if r.readyLog == nil {
		return e.logWriter(r.name)
	}
	name, gen, re := r.name, r.gen, r.readyLog
	plain := e.logWriter(name)
	return &lineWriter{emit: func(line string) {
		_, _ = io.WriteString(plain, line+"\n")
		if re.MatchString(line) {
			select {
			case e.readiness <- readyMsg{name: name, gen: gen, ready: true, logAt: e.now()}:
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

	first := e.load(ctx)
	if first.err != nil {
		e.emit(api.Event{Kind: api.EventConfig, Text: first.err.Error()})
		if e.opts.Mode == ModeCI || first.files == nil {
			return first.err
		}
	}

	w, werr := watch.New(watch.Options{Now: e.now})
	if werr != nil {
		return fmt.Errorf("start watching: %w", werr)
	}
	e.watcher = w
	batcher := watch.NewBatcher(watch.LiveQuiet, watch.LiveMax, e.now)

	var bg sync.WaitGroup
	bg.Add(3)
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

	e.onReload(ctx, first)

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		e.schedule(ctx)
		if e.opts.Mode == ModeCI {
			if done, cerr := e.ciDone(); done {
				return cerr
			}
		}
		if d, ok := e.nextDue(); ok {
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
		case r := <-e.results:
			e.onResult(r)
		case m := <-e.readiness:
			e.onReadiness(m)
		case m := <-e.control:
			m.reply <- e.onControl(m)
		case m := <-e.reloads:
			e.onReload(ctx, m)
		case m := <-e.drifts:
			e.onDrift(m)
		case <-timer.C:
		}
	}
}

// shutdown stops every resource's background work and waits for workers.
// Workers may still be sending results; drain them until they finish.
func (e *Engine) shutdown() {
	done := make(chan struct{})
	go func() { e.workers.Wait(); close(done) }()
	for {
		select {
		case <-done:
			for _, r := range e.resources {
				r.stop()
			}
			return
		case r := <-e.results:
			e.onResult(r)
		case <-e.readiness:
		case <-e.reloads:
		case <-e.drifts:
		}
	}
}

// ciDone reports whether a CI run is over and how.
func (e *Engine) ciDone() (bool, error) {
	if len(e.order) == 0 {
		return true, nil
	}
	allReady := true
	for _, name := range e.order {
		r := e.resources[name]
		switch r.phase {
		case api.PhaseError:
			return true, fmt.Errorf("%w: %s: %s", ErrResourceFailed, name, r.errText)
		case api.PhaseReady, api.PhaseDisabled:
		default:
			allReady = false
		}
	}
	return allReady, nil
}

// applyConfig replaces the resource set with specs, keeping resources whose
// definition did not change and replacing the others.
func (e *Engine) applyConfig(ctx context.Context, cfg *model.Config, specs []*resource, files []string) {
	e.cfg = cfg
	e.mask.Store(newMasker(secretEnv(e.opts.Env, cfg), cfg.Settings.Secrets))
	next := map[string]*resource{}
	var order []string
	for _, s := range specs {
		order = append(order, s.name)
		old, found := e.resources[s.name]
		if found && old.hash == s.hash {
			// Same definition; but the ignore files (.dockerignore) were read
			// again and may say otherwise now.
			old.localIgnore, old.imageIgnore, old.kimages = s.localIgnore, s.imageIgnore, s.kimages
			next[s.name] = old
			continue
		}
		if found {
			if old.updating {
				// Stopped once its running update reports back.
				old.replaced = true
			} else {
				old.stop()
			}
			s.carryOver(old)
		}
		next[s.name] = s
	}
	var gone []string
	for name, old := range e.resources {
		if _, keep := next[name]; !keep {
			if old.updating {
				old.replaced = true
			} else {
				old.stop()
			}
			if old.typ == "k8s" && old.started {
				gone = append(gone, name)
			}
		}
	}
	sort.Strings(gone)
	e.removeKube(ctx, gone)
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

func (e *Engine) initState(r *resource) {
	r.phase = api.PhasePending
	if !e.selected(r.name) {
		r.phase = api.PhaseDisabled
		e.emitStatus(r)
		return
	}
	switch r.trigger {
	case model.TriggerAutoNoInit, model.TriggerManualNoInit:
	default:
		r.needsInit = r.autoInit
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
		if r, ok := e.specByName(n); ok {
			for _, d := range r.deps {
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

func (e *Engine) specByName(n string) (*resource, bool) {
	r, ok := e.resources[n]
	return r, ok
}

// updateRoots points the watcher at every file and directory that matters.
func (e *Engine) updateRoots(configFiles []string) {
	set := map[string]bool{}
	for _, f := range configFiles {
		set[f] = true
	}
	for _, r := range e.resources {
		for _, root := range r.roots() {
			set[root] = true
		}
	}
	roots := make([]string, 0, len(set))
	for f := range set {
		roots = append(roots, f)
	}
	sort.Strings(roots)
	// The project-wide ignore rules are read once per config load, not per
	// batch; the ignore files themselves count as config files, so editing
	// .tiltignore reloads and rebuilds them.
	global := e.loadGlobalIgnore()
	e.ignore = global
	configFiles = append(append([]string(nil), configFiles...), global.Files()...)
	for _, f := range global.Files() {
		set[f] = true
	}
	roots = roots[:0]
	for f := range set {
		roots = append(roots, f)
	}
	sort.Strings(roots)
	cfgFiles := map[string]bool{}
	for _, f := range configFiles {
		cfgFiles[f] = true
	}
	resources := make([]*resource, 0, len(e.resources))
	for _, r := range e.resources {
		resources = append(resources, r)
	}
	ign := func(path string, isDir bool) bool {
		if cfgFiles[path] {
			return false
		}
		if global != nil && global.Ignored(path, isDir) {
			return true
		}
		if isDir {
			for _, r := range resources {
				if !r.skipsDir(path) {
					return false
				}
			}
			return len(resources) > 0 && !underAny(path, configFiles)
		}
		return false
	}
	key := rootsKey(configFiles, global, resources)
	if err := e.watcher.SetRoots(roots, ign, key); err != nil {
		e.emit(api.Event{Kind: api.EventConfig, Text: fmt.Sprintf("watch: %v", err)})
	}
	e.configFiles = cfgFiles
}

// rootsKey names everything the watcher's ignore predicate depends on: the config
// files, the project-wide rules and what each resource watches and ignores (each
// Matcher's Key covers the rules as read, so no file is read again here). A reload
// that changes none of it (a manifest, a command or a port edited) keeps the
// watches without walking the tree again.
func rootsKey(configFiles []string, global *ignore.Matcher, resources []*resource) string {
	h := sha256.New()
	files := append([]string(nil), configFiles...)
	sort.Strings(files)
	fmt.Fprintf(h, "%q\n%s\n", files, global.Key())
	rs := append([]*resource(nil), resources...)
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	for _, r := range rs {
		var imgs []*model.Image
		keys := []string{r.localIgnore.Key(), r.imageIgnore.Key()}
		for _, k := range r.kimages {
			imgs = append(imgs, k.img)
			keys = append(keys, k.ign.Key())
		}
		b, err := json.Marshal([]any{r.name, r.roots(), r.local, r.image, r.lu, imgs, keys})
		if err != nil {
			return "" // no key: walk
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// loadGlobalIgnore reads the project-wide ignore rules: editor temp files and
// .git, .tiltignore, watch_settings(ignore=).
func (e *Engine) loadGlobalIgnore() *ignore.Matcher {
	ms := []*ignore.Matcher{ignore.Defaults()}
	if e.cfg != nil {
		dir := filepath.Dir(e.cfg.Tiltfile)
		if m, err := ignore.TiltIgnore(dir); err == nil {
			ms = append(ms, m)
		}
		if len(e.cfg.Settings.WatchIgnore) > 0 {
			if m, err := ignore.FromPatterns(dir, e.cfg.Settings.WatchIgnore); err == nil {
				ms = append(ms, m)
			}
		}
	}
	return ignore.Any(ms...)
}

func underAny(path string, roots []string) bool {
	for _, r := range roots {
		if within(r, path) || within(path, r) {
			return true
		}
	}
	return false
}

// underRoot reports whether path is one of roots or below one.
func underRoot(path string, roots []string) bool {
	for _, r := range roots {
		if within(r, path) {
			return true
		}
	}
	return false
}

// within reports whether path is root or below it.
func within(root, path string) bool {
	if path == root {
		return true
	}
	return strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/")
}

// onFiles routes a batch of file events to the resources they concern and
// to a config reload.
func (e *Engine) onFiles(ctx context.Context, evs []watch.Event) {
	reload := false
	now := e.now()
	global := e.ignore
	for _, ev := range evs {
		if e.configFiles[ev.Path] || (underRoot(ev.Path, e.k8sRoots) && (global == nil || !global.Ignored(ev.Path, false))) {
			// Config files re-run the Tiltfile; resources whose definition
			// changed are then updated. They do not update a resource
			// directly, except a Dockerfile (docker_build reads it, but the
			// definition names only its path): its image is rebuilt.
			reload = true
			for _, name := range e.order {
				if r := e.resources[name]; r.phase != api.PhaseDisabled && r.builtFrom(ev.Path) {
					r.addChange(ev, now)
				}
			}
			continue
		}
		if global != nil && global.Ignored(ev.Path, false) {
			continue
		}
		for _, name := range e.order {
			r := e.resources[name]
			if r.phase == api.PhaseDisabled || !r.concerns(ev.Path) {
				continue
			}
			r.addChange(ev, now)
		}
	}
	for _, name := range e.order {
		r := e.resources[name]
		if len(r.pending) > 0 {
			r.classify(e.now())
			e.emitStatus(r)
		}
	}
	if reload && !e.reloading {
		e.reloading = true
		e.workers.Add(1)
		go func() {
			defer e.workers.Done()
			m := e.load(ctx)
			select {
			case e.reloads <- m:
			case <-ctx.Done():
			}
		}()
	}
}

func (e *Engine) onReload(ctx context.Context, m reloadMsg) {
	e.reloading = false
	if m.cfg != nil {
		roots := m.k8sRoots
		if m.err != nil {
			roots = mergeFiles(e.k8sRoots, roots) // watch the old and the new for a fix
		}
		e.k8sRoots = roots
	}
	if m.err != nil {
		e.configErr = m.err.Error()
		e.emit(api.Event{Kind: api.EventConfig, Text: m.err.Error()})
		// Keep what runs; watch the files of the broken load too, for the fix.
		e.updateRoots(mergeFiles(m.files, e.cfgFiles()))
		return
	}
	e.configErr = ""
	e.emit(api.Event{Kind: api.EventConfig})
	e.applyConfig(ctx, m.cfg, m.specs, m.files)
}

func (e *Engine) cfgFiles() []string { return e.files }

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
func (e *Engine) schedule(ctx context.Context) {
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
			e.start(ctx, r, nil)
		case len(r.pending) > 0 && r.started && !now.Before(r.due) && (r.autoTrigger() || r.triggered):
			r.triggered = false
			changes := r.takePending()
			if len(changes.changes) == 0 {
				// Only transient files came and went: nothing to do.
				e.emitStatus(r)
				continue
			}
			e.start(ctx, r, changes)
		}
	}
}

// depsReady reports whether every resource_dep has been ready once.
func (e *Engine) depsReady(r *resource) bool {
	for _, d := range r.deps {
		dep, ok := e.resources[d]
		if !ok {
			continue // validated at config time
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

func (e *Engine) start(ctx context.Context, r *resource, changes *pendingBatch) {
	r.updating = true
	r.started = true
	r.phase = api.PhaseUpdating
	e.running++
	e.emitStatus(r)
	job := r.job(e, changes)
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		res := job(ctx)
		select {
		case e.results <- res:
		case <-ctx.Done():
			// The engine is shutting down; shutdown drains results.
			e.results <- res
		}
	}()
}

func (e *Engine) onResult(res result) {
	r, ok := e.resources[res.name]
	e.running--
	if !ok {
		return
	}
	r.updating = false
	r.lastDone = e.now()
	if res.apply != nil {
		res.apply(r)
	}
	if len(r.pending) > 0 {
		r.classify(r.lastDone)
	}
	u := res.update
	r.last = &u
	if res.err != nil {
		r.phase = api.PhaseError
		r.errText = res.err.Error()
		e.emit(api.Event{Kind: api.EventLog, Resource: r.name, Text: "ERROR: " + res.err.Error()})
	} else {
		r.errText = ""
		switch {
		case r.readyLog != nil && needsReadyLine(u):
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
			r.phase = api.PhaseReady
			r.everReady = true
		default:
			// Ready when the probe passes; the trace ends then.
			r.phase = api.PhaseRunning
			r.last.Ready = time.Time{}
		}
	}
	if r.replaced {
		r.stop()
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
		if s.Name == "restart" {
			return true
		}
	}
	return false
}

func (e *Engine) onReadiness(m readyMsg) {
	r, ok := e.resources[m.name]
	if !ok || r.gen != m.gen {
		return
	}
	if m.logAt.IsZero() && r.readyLog != nil && m.ready {
		// With ready_log, a running serve_cmd is not ready until its line.
		m.ready = false
		if r.phase != api.PhaseReady {
			return
		}
	}
	if !m.logAt.IsZero() {
		r.logReadyAt = m.logAt
		if !r.awaitLog || r.updating || r.last == nil || m.logAt.Before(r.last.Started) {
			return
		}
		r.awaitLog = false
		r.phase = api.PhaseReady
		r.everReady = true
		r.last.Ready = m.logAt
		e.emitStatus(r)
		return
	}
	r.probeReady = m.ready
	if r.updating {
		return
	}
	switch {
	case m.err != nil:
		r.phase = api.PhaseError
		r.errText = m.err.Error()
	case m.ready && r.phase != api.PhaseError:
		r.phase = api.PhaseReady
		r.everReady = true
		if r.last != nil && r.last.Ready.IsZero() {
			r.last.Ready = e.now()
		}
	case !m.ready && r.phase == api.PhaseReady:
		r.phase = api.PhaseRunning
	}
	e.emitStatus(r)
}

func (e *Engine) emitStatus(r *resource) {
	st := r.status()
	e.emit(api.Event{Kind: api.EventStatus, Resource: r.name, Status: &st})
}

// controlMsg is a request from a client (trigger, enable, disable).
type controlMsg struct {
	op    string
	name  string
	reply chan error
}

// ErrUnknownResource is returned for a resource the config does not declare.
var ErrUnknownResource = errors.New("unknown resource")

// ErrNotRunning is returned by control calls when Run is not running.
var ErrNotRunning = errors.New("engine is not running")

func (e *Engine) call(ctx context.Context, op, name string) error {
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
func (e *Engine) Trigger(ctx context.Context, name string) error { return e.call(ctx, "trigger", name) }

// SetEnabled enables or disables a resource. A disabled resource gets no
// updates and its serve command and log stream stop; enabling starts it.
func (e *Engine) SetEnabled(ctx context.Context, name string, on bool) error {
	op := "disable"
	if on {
		op = "enable"
	}
	return e.call(ctx, op, name)
}

func (e *Engine) onControl(m controlMsg) error {
	r, ok := e.resources[m.name]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownResource, m.name)
	}
	switch m.op {
	case "trigger":
		if r.phase == api.PhaseDisabled {
			return fmt.Errorf("trigger %s: resource is disabled", m.name)
		}
		if len(r.pending) > 0 && r.started {
			r.triggered = true
			r.due = e.now()
		} else {
			r.needsInit = true
		}
	case "disable":
		if r.phase != api.PhaseDisabled {
			r.stop()
			r.bgCancel, r.runner, r.target = nil, nil, nil
			r.phase = api.PhaseDisabled
		}
	case "enable":
		if r.phase == api.PhaseDisabled {
			r.phase = api.PhasePending
			r.needsInit = true
		}
	}
	e.emitStatus(r)
	return nil
}
