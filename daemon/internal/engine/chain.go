package engine

import (
	"slices"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// Chains: the causal trace of one change across resources (api.Chain).
//
// Every change the engine numbers (a batch of file events, a trigger, an
// enable, a load) that reaches a resource roots a chain, identified by the
// change's ID. An update continues the chains of the changes it carries.
// Two ways carry a chain from one resource to another:
//
//   - Output. A file event is the output of a host command's update (a
//     local_resource compiling a binary) when the command's resource does
//     not itself watch the path, and the watcher read the event after the
//     update started and no later than OutputSettle after it ended. Such
//     events form a change of their own that continues the command's
//     update's chains, with that update as parent. A path the command
//     watches (its deps: main.go) is always a new root, so a save made while
//     the compile runs starts a chain of its own. What the rule cannot tell
//     apart: a file the command does not watch, saved by the user while the
//     command runs (or within OutputSettle after), is taken for its output;
//     the chain then starts at the earlier save, which over-states, never
//     under-states, the time to result. When several commands' windows
//     hold an event, the one that started last takes it.
//   - resource_deps. A resource that waited for a dependency to be ready
//     starts with the change that was waiting (the load of the Tiltfile, at
//     start); its parent is the dependency's update in the same chain that
//     was ready last.
//
// A chain ends when nothing it caused is pending, running or waiting for
// readiness, and no command of it can still have output on the way (its
// OutputSettle has passed). Its end is the update ready last among those
// that caused no other (finish); the finished chain is that resource's
// ResourceStatus.Chain.

// OutputSettle is how long after a host command's update ended the files
// the watcher reads are still taken for its output: the kernel queues the
// events before the command exits, the watcher reads them at once, so this
// covers only the watcher's lag under load.
const OutputSettle = 500 * time.Millisecond

// outWindow is a host command's latest update, to attribute its output.
type outWindow struct {
	update     uint64
	chains     []uint64
	start, end time.Time // end is zero while the update runs
}

// origin is where a change came from: the chains it continues and the
// update whose output it is (0 for a root change).
type origin struct {
	chains []uint64
	parent uint64
}

// chain is an open chain (api.Chain once finished).
type chain struct {
	id    uint64
	cause api.ChainCause
	path  string
	root  time.Time
	links []*chainLink
}

type chainLink struct {
	res    string
	update uint64
	parent uint64
	// u is the update as last seen (Started at first; the outcome once
	// finished, Ready when it became ready).
	u    api.Update
	done bool
}

// newChain opens a chain rooted at change id.
func (e *Engine) newChain(id uint64, cause api.ChainCause, path string, root time.Time) {
	if e.chains == nil {
		e.chains = map[uint64]*chain{}
		e.origins = map[uint64]origin{}
	}
	e.chains[id] = &chain{id: id, cause: cause, path: path, root: root}
	e.origins[id] = origin{chains: []uint64{id}}
}

// producer returns the host command resource whose update wrote path, by
// the rule above, or nil.
func (e *Engine) producer(path string, at time.Time) *state {
	var best *state
	for _, name := range e.order {
		r := e.resources[name]
		w := r.out
		if !r.res.HostCommand || w.update == 0 || at.Before(w.start) {
			continue
		}
		if !w.end.IsZero() && at.After(w.end.Add(OutputSettle)) {
			continue
		}
		if r.res.Inputs.concerns(path) {
			continue // its own input: the user's
		}
		if best == nil || w.start.After(best.out.start) {
			best = r
		}
	}
	return best
}

// outputChange numbers the change made of a producer's output.
func (e *Engine) outputChange(p *state) uint64 {
	e.changeSeq++
	if e.origins == nil {
		e.origins = map[uint64]origin{}
	}
	e.origins[e.changeSeq] = origin{chains: p.out.chains, parent: p.out.update}
	return e.changeSeq
}

// startLinks records the start of r's update r.cur in the chains of the
// changes it carries.
func (e *Engine) startLinks(r *state, started time.Time) {
	var chains []uint64
	var parent uint64
	for _, c := range r.cur.changes {
		o, ok := e.origins[c]
		if !ok {
			continue
		}
		for _, id := range o.chains {
			if _, open := e.chains[id]; open && !slices.Contains(chains, id) {
				chains = append(chains, id)
			}
		}
		if parent == 0 {
			parent = o.parent
		}
	}
	r.cur.chains = chains
	for _, id := range chains {
		c := e.chains[id]
		p := parent
		if p == 0 {
			p = e.depParent(r, c)
		}
		c.links = append(c.links, &chainLink{res: r.name(), update: r.cur.id, parent: p, u: api.Update{ID: r.cur.id, Started: started}})
	}
	if r.res.HostCommand {
		r.out = outWindow{update: r.cur.id, chains: chains, start: started}
	}
}

// depParent is the update of one of r's resource_deps in chain c that was
// ready last, or 0.
func (e *Engine) depParent(r *state, c *chain) uint64 {
	var best *chainLink
	for _, l := range c.links {
		if !slices.Contains(r.res.Deps, l.res) {
			continue
		}
		e.refresh(l)
		if l.u.Ready.IsZero() {
			continue
		}
		if best == nil || l.u.Ready.After(best.u.Ready) {
			best = l
		}
	}
	if best == nil {
		return 0
	}
	return best.update
}

// endOutput closes r's output window's running part at its update's end.
func (r *state) endOutput(at time.Time) {
	if r.res.HostCommand && r.out.update == r.cur.id && r.out.end.IsZero() {
		r.out.end = at
	}
}

// refresh copies a link's update from its resource and reports whether
// the link is done: ready, failed, or superseded by a later update before
// it was either.
func (e *Engine) refresh(l *chainLink) bool {
	if l.done {
		return true
	}
	r := e.resources[l.res]
	switch {
	case r == nil:
		l.done = true
	case r.cur.id == l.update && r.updating:
	case r.last != nil && r.last.ID == l.update:
		l.u = *r.last
		l.done = !l.u.Ready.IsZero() || l.u.Error != "" || r.cur.id != l.update
	default:
		l.done = true
	}
	return l.done
}

// chainOpen reports whether chain id can still grow: a change of it is
// pending, an update of it runs or waits for readiness, or a command of it
// may still have output on the way. It refreshes the links' updates.
func (e *Engine) chainOpen(c *chain, now time.Time) bool {
	open := false
	for _, l := range c.links {
		open = !e.refresh(l) || open
	}
	if open {
		return true
	}
	for _, name := range e.order {
		r := e.resources[name]
		if slices.Contains(r.out.chains, c.id) && (r.out.end.IsZero() || now.Before(r.out.end.Add(OutputSettle))) {
			return true
		}
		if r.phase == api.PhaseDisabled || (!r.autoTrigger() && !r.triggered && !r.needsInit) || e.depFailed(r) {
			continue // what is pending here waits for a user, not for the chain
		}
		for _, id := range r.changeIDs {
			if slices.Contains(e.origins[id].chains, c.id) {
				return true
			}
		}
	}
	return false
}

// checkChains finishes the chains that can no longer grow: each becomes
// its end resource's ResourceStatus.Chain. With force (a CI run ending),
// output windows and pending changes no longer hold a chain open.
func (e *Engine) checkChains(force bool) {
	if len(e.chains) == 0 && len(e.origins) == 0 {
		return
	}
	now := e.now()
	for id, c := range e.chains {
		if e.chainOpen(c, now) && !force {
			continue
		}
		delete(e.chains, id)
		if len(c.links) == 0 {
			continue
		}
		out := c.finish()
		if r := e.resources[out.End]; r != nil {
			r.chain = &out
			e.emitStatus(r)
		}
	}
	for id, o := range e.origins {
		live := false
		for _, c := range o.chains {
			if _, ok := e.chains[c]; ok {
				live = true
			}
		}
		if !live {
			delete(e.origins, id)
		}
	}
}

// chainDue is how long until an output window of an open chain closes, so
// that checkChains runs then.
func (e *Engine) chainDue() (time.Duration, bool) {
	var best time.Time
	for _, r := range e.resources {
		w := r.out
		if w.end.IsZero() || len(w.chains) == 0 {
			continue
		}
		t := w.end.Add(OutputSettle)
		open := false
		for _, id := range w.chains {
			if _, ok := e.chains[id]; ok {
				open = true
			}
		}
		if open && (best.IsZero() || t.Before(best)) {
			best = t
		}
	}
	if best.IsZero() {
		return 0, false
	}
	return max(best.Sub(e.now()), 0), true
}

// finish makes the api.Chain of a chain that can no longer grow. A chain
// whose end resource is the only one named is still a chain (one save, one
// update): its total is that update's. Its end is the update ready last
// among those that caused no other (a compile whose process exits after
// the service it fed was ready does not end the chain); if none of those
// was ready, the update ready last.
func (c *chain) finish() api.Chain {
	out := api.Chain{ID: c.id, Cause: c.cause, Path: c.path, Root: c.root}
	byID := map[uint64]*chainLink{}
	parents := map[uint64]bool{}
	for _, l := range c.links {
		byID[l.update] = l
		parents[l.parent] = true
		out.Links = append(out.Links, api.ChainLink{Resource: l.res, Update: l.update, Kind: l.u.Kind, Parent: l.parent,
			Started: l.u.Started, Ready: l.u.Ready, Error: l.u.Error})
		if l.u.Error != "" && out.Error == "" {
			out.Error = l.res + ": " + l.u.Error
		}
	}
	last := func(leaves bool) *chainLink {
		var end *chainLink
		for _, l := range c.links {
			if (leaves && parents[l.update]) || l.u.Ready.IsZero() || l.u.Error != "" {
				continue
			}
			if end == nil || l.u.Ready.After(end.u.Ready) {
				end = l
			}
		}
		return end
	}
	end := last(true)
	if end == nil {
		end = last(false)
	}
	if end == nil {
		last := c.links[len(c.links)-1]
		out.End, out.EndUpdate = last.res, last.update
		return out
	}
	out.Error = ""
	out.End, out.EndUpdate, out.Ready = end.res, end.update, end.u.Ready
	// The critical path: from the end back through parents to the root.
	var path []*chainLink
	seen := map[uint64]bool{}
	for l := end; l != nil && !seen[l.update]; l = byID[l.parent] {
		seen[l.update] = true
		path = append(path, l)
	}
	slices.Reverse(path)
	out.Phases = chainPhases(c.root, path)
	return out
}

// chainPhases lays the critical path out as consecutive phases from root:
// each link's batch (the first) or handoff (later ones), queue, spans in
// order and other up to its Ready. A link's phases stop where the next
// link's batch (or start) began: what the parent did after its output was
// seen is not on the path. A phase that would start before the previous
// one ended is cut to what lies after it (never negative), except the
// last, which takes what is left so that the phases add up exactly to the
// end's Ready − root.
func chainPhases(root time.Time, path []*chainLink) []api.ChainPhase {
	var out []api.ChainPhase
	t := root
	add := func(res string, name api.SpanName, until time.Time) {
		d := max(until.Sub(t), 0)
		if d == 0 {
			return
		}
		out = append(out, api.ChainPhase{Resource: res, Name: name, Start: t.Sub(root), Duration: d})
		t = t.Add(d)
	}
	for i, l := range path {
		u := l.u
		stop := u.Ready
		if i < len(path)-1 {
			next := path[i+1].u
			if stop = next.Started; !next.Batched.IsZero() {
				stop = next.Batched
			}
		}
		upTo := func(t time.Time) time.Time {
			if !stop.IsZero() && t.After(stop) {
				return stop
			}
			return t
		}
		if !u.Batched.IsZero() {
			name := api.PhaseBatch
			if i > 0 {
				name = api.PhaseHandoff
			}
			add(l.res, name, u.Batched)
		}
		add(l.res, api.PhaseQueue, upTo(u.Started))
		s := u.Started
		for _, sp := range u.Spans {
			s = s.Add(sp.Duration)
			add(l.res, sp.Name, upTo(s))
		}
		if i < len(path)-1 && !u.Ready.IsZero() {
			add(l.res, api.PhaseOther, upTo(u.Ready))
		}
	}
	last := path[len(path)-1]
	if d := last.u.Ready.Sub(t); d != 0 {
		out = append(out, api.ChainPhase{Resource: last.res, Name: api.PhaseOther, Start: t.Sub(root), Duration: d})
	}
	return out
}

// depFailed reports whether r waits for a resource_dep that failed before
// it was ever ready: its pending changes wait for a fix, not for the chain.
func (e *Engine) depFailed(r *state) bool {
	for _, d := range r.res.Deps {
		if dep, ok := e.resources[d]; ok && !dep.everReady && dep.phase == api.PhaseError {
			return true
		}
	}
	return false
}
