package server

import (
	"fmt"
	"slices"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// keepUpdates bounds how many updates the store remembers for verdicts.
const keepUpdates = 1024

// updateRecord is what the store knows of one update: where its log lines
// start and what it reached.
type updateRecord struct {
	resource string
	// startSeq and startLine are the event sequence number and the
	// resource's line count when it started: its lines come after.
	startSeq  uint64
	startLine uint64
	started   time.Time
	done      bool
	update    api.Update
	phase     api.Phase
	err       string
}

// updateLog indexes recent updates by ID and by change ID.
type updateLog struct {
	byID    map[uint64]*updateRecord
	order   []uint64            // update IDs, oldest first
	changes map[uint64][]uint64 // change ID → update IDs
}

func newUpdateLog() updateLog {
	return updateLog{byID: map[uint64]*updateRecord{}, changes: map[uint64][]uint64{}}
}

// observe records a status: an update starting (its ID while updating) or
// finished (LastUpdate). seq is the status event's number and line the
// resource's line count then.
func (l *updateLog) observe(st *api.ResourceStatus, seq, line uint64, at time.Time) {
	if id := st.UpdateID; id != 0 && l.byID[id] == nil && st.Phase == api.PhaseUpdating {
		l.byID[id] = &updateRecord{resource: st.Name, startSeq: seq, startLine: line, started: at}
		l.order = append(l.order, id)
	}
	u := st.LastUpdate
	if u == nil || u.ID == 0 || st.Phase == api.PhaseUpdating {
		return
	}
	rec := l.byID[u.ID]
	if rec == nil {
		// Started before this store saw it: its lines cannot be told apart.
		rec = &updateRecord{resource: st.Name, startSeq: seq, startLine: line, started: at}
		l.byID[u.ID] = rec
		l.order = append(l.order, u.ID)
	}
	if !rec.done {
		for _, c := range u.Changes {
			l.changes[c] = append(l.changes[c], u.ID)
		}
	}
	rec.done, rec.update, rec.phase, rec.err = true, *u, st.Phase, st.Error
	l.trim()
}

// trim forgets the oldest updates beyond keepUpdates.
func (l *updateLog) trim() {
	for len(l.order) > keepUpdates {
		id := l.order[0]
		l.order = l.order[1:]
		if rec := l.byID[id]; rec != nil {
			for _, c := range rec.update.Changes {
				ids := slices.DeleteFunc(l.changes[c], func(x uint64) bool { return x == id })
				if len(ids) == 0 {
					delete(l.changes, c)
				} else {
					l.changes[c] = ids
				}
			}
		}
		delete(l.byID, id)
	}
}

// updateLines returns at most max lines of resource's log from the start
// of update id: the first quarter and the last ones, with a marker line
// between them, and how many were left out (also lines the ring no longer
// holds). No record: none.
func (s *store) updateLines(resource string, id uint64, max int) ([]string, int) {
	rec := s.updates.byID[id]
	r := s.logs[resource]
	if rec == nil || r == nil || max <= 0 {
		return nil, 0
	}
	total := s.logTotal[resource]
	if total <= rec.startLine {
		return nil, 0
	}
	want := int(total - rec.startLine)
	held := min(want, r.n)
	// The lines of the update that the ring still holds are its last held.
	lines := make([]string, 0, min(held, max+1))
	from := r.n - held
	if held <= max {
		for i := from; i < r.n; i++ {
			lines = append(lines, r.at(i).Text)
		}
		if left := want - held; left > 0 {
			lines = append([]string{fmt.Sprintf("… %d earlier lines left out", left)}, lines...)
		}
		return lines, want - held
	}
	head := max / 4
	tail := max - head
	for i := from; i < from+head; i++ {
		lines = append(lines, r.at(i).Text)
	}
	left := want - head - tail
	lines = append(lines, fmt.Sprintf("… %d lines left out", left))
	for i := r.n - tail; i < r.n; i++ {
		lines = append(lines, r.at(i).Text)
	}
	return lines, left
}

// fillLogs adds to a verdict the lines of each reported update (of the
// resources reached, and of those in error).
func (s *store) fillLogs(v *api.Verdict, max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range v.Resources {
		rv := &v.Resources[i]
		if rv.Update == nil || (!rv.Affected && rv.Phase != api.PhaseError) {
			continue
		}
		rv.Logs, rv.LogsOmitted = s.updateLines(rv.Name, rv.Update.ID, max)
	}
}

// changeVerdict is the verdict of change id from the updates that carried
// it; false when the store has no record of it.
func (s *store) changeVerdict(id uint64, max int) (api.Verdict, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.updates.changes[id]
	if len(ids) == 0 {
		return api.Verdict{}, false
	}
	v := api.Verdict{Change: id, Result: api.ResultReady}
	last := map[string]*updateRecord{}
	var names []string
	for _, uid := range ids {
		rec := s.updates.byID[uid]
		if rec == nil {
			continue
		}
		if _, ok := last[rec.resource]; !ok {
			names = append(names, rec.resource)
		}
		last[rec.resource] = rec
	}
	for _, name := range names {
		rec := last[name]
		u := rec.update
		rv := api.ResourceVerdict{Name: name, Affected: true, Phase: rec.phase, Error: rec.err, Update: &u}
		rv.Logs, rv.LogsOmitted = s.updateLines(name, u.ID, max)
		if v.Started.IsZero() || rec.started.Before(v.Started) {
			v.Started = rec.started
		}
		if u.Ready.After(v.Done) {
			v.Done = u.Ready
		}
		switch rec.phase {
		case api.PhaseError:
			if v.Failed == "" {
				v.Result, v.Failed, v.Error = api.ResultFailed, name, rec.err
			}
		case api.PhaseReady, api.PhaseDisabled:
		default:
			if v.Result == api.ResultReady {
				v.Result = api.ResultPending
			}
		}
		v.Resources = append(v.Resources, rv)
	}
	return v, true
}

// changeList summarizes the latest n changes, newest first.
func (s *store) changeList(n int) []api.ChangeSummary {
	s.mu.Lock()
	ids := make([]uint64, 0, len(s.updates.changes))
	for id := range s.updates.changes {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	slices.Sort(ids)
	slices.Reverse(ids)
	if len(ids) > n {
		ids = ids[:n]
	}
	out := make([]api.ChangeSummary, 0, len(ids))
	for _, id := range ids {
		v, ok := s.changeVerdict(id, 0)
		if !ok {
			continue
		}
		cs := api.ChangeSummary{ID: id, Time: v.Started, Result: v.Result}
		for _, r := range v.Resources {
			cs.Resources = append(cs.Resources, r.Name)
		}
		out = append(out, cs)
	}
	return out
}

// changeStart is the sequence number before change id's first update: its
// lines come after it.
func (s *store) changeStart(id uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best uint64
	found := false
	for _, uid := range s.updates.changes[id] {
		if rec := s.updates.byID[uid]; rec != nil && (!found || rec.startSeq < best) {
			best, found = rec.startSeq, true
		}
	}
	return best, found
}
