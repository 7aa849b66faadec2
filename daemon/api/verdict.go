package api

import "time"

// MaxPaths bounds Update.Paths.
const MaxPaths = 100

// DefaultVerdictLines is how many log lines a verdict shows per resource
// unless the request asks otherwise; MaxVerdictLines is the most it shows.
const (
	DefaultVerdictLines = 60
	MaxVerdictLines     = 2000
)

// WaitRequest asks the daemon to wait until every file change made before
// the request has reached its result on every resource it affects.
type WaitRequest struct {
	// Resources limits the wait to these resources; empty means all.
	Resources []string `json:"resources,omitempty"`
	// Timeout ends the wait with a timeout verdict; 0 means no limit but the
	// request's own.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Client names who waits, for the TUI ("loop wait", "mcp").
	Client string `json:"client,omitempty"`
	// Lines is how many log lines each resource's verdict carries (0: the
	// default, capped at MaxVerdictLines).
	Lines int `json:"lines,omitempty"`
}

// Result is how a wait or a change ended.
type Result string

// Results.
const (
	ResultReady   Result = "ready"   // every affected resource is ready (or idle without errors)
	ResultFailed  Result = "failed"  // a resource failed, or the Tiltfile did not load
	ResultTimeout Result = "timeout" // the wait's time ran out first
	ResultPending Result = "pending" // a change whose updates have not finished
)

// Verdict is the result of a wait or of one change, per affected resource.
type Verdict struct {
	Result Result `json:"result"`
	// Change is the latest change ID the verdict covers (see `loop changes`).
	Change uint64 `json:"change,omitempty"`
	// Failed names the first failed resource ("Tiltfile" for a load error);
	// Error is its error.
	Failed string `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
	// ConfigError is the error of a Tiltfile load the wait covered.
	ConfigError string `json:"config_error,omitempty"`
	// Started and Done bound the wait (Done: when the condition held).
	Started time.Time `json:"started"`
	Done    time.Time `json:"done"`
	// Resources are the resources the changes reached; when none was
	// reached, every resource asked about with its current state
	// (Affected false).
	Resources []ResourceVerdict `json:"resources"`
}

// ResourceVerdict is what one resource reached.
type ResourceVerdict struct {
	Name     string `json:"name"`
	Affected bool   `json:"affected"`
	Phase    Phase  `json:"phase"`
	Error    string `json:"error,omitempty"`
	// Note says why a resource settled without an update (manual trigger,
	// a dependency failed, removed by a reload).
	Note string `json:"note,omitempty"`
	// Update is the update that produced the result: kind (live, rebuild,
	// local), paths, trace (spans with durations) and times.
	Update *Update `json:"update,omitempty"`
	// Logs are the lines that update produced (build output, run steps, the
	// service's output since), at most the request's Lines: the first
	// quarter and the last lines, with a marker line between them when
	// LogsOmitted lines were left out.
	Logs        []string `json:"logs,omitempty"`
	LogsOmitted int      `json:"logs_omitted,omitempty"`
}

// Wait is a client's wait in progress, as the TUI shows it.
type Wait struct {
	ID     uint64    `json:"id"`
	Client string    `json:"client,omitempty"`
	Since  time.Time `json:"since"`
	// Resources are those it waits on (empty until the barrier has passed).
	Resources []string `json:"resources,omitempty"`
}

// ChangeSummary is one entry of `loop changes`.
type ChangeSummary struct {
	ID        uint64    `json:"id"`
	Time      time.Time `json:"time"`
	Result    Result    `json:"result"`
	Resources []string  `json:"resources"`
}
