// Package daemon wires one project together: the Tiltfile loader, the Docker
// engine connection and the engine that runs the resources. Commands in
// cmd/loop call it; clients see only daemon/api types.
package daemon

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/internal/compose"
	"github.com/loop-dev/loop/daemon/internal/engine"
	"github.com/loop-dev/loop/daemon/internal/kube"
	"github.com/loop-dev/loop/daemon/internal/localres"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/daemon/statedir"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

// ErrResourceFailed is wrapped by CI's error when a resource failed.
var ErrResourceFailed = engine.ErrResourceFailed

// ErrCITimeout is wrapped by CI's error when the run, or one resource after
// its update, was not ready in time (CITimeout, ci_settings).
var ErrCITimeout = engine.ErrCITimeout

// Options say which project to run and where its events go.
type Options struct {
	// Tiltfile is the path of the main Tiltfile.
	Tiltfile string
	// Args are the arguments after `--`, for config.parse.
	Args []string
	// ExtensionsDir is where load('ext://...') resolves; empty means the default.
	ExtensionsDir string
	// NoBuiltinExtensions loads the Starlark extensions from the extensions
	// directory in place of loop's built-in ones (restart_process,
	// helm_resource, helm_remote).
	NoBuiltinExtensions bool
	// Only limits the run to these resources and their resource_deps.
	Only []string
	// Sink receives every event. It must not block for long.
	Sink func(api.Event)
	// CITimeout bounds a CI run (loop ci --timeout); the Tiltfile's
	// ci_settings(timeout=) takes its place. Zero: no bound.
	CITimeout time.Duration
	// TiltfileOutput receives the Tiltfile's print(), warn() and local()
	// echo on each load; nil means stderr.
	TiltfileOutput io.Writer
}

func (o Options) loader(sub string) engine.Loader {
	return func(ctx context.Context) (*model.Config, error) {
		return tiltfile.Load(ctx, o.Tiltfile, tiltfile.Options{
			Args: o.Args, ExtensionsDir: o.ExtensionsDir, NoBuiltinExtensions: o.NoBuiltinExtensions, Subcommand: sub,
			Output: o.TiltfileOutput,
		})
	}
}

// Docker connects to the Docker engine from the environment (DOCKER_HOST
// and friends), negotiating the API version, and checks that it answers.
func Docker(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("connect to docker: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("connect to docker at %s: %w", cli.DaemonHost(), err)
	}
	return cli, nil
}

// Daemon runs one project. Create it with New, call Run once; Trigger and
// SetEnabled may be called from any goroutine while Run runs.
type Daemon struct {
	o     Options
	mode  engine.Mode
	eng   *engine.Engine
	ready chan struct{}
	// timing is set by Run before ready closes.
	timing *metrics.Store
}

// New returns a daemon for the project; nothing runs until Run.
func New(o Options) *Daemon {
	return &Daemon{o: o, mode: engine.ModeUp, ready: make(chan struct{})}
}

// Up runs the project until ctx is done: builds, starts, watches and
// updates on every change.
func Up(ctx context.Context, o Options) error {
	return New(o).Run(ctx)
}

// CI brings every resource up once and returns nil when all are ready, or
// the first failure (wrapping ErrResourceFailed).
func CI(ctx context.Context, o Options) error {
	d := New(o)
	d.mode = engine.ModeCI
	return d.Run(ctx)
}

// Run connects to Docker and runs the engine until ctx is done (or, for CI,
// until every resource is ready or one failed).
func (d *Daemon) Run(ctx context.Context) error {
	sub := "up"
	if d.mode == engine.ModeCI {
		sub = "ci"
	}
	abs, err := filepath.Abs(d.o.Tiltfile)
	if err != nil {
		close(d.ready)
		return fmt.Errorf("find tiltfile: %w", err)
	}
	d.o.Tiltfile = abs
	// Timing history goes to the state directory; without one, memory only.
	stateDir, _ := statedir.For(abs)
	d.timing = metrics.Open(metrics.Options{Dir: stateDir})
	defer d.timing.Close()
	sink := func(ev api.Event) {
		d.timing.Observe(ev)
		if d.o.Sink != nil {
			d.o.Sink(ev)
		}
	}
	cli, err := Docker(ctx)
	if err != nil {
		close(d.ready)
		return err
	}
	defer cli.Close()
	// Inside a container of the same engine, bind mounts need host paths.
	var mapPath func(string) string
	if m := d.hostPaths(ctx, cli); m != nil && m.Active() {
		mapPath = m.ToHost
	}
	env := os.Environ()
	ks := kinds(cli, env, mapPath)
	d.eng = engine.New(engine.Options{
		Mode: d.mode, Load: d.o.loader(sub), Only: d.o.Only, Sink: sink, Env: env, CITimeout: d.o.CITimeout,
		Kinds: ks,
	})
	close(d.ready)
	err = d.eng.Run(ctx)
	// The runtimes are closed: what the kinds share between them goes too.
	for _, k := range ks {
		if c, ok := k.(interface{ Close() }); ok {
			c.Close()
		}
	}
	return err
}

// kinds are the kinds of resources a project has, in the order the engine
// loads them. cli may be nil for Load alone.
func kinds(cli *client.Client, env []string, mapPath func(string) string) []engine.Kind {
	b := build.New(cli) // one builder for every kind's images
	return []engine.Kind{localres.Kind{}, compose.NewKind(cli, b, env, mapPath), kube.NewKind(cli, b)}
}

// Resources assembles cfg into the resources `loop up` would run, as the
// engine loads them, without Docker or a cluster: compose files are read,
// Kubernetes manifests rendered and grouped by workload, the live_update of
// every deployed image checked. Like the engine it refuses a name declared
// twice and resource_deps that name no resource.
func Resources(ctx context.Context, cfg *model.Config) ([]model.Resource, error) {
	var out []model.Resource
	names := map[string]bool{}
	for _, k := range kinds(nil, os.Environ(), nil) {
		l, err := k.Load(ctx, cfg)
		if err != nil {
			return nil, err
		}
		for _, r := range l.Resources {
			if names[r.Name] {
				return nil, fmt.Errorf("assemble resources: resource %q is declared twice", r.Name)
			}
			names[r.Name] = true
			m := model.Resource{Name: r.Name, Type: r.Type, ResourceDetail: r.Detail,
				ResourceDeps: r.Deps, Labels: r.Labels, TriggerMode: r.Trigger, AutoInit: r.AutoInit}
			for _, l := range r.Links {
				m.Links = append(m.Links, model.Link{URL: l.URL, Name: l.Name})
			}
			out = append(out, m)
		}
	}
	for _, r := range out {
		for _, d := range r.ResourceDeps {
			if !names[d] {
				return nil, fmt.Errorf("assemble resources: resource %q: resource_deps names %q, which is not a resource", r.Name, d)
			}
		}
	}
	return out, nil
}

// Metrics returns the project's change-to-result timing (its Handler and
// PrometheusHandler serve /v1/metrics and /metrics). It is nil until Run
// has set the project up; safe to call from any goroutine.
func (d *Daemon) Metrics() *metrics.Store {
	select {
	case <-d.ready:
		return d.timing
	default:
		return nil
	}
}

func (d *Daemon) engine(ctx context.Context) (*engine.Engine, error) {
	select {
	case <-d.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if d.eng == nil {
		return nil, engine.ErrNotRunning
	}
	return d.eng, nil
}

// Trigger updates a resource now (its pending changes, or a full update).
func (d *Daemon) Trigger(ctx context.Context, name string) error {
	e, err := d.engine(ctx)
	if err != nil {
		return err
	}
	return e.Trigger(ctx, name)
}

// SetEnabled enables or disables a resource.
func (d *Daemon) SetEnabled(ctx context.Context, name string, on bool) error {
	e, err := d.engine(ctx)
	if err != nil {
		return err
	}
	return e.SetEnabled(ctx, name, on)
}

// Wait returns once every file change made before the call has reached its
// result on every resource it affects (see engine.Engine.Wait).
func (d *Daemon) Wait(ctx context.Context, req api.WaitRequest) (api.Verdict, error) {
	e, err := d.engine(ctx)
	if err != nil {
		return api.Verdict{}, err
	}
	return e.Wait(ctx, req)
}

// ErrUnknownResource is returned by Trigger and SetEnabled for a name the
// config does not declare.
var ErrUnknownResource = engine.ErrUnknownResource

// Down removes what Up created for the project's Compose projects:
// containers and networks, and named volumes when volumes is true; the
// objects applied for its Kubernetes resources; and runs the delete_cmd of
// each k8s_custom_deploy.
func Down(ctx context.Context, o Options, volumes bool) error {
	abs, err := filepath.Abs(o.Tiltfile)
	if err != nil {
		return fmt.Errorf("find tiltfile: %w", err)
	}
	o.Tiltfile = abs
	cfg, err := o.loader("down")(ctx)
	if err != nil {
		return err
	}
	cli, err := Docker(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctl := compose.New(cli)
	for _, cp := range cfg.Compose {
		proj, err := compose.Load(ctx, cp, os.Environ())
		if err != nil {
			return err
		}
		if err := ctl.Down(ctx, proj.Name, volumes); err != nil {
			return fmt.Errorf("down %s: %w", proj.Name, err)
		}
		if o.Sink != nil {
			o.Sink(api.Event{Time: time.Now(), Kind: api.EventLog, Resource: proj.Name, Text: "removed"})
		}
	}
	if len(cfg.K8sSources) == 0 && len(cfg.CustomDeploys) == 0 {
		return nil
	}
	groups, err := kube.Render(ctx, cfg)
	if err != nil {
		return err
	}
	if len(groups) == 0 {
		return nil // e.g. a helm() render the Tiltfile only read
	}
	k, err := kube.Connect(cfg.Settings.AllowedK8sContexts, nil)
	if err != nil {
		return err
	}
	for _, g := range groups {
		if g.Custom != nil {
			if err := kube.DeleteCustom(ctx, g.Custom, o.logWriter(g.Name)); err != nil {
				return fmt.Errorf("down %s: %w", g.Name, err)
			}
			continue
		}
		var pol kube.AppPolicy
		if g.App != nil {
			pol.Sync = g.App.Sync
		}
		deleted, err := k.Remove(ctx, g.Name, pol)
		for _, key := range deleted {
			if o.Sink != nil {
				o.Sink(api.Event{Time: time.Now(), Kind: api.EventLog, Resource: g.Name, Text: "deleted " + key})
			}
		}
		if err != nil {
			return fmt.Errorf("down %s: %w", g.Name, err)
		}
		if g.Release != nil {
			if err := k.UninstallRelease(ctx, g.Release); err != nil {
				return fmt.Errorf("down %s: %w", g.Name, err)
			}
			if o.Sink != nil {
				o.Sink(api.Event{Time: time.Now(), Kind: api.EventLog, Resource: g.Name, Text: "uninstalled Helm release " + g.Release.Name})
			}
		}
	}
	return nil
}

// logWriter sends each line written to it to the Sink as a log of resource.
func (o Options) logWriter(resource string) io.Writer {
	return lineWriter(func(line string) {
		if o.Sink != nil {
			o.Sink(api.Event{Time: time.Now(), Kind: api.EventLog, Resource: resource, Text: line})
		}
	})
}

type lineWriter func(string)

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w(l)
	}
	return len(p), nil
}
