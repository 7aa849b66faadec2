package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// A wait is a barrier, answered by a message; the loop never blocks on it.
//
//  1. Wait registers a waiter (a control message) and the engine asks the
//     watcher for a barrier with the waiter's ID (Watcher.Barrier returns at
//     once): a marker the watcher's goroutine writes and reads back from the
//     same inotify queue, so it comes back after the events of every change
//     made before the call.
//  2. The barrier reaches the engine in a batch, after the events ahead of
//     it (the batcher lets it out at once). By then every such change is a
//     pending change of the resources it concerns, a running update, or a
//     config load in flight. The resources that are not settled then are
//     the waiter's set; a config load in flight adds, once applied, the
//     resources it left unsettled (new and replaced definitions).
//  3. After each message the loop checks its waiters; a waiter whose set has
//     settled gets its verdict on a buffered channel, unless a local
//     command in the set ran meanwhile: what it wrote (a compile's output)
//     is a change made before the answer, so the waiter asks for one more
//     barrier and goes on with what that one finds.
type waiter struct {
	id      uint64
	req     api.WaitRequest
	started time.Time
	reply   chan api.Verdict // capacity 1; the engine sends once

	passed   bool   // the barrier came back
	loadNeed uint64 // the load requests the wait covers
	loaded   bool   // those loads were applied and their resources added
	change   uint64 // the latest change ID when the barrier came back
	set      []string
	// token is the outstanding barrier's; mark counts the updates finished
	// when it was asked for.
	token, mark uint64
}

// settled reports whether r has reached a result for the changes it has
// (nothing pending that will go out by itself, no update running, ready or
// failed), and a note when it settled without reaching ready.
func (e *Engine) settled(r *state) (bool, string) {
	switch {
	case r.phase == api.PhaseDisabled:
		return true, "disabled"
	case r.updating:
		return false, "updating"
	case r.needsInit:
		for _, d := range r.res.Deps {
			if dep := e.resources[d]; dep != nil && dep.phase == api.PhaseError && !dep.everReady {
				return true, fmt.Sprintf("waits for resource_deps %s, which failed", d)
			}
		}
		return false, "waiting to start"
	case len(r.pending) > 0 && !r.autoTrigger() && !r.triggered:
		return true, "changes wait for a manual trigger"
	case len(r.pending) > 0 && r.started:
		return false, "changes pending"
	case !r.started:
		return true, "not started"
	case r.phase == api.PhaseRunning:
		return false, "waiting for readiness"
	}
	return true, ""
}

func (w *waiter) wants(name string) bool {
	return len(w.req.Resources) == 0 || slices.Contains(w.req.Resources, name)
}

// addUnsettled adds to w's set every resource it asks about that has not
// settled.
func (e *Engine) addUnsettled(w *waiter) {
	for _, name := range e.order {
		if !w.wants(name) || slices.Contains(w.set, name) {
			continue
		}
		if ok, _ := e.settled(e.resources[name]); !ok {
			w.set = append(w.set, name)
		}
	}
}

// addReached adds to w's set the resources the latest change reached: a
// change made just before the call may have been applied before the
// barrier came back; its verdict is still the caller's.
func (e *Engine) addReached(w *waiter) {
	if w.change == 0 {
		return
	}
	for _, name := range e.order {
		r := e.resources[name]
		if !w.wants(name) || slices.Contains(w.set, name) {
			continue
		}
		if slices.Contains(r.changeIDs, w.change) || slices.Contains(r.cur.changes, w.change) {
			w.set = append(w.set, name)
		}
	}
}

// onBarriers marks the waiters whose barrier came back: what was changed
// before each call has now been routed.
func (e *Engine) onBarriers(tokens []uint64) {
	for _, tok := range tokens {
		w := e.barriers[tok]
		delete(e.barriers, tok)
		if w == nil || e.waits[w.id] != w {
			continue
		}
		w.passed = true
		w.change = e.changeSeq
		w.loadNeed, w.loaded = e.loadWant, false
		e.addReached(w)
		e.addUnsettled(w)
	}
}

// checkWaits answers every waiter whose set has settled.
func (e *Engine) checkWaits() {
	if len(e.waits) == 0 {
		return
	}
	for id, w := range e.waits {
		if !w.passed {
			continue
		}
		if !w.loaded {
			if e.loadDone < w.loadNeed {
				continue
			}
			w.loaded = true
			e.addUnsettled(w)
		}
		done := true
		for _, name := range w.set {
			if r := e.resources[name]; r != nil {
				if ok, _ := e.settled(r); !ok {
					done = false
					break
				}
			}
		}
		if done && e.wroteFiles(w) {
			e.barrier(w)
			continue
		}
		if done {
			delete(e.waits, id)
			w.reply <- e.verdict(w, "")
		}
	}
	e.emitWaits()
}

// barrier asks the watcher for a barrier for w.
func (e *Engine) barrier(w *waiter) {
	e.waitSeq++
	w.token, w.mark, w.passed = e.waitSeq, e.doneSeq, false
	e.barriers[w.token] = w
	e.watcher.Barrier(w.token)
}

// wroteFiles reports whether a local command in w's set finished since w's
// last barrier was asked for (it may have written after the marker): its
// output may be a change of other resources.
func (e *Engine) wroteFiles(w *waiter) bool {
	for _, name := range w.set {
		if r := e.resources[name]; r != nil && r.res.HostCommand && r.done > w.mark {
			return true
		}
	}
	return false
}

// verdict is w's answer as things stand; result "" derives it from the
// resources (ready or failed).
func (e *Engine) verdict(w *waiter, result api.Result) api.Verdict {
	v := api.Verdict{Result: result, Change: w.change, Started: w.started, Done: e.now(), ConfigError: e.loadErr}
	names, affected := w.set, true
	if len(names) == 0 {
		affected = false
		names = w.req.Resources
		if len(names) == 0 {
			names = e.order
		}
	}
	for _, name := range names {
		rv := api.ResourceVerdict{Name: name, Affected: affected}
		r := e.resources[name]
		if r == nil {
			rv.Note = "removed by a Tiltfile reload"
			v.Resources = append(v.Resources, rv)
			continue
		}
		rv.Phase, rv.Error = r.phase, r.errText
		if ok, note := e.settled(r); note != "" && (!ok || r.phase != api.PhaseReady) {
			rv.Note = note
		}
		if r.last != nil {
			u := *r.last
			rv.Update = &u
		}
		if r.phase == api.PhaseError && v.Failed == "" {
			v.Failed, v.Error = name, r.errText
		}
		v.Resources = append(v.Resources, rv)
	}
	if e.loadErr != "" && v.Failed == "" {
		v.Failed, v.Error = "Tiltfile", e.loadErr
	}
	if v.Result == "" {
		v.Result = api.ResultReady
		if v.Failed != "" {
			v.Result = api.ResultFailed
		}
	}
	return v
}

// emitWaits tells clients which waits are in progress, when that changed.
func (e *Engine) emitWaits() {
	ws := make([]api.Wait, 0, len(e.waits))
	for _, w := range e.waits {
		aw := api.Wait{ID: w.id, Client: w.req.Client, Since: w.started}
		for _, name := range w.set {
			if r := e.resources[name]; r != nil {
				if ok, _ := e.settled(r); !ok {
					aw.Resources = append(aw.Resources, name)
				}
			}
		}
		ws = append(ws, aw)
	}
	slices.SortFunc(ws, func(a, b api.Wait) int { return int(a.ID) - int(b.ID) })
	key := fmt.Sprint(ws)
	if key == e.waitsKey {
		return
	}
	e.waitsKey = key
	e.emit(api.Event{Kind: api.EventWaits, Waits: ws})
}

// Wait returns once every file change made before the call has reached its
// result on every resource it affects (req.Resources, or all): synced or
// rebuilt and ready, or failed. With nothing changed it returns at once
// with the current state. When req.Timeout passes or ctx is done first, it
// returns the state then with ResultTimeout. It returns ErrUnknownResource
// for a name the config does not declare and ErrNotRunning when the engine
// is not running.
func (e *Engine) Wait(ctx context.Context, req api.WaitRequest) (api.Verdict, error) {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	w := &waiter{req: req, reply: make(chan api.Verdict, 1)}
	if err := e.waitCall(ctx.Done(), controlMsg{op: opWait, wait: w}); err != nil {
		if ctx.Err() != nil {
			return api.Verdict{}, fmt.Errorf("wait: %w", ctx.Err())
		}
		return api.Verdict{}, err
	}
	select {
	case v := <-w.reply:
		return v, nil
	case <-e.stopped:
		return api.Verdict{}, ErrNotRunning
	case <-ctx.Done():
	}
	// Out of time: the engine drops the waiter and answers with the state
	// now, unless it answered meanwhile.
	if err := e.waitCall(nil, controlMsg{op: opWaitEnd, wait: w}); err != nil {
		return api.Verdict{}, err
	}
	return <-w.reply, nil
}

// waitCall sends a control message and waits for its reply; a close of
// done (nil: never) abandons the send.
func (e *Engine) waitCall(done <-chan struct{}, m controlMsg) error {
	m.reply = make(chan error, 1)
	select {
	case e.control <- m:
	case <-e.stopped:
		return ErrNotRunning
	case <-done:
		return context.Canceled
	}
	select {
	case err := <-m.reply:
		return err
	case <-e.stopped:
		return ErrNotRunning
	}
}

// onWaitControl registers or ends a waiter (on the engine goroutine).
func (e *Engine) onWaitControl(m controlMsg) error {
	w := m.wait
	switch m.op {
	case opWait:
		for _, name := range w.req.Resources {
			if e.resources[name] == nil {
				return fmt.Errorf("%w: %q", ErrUnknownResource, name)
			}
		}
		e.waitSeq++
		w.id, w.started = e.waitSeq, e.now()
		e.waits[w.id] = w
		e.barrier(w)
		e.emitWaits()
	case opWaitEnd:
		if _, ok := e.waits[w.id]; ok {
			delete(e.waits, w.id)
			delete(e.barriers, w.token)
			w.reply <- e.verdict(w, api.ResultTimeout)
			e.emitWaits()
		}
	}
	return nil
}

// relPaths lists changed paths for an update's record: relative to the
// Tiltfile's directory when inside it, at most api.MaxPaths.
func (e *Engine) relPaths(paths []string) []string {
	base := ""
	if e.cfg != nil {
		base = filepath.Dir(e.cfg.Tiltfile)
	}
	out := make([]string, 0, min(len(paths), api.MaxPaths))
	for _, p := range paths {
		if len(out) == api.MaxPaths {
			break
		}
		if rel, err := filepath.Rel(base, p); base != "" && err == nil && !strings.HasPrefix(rel, "..") {
			p = rel
		}
		out = append(out, p)
	}
	return out
}
