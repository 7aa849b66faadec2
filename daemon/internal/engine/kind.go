package engine

import (
	"context"
	"io"
	"regexp"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/model"
)

// A Kind turns a loaded config into resources of one type: local_resource
// commands (package localres), Compose services (compose), Kubernetes objects
// (kube). The engine knows kinds only through this interface; the daemon
// wires the real ones, tests wire fakes.
type Kind interface {
	// Load derives the kind's resources from cfg. It runs on a loader
	// goroutine, never the engine's, and may read files (compose files,
	// manifests). On error, the Files and Sources it returns are still
	// watched so that a fix is seen.
	Load(ctx context.Context, cfg *model.Config) (Loaded, error)
}

// Loaded is what a Kind made of a config.
type Loaded struct {
	Resources []*Resource
	// Files are more files whose edit re-runs the Tiltfile (compose files,
	// .dockerignore files the definitions were read with).
	Files []string
	// Sources are files and directories the resources are rendered from
	// (Kubernetes manifests, kustomizations, charts): an edit below one
	// re-runs the Tiltfile unless the project ignores it.
	Sources []string
}

// Resource is one resource's definition as its Kind made it. The engine
// never changes it; a reload that yields the same Hash keeps the running
// resource (with the new Inputs, whose ignore files may have been re-read).
type Resource struct {
	Name     string
	Type     string // local, compose, k8s
	Deps     []string
	Trigger  model.TriggerMode
	AutoInit bool
	Labels   []string
	Links    []api.Link
	Hash     string
	// Detail describes what the kind assembled (objects, service, commands,
	// images and their live_update) as plain data, for `loop dump
	// resources`. The engine does not read it.
	Detail model.ResourceDetail
	// ReadyLog, when set, makes a matching line of the running process's
	// output the readiness signal after a process start.
	ReadyLog *regexp.Regexp
	// ProbeGated: after an update the resource is ready only once its
	// readiness probe passes (a local_resource's serve_cmd with a probe).
	ProbeGated bool
	// Immediate: changes go out without a rebuild's quiet period (a local
	// command costs what a live update costs).
	Immediate bool
	// HostCommand: an update runs a command on this machine, whose output
	// may be a change of other resources (a compile): a wait that covered
	// one looks for such changes with one more barrier.
	HostCommand bool
	Inputs      Inputs
	// Open makes the resource's runtime. The supervisor calls it before the
	// first update, and again after a disable and enable.
	Open func(h Host) Runtime
	// Remove, when set, deletes what the resource leaves behind (Kubernetes
	// objects) once it has left the config and its runtime has closed.
	// logs is the daemon's own log.
	Remove func(ctx context.Context, logs io.Writer)
}

// Inputs are the files a resource is made from: the engine routes file
// events with them and watches their roots.
type Inputs struct {
	// Deps are a local_resource's deps, filtered by DepsIgnore.
	Deps       []string
	DepsIgnore *ignore.Matcher
	// Images are the images the resource builds.
	Images []ImageInput
	// LiveUpdate is the live_update of the image whose containers are
	// updated in place; LiveIgnore is that image's context rules.
	LiveUpdate *model.LiveUpdate
	LiveIgnore *ignore.Matcher
}

// ImageInput is an image a resource builds and its context's ignore rules.
type ImageInput struct {
	Context    string
	Dockerfile string
	Ignore     *ignore.Matcher
}

// Runtime is a resource's running side for one definition: its container,
// serve command, pods, agent sessions, log streams. Only the resource's
// supervisor goroutine calls it, one call at a time.
type Runtime interface {
	// Update runs one update: the job's live update when it has one, else a
	// full update (build, start or deploy, run the command).
	Update(ctx context.Context, j Job) Outcome
	// Close stops the runtime's background work (serve commands, log
	// streams, agent sessions) and waits for it. It may take a grace
	// period; it never runs on the engine goroutine.
	Close()
}

// Host is what the engine gives a runtime: where its output goes and how it
// reports what happens between updates.
type Host struct {
	// Log is the resource's log (build output, the daemon's own lines).
	Log io.Writer
	// ProcessLog is the running process's output (container logs, serve_cmd):
	// with ready_log, a matching line makes the resource ready.
	ProcessLog io.Writer
	// Report tells the engine about a change between updates (probe
	// results, drift). It gives up when the runtime is being closed.
	Report func(Report)
	// Now is the engine's clock (an update's Ready time).
	Now func() time.Time
	// CI is set under `loop ci`: nothing is watched, so nothing is
	// prepared for live updates.
	CI bool
}

// Job is one update for a runtime.
type Job struct {
	// Changes are the changed files; nil for a full update (first start,
	// trigger, enable).
	Changes []liveupdate.Change
	// Live is the live update planned for Changes, when they can be applied
	// in place; nil means a full update.
	Live *liveupdate.Update
	// Edit and Batched are the batch's first event and its arrival.
	Edit, Batched time.Time
	// Started is when the engine started the update.
	Started time.Time
	// Config is the config in force (settings such as allowed contexts and
	// the default registry).
	Config *model.Config
	// Skip is what a synced directory's walk leaves out: what the image and
	// the project ignore.
	Skip *ignore.Matcher
	// Carried is what the previous definition of the resource left running.
	Carried Carried
}

// Carried is the state a replaced definition hands to the next one.
type Carried struct {
	ContainerID string
	Image       string
}

// Outcome is what an update did.
type Outcome struct {
	Update api.Update
	Err    error
	// Live reports whether the next changes may be live-updated: a live
	// target is connected and the last live update did not fail.
	Live bool
	// ContainerID and Image are for the resource's status; empty keeps the
	// previous values.
	ContainerID string
	Image       string
}

// Report is a runtime's news between updates.
type Report struct {
	// Probe is set when the readiness probe's view changed: Ready, or Err
	// when the process exited with an error.
	Probe bool
	Ready bool
	Err   error
	// DriftSet is set when Drift is the new list of out-of-sync objects.
	DriftSet bool
	Drift    []string
}
