// Package metrics owns loop's change-to-result timing once updates are
// done: it keeps the last traces of each resource in memory, appends every
// trace to a bounded, rotated history file in the project's state
// directory, computes percentiles and phase breakdowns, serves them as JSON
// and in the Prometheus text format, and checks latency budgets.
//
// The engine's events reach a Store through Observe (or Record). Neither
// ever waits for the disk: lines go to a queue that one goroutine, started
// by Open and stopped by Close, writes out; when the queue is full a line
// is dropped and counted rather than blocking the engine.
package metrics

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/loop-dev/loop/daemon/api"
)

// DefaultKeep is how many traces per resource a Store keeps in memory.
const DefaultKeep = 100

// queueLen bounds the lines waiting for the disk.
const queueLen = 1024

// Options configure a Store.
type Options struct {
	// Dir is the project's state directory, where the history file lives.
	// Empty keeps traces in memory only (loop ci's budget check, tests).
	Dir string
	// Keep is the number of traces per resource kept in memory (the
	// window); 0 means DefaultKeep.
	Keep int
	// MaxBytes is the size at which the history file rotates; 0 means
	// DefaultMaxBytes.
	MaxBytes int64
	// Logf, when set, is told about history write failures: the first one,
	// and the first success after failures.
	Logf func(format string, args ...any)

	open func(path string) (file, error) // tests: a disk that fills up
}

// Store records finished updates. It is safe for concurrent use.
type Store struct {
	o Options

	mu     sync.Mutex
	recent map[string][]api.Trace // per resource, oldest first, at most Keep
	last   map[string]time.Time   // per resource, Started of the last recorded update
	order  []string               // resources in the order first seen
	chains []api.Chain            // oldest first, at most Keep per end resource on average
	// lastChain is, per end resource, the root of the last recorded chain.
	lastChain map[string]time.Time
	closed    bool

	queue   chan []byte // closed by Close; drained by the writer goroutine
	done    chan struct{}
	dropped int
	failed  int

	prom *promMetrics
}

// Open returns a Store. With a Dir it starts the goroutine that writes the
// history file; Close stops it. Open itself touches no file, so a broken
// state directory costs the history, never the run.
func Open(o Options) *Store {
	if o.Keep <= 0 {
		o.Keep = DefaultKeep
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.open == nil {
		o.open = openFile
	}
	s := &Store{
		o:      o,
		recent: map[string][]api.Trace{},
		last:   map[string]time.Time{},
		prom:   newPromMetrics(),

		lastChain: map[string]time.Time{},
	}
	if o.Dir != "" {
		s.queue = make(chan []byte, queueLen)
		s.done = make(chan struct{})
		go s.write(&historyWriter{dir: o.Dir, max: o.MaxBytes, open: o.open})
	}
	return s
}

// write appends queued lines until the queue is closed and drained.
func (s *Store) write(w *historyWriter) {
	defer close(s.done)
	defer func() { _ = w.close() }()
	failing := false
	for line := range s.queue {
		err := w.append(line)
		switch {
		case err != nil:
			s.mu.Lock()
			s.failed++
			s.mu.Unlock()
			if !failing && s.o.Logf != nil {
				s.o.Logf("timing history: %v (later traces are kept in memory only until a write succeeds)", err)
			}
			failing = true
		case failing:
			failing = false
			if s.o.Logf != nil {
				s.o.Logf("timing history: writing again")
			}
		}
	}
}

// Close flushes the queued history lines and stops the writer. Records
// after Close are kept in memory only. Close is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.queue != nil {
		close(s.queue)
	}
	s.mu.Unlock()
	if s.done != nil {
		<-s.done
	}
	return nil
}

// Observe records the last update and the last chain carried by a status
// event, if any. It is meant to be called from an event sink.
func (s *Store) Observe(ev api.Event) {
	if ev.Kind != api.EventStatus || ev.Status == nil {
		return
	}
	name := ev.Status.Name
	if name == "" {
		name = ev.Resource
	}
	if ev.Status.LastUpdate != nil {
		s.Record(name, *ev.Status.LastUpdate)
	}
	if ev.Status.Chain != nil {
		s.RecordChain(*ev.Status.Chain)
	}
}

// RecordChain stores a finished chain and reports whether it was new. The
// end resource's status events carry its last chain again and again: a
// chain is recorded once, by its root time per end resource.
func (s *Store) RecordChain(c api.Chain) bool {
	if c.End == "" || c.Root.IsZero() {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.lastChain[c.End]; ok && !c.Root.After(last) {
		return false
	}
	s.lastChain[c.End] = c.Root
	c.Links = append([]api.ChainLink(nil), c.Links...)
	c.Phases = append([]api.ChainPhase(nil), c.Phases...)
	s.chains = append(s.chains, c)
	if keep := s.o.Keep * max(len(s.lastChain), 1); len(s.chains) > keep {
		s.chains = append(s.chains[:0:0], s.chains[len(s.chains)-keep:]...)
	}
	s.prom.observeChain(c)
	s.queueLine(historyLine{Chain: &c})
	return true
}

// queueLine hands a history line to the writer; s.mu is held.
func (s *Store) queueLine(v any) {
	if s.queue == nil || s.closed {
		return
	}
	line, err := json.Marshal(v)
	if err != nil {
		return
	}
	select {
	case s.queue <- append(line, '\n'):
	default:
		s.dropped++
	}
}

// RecentChains returns the chains kept in memory, oldest first.
func (s *Store) RecentChains() []api.Chain {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]api.Chain(nil), s.chains...)
}

// Record stores a finished update of a resource and reports whether it was
// new. The same update is reported by several status events: it is
// recorded once, by its Started time. An update that has neither become
// ready nor failed is not finished and is not recorded (a later event will
// carry it again with its Ready time).
func (s *Store) Record(resource string, u api.Update) bool {
	if resource == "" || u.Started.IsZero() || (u.Ready.IsZero() && u.Error == "") {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.last[resource]; ok && !u.Started.After(last) {
		return false
	}
	if _, ok := s.recent[resource]; !ok {
		s.order = append(s.order, resource)
	}
	s.last[resource] = u.Started
	u.Spans = append([]api.Span(nil), u.Spans...)
	t := api.Trace{Resource: resource, Update: u}
	r := append(s.recent[resource], t)
	if len(r) > s.o.Keep {
		r = append(r[:0:0], r[len(r)-s.o.Keep:]...)
	}
	s.recent[resource] = r
	s.prom.observe(t)
	s.queueLine(t)
	return true
}

// Recent returns the traces kept in memory, per resource in the order
// resources were first seen, each oldest first.
func (s *Store) Recent() []api.Trace {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Trace
	for _, name := range s.order {
		out = append(out, s.recent[name]...)
	}
	return out
}

// Window summarizes the traces kept in memory.
func (s *Store) Window() api.MetricsSummary {
	return History{Traces: s.Recent(), Chains: s.RecentChains()}.Summary(time.Time{})
}

// History summarizes every trace in the history file started at or after
// since. Lines still queued for the disk are not in it yet.
func (s *Store) History(since time.Time) (api.MetricsSummary, error) {
	if s.o.Dir == "" {
		return History{Traces: s.Recent(), Chains: s.RecentChains()}.Summary(since), nil
	}
	h, err := ReadAll(s.o.Dir, since)
	if err != nil {
		return api.MetricsSummary{}, err
	}
	return h.Summary(since), nil
}

// Lost reports how many traces did not reach the history file: dropped
// because the writer fell behind, or failed to write.
func (s *Store) Lost() (dropped, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped, s.failed
}

// Registry returns the Prometheus registry holding the Store's histograms.
func (s *Store) Registry() *prometheus.Registry { return s.prom.reg }
