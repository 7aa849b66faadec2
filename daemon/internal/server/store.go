package server

import (
	"errors"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// errGap means the requested sequence number is no longer (or not yet) in the
// event log: the client must read a fresh snapshot.
var errGap = errors.New("sequence number outside the event log; read /v1/state again")

// ring is a fixed-capacity FIFO that overwrites its oldest element.
type ring[T any] struct {
	buf   []T
	start int
	n     int
}

func newRing[T any](capacity int) *ring[T] { return &ring[T]{buf: make([]T, capacity)} }

func (r *ring[T]) push(v T) {
	if r.n < len(r.buf) {
		r.buf[(r.start+r.n)%len(r.buf)] = v
		r.n++
		return
	}
	r.buf[r.start] = v
	r.start = (r.start + 1) % len(r.buf)
}

// at returns the i-th oldest element.
func (r *ring[T]) at(i int) T { return r.buf[(r.start+i)%len(r.buf)] }

// store is the server's view of the daemon, built only from the event stream.
// Its methods are safe for concurrent use: Sink is called from several
// engine goroutines while handlers read.
type store struct {
	mu        sync.Mutex
	seq       uint64
	resources map[string]*api.ResourceStatus
	order     []string
	configErr string
	logs      map[string]*ring[api.LogLine]
	// logTotal counts every line of each resource: the i-th oldest held
	// line is number logTotal-n+i+1 (verdicts count what they leave out).
	logTotal map[string]uint64
	logCap   int
	// updates records recent updates for verdicts (changes.go).
	updates updateLog
	waits   []api.Wait
	events  *ring[api.Event]
	// wake is closed (and replaced) whenever an event is appended, so any
	// number of streaming handlers can wait without a per-client buffer.
	wake chan struct{}
}

func newStore(logLines, eventLog int) *store {
	return &store{
		resources: map[string]*api.ResourceStatus{},
		logs:      map[string]*ring[api.LogLine]{},
		logTotal:  map[string]uint64{},
		updates:   newUpdateLog(),
		logCap:    logLines,
		events:    newRing[api.Event](eventLog),
		wake:      make(chan struct{}),
	}
}

// add numbers ev, applies it and appends it to the event log.
func (s *store) add(ev api.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	ev.Seq = s.seq
	switch ev.Kind {
	case api.EventStatus:
		if ev.Status != nil {
			st := *ev.Status
			if st.LastUpdate != nil {
				u := *st.LastUpdate
				st.LastUpdate = &u
			}
			ev.Status = &st
			if _, ok := s.resources[st.Name]; !ok {
				s.order = append(s.order, st.Name)
			}
			cp := st
			s.resources[st.Name] = &cp
			s.updates.observe(&st, s.seq, s.logTotal[st.Name], ev.Time)
		}
	case api.EventWaits:
		s.waits = ev.Waits
	case api.EventConfig:
		s.configErr = ev.Text
	case api.EventLog:
		r := s.logs[ev.Resource]
		if r == nil {
			r = newRing[api.LogLine](s.logCap)
			s.logs[ev.Resource] = r
		}
		r.push(api.LogLine{Seq: ev.Seq, Time: ev.Time, Resource: ev.Resource, Text: ev.Text})
		s.logTotal[ev.Resource]++
	}
	s.events.push(ev)
	close(s.wake)
	s.wake = make(chan struct{})
}

// known reports whether the daemon has reported a resource (or logged
// lines) of that name.
func (s *store) known(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.resources[name]
	_, logged := s.logs[name]
	return ok || logged
}

// snapshot copies the state; with logTail > 0 it includes up to that many
// last lines of every resource, ordered by sequence number.
func (s *store) snapshot(logTail int) api.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := api.Snapshot{Seq: s.seq, ConfigError: s.configErr, Resources: make([]api.ResourceStatus, 0, len(s.order)),
		Waits: append([]api.Wait(nil), s.waits...)}
	for _, name := range s.order {
		st := *s.resources[name]
		if st.LastUpdate != nil {
			u := *st.LastUpdate
			st.LastUpdate = &u
		}
		snap.Resources = append(snap.Resources, st)
	}
	if logTail > 0 {
		snap.Logs = s.linesLocked("", logFilter{tail: logTail})
	}
	return snap
}

// logFilter selects log lines: after a sequence number, at or after a time,
// and then the last tail of them (0: all).
type logFilter struct {
	after uint64
	since time.Time
	tail  int
	// grep, when set, keeps only the lines it matches.
	grep *regexp.Regexp
}

func (f logFilter) match(l api.LogLine) bool {
	return l.Seq > f.after && (f.since.IsZero() || !l.Time.Before(f.since)) && (f.grep == nil || f.grep.MatchString(l.Text))
}

// lines returns the stored lines of resource ("" for every resource) that
// match f, and the sequence number they are current to.
func (s *store) lines(resource string, f logFilter) ([]api.LogLine, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linesLocked(resource, f), s.seq
}

func (s *store) linesLocked(resource string, f logFilter) []api.LogLine {
	var out []api.LogLine
	collect := func(r *ring[api.LogLine]) {
		var sel []api.LogLine
		for i := 0; i < r.n; i++ {
			if l := r.at(i); f.match(l) {
				sel = append(sel, l)
			}
		}
		if f.tail > 0 && len(sel) > f.tail {
			sel = sel[len(sel)-f.tail:]
		}
		out = append(out, sel...)
	}
	if resource != "" {
		if r := s.logs[resource]; r != nil {
			collect(r)
		}
		return out
	}
	for _, r := range s.logs {
		collect(r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// after returns up to max events after sequence number seq, and a channel
// closed when more arrive. It returns errGap when seq is older than the
// event log holds or newer than the last event.
func (s *store) after(seq uint64, max int) ([]api.Event, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first := s.seq - uint64(s.events.n) // sequence number before the oldest held
	if seq < first || seq > s.seq {
		return nil, s.wake, errGap
	}
	n := int(s.seq - seq)
	if n > max {
		n = max
	}
	out := make([]api.Event, n)
	off := int(seq - first)
	for i := range out {
		out[i] = s.events.at(off + i)
	}
	return out, s.wake, nil
}

// head returns the last sequence number.
func (s *store) head() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq
}
