// Package api is the vocabulary the daemon speaks to its clients (the TUI and
// every CLI verb): plain wire types, standard library only. Nothing here
// knows about Docker, Kubernetes or Starlark.
package api

import "time"

// EventKind says what an Event carries.
type EventKind string

// Kinds of events.
const (
	// EventLog is one line of a resource's output (build, container, command).
	EventLog EventKind = "log"
	// EventStatus is a change of a resource's status.
	EventStatus EventKind = "status"
	// EventConfig reports a (re)load of the Tiltfile; Text holds the error, if any.
	EventConfig EventKind = "config"
	// EventWaits carries the clients' waits in progress (all of them).
	EventWaits EventKind = "waits"
)

// Event is one thing that happened, in the order the daemon saw it.
type Event struct {
	Seq      uint64          `json:"seq"`
	Time     time.Time       `json:"time"`
	Kind     EventKind       `json:"kind"`
	Resource string          `json:"resource,omitempty"`
	Text     string          `json:"text,omitempty"`
	Status   *ResourceStatus `json:"status,omitempty"`
	// Waits is set on EventWaits.
	Waits []Wait `json:"waits,omitempty"`
}

// Phase is where a resource is in its life.
type Phase string

// Resource phases.
const (
	PhasePending  Phase = "pending"  // declared, not started (waiting for deps or a trigger)
	PhaseUpdating Phase = "updating" // a build, deploy or live update is running
	PhaseRunning  Phase = "running"  // up, readiness not yet confirmed
	PhaseReady    Phase = "ready"    // up and ready
	PhaseError    Phase = "error"    // the last update failed
	PhaseDisabled Phase = "disabled" // not enabled in this run
)

// UpdateKind says how a change reached the running system.
type UpdateKind string

// Update kinds.
const (
	UpdateInit    UpdateKind = "init"    // first build and start
	UpdateLive    UpdateKind = "live"    // files synced into the running container
	UpdateRebuild UpdateKind = "rebuild" // image rebuilt and container recreated
	UpdateLocal   UpdateKind = "local"   // a local_resource command ran
)

// Span is one timed phase of an update.
type Span struct {
	Name     SpanName      `json:"name"`
	Duration time.Duration `json:"duration"`
}

// SpanName names a phase of an update.
type SpanName string

// The phases the daemon's controllers time.
const (
	SpanBuild   SpanName = "build"   // an image build
	SpanPush    SpanName = "push"    // an image pushed to the cluster's registry
	SpanDeploy  SpanName = "deploy"  // a container started, objects applied and healthy
	SpanSync    SpanName = "sync"    // files into a running container
	SpanRun     SpanName = "run"     // live_update run() steps
	SpanRestart SpanName = "restart" // the process or container restarted
	SpanCmd     SpanName = "cmd"     // a local_resource's command
)

// Update describes one update of a resource, with its change-to-result timing.
type Update struct {
	// ID numbers the daemon's updates (it restarts with the daemon).
	ID   uint64     `json:"id,omitempty"`
	Kind UpdateKind `json:"kind"`
	// Changes are the change IDs the update carries: each batch of file
	// events, trigger or config load that reached the resource has one.
	Changes []uint64 `json:"changes,omitempty"`
	// Chains are the chains (by root change ID) the update continues.
	Chains []uint64 `json:"chains,omitempty"`
	// Paths are the changed files, relative to the Tiltfile's directory when
	// inside it (at most MaxPaths; Files counts them all).
	Paths []string `json:"paths,omitempty"`
	// Edit is when loop read the first file event of the batch (zero for an init).
	Edit time.Time `json:"edit,omitempty"`
	// Batched is when the engine received the batch (after the watcher's
	// quiet period); zero for an init.
	Batched time.Time `json:"batched,omitempty"`
	// Started is when the update began; Ready when the result was running and ready.
	Started time.Time `json:"started"`
	Ready   time.Time `json:"ready,omitempty"`
	Files   int       `json:"files,omitempty"`
	Spans   []Span    `json:"spans,omitempty"`
	Error   string    `json:"error,omitempty"`
}

// Total is the change-to-result time: from the first event read (or the
// start, for an init) to ready.
func (u Update) Total() time.Duration {
	from := u.Edit
	if from.IsZero() {
		from = u.Started
	}
	if u.Ready.IsZero() {
		return 0
	}
	return u.Ready.Sub(from)
}

// ResourceStatus is a resource's state as the daemon last saw it.
type ResourceStatus struct {
	Name        string   `json:"name"`
	Type        string   `json:"type"` // local, compose, k8s
	Labels      []string `json:"labels,omitempty"`
	Phase       Phase    `json:"phase"`
	Error       string   `json:"error,omitempty"`
	ContainerID string   `json:"container_id,omitempty"`
	Image       string   `json:"image,omitempty"`
	// PendingFiles counts changes waiting for the next update.
	PendingFiles int `json:"pending_files,omitempty"`
	// UpdateID is the running update's ID while updating, else the last one's.
	UpdateID   uint64  `json:"update_id,omitempty"`
	LastUpdate *Update `json:"last_update,omitempty"`
	// Chain is the last finished chain that ended at this resource: its
	// update was the chain's last to be ready.
	Chain *Chain `json:"chain,omitempty"`
	// Drift lists the Kubernetes objects whose live state differs from what loop
	// applied (Argo CD's OutOfSync), as group/Kind/namespace/name.
	Drift []string `json:"drift,omitempty"`
	// Links are where the resource can be reached: its links= and, as in Tilt,
	// its port forwards and Compose's published ports.
	Links []Link `json:"links,omitempty"`
}

// Link is a URL shown with a resource, with an optional name.
type Link struct {
	URL  string `json:"url"`
	Name string `json:"name,omitempty"`
}

// Version is the path prefix of this API: every endpoint lives under /v1/.
const Version = "v1"

// Snapshot is the daemon's whole state as of event Seq: a client that reads
// it and then streams events after Seq misses nothing and sees nothing twice.
type Snapshot struct {
	// Seq is the sequence number of the last event the snapshot includes.
	Seq uint64 `json:"seq"`
	// Instance identifies this daemon process; sequence numbers restart with it.
	Instance string    `json:"instance"`
	Project  string    `json:"project"`
	Tiltfile string    `json:"tiltfile"`
	Docker   string    `json:"docker,omitempty"`
	Kube     string    `json:"kube_context,omitempty"`
	Started  time.Time `json:"started"`
	// PID is the daemon's process ID.
	PID int `json:"pid,omitempty"`
	// ConfigError is the last Tiltfile load error (with path:line:col), if any.
	ConfigError string           `json:"config_error,omitempty"`
	Resources   []ResourceStatus `json:"resources"`
	// Waits are the clients' waits in progress.
	Waits []Wait `json:"waits,omitempty"`
	// Logs holds the last lines of each resource when the request asked for them.
	Logs []LogLine `json:"logs,omitempty"`
}

// LogLine is one line of a resource's output.
type LogLine struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Resource string    `json:"resource"`
	Text     string    `json:"text"`
}

// Error is the body of every non-2xx response.
type Error struct {
	Error string `json:"error"`
}

// Files in a project's state directory.
const (
	// SocketName is the daemon's unix socket.
	SocketName = "loop.sock"
	// TokenName holds the bearer token of the optional TCP listener.
	TokenName = "token"
)
