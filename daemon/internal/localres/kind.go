package localres

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/engine"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/model"
)

// Kind makes the engine's resources of the config's local_resource calls.
type Kind struct {
	// Options adjust every Runner (tests shorten the grace period).
	Options []Option
}

// Load makes one resource per local_resource.
func (k Kind) Load(_ context.Context, cfg *model.Config) (engine.Loaded, error) {
	var out engine.Loaded
	dir := filepath.Dir(cfg.Tiltfile)
	for _, lr := range cfg.LocalResources {
		var ign *ignore.Matcher
		if len(lr.Ignore) > 0 {
			m, err := ignore.FromPatterns(dir, lr.Ignore)
			if err != nil {
				return out, fmt.Errorf("local_resource %q ignore: %w", lr.Name, err)
			}
			ign = m
		}
		tm := lr.TriggerMode
		if tm == "" {
			tm = engine.DefaultTrigger(cfg)
		}
		r := &engine.Resource{
			Name: lr.Name, Type: "local", Deps: lr.ResourceDeps, Trigger: tm, AutoInit: lr.AutoInit,
			Labels: lr.Labels, Links: engine.Links(lr.Links), Hash: engine.Hash("local", lr),
			ProbeGated:  lr.ReadinessProbe != nil && !lr.ServeCmd.Empty(),
			Immediate:   true,
			HostCommand: !lr.Cmd.Empty(),
			Inputs:      engine.Inputs{Deps: lr.Deps, DepsIgnore: ign},
			Detail: model.ResourceDetail{Local: &model.LocalRef{
				Cmd: lr.Cmd.Argv, ServeCmd: lr.ServeCmd.Argv, Dir: lr.Dir, Deps: lr.Deps}},
		}
		if lr.ReadyLog != "" {
			re, err := regexp.Compile(lr.ReadyLog)
			if err != nil {
				return out, fmt.Errorf("local_resource %q ready_log: %w", lr.Name, err)
			}
			r.ReadyLog = re
		}
		r.Open = func(h engine.Host) engine.Runtime { return k.open(lr, h) }
		out.Resources = append(out.Resources, r)
	}
	return out, nil
}

// runtime is a local_resource's runner and the goroutine that forwards its
// readiness to the engine.
type runtime struct {
	runner *Runner
	now    func() time.Time
	done   chan struct{}
}

func (k Kind) open(lr *model.LocalResource, h engine.Host) *runtime {
	rt := &runtime{runner: New(lr, h.ProcessLog, k.Options...), now: h.Now, done: make(chan struct{})}
	// Ends when Close closes the runner's Changes.
	go func() {
		defer close(rt.done)
		for st := range rt.runner.Changes() {
			rep := engine.Report{Probe: true, Ready: st.Ready}
			if st.Phase == Exited && st.Err != nil {
				rep.Err = st.Err
			}
			h.Report(rep)
		}
	}()
	return rt
}

// Update runs cmd and (re)starts serve_cmd.
func (rt *runtime) Update(ctx context.Context, j engine.Job) engine.Outcome {
	u := api.Update{Kind: api.UpdateLocal, Started: j.Started, Edit: j.Edit, Batched: j.Batched, Files: len(j.Changes)}
	if j.Changes == nil {
		u.Kind = api.UpdateInit
	}
	res, err := rt.runner.Update(ctx)
	u.Spans = append(u.Spans, api.Span{Name: api.SpanCmd, Duration: res.Duration})
	if err != nil {
		u.Error = err.Error()
		return engine.Outcome{Update: u, Err: err}
	}
	u.Ready = rt.now()
	return engine.Outcome{Update: u}
}

// Close stops serve_cmd (SIGTERM, SIGKILL after the grace period) and the
// readiness forwarding.
func (rt *runtime) Close() {
	_ = rt.runner.Close()
	<-rt.done
}
