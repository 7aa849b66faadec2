package api

import "time"

// Trace is one finished update of one resource: the unit of the timing
// history (one JSON line per trace in the state directory's history file).
type Trace struct {
	Resource string `json:"resource"`
	Update
}

// Phases of the change-to-result breakdown that are not engine spans.
const (
	// PhaseBatch is Batched−Edit: the watcher's quiet period and batching.
	PhaseBatch SpanName = "batch"
	// PhaseQueue is Started−Batched: waiting for dependencies or a free slot.
	PhaseQueue SpanName = "queue"
	// PhaseOther is what no span covers: scheduling between spans and waiting
	// for readiness after the last span.
	PhaseOther SpanName = "other"
)

// Breakdown splits an update's change-to-result time into phases whose
// durations add up exactly to u.Total(): batch, queue, then the update's
// spans in order (a span name seen twice is summed), then other (the
// remainder). batch and queue are omitted when zero (inits); other is
// always last and may be negative only if spans overlap. An update that
// never became ready (Total 0) has no breakdown.
func Breakdown(u Update) []Span {
	total := u.Total()
	if total <= 0 {
		return nil
	}
	var out []Span
	add := func(name SpanName, d time.Duration) {
		for i := range out {
			if out[i].Name == name {
				out[i].Duration += d
				return
			}
		}
		out = append(out, Span{Name: name, Duration: d})
	}
	if !u.Edit.IsZero() && !u.Batched.IsZero() {
		add(PhaseBatch, u.Batched.Sub(u.Edit))
		add(PhaseQueue, u.Started.Sub(u.Batched))
	} else if !u.Edit.IsZero() {
		add(PhaseQueue, u.Started.Sub(u.Edit))
	}
	var sum time.Duration
	for _, s := range out {
		sum += s.Duration
	}
	for _, s := range u.Spans {
		add(s.Name, s.Duration)
		sum += s.Duration
	}
	out = append(out, Span{Name: PhaseOther, Duration: total - sum})
	return out
}

// LatencyStats are the change-to-result percentiles of one group of
// traces. Resource or Kind empty means "every resource" or "every kind".
// Percentiles are nearest-rank (each is the total of a real trace).
type LatencyStats struct {
	Resource string     `json:"resource,omitempty"`
	Kind     UpdateKind `json:"kind,omitempty"`
	Latency
	// Phases is the mean time per phase (see Breakdown); they add up to Mean.
	Phases []Span `json:"phases,omitempty"`
}

// Latency are the percentiles of a group's totals (of updates or chains).
type Latency struct {
	// Count is the number that became ready; Errors those that failed.
	Count  int           `json:"count"`
	Errors int           `json:"errors,omitempty"`
	P50    time.Duration `json:"p50"`
	P90    time.Duration `json:"p90"`
	P95    time.Duration `json:"p95"`
	P99    time.Duration `json:"p99"`
	Max    time.Duration `json:"max"`
	Mean   time.Duration `json:"mean"`
}

// MetricsSummary groups latency statistics over one set of traces: one
// group per resource and kind, then per resource (Kind empty), then per
// kind over all resources (Resource empty), then everything.
type MetricsSummary struct {
	// Since is the oldest trace start considered (zero: no lower bound).
	Since  time.Time      `json:"since,omitempty"`
	Traces int            `json:"traces"`
	Groups []LatencyStats `json:"groups"`
	// Chains groups the chains (save → every resource it caused → ready):
	// one group per root path pattern and end resource, then per end
	// resource, then all (see ChainStats).
	Chains []ChainStats `json:"chains,omitempty"`
}

// ChainStats are the percentiles of one group of chains' totals. Root is
// the root path pattern (the root path's directory and extension, as
// "cmd/api/*.go"; "(load)" or "(trigger)" for those causes; empty for every
// root), End the resource the chains ended at (empty for all).
type ChainStats struct {
	Root string `json:"root,omitempty"`
	End  string `json:"end,omitempty"`
	Latency
	// Phases is the mean time per resource and phase of the critical
	// path, in the order they first occur; they add up to Mean.
	Phases []ChainPhase `json:"phases,omitempty"`
}

// Group returns the group for resource and kind ("" for all) and whether
// it exists.
func (m MetricsSummary) Group(resource string, kind UpdateKind) (LatencyStats, bool) {
	for _, g := range m.Groups {
		if g.Resource == resource && g.Kind == kind {
			return g, true
		}
	}
	return LatencyStats{}, false
}

// Metrics is the answer of GET /v1/metrics.
type Metrics struct {
	Time time.Time `json:"time"`
	// Window covers the last traces of each resource kept in memory.
	Window MetricsSummary `json:"window"`
	// History covers every trace in the history file (this run and earlier).
	History MetricsSummary `json:"history"`
	// Recent are the traces held in memory, oldest first.
	Recent []Trace `json:"recent,omitempty"`
	// RecentChains are the chains held in memory, oldest first.
	RecentChains []Chain `json:"recent_chains,omitempty"`
}
