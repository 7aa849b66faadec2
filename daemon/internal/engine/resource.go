package engine

import (
	"sort"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/internal/watch"
	"github.com/loop-dev/loop/daemon/model"
)

// state is the engine's view of one resource: its definition, its phase and
// its pending changes. Only the engine goroutine touches it; the running
// side belongs to the supervisor.
type state struct {
	res *Resource
	sup *supervisor
	gen int

	phase      api.Phase
	errText    string
	needsInit  bool
	started    bool
	updating   bool
	everReady  bool
	probeReady bool
	last       *api.Update
	// live says the runtime can take live updates (from its last outcome).
	live bool

	pending   map[string]watch.Event
	firstEdit time.Time
	batched   time.Time
	lastEvent time.Time
	lastDone  time.Time // when the last update finished
	due       time.Time
	// plan is the live update planned for pending (nil: a rebuild), made
	// when pending changed and handed to the update as it is.
	plan     *liveupdate.Update
	fallBack *liveupdate.FallBack
	// triggered runs pending changes of a manual resource once.
	triggered bool

	// logReadyAt is the last ready_log match; awaitLog says an update waits
	// for one.
	logReadyAt time.Time
	awaitLog   bool

	// changeIDs are the changes pending (files, trigger, load); cur is the
	// running or last update; done numbers its end (Engine.doneSeq).
	changeIDs []uint64
	cur       updateRef
	done      uint64
	// out is a host command's latest update, for its output (chain.go);
	// chain is the last finished chain that ended here.
	out   outWindow
	chain *api.Chain

	// Status carried from the runtime's outcomes and reports.
	containerID string
	image       string
	drift       []string
}

func (r *state) name() string { return r.res.Name }

// updateRef is what the engine records of an update it started.
type updateRef struct {
	id      uint64
	changes []uint64
	paths   []string
	files   int
	chains  []uint64
}

func (r *state) addChangeID(id uint64) {
	if n := len(r.changeIDs); id != 0 && (n == 0 || r.changeIDs[n-1] != id) {
		r.changeIDs = append(r.changeIDs, id)
	}
}

func (r *state) autoTrigger() bool {
	t := r.res.Trigger
	return t != model.TriggerManual && t != model.TriggerManualNoInit
}

func (r *state) addChange(ev watch.Event, now time.Time) {
	if r.pending == nil {
		r.pending = map[string]watch.Event{}
	}
	if len(r.pending) == 0 {
		r.firstEdit, r.batched = ev.Time, now
	} else if ev.Time.Before(r.firstEdit) {
		r.firstEdit = ev.Time
	}
	if prev, ok := r.pending[ev.Path]; ok {
		// The latest event says whether the path is there; ops add up.
		ev.Op |= prev.Op
		ev.Time = prev.Time
	}
	r.pending[ev.Path] = ev
	if ev.Time.After(r.lastEvent) {
		r.lastEvent = ev.Time
	}
}

// classify plans the pending changes (live update or rebuild) and sets when
// they are due. A save to an idle resource that can be live-updated, or to a
// local_resource, goes out at once (the watcher's batcher already waited for
// the save to finish). Changes that arrive while an update runs or right
// after it, or a batch of many files, are a burst: they wait for FollowQuiet
// of quiet, stretched by the rate rule (burstQuiet), at most BurstMax, and go
// out as one follow-up. A rebuild costs seconds and waits for RebuildQuiet.
func (r *state) classify(now time.Time) {
	r.plan, r.fallBack = nil, nil
	in := r.res.Inputs
	if in.LiveUpdate != nil && r.live {
		if d, err := liveupdate.Plan(in.LiveUpdate, r.pendingChanges()); err == nil {
			r.plan, r.fallBack = d.Update, d.FallBack
		}
	}
	if r.res.Immediate || r.plan != nil {
		burst := len(r.pending) > watch.BurstFiles
		if !burst && !r.updating && now.Sub(r.lastDone) > watch.FollowWindow {
			r.due = now
			return
		}
		due := r.lastEvent.Add(r.burstQuiet())
		if max := r.firstEdit.Add(watch.BurstMax); due.After(max) {
			due = max
		}
		r.due = due
		return
	}
	due := r.lastEvent.Add(watch.RebuildQuiet - watch.LiveQuiet)
	if max := r.firstEdit.Add(watch.RebuildMax); due.After(max) {
		due = max
	}
	r.due = due
}

// burstQuiet is the quiet a burst's follow-up waits for: FollowQuiet, plus
// 1/BurstSlack of the burst's span while its files arrive faster than
// BurstRate (watch.BurstRate says why).
func (r *state) burstQuiet() time.Duration {
	span := r.lastEvent.Sub(r.firstEdit)
	n := len(r.pending)
	if n <= watch.BurstFiles || span <= 0 || float64(n) < watch.BurstRate*span.Seconds() {
		return watch.FollowQuiet
	}
	return watch.FollowQuiet + span/watch.BurstSlack
}

// pendingChanges lists the pending changes, without transient files outside
// every sync: a path created since the last update that is gone again (a
// compiler's or editor's temp file) changed nothing an image could have. The
// watcher said what it saw of each path, so this does no I/O.
func (r *state) pendingChanges() []liveupdate.Change {
	out := make([]liveupdate.Change, 0, len(r.pending))
	for p, ev := range r.pending {
		synced := r.res.Inputs.underSync(p)
		// Under a sync the path may have existed before the Create (an
		// atomic save renames onto an existing file, which reports Create):
		// its removal must reach the container.
		if ev.Op&watch.Create != 0 && ev.Gone && !synced {
			continue
		}
		// A directory outside every sync changes nothing by itself: the
		// files in it have events of their own.
		if ev.Dir && !ev.Gone && !synced {
			continue
		}
		out = append(out, liveupdate.Change{Path: p, Deleted: ev.Op&(watch.Remove|watch.Rename) != 0})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// batch is what an update takes from a resource's pending changes.
type batch struct {
	edit, batched time.Time
	changes       []liveupdate.Change
	plan          *liveupdate.Update
	fallBack      *liveupdate.FallBack
}

func (r *state) takePending() batch {
	b := batch{edit: r.firstEdit, batched: r.batched, changes: r.pendingChanges(), plan: r.plan, fallBack: r.fallBack}
	r.pending = nil
	r.plan, r.fallBack = nil, nil
	r.firstEdit, r.lastEvent = time.Time{}, time.Time{}
	return b
}

// readyNow reports readiness right after a successful update.
func (r *state) readyNow() bool {
	if r.res.ProbeGated {
		return r.probeReady
	}
	return true
}

func (r *state) status() api.ResourceStatus {
	st := api.ResourceStatus{
		Name: r.res.Name, Type: r.res.Type, Labels: r.res.Labels, Phase: r.phase, Error: r.errText,
		ContainerID: r.containerID, Image: r.image, PendingFiles: len(r.pending), Drift: r.drift, Links: r.res.Links,
		UpdateID: r.cur.id,
	}
	if r.last != nil {
		u := *r.last
		st.LastUpdate = &u
	}
	if r.chain != nil {
		c := *r.chain
		st.Chain = &c
	}
	return st
}

// carried is what a replacing definition takes over from this one.
func (r *state) carried() Carried {
	return Carried{ContainerID: r.containerID, Image: r.image}
}
