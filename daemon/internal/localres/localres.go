// Package localres runs local_resource: its cmd (the resource's "build", run
// once per update) and its serve_cmd (a long-running process, supervised and
// restarted on each successful update), with the readiness probe of the
// serve_cmd, and reports the resource's status to the engine.
//
// Every command runs in a process group of its own. When a command's leader
// exits, whatever is left of its group is killed, and stopping a command
// sends SIGTERM to its group, then SIGKILL after a grace period: nothing a
// resource starts outlives it (a process that calls setsid itself escapes).
//
// Not here, by design:
//   - allow_parallel, resource_deps, trigger modes and deps watching are the
//     engine's concern: it decides when to call Update, and whether updates of
//     different resources overlap. Updates of one Runner are serialised.
//   - the serve_cmd is not restarted when it exits on its own (Tilt does not
//     either); the status says Exited and the next Update starts it again.
//   - a failing cmd leaves the previous serve_cmd running, serving the last
//     good build.
//   - Windows variants (cmd_bat, serve_cmd_bat) are not supported: commands
//     need Unix process groups, and on other systems Update fails.
package localres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/loop-dev/loop/daemon/internal/probe"
	"github.com/loop-dev/loop/daemon/model"
)

// DefaultGracePeriod is how long a stopped command has between SIGTERM and
// SIGKILL.
const DefaultGracePeriod = 5 * time.Second

// changesBuffer is how many statuses wait for a slow reader of Changes before
// the oldest are dropped.
const changesBuffer = 64

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("local resource runner closed")

// Phase is what a local resource is doing.
type Phase string

// Phases of a local resource.
const (
	// Idle: nothing has run yet.
	Idle Phase = "idle"
	// Running: cmd is running.
	Running Phase = "running"
	// Serving: serve_cmd runs but its readiness probe has not passed
	// (or has stopped passing).
	Serving Phase = "serving"
	// Ready: serve_cmd runs and is ready, or, with no serve_cmd, the
	// last cmd succeeded.
	Ready Phase = "ready"
	// Failed: cmd failed, or serve_cmd could not be started.
	Failed Phase = "failed"
	// Exited: serve_cmd exited on its own.
	Exited Phase = "exited"
)

// Status is the whole current state of a resource; each value sent on
// Changes replaces the previous one.
type Status struct {
	Phase Phase
	// Err is why the resource failed, exited, or is not ready.
	Err error
	// ExitCode is the failed cmd's or exited serve_cmd's code (-1 for a
	// signal); 0 otherwise.
	ExitCode int
	// Ready is whether serve_cmd runs and its probe (if any) passes; with no
	// serve_cmd, whether the last cmd succeeded. A failing cmd does not
	// change the readiness of a serve_cmd that keeps running. As in Tilt,
	// readiness_probe applies to serve_cmd only.
	Ready bool
	// PID is the serve_cmd's process id while it runs, else 0.
	PID int
	At  time.Time
}

// ExitError is a command that ended unsuccessfully.
type ExitError struct {
	// Which is "cmd" or "serve_cmd".
	Which string
	// Cmd is the command line as the user wrote it.
	Cmd string
	// Code is the exit code, -1 when a signal ended the command.
	Code int
	// Signal names the signal that ended the command, if one did.
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("%s %q: killed by signal %s", e.Which, e.Cmd, e.Signal)
	}
	return fmt.Sprintf("%s %q: exit code %d", e.Which, e.Cmd, e.Code)
}

// UpdateResult is what one Update did.
type UpdateResult struct {
	// Duration is how long cmd ran; zero without a cmd.
	Duration time.Duration
	// ServePID is the process id of the serve_cmd this update started, 0 if
	// it started none.
	ServePID int
}

// Option adjusts a Runner.
type Option func(*Runner)

// WithGracePeriod sets the time between SIGTERM and SIGKILL when a command
// is stopped (DefaultGracePeriod otherwise).
func WithGracePeriod(d time.Duration) Option {
	return func(r *Runner) { r.grace = d }
}

// Runner runs one local_resource. Its methods are safe for concurrent use.
type Runner struct {
	res   *model.LocalResource
	logs  *lineWriter
	grace time.Duration

	// ctx is cancelled by Close, which stops an in-flight cmd.
	ctx    context.Context
	cancel context.CancelFunc

	// updateMu serialises Update, and Close against it.
	updateMu  sync.Mutex
	closeOnce sync.Once
	wg        sync.WaitGroup // supervisors of serve instances

	mu       sync.Mutex // guards the fields below
	status   Status
	serve    *serveInstance
	closed   bool
	changes  chan Status
	chClosed bool
}

// serveInstance is one run of serve_cmd and its supervising goroutine.
type serveInstance struct {
	proc   *proc
	cancel context.CancelFunc // stops the probe
	done   chan struct{}      // closed when the supervisor has returned
	// stopping is set (under Runner.mu) when the runner stops the instance
	// itself, so its exit is not reported as Exited.
	stopping bool
}

// New returns a runner for r. logs receives every output line of cmd and
// serve_cmd, stdout and stderr, each write one whole line ending in a
// newline (lines longer than 64 KiB arrive in pieces); writes are never
// concurrent. A nil logs discards output. Nothing runs until Update.
func New(r *model.LocalResource, logs io.Writer, opts ...Option) *Runner {
	if logs == nil {
		logs = io.Discard
	}
	ctx, cancel := context.WithCancel(context.Background())
	rn := &Runner{
		res:     r,
		logs:    &lineWriter{w: logs},
		grace:   DefaultGracePeriod,
		ctx:     ctx,
		cancel:  cancel,
		status:  Status{Phase: Idle, At: time.Now()},
		changes: make(chan Status, changesBuffer),
	}
	for _, o := range opts {
		o(rn)
	}
	return rn
}

// Changes returns the status changes. Each value is the full status; when
// the reader falls behind by more than a buffer's worth, the oldest values
// are dropped, never the newest. The channel is closed by Close.
func (r *Runner) Changes() <-chan Status { return r.changes }

// Status returns the current status.
func (r *Runner) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Ready reports whether serve_cmd runs and its readiness probe (if any)
// passes; with no serve_cmd, whether the last cmd succeeded.
func (r *Runner) Ready() bool { return r.Status().Ready }

// Update runs cmd once, in r.Dir with r.Env added to the daemon's
// environment, then, if there is a serve_cmd and cmd succeeded (or there is
// no cmd), stops the previous serve_cmd and starts it anew in serve_dir with
// serve_env. A failing cmd returns an *ExitError naming it and its code.
// Cancelling ctx stops a running cmd (its process group, gracefully) and
// returns ctx's error; a started serve_cmd lives until the next Update or
// Close, not ctx. Concurrent calls run one after another. After Close it
// returns ErrClosed.
func (r *Runner) Update(ctx context.Context) (UpdateResult, error) {
	r.updateMu.Lock()
	defer r.updateMu.Unlock()
	var res UpdateResult
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return res, ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(r.ctx, cancel)()

	if !r.res.Cmd.Empty() {
		r.update(func(s *Status) { s.Phase, s.Err, s.ExitCode = Running, nil, 0 })
		start := time.Now()
		err := r.runCmd(ctx)
		res.Duration = time.Since(start)
		if err != nil {
			r.update(func(s *Status) {
				s.Phase, s.Err, s.ExitCode = Failed, err, -1
				var exitErr *ExitError
				if errors.As(err, &exitErr) {
					s.ExitCode = exitErr.Code
				}
				if r.res.ServeCmd.Empty() {
					s.Ready = false
				}
			})
			return res, err
		}
	}
	if r.res.ServeCmd.Empty() {
		r.update(func(s *Status) { *s = Status{Phase: Ready, Ready: true} })
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		err = fmt.Errorf("start serve_cmd %q: %w", cmdString(r.res.ServeCmd), err)
		r.update(func(s *Status) { s.Phase, s.Err, s.ExitCode = Failed, err, -1 })
		return res, err
	}
	pid, err := r.restartServe()
	res.ServePID = pid
	return res, err
}

// runCmd runs cmd to its end, or stops it when ctx is done.
func (r *Runner) runCmd(ctx context.Context) error {
	name := cmdString(r.res.Cmd)
	p, err := start(r.res.Cmd.Argv, r.res.Dir, environ(r.res.Env), r.logs)
	if err != nil {
		return fmt.Errorf("start cmd %q: %w", name, err)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		p.stop(r.grace)
		return fmt.Errorf("run cmd %q: %w", name, ctx.Err())
	}
	if code, sig := p.exit(); code != 0 {
		return &ExitError{Which: "cmd", Cmd: name, Code: code, Signal: sig}
	}
	return nil
}

// restartServe stops the running serve_cmd, if any, and starts a new one
// with its supervisor.
func (r *Runner) restartServe() (int, error) {
	r.mu.Lock()
	old := r.serve
	r.serve = nil
	if old != nil {
		old.stopping = true
	}
	r.mu.Unlock()
	if old != nil {
		old.stop(r.grace)
	}

	dir := r.res.ServeDir
	if dir == "" {
		dir = r.res.Dir
	}
	p, err := start(r.res.ServeCmd.Argv, dir, environ(r.res.ServeEnv), r.logs)
	if err != nil {
		err = fmt.Errorf("start serve_cmd %q: %w", cmdString(r.res.ServeCmd), err)
		r.update(func(s *Status) { *s = Status{Phase: Failed, Err: err, ExitCode: -1} })
		return 0, err
	}
	ctx, cancel := context.WithCancel(r.ctx)
	inst := &serveInstance{proc: p, cancel: cancel, done: make(chan struct{})}
	var results <-chan probe.Result
	if pr := r.res.ReadinessProbe; pr != nil {
		results = probe.Watch(ctx, pr, dir, environ(r.res.ServeEnv))
	}
	r.mu.Lock()
	r.serve = inst
	phase := Serving
	if results == nil {
		phase = Ready
	}
	r.setLocked(Status{Phase: phase, Ready: results == nil, PID: p.pid})
	r.mu.Unlock()

	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.supervise(inst, results)
	}()
	return p.pid, nil
}

// supervise follows one serve instance: probe results while it runs, and
// its exit. It returns once the process is gone and the probe has stopped.
func (r *Runner) supervise(inst *serveInstance, results <-chan probe.Result) {
	defer close(inst.done)
	for {
		select {
		case <-inst.proc.done:
			inst.cancel()
			if results != nil {
				for range results { // wait for the probe goroutine to end
				}
			}
			r.serveExited(inst)
			return
		case res, ok := <-results:
			if !ok {
				results = nil
				continue
			}
			r.mu.Lock()
			if r.serve == inst && !inst.stopping {
				phase := Serving
				if res.Ready {
					phase = Ready
				}
				r.setLocked(Status{Phase: phase, Ready: res.Ready, Err: res.Err, PID: inst.proc.pid})
			}
			r.mu.Unlock()
		}
	}
}

func (r *Runner) serveExited(inst *serveInstance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if inst.stopping || r.serve != inst {
		return
	}
	r.serve = nil
	code, sig := inst.proc.exit()
	err := &ExitError{Which: "serve_cmd", Cmd: cmdString(r.res.ServeCmd), Code: code, Signal: sig}
	r.setLocked(Status{Phase: Exited, Err: err, ExitCode: code})
}

// stop ends the instance's process group and waits for its supervisor.
func (inst *serveInstance) stop(grace time.Duration) {
	inst.cancel()
	inst.proc.stop(grace)
	<-inst.done
}

// Close stops a running cmd and the serve_cmd (their process groups,
// SIGTERM then SIGKILL after the grace period), waits for every goroutine of
// the runner, and closes Changes. Later calls do nothing and return nil.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.cancel()
		// Wait out an in-flight Update: it sees r.ctx cancelled.
		r.updateMu.Lock()
		defer r.updateMu.Unlock()
		r.mu.Lock()
		inst := r.serve
		r.serve = nil
		if inst != nil {
			inst.stopping = true
		}
		r.mu.Unlock()
		if inst != nil {
			inst.stop(r.grace)
		}
		r.wg.Wait()
		r.mu.Lock()
		r.chClosed = true
		close(r.changes)
		r.mu.Unlock()
	})
	return nil
}

// update edits the current status and publishes it.
func (r *Runner) update(edit func(*Status)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	edit(&s)
	r.setLocked(s)
}

// setLocked replaces the status and publishes it without blocking, dropping
// the oldest queued value if the reader is behind. The caller holds r.mu, so
// this is the only sender.
func (r *Runner) setLocked(s Status) {
	s.At = time.Now()
	r.status = s
	if r.chClosed {
		return
	}
	for {
		select {
		case r.changes <- s:
			return
		default:
		}
		select {
		case <-r.changes:
		default:
		}
	}
}

// environ is the daemon's environment with extra added (sorted, so runs are
// reproducible); os/exec lets the last value of a duplicated key win.
func environ(extra map[string]string) []string {
	env := os.Environ()
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+extra[k])
	}
	return env
}

// cmdString is the command as the user wrote it, for messages.
func cmdString(c model.Cmd) string {
	if c.Shell && len(c.Argv) == 3 {
		return c.Argv[2]
	}
	return strings.Join(c.Argv, " ")
}
