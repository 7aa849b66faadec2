package compose

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/internal/engine"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/model"
)

// Kind makes the engine's resources of the config's docker_compose projects:
// one per service, built with docker_build's image when one names the
// service's image, live-updated through loop's sync agent.
type Kind struct {
	Docker  *client.Client
	Builder *build.Builder
	Ctl     *Controller
	// Env is the environment for the compose files' interpolation.
	Env []string
}

// NewKind returns the Compose kind on one Docker engine, building with b
// (shared with the other kinds). mapPath turns a local path into the
// engine's for bind mounts (nil: identity).
func NewKind(cli *client.Client, b *build.Builder, env []string, mapPath func(string) string) *Kind {
	ctl := New(cli)
	ctl.MapPath = mapPath
	return &Kind{Docker: cli, Builder: b, Ctl: ctl, Env: env}
}

// Load reads every compose project of the config (a worker's job: it reads files).
func (k *Kind) Load(ctx context.Context, cfg *model.Config) (engine.Loaded, error) {
	var out engine.Loaded
	images := map[string]*model.Image{}
	for _, img := range cfg.Images {
		images[img.Ref] = img
	}
	dcOpts := map[string]*model.DCResource{}
	for _, dc := range cfg.DCResources {
		dcOpts[dc.Name] = dc
	}
	trigger := engine.DefaultTrigger(cfg)
	for _, cp := range cfg.Compose {
		proj, err := Load(ctx, cp, k.Env)
		if err != nil {
			return out, err
		}
		out.Files = append(out.Files, proj.Files...)
		for _, svc := range proj.Services {
			r := &engine.Resource{Name: svc.Name, Type: "compose", Trigger: trigger, AutoInit: true}
			dc := dcOpts[svc.Name]
			if dc != nil {
				if dc.NewName != "" {
					r.Name = dc.NewName
				}
				r.Deps = append(r.Deps, dc.ResourceDeps...)
				r.Labels = dc.Labels
				if dc.TriggerMode != "" {
					r.Trigger = dc.TriggerMode
				}
				if dc.AutoInit != nil {
					r.AutoInit = *dc.AutoInit
				}
				r.Links = engine.Links(dc.Links)
				if dc.ReadyLog != "" {
					re, err := regexp.Compile(dc.ReadyLog)
					if err != nil {
						return out, fmt.Errorf("dc_resource %q ready_log: %w", dc.Name, err)
					}
					r.ReadyLog = re
				}
			}
			if dc == nil || dc.InferLinks == nil || *dc.InferLinks {
				r.Links = append(r.Links, publishedLinks(svc.Ports)...)
			}
			for dep := range svc.DependsOn {
				r.Deps = append(r.Deps, dep)
			}
			sort.Strings(r.Deps)
			var img *model.Image
			ref := svc.Image
			if dc != nil && dc.Image != "" {
				ref = dc.Image // dc_resource(image=) names the image the service runs
			}
			if i, ok := images[ref]; ok {
				img = i
				// As Tilt does in pods: entrypoint= replaces the container's
				// entrypoint, container_args= its command.
				svc.override(img.Entrypoint, img.ContainerArgs)
				// As Tilt, at assembly and for deployed images only: the syncs
				// must be under a path the image (or its base images) watches.
				// (develop.watch rules of the compose file are Compose's.)
				if err := liveupdate.Validate(img, cfg.Images); err != nil {
					return out, err
				}
			} else if svc.Build != nil {
				img = svc.Build
			}
			var lu *model.LiveUpdate
			if img != nil {
				srcs, err := build.Sources(img, cfg.Images)
				if err != nil {
					return out, fmt.Errorf("service %s: %w", svc.Name, err)
				}
				lu = img.LiveUpdate
				if lu == nil {
					lu = svc.LiveUpdate
				}
				r.Inputs = engine.Inputs{LiveUpdate: lu}
				for _, s := range srcs {
					out.Files = append(out.Files, s.Ignore.Files()...)
					r.Inputs.Images = append(r.Inputs.Images, engine.ImageInput(s))
				}
				r.Inputs.LiveIgnore = build.LiveIgnore(img, srcs)
			}
			r.Detail.Compose = &model.ComposeRef{Project: proj.Name, Service: svc.Name, Image: svc.Image}
			if img != nil {
				d := liveupdate.Describe(img, cfg.Images)
				d.LiveUpdate = lu
				r.Detail.Images = []model.ResourceImage{d}
			}
			var chain []*model.Image // img and the images it is built from
			if img != nil {
				chain, _ = build.Chain(img, cfg.Images) // Sources reported a cycle
			}
			r.Hash = engine.Hash("compose", proj.Name, svc, chain, r.Deps, r.Trigger, dc)
			s := service{k: k, proj: proj, svc: svc, img: img, all: cfg.Images, lu: lu}
			r.Open = func(h engine.Host) engine.Runtime { return &runtime{service: s, h: h} }
			out.Resources = append(out.Resources, r)
		}
	}
	return out, nil
}

// publishedLinks are a Compose service's published TCP ports as links (Tilt's
// infer_links); a port the engine picks has no known number and no link.
func publishedLinks(ports []Port) []api.Link {
	var out []api.Link
	for _, p := range ports {
		if p.HostPort == "" || (p.Protocol != "" && p.Protocol != "tcp") {
			continue
		}
		host := p.HostIP
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		out = append(out, api.Link{URL: "http://" + net.JoinHostPort(host, p.HostPort) + "/"})
	}
	return out
}

// service is one service's definition.
type service struct {
	k    *Kind
	proj *Project
	svc  *Service
	img  *model.Image   // built by loop; nil when the service runs a given image
	all  []*model.Image // the config's images, where img's base images are
	lu   *model.LiveUpdate
}

// runtime is a service's running container as loop follows it: the sync
// agent session, the files synced since its image was built, the log stream.
type runtime struct {
	service
	h           engine.Host
	containerID string
	ref         string
	target      *liveupdate.DockerTarget
	state       liveupdate.State

	logsCancel context.CancelFunc
	logs       sync.WaitGroup
}

// liveTarget is where planned live updates go; nil when none can.
func (rt *runtime) liveTarget() liveupdate.Target {
	if rt.lu == nil || rt.target == nil {
		return nil
	}
	return rt.target
}

// Update live-updates the container when the engine planned it, else builds the image and (re)creates the container.
func (rt *runtime) Update(ctx context.Context, j engine.Job) engine.Outcome {
	return engine.RunUpdate(ctx, j, rt.h, &rt.state, rt.liveTarget, rt.up)
}

func (rt *runtime) up(ctx context.Context, j engine.Job, u api.Update) engine.Outcome {
	cli, logs := rt.k.Docker, rt.h.Log
	fail := func(err error) engine.Outcome {
		u.Error = err.Error()
		return engine.Outcome{Update: u, Err: err}
	}
	ref := rt.svc.Image
	prevRef := rt.ref
	if prevRef == "" {
		prevRef = j.Carried.Image
	}
	rebuilt := false
	if rt.img != nil {
		t0 := time.Now()
		bres, err := rt.k.Builder.BuildWith(ctx, rt.img, rt.all, build.Options{}, logs)
		u.Spans = append(u.Spans, api.Span{Name: api.SpanBuild, Duration: time.Since(t0)})
		if err != nil {
			return fail(fmt.Errorf("build %s: %w", rt.img.Ref, err))
		}
		ref = bres.Ref
		rebuilt = ref != prevRef
	}
	if rebuilt {
		rt.state.Synced = nil // the image has every file
	}
	t0 := time.Now()
	var opts []UpOption
	if rt.containerID == "" && j.Carried.ContainerID == "" && rt.lu != nil {
		// A container from an earlier run may hold live-updated files the
		// sources no longer have: start this run from the image.
		opts = append(opts, ForceRecreate())
	}
	if rt.lu != nil && (rt.lu.Restart || len(rt.lu.RestartOn) > 0) {
		// restart_container() then restarts the process, not the container.
		opts = append(opts, Supervise(agent.SupervisorFor(rt.lu.KeepOnExit)))
	}
	id, err := rt.k.Ctl.Up(ctx, rt.proj, rt.svc.Name, ref, func(ctx context.Context, id string) error {
		if err := agent.Install(ctx, cli, id); err != nil {
			if agent.Supervises(ctx, cli, id) {
				return fmt.Errorf("install the sync agent, which runs the service's process for restart_container(): %w", err)
			}
			// Live updates fall back to archive copies; say so once.
			fmt.Fprintf(logs, "sync agent not installed (live updates will use the slower archive copy): %v\n", err)
		}
		return nil
	}, opts...)
	if err != nil {
		u.Spans = append(u.Spans, api.Span{Name: api.SpanDeploy, Duration: time.Since(t0)})
		return fail(fmt.Errorf("start %s: %w", rt.svc.Name, err))
	}
	if err := rt.k.Ctl.WaitReady(ctx, id); err != nil {
		u.Spans = append(u.Spans, api.Span{Name: api.SpanDeploy, Duration: time.Since(t0)})
		o := fail(fmt.Errorf("wait for %s: %w", rt.svc.Name, err))
		o.ContainerID = id
		return o
	}
	u.Spans = append(u.Spans, api.Span{Name: api.SpanDeploy, Duration: time.Since(t0)})
	if id != rt.containerID || rt.target == nil {
		if rt.target != nil {
			rt.target.Close()
		}
		rt.target = liveupdate.NewDockerTarget(cli, id)
		// Start the agent now so the first save does not pay for it.
		if err := rt.target.Connect(ctx); err != nil {
			fmt.Fprintf(logs, "sync agent: %v (live updates will use archive copies)\n", err)
		}
		if err := liveupdate.Replay(ctx, rt.target, rt.lu, j.Skip.Ignored, rt.state.Synced, logs, &u); err != nil {
			fmt.Fprintf(logs, "sync files into the new container: %v\n", err)
		}
	}
	rt.ref, rt.state.Failed = ref, false
	rt.follow(id)
	u.Ready = rt.h.Now()
	return engine.Outcome{Update: u, ContainerID: id, Image: ref}
}

// follow streams a container's output into the resource's process log, and
// again after each restart of the container (from the moment the previous
// stream ended, so nothing is shown twice). A new container replaces the
// stream; Close ends it.
func (rt *runtime) follow(id string) {
	if id == rt.containerID && rt.logsCancel != nil {
		return
	}
	rt.stopLogs()
	rt.containerID = id
	ctx, cancel := context.WithCancel(context.Background())
	rt.logsCancel = cancel
	logs := rt.h.ProcessLog
	rt.logs.Add(1)
	go func() {
		defer rt.logs.Done()
		var since time.Time
		for {
			err := rt.k.Ctl.Logs(ctx, id, since, logs)
			since = time.Now()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fmt.Fprintf(logs, "log stream ended: %v\n", err)
				return
			}
			// The container stopped: follow again once it runs (a restart).
			if !rt.waitRunning(ctx, id) {
				return
			}
		}
	}()
}

func (rt *runtime) stopLogs() {
	if rt.logsCancel != nil {
		rt.logsCancel()
		rt.logs.Wait()
		rt.logsCancel = nil
	}
}

// waitRunning polls until the container runs again; false when ctx is done
// or the container is gone.
func (rt *runtime) waitRunning(ctx context.Context, id string) bool {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		insp, err := rt.k.Docker.ContainerInspect(ctx, id)
		if err != nil {
			return false
		}
		if insp.State != nil && insp.State.Running {
			return true
		}
	}
}

// Close ends the log stream and the agent session; the container keeps
// running (`loop down` removes it).
func (rt *runtime) Close() {
	rt.stopLogs()
	if rt.target != nil {
		rt.target.Close()
		rt.target = nil
	}
}
