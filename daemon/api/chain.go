package api

import "time"

// ChainCause says what started a chain.
type ChainCause string

// Causes of a chain.
const (
	CauseSave    ChainCause = "save"    // a batch of file events the user made
	CauseTrigger ChainCause = "trigger" // loop trigger, or an enable
	CauseLoad    ChainCause = "load"    // a (re)load of the Tiltfile
)

// PhaseHandoff is a chain's gap between one resource's update and the next
// one it caused: from the first's end until the second's batch reached the
// engine (the watcher reading the files the first wrote, its quiet period).
const PhaseHandoff SpanName = "handoff"

// Chain is the causal trace of one change across resources: the user's save
// (or a trigger, or a load) is its root; an update it caused directly, an
// update caused by the files such an update wrote (a compile's binary
// synced into a container), or one that waited for it through resource_deps,
// continues it. The chain ends when the last update it caused is ready.
type Chain struct {
	// ID is the root change's ID (the ID in Update.Changes).
	ID    uint64     `json:"id"`
	Cause ChainCause `json:"cause"`
	// Path is the root change's first path, relative to the Tiltfile's
	// directory when inside it (empty for a trigger or load).
	Path string `json:"path,omitempty"`
	// Root is when loop read the root change's first file event (a
	// trigger's or load's own time).
	Root time.Time `json:"root"`
	// Ready is when the last update of the chain was ready (zero when none
	// became ready); End and EndUpdate name that update.
	Ready     time.Time `json:"ready,omitempty"`
	End       string    `json:"end,omitempty"`
	EndUpdate uint64    `json:"end_update,omitempty"`
	// Links are every update of the chain, in the order they started.
	Links []ChainLink `json:"links"`
	// Phases are the chain's critical path, from Root to Ready: the update
	// that ended it, the one that caused it, and so on back to the root,
	// with the gaps between them. Their durations add up exactly to Total.
	Phases []ChainPhase `json:"phases,omitempty"`
	// Error is set when no update of the chain became ready (the first
	// failure).
	Error string `json:"error,omitempty"`
}

// Total is the chain's change-to-result time: Root to Ready (0 when no
// update of it became ready).
func (c Chain) Total() time.Duration {
	if c.Ready.IsZero() {
		return 0
	}
	return c.Ready.Sub(c.Root)
}

// ChainLink is one update of a chain.
type ChainLink struct {
	Resource string     `json:"resource"`
	Update   uint64     `json:"update"`
	Kind     UpdateKind `json:"kind,omitempty"`
	// Parent is the update whose output (or readiness, for resource_deps)
	// caused this one; 0 when the root change did.
	Parent  uint64    `json:"parent,omitempty"`
	Started time.Time `json:"started"`
	Ready   time.Time `json:"ready,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// ChainPhase is one phase of a chain's critical path: Resource's span
// (cmd, sync, restart, ...), its batch and queue, the handoff before it,
// or other (what no span covers, waiting for readiness included).
type ChainPhase struct {
	Resource string   `json:"resource,omitempty"`
	Name     SpanName `json:"name"`
	// Start is the phase's offset from the chain's Root.
	Start    time.Duration `json:"start"`
	Duration time.Duration `json:"duration"`
}
