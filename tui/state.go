package tui

import (
	"sort"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

// lines is a bounded list of log lines; total counts every line ever added
// so a scrolled view can keep its place while old lines drop off.
type lines struct {
	buf   []string
	start int
	n     int
	total int
}

func newLines(capacity int) *lines { return &lines{buf: make([]string, capacity)} }

func (l *lines) add(s string) {
	l.total++
	if l.n < len(l.buf) {
		l.buf[(l.start+l.n)%len(l.buf)] = s
		l.n++
		return
	}
	l.buf[l.start] = s
	l.start = (l.start + 1) % len(l.buf)
}

func (l *lines) reset() { l.start, l.n = 0, 0 }

// at returns the i-th oldest line held.
func (l *lines) at(i int) string { return l.buf[(l.start+i)%len(l.buf)] }

// resource is what the UI knows of one resource.
type resource struct {
	status api.ResourceStatus
	logs   *lines
	// build holds the lines logged during the latest update (while the
	// resource was updating): the build output tab.
	build *lines
	// totals are the change-to-result times of the live and rebuild
	// updates seen while attached, for p50/p95.
	totals   []time.Duration
	lastSeen time.Time // Started of the last update counted
}

// state is the UI's copy of the daemon, rebuilt from each Snapshot and
// advanced by each Event. Only the Bubble Tea goroutine touches it.
type state struct {
	logCap      int
	info        api.Snapshot // project, docker, started, config error (Resources, Logs unused)
	order       []string
	res         map[string]*resource
	connected   bool
	everSynced  bool
	disconnect  string
	dirty       map[string]bool // resources whose logs changed since the last frame
	statusDirty bool
	// note is the daemon's latest line of its own (no resource: the objects of
	// a resource that left the config deleted, ...), shown under the table.
	note string
}

func newState(logCap int) *state {
	return &state{logCap: logCap, res: map[string]*resource{}, dirty: map[string]bool{}}
}

func (s *state) get(name string) *resource {
	r := s.res[name]
	if r == nil {
		r = &resource{status: api.ResourceStatus{Name: name, Phase: api.PhasePending}, logs: newLines(s.logCap), build: newLines(s.logCap)}
		s.res[name] = r
		s.order = append(s.order, name)
	}
	return r
}

func (s *state) apply(m client.Message) {
	switch {
	case m.Snapshot != nil:
		snap := *m.Snapshot
		old := s.res
		s.res, s.order = map[string]*resource{}, nil
		for _, st := range snap.Resources {
			r := s.get(st.Name)
			if o := old[st.Name]; o != nil {
				r.totals, r.lastSeen = o.totals, o.lastSeen // keep the session's timing across reconnects
			}
			s.setStatus(r, st)
		}
		for _, l := range snap.Logs {
			if l.Resource == "" {
				s.note = l.Text
				continue
			}
			s.get(l.Resource).logs.add(l.Text)
		}
		snap.Resources, snap.Logs = nil, nil
		s.info = snap
		s.connected, s.everSynced, s.disconnect = true, true, ""
		s.statusDirty = true
	case m.Event != nil:
		s.connected = true
		ev := m.Event
		switch ev.Kind {
		case api.EventLog:
			if ev.Resource == "" {
				s.note = ev.Text // the daemon's own lines have no row
				s.statusDirty = true
				break
			}
			r := s.get(ev.Resource)
			r.logs.add(ev.Text)
			if r.status.Phase == api.PhaseUpdating {
				r.build.add(ev.Text)
			}
			s.dirty[ev.Resource] = true
		case api.EventStatus:
			if ev.Status != nil {
				s.setStatus(s.get(ev.Status.Name), *ev.Status)
				s.statusDirty = true
			}
		case api.EventConfig:
			s.info.ConfigError = ev.Text
			s.statusDirty = true
		case api.EventWaits:
			s.info.Waits = ev.Waits
			s.statusDirty = true
		}
	case m.Disconnected != nil:
		s.connected = false
		s.disconnect = m.Disconnected.Error()
		s.statusDirty = true
	}
}

func (s *state) setStatus(r *resource, st api.ResourceStatus) {
	if st.Phase == api.PhaseUpdating && r.status.Phase != api.PhaseUpdating {
		r.build.reset() // a new update: its output replaces the last one's
	}
	r.status = st
	if u := st.LastUpdate; u != nil && (u.Kind == api.UpdateLive || u.Kind == api.UpdateRebuild) &&
		!u.Ready.IsZero() && u.Error == "" && !u.Started.Equal(r.lastSeen) {
		r.lastSeen = u.Started
		r.totals = append(r.totals, u.Total())
		if len(r.totals) > 500 {
			r.totals = r.totals[len(r.totals)-500:]
		}
	}
}

// percentiles returns p50 and p95 of the resource's change-to-result times.
func (r *resource) percentiles() (p50, p95 time.Duration, ok bool) {
	if len(r.totals) == 0 {
		return 0, 0, false
	}
	s := append([]time.Duration(nil), r.totals...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(p float64) time.Duration { return s[int(p*float64(len(s)-1)+0.5)] }
	return at(0.50), at(0.95), true
}
