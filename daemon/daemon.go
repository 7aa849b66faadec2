// Package daemon wires one project together: the Tiltfile loader, the Docker
// engine connection and the engine that runs the resources. Commands in
// cmd/loop call it; clients see only daemon/api types.
package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/compose"
	"github.com/loop-dev/loop/daemon/internal/engine"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

// ErrResourceFailed is wrapped by CI's error when a resource failed.
var ErrResourceFailed = engine.ErrResourceFailed

// Options say which project to run and where its events go.
type Options struct {
	// Tiltfile is the path of the main Tiltfile.
	Tiltfile string
	// Args are the arguments after `--`, for config.parse.
	Args []string
	// ExtensionsDir is where load('ext://...') resolves; empty means the default.
	ExtensionsDir string
	// Only limits the run to these resources and their resource_deps.
	Only []string
	// Sink receives every event. It must not block for long.
	Sink func(api.Event)
}

func (o Options) loader(sub string) engine.Loader {
	return func(ctx context.Context) (*model.Config, error) {
		return tiltfile.Load(ctx, o.Tiltfile, tiltfile.Options{
			Args: o.Args, ExtensionsDir: o.ExtensionsDir, Subcommand: sub,
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

// Up runs the project until ctx is done: builds, starts, watches and
// updates on every change.
func Up(ctx context.Context, o Options) error {
	return run(ctx, o, engine.ModeUp, "up")
}

// CI brings every resource up once and returns nil when all are ready, or
// the first failure (wrapping engine.ErrResourceFailed).
func CI(ctx context.Context, o Options) error {
	return run(ctx, o, engine.ModeCI, "ci")
}

func run(ctx context.Context, o Options, mode engine.Mode, sub string) error {
	abs, err := filepath.Abs(o.Tiltfile)
	if err != nil {
		return fmt.Errorf("find tiltfile: %w", err)
	}
	o.Tiltfile = abs
	cli, err := Docker(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	e := engine.New(engine.Options{
		Mode: mode, Load: o.loader(sub), Docker: cli, Only: o.Only, Sink: o.Sink, Env: os.Environ(),
	})
	return e.Run(ctx)
}

// Down removes what Up created for the project's Compose projects:
// containers and networks, and named volumes when volumes is true.
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
	return nil
}
