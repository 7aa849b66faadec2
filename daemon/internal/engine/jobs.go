package engine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/internal/compose"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/internal/localres"
	"github.com/loop-dev/loop/daemon/model"
)

// job returns the work of one update. It captures what it needs from the
// resource now (in the engine goroutine); the returned function runs on a
// worker and hands every state change back through result.apply.
func (r *resource) job(e *Engine, b *pendingBatch) func(ctx context.Context) result {
	switch r.typ {
	case "local":
		return e.localJob(r, b)
	case "k8s":
		return e.kubeJob(r, b)
	default:
		return e.composeJob(r, b)
	}
}

func (e *Engine) localJob(r *resource, b *pendingBatch) func(ctx context.Context) result {
	name, gen := r.name, r.gen
	runner := r.runner
	if runner == nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.bgCancel = cancel
		runner = localres.New(r.local, e.resourceLog(ctx, r))
		r.runner = runner
		r.bg.Add(1)
		go func() {
			defer r.bg.Done()
			e.forwardReadiness(ctx, name, gen, runner)
		}()
	}
	kind := api.UpdateLocal
	u := api.Update{Kind: kind, Started: e.now()}
	if b != nil {
		u.Edit, u.Batched, u.Files = b.edit, b.batched, len(b.changes)
	} else {
		u.Kind = api.UpdateInit
	}
	return func(ctx context.Context) result {
		res, err := runner.Update(ctx)
		u.Spans = append(u.Spans, api.Span{Name: "cmd", Duration: res.Duration})
		if err != nil {
			u.Error = err.Error()
			return result{name: name, update: u, err: err}
		}
		u.Ready = e.now()
		return result{name: name, update: u}
	}
}

// forwardReadiness turns a runner's status changes into engine messages
// until the runner closes its channel or ctx is done.
func (e *Engine) forwardReadiness(ctx context.Context, name string, gen int, runner *localres.Runner) {
	for st := range runner.Changes() {
		m := readyMsg{name: name, gen: gen, ready: st.Ready}
		if st.Phase == localres.Exited && st.Err != nil {
			m.err = st.Err
		}
		select {
		case e.readiness <- m:
		case <-ctx.Done():
			return
		}
	}
}

func (e *Engine) composeJob(r *resource, b *pendingBatch) func(ctx context.Context) result {
	name := r.name
	u := api.Update{Kind: api.UpdateInit, Started: e.now()}
	if b != nil {
		u.Edit, u.Batched, u.Files = b.edit, b.batched, len(b.changes)
	}
	// What a synced directory's walk leaves out: what the image ignores and
	// what the watcher ignores (editor temp files, .tiltignore), whose
	// removal would never be seen.
	skip := ignore.Any(e.ignore, r.imageIgnore)
	plan := e.livePlan(r, b, skip)
	if b != nil && plan == nil {
		u.Kind = api.UpdateRebuild
	}
	logs := e.logWriter(name)
	proj, svc, img, lu := r.proj, r.svc, r.image, r.lu
	prevID, prevRef, target := r.containerID, r.ref, r.target
	first := prevID == ""
	synced := copyChanges(r.synced)
	if plan != nil {
		return e.liveJob(name, u, target, plan, b, logs)
	}

	return func(ctx context.Context) result {
		ref := svc.Image
		rebuilt := false
		if img != nil {
			t0 := time.Now()
			bres, err := e.builder.Build(ctx, img, logs)
			u.Spans = append(u.Spans, api.Span{Name: "build", Duration: time.Since(t0)})
			if err != nil {
				u.Error = err.Error()
				return result{name: name, update: u, err: fmt.Errorf("build %s: %w", img.Ref, err)}
			}
			ref = bres.Ref
			rebuilt = ref != prevRef
		}
		t0 := time.Now()
		var upOpts []compose.UpOption
		if first && lu != nil {
			// A container from an earlier run may hold live-updated files
			// the sources no longer have: start this run from the image.
			upOpts = append(upOpts, compose.ForceRecreate())
		}
		if lu != nil && (lu.Restart || len(lu.RestartOn) > 0) {
			// restart_container() then restarts the process, not the container.
			upOpts = append(upOpts, compose.Supervise(agent.Supervisor()))
		}
		id, err := e.compose.Up(ctx, proj, svc.Name, ref, func(ctx context.Context, id string) error {
			if err := agent.Install(ctx, e.opts.Docker, id); err != nil {
				if agent.Supervises(ctx, e.opts.Docker, id) {
					return fmt.Errorf("install the sync agent, which runs the service's process for restart_container(): %w", err)
				}
				// Live updates fall back to archive copies; say so once.
				fmt.Fprintf(logs, "sync agent not installed (live updates will use the slower archive copy): %v\n", err)
			}
			return nil
		}, upOpts...)
		if err != nil {
			u.Spans = append(u.Spans, api.Span{Name: "deploy", Duration: time.Since(t0)})
			u.Error = err.Error()
			return result{name: name, update: u, err: fmt.Errorf("start %s: %w", svc.Name, err)}
		}
		if err := e.compose.WaitReady(ctx, id); err != nil {
			u.Spans = append(u.Spans, api.Span{Name: "deploy", Duration: time.Since(t0)})
			u.Error = err.Error()
			return result{name: name, update: u, err: fmt.Errorf("wait for %s: %w", svc.Name, err), apply: func(r *resource) {
				r.containerID = id
			}}
		}
		u.Spans = append(u.Spans, api.Span{Name: "deploy", Duration: time.Since(t0)})

		newTarget := target
		if id != prevID || newTarget == nil {
			if newTarget != nil {
				newTarget.Close()
			}
			newTarget = liveupdate.NewDockerTarget(e.opts.Docker, id)
			// Start the agent now so the first save does not pay for it.
			if err := newTarget.Connect(ctx); err != nil {
				fmt.Fprintf(logs, "sync agent: %v (live updates will use archive copies)\n", err)
			}
			if err := e.replay(ctx, newTarget, lu, skip, synced, rebuilt, logs, &u); err != nil {
				fmt.Fprintf(logs, "sync files into the new container: %v\n", err)
			}
		}
		u.Ready = e.now()
		return result{name: name, update: u, apply: func(r *resource) {
			r.ref = ref
			r.liveFailed = false
			if rebuilt {
				r.synced = nil
			}
			if r.target != nil && r.target != newTarget {
				r.target.Close()
			}
			r.target = newTarget
			if id != r.containerID || r.bgCancel == nil {
				e.followLogs(r, id, time.Time{})
			}
			r.containerID = id
		}}
	}
}

// liveTarget is where a resource's live updates go: a container, or the
// containers of its pods that run the image.
type liveTarget interface {
	liveupdate.Target
	// Connect starts the sync agent now, off the change path.
	Connect(ctx context.Context) error
	Close()
}

// livePlan decides, from the engine's state, whether the batch can be
// live-updated: the plan, or nil for a rebuild (whose reason is logged).
func (e *Engine) livePlan(r *resource, b *pendingBatch, skip *ignore.Matcher) *liveupdate.Update {
	if b == nil || r.lu == nil || r.liveFailed || r.target == nil {
		return nil
	}
	d, err := liveupdate.Plan(r.lu, b.changes)
	if err == nil && d.FallBack == nil && d.Update != nil {
		d.Update.Skip = skip.Ignored
		return d.Update
	}
	if err == nil && d.FallBack != nil {
		e.emit(api.Event{Kind: api.EventLog, Resource: r.name, Text: fmt.Sprintf("rebuild: %s: %s", d.FallBack.Path, d.FallBack.Reason)})
	}
	return nil
}

// liveJob applies a live update plan to the resource's running target. A failed
// one makes the next update a rebuild.
func (e *Engine) liveJob(name string, u api.Update, target liveTarget, plan *liveupdate.Update, b *pendingBatch, logs io.Writer) func(ctx context.Context) result {
	u.Kind = api.UpdateLive
	return func(ctx context.Context) result {
		res, err := liveupdate.Apply(ctx, target, *plan, logs)
		u.Spans = append(u.Spans, liveSpans(res, len(plan.Runs))...)
		if err != nil {
			u.Error = err.Error()
			return result{name: name, update: u, err: fmt.Errorf("live update: %w", err), apply: func(r *resource) {
				r.liveFailed = true
			}}
		}
		u.Ready = e.now()
		return result{name: name, update: u, apply: func(r *resource) {
			if r.synced == nil {
				r.synced = map[string]liveupdate.Change{}
			}
			for _, c := range b.changes {
				r.synced[c.Path] = c
			}
		}}
	}
}

// followLogs streams a container's output into the resource's log, from
// since, and again after each restart of the container (from the moment
// the previous stream ended, so nothing is shown twice). The stream is
// owned by the resource and ends with stop().
func (e *Engine) followLogs(r *resource, id string, since time.Time) {
	if r.bgCancel != nil {
		r.bgCancel()
		r.bg.Wait()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.bgCancel = cancel
	logs := e.resourceLog(ctx, r)
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		for {
			err := e.compose.Logs(ctx, id, since, logs)
			since = time.Now()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fmt.Fprintf(logs, "log stream ended: %v\n", err)
				return
			}
			// The container stopped: follow again once it runs (a restart).
			if !e.waitRunning(ctx, id) {
				return
			}
		}
	}()
}

// waitRunning polls until the container runs again; false when ctx is done
// or the container is gone.
func (e *Engine) waitRunning(ctx context.Context, id string) bool {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		insp, err := e.opts.Docker.ContainerInspect(ctx, id)
		if err != nil {
			return false
		}
		if insp.State != nil && insp.State.Running {
			return true
		}
	}
}

// replay brings a new container up to date: the files live-updated since
// its image was built (when the image was not rebuilt) and, with
// initial_sync(), every synced file.
func (e *Engine) replay(ctx context.Context, t liveupdate.Target, lu *model.LiveUpdate, ign *ignore.Matcher,
	synced map[string]liveupdate.Change, rebuilt bool, logs io.Writer, u *api.Update) error {
	if lu == nil {
		return nil
	}
	var changes []liveupdate.Change
	if !rebuilt {
		for _, c := range synced {
			changes = append(changes, c)
		}
	}
	if lu.InitialSync {
		var skip func(string, bool) bool
		if ign != nil {
			skip = ign.Ignored
		}
		all, err := liveupdate.InitialSync(lu, skip)
		if err != nil {
			return err
		}
		changes = append(changes, all...)
	}
	if len(changes) == 0 {
		return nil
	}
	d, err := liveupdate.Plan(lu, changes)
	if err != nil || d.Update == nil {
		return err
	}
	// Runs and restarts belong to edits, not to bringing a container up to date.
	up := *d.Update
	up.Runs, up.Restart = nil, false
	if ign != nil {
		up.Skip = ign.Ignored
	}
	res, err := liveupdate.Apply(ctx, t, up, logs)
	u.Spans = append(u.Spans, liveSpans(res, 0)...)
	return err
}

func liveSpans(res liveupdate.Result, runs int) []api.Span {
	var out []api.Span
	if res.Sync > 0 {
		out = append(out, api.Span{Name: "sync", Duration: res.Sync})
	}
	if runs > 0 {
		out = append(out, api.Span{Name: "run", Duration: res.Run})
	}
	if res.Restart > 0 {
		out = append(out, api.Span{Name: "restart", Duration: res.Restart})
	}
	return out
}

func copyChanges(m map[string]liveupdate.Change) map[string]liveupdate.Change {
	out := make(map[string]liveupdate.Change, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
