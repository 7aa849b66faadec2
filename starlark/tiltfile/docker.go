package tiltfile

import (
	"fmt"
	"path"
	"path/filepath"

	"github.com/distribution/reference"
	"go.starlark.net/starlark"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// dockerBuiltins are the image builtins: docker_build, custom_build and the
// live_update steps.
func (l *loader) dockerBuiltins() starlark.StringDict {
	return builtins(map[string]builtinFn{
		"docker_build":      l.dockerBuild,
		"custom_build":      l.customBuild,
		"sync":              l.syncStep,
		"run":               l.runStep,
		"restart_container": l.restartStep,
		"fall_back_on":      l.fallBackOnStep,
		"initial_sync":      l.initialSyncStep,
	})
}

func (l *loader) dockerBuild(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		ref, context, dockerfile, target, network, platform string
		dockerfileContents                                  text
		buildArgs                                           strDict
		liveUpdate                                          stepsArg
		matchInEnv, pull                                    bool
		ignore, only, ssh, secret, extraTag, cacheFrom      stringList
		containerArgs, extraHosts                           stringList
		entrypoint                                          cmdArg
		cache                                               starlark.Value = starlark.None
	)
	// Tilt's parameter order (it matters for positional arguments).
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"ref", &ref, "context", &context,
		"build_args?", &buildArgs, "dockerfile?", &dockerfile,
		"dockerfile_contents?", &dockerfileContents, "cache?", &cache, "live_update?", &liveUpdate,
		"match_in_env_vars?", &matchInEnv, "ignore?", &ignore, "only?", &only,
		"entrypoint?", &entrypoint, "container_args?", &containerArgs, "target?", &target,
		"ssh?", &ssh, "secret?", &secret, "network?", &network, "extra_tag?", &extraTag,
		"cache_from?", &cacheFrom, "pull?", &pull, "platform?", &platform, "extra_hosts?", &extraHosts,
	); err != nil {
		return nil, err
	}
	p := pos(thread)
	if cache != starlark.None {
		// Tilt's own warning: the parameter is a no-op there too.
		l.warn(p, "docker_build(cache=...) is obsolete, and currently a no-op. You should switch to live_update to optimize your builds.")
	}
	if err := l.addImageRef(b, ref); err != nil {
		return nil, err
	}
	if dockerfile != "" && dockerfileContents.set {
		return nil, errorf(b, "cannot specify both dockerfile and dockerfile_contents")
	}
	img := &model.Image{
		Ref:           ref,
		Context:       l.abs(thread, context),
		BuildArgs:     buildArgs.m,
		Target:        target,
		Ignore:        ignore.vals,
		Entrypoint:    entrypoint.cmd.Argv,
		ContainerArgs: containerArgs.vals,
		Network:       network,
		Platform:      platform,
		ExtraTag:      extraTag.vals,
		CacheFrom:     cacheFrom.vals,
		PullParent:    pull,
		MatchInEnv:    matchInEnv,
		Pos:           p,
	}
	if containerArgs.set && img.ContainerArgs == nil {
		img.ContainerArgs = []string{}
	}
	for _, o := range only.vals {
		// Tilt never checks where only= points: a path outside the context
		// keeps nothing.
		img.Only = append(img.Only, relToContext(img.Context, o))
	}
	switch {
	case dockerfileContents.set:
		img.DockerfileContents = dockerfileContents.s
	case dockerfile != "":
		// Tilt resolves dockerfile against the Tiltfile, not the context.
		img.Dockerfile = l.abs(thread, dockerfile)
	default:
		img.Dockerfile = filepath.Join(img.Context, "Dockerfile")
	}
	if img.Dockerfile != "" {
		l.record(img.Dockerfile)
	}
	lu, err := liveUpdateFromSteps(b, liveUpdate.steps, p)
	if err != nil {
		return nil, err
	}
	img.LiveUpdate = lu
	img.ExtraHosts = extraHosts.vals
	if img.SSH, err = model.ParseSSHSpecs(ssh.vals); err != nil {
		return nil, errorf(b, "ssh: %v", err)
	}
	if img.BuildSecrets, err = model.ParseSecretSpecs(secret.vals, func(p string) string { return l.abs(thread, p) }); err != nil {
		return nil, errorf(b, "secret: %v", err)
	}
	l.cfg.Images = append(l.cfg.Images, img)
	return starlark.None, nil
}

// addImageRef validates ref and refuses a second build of the same image.
func (l *loader) addImageRef(b *starlark.Builtin, ref string) error {
	if ref == "" {
		return errorf(b, "ref must not be empty")
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return errorf(b, "invalid image reference %q: %v", ref, err)
	}
	key := named.String()
	if l.images[key] {
		return errorf(b, "image for ref %q has already been defined", ref)
	}
	l.images[key] = true
	return nil
}

// relToContext returns an only= path relative to the build context; an
// absolute one outside it stays as filepath.Rel spells it ("../x").
func relToContext(dir, p string) string {
	if !filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	if rel, ok := pathrule.Rel(dir, p); ok {
		return rel
	}
	if rel, err := filepath.Rel(dir, p); err == nil {
		return rel
	}
	return p
}

// liveUpdateFromSteps checks Tilt's ordering rules: fall_back_on and
// initial_sync first, then syncs, then runs, then restart_container last.
// Where sync sources are is checked at assembly, for deployed images only
// (daemon/internal/liveupdate.Validate), as Tilt does.
func liveUpdateFromSteps(b *starlark.Builtin, steps []*liveUpdateStep, p model.Position) (*model.LiveUpdate, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	lu := &model.LiveUpdate{Pos: p}
	rank := map[stepKind]int{stepFallBackOn: 0, stepInitialSync: 0, stepSync: 1, stepRun: 2, stepRestart: 3}
	last := 0
	for i, s := range steps {
		r := rank[s.kind]
		if r < last {
			switch s.kind {
			case stepFallBackOn, stepInitialSync:
				return nil, errorf(b, "live_update: %s must come before every sync, run and restart_container step (step %d)", s.kind, i)
			case stepSync:
				return nil, errorf(b, "live_update: sync steps must come before run and restart_container steps (step %d)", i)
			case stepRun:
				return nil, errorf(b, "live_update: run steps must come before restart_container (step %d)", i)
			}
		}
		if s.kind == stepRestart && lu.Restart {
			return nil, errorf(b, "live_update: restart_container may appear only once")
		}
		last = r
		switch s.kind {
		case stepFallBackOn:
			lu.FallBackOn = append(lu.FallBackOn, s.fallBackOn...)
		case stepInitialSync:
			lu.InitialSync = true
		case stepSync:
			sync := s.sync
			sync.Pos = s.pos
			lu.Syncs = append(lu.Syncs, sync)
		case stepRun:
			lu.Runs = append(lu.Runs, s.run)
		case stepRestart:
			lu.Restart = true
		}
	}
	return lu, nil
}

func (l *loader) syncStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var local, remote string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "local_path", &local, "remote_path", &remote); err != nil {
		return nil, err
	}
	if !path.IsAbs(remote) {
		return nil, errorf(b, "remote_path %q must be an absolute path in the container", remote)
	}
	return &liveUpdateStep{kind: stepSync, pos: pos(thread),
		sync: model.Sync{LocalPath: l.abs(thread, local), ContainerPath: path.Clean(remote)}}, nil
}

func (l *loader) runStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		cmd     cmdArg
		trigger stringList
		echoOff bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "cmd", &cmd, "trigger?", &trigger, "echo_off?", &echoOff); err != nil {
		return nil, err
	}
	if cmd.cmd.Empty() {
		return nil, errorf(b, "cmd must not be empty")
	}
	return &liveUpdateStep{kind: stepRun, pos: pos(thread),
		run: model.Run{Cmd: cmd.cmd, Triggers: l.absAll(thread, trigger.vals), Echo: !echoOff}}, nil
}

func (l *loader) restartStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return &liveUpdateStep{kind: stepRestart, pos: pos(thread)}, nil
}

func (l *loader) fallBackOnStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var files stringList
	kwargs = alias(kwargs, map[string]string{"paths": "files"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "files", &files); err != nil {
		return nil, err
	}
	return &liveUpdateStep{kind: stepFallBackOn, pos: pos(thread), fallBackOn: l.absAll(thread, files.vals)}, nil
}

func (l *loader) initialSyncStep(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return &liveUpdateStep{kind: stepInitialSync, pos: pos(thread)}, nil
}

func (l *loader) customBuild(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		ref, tag, outputsTo, dir                       string
		command, commandBat, commandBatVal, entrypoint cmdArg
		deps, ignore, imageDeps, containerArgs         stringList
		disablePush, skipsLocalDocker, matchIn         bool
		liveUpdate                                     stepsArg
		env                                            strDict
	)
	// Tilt's parameter order (command_bat_val is its older spelling of
	// command_bat).
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"ref", &ref, "command", &command, "deps", &deps, "tag?", &tag,
		"disable_push?", &disablePush, "skips_local_docker?", &skipsLocalDocker,
		"live_update?", &liveUpdate, "match_in_env_vars?", &matchIn,
		"ignore?", &ignore, "entrypoint?", &entrypoint, "container_args?", &containerArgs,
		"command_bat_val?", &commandBatVal, "outputs_image_ref_to?", &outputsTo,
		"command_bat?", &commandBat, "image_deps?", &imageDeps,
		"env?", &env, "dir?", &dir,
	); err != nil {
		return nil, err
	}
	p := pos(thread)
	if commandBat.cmd.Empty() {
		commandBat = commandBatVal
	}
	if command.cmd.Empty() {
		if commandBat.cmd.Empty() {
			return nil, errorf(b, "command must not be empty")
		}
		command = commandBat
	}
	if tag != "" && outputsTo != "" {
		return nil, errorf(b, "cannot specify both tag and outputs_image_ref_to")
	}
	if err := l.addImageRef(b, ref); err != nil {
		return nil, err
	}
	absDeps := l.absAll(thread, deps.vals)
	workDir := l.abs(thread, ".")
	if dir != "" {
		workDir = l.abs(thread, dir)
	}
	lu, err := liveUpdateFromSteps(b, liveUpdate.steps, p)
	if err != nil {
		return nil, err
	}
	img := &model.Image{
		Ref:           ref,
		Context:       workDir,
		Ignore:        ignore.vals,
		Entrypoint:    entrypoint.cmd.Argv,
		ContainerArgs: containerArgs.vals,
		MatchInEnv:    matchIn,
		LiveUpdate:    lu,
		Pos:           p,
		Custom: &model.CustomBuild{
			Command:           command.cmd,
			Deps:              absDeps,
			Tag:               tag,
			DisablePush:       disablePush,
			SkipsLocalDocker:  skipsLocalDocker,
			OutputsImageRefTo: l.absIf(thread, outputsTo),
			Dir:               workDir,
			Env:               env.m,
			ImageDeps:         imageDeps.vals,
		},
	}
	if containerArgs.set && img.ContainerArgs == nil {
		img.ContainerArgs = []string{}
	}
	l.cfg.Images = append(l.cfg.Images, img)
	return customBuildValue{ref: ref}, nil
}

// customBuildValue is what custom_build() returns, as Tilt's does.
type customBuildValue struct{ ref string }

func (c customBuildValue) String() string        { return fmt.Sprintf("custom_build(%q)", c.ref) }
func (c customBuildValue) Type() string          { return "custom_build" }
func (c customBuildValue) Freeze()               {}
func (c customBuildValue) Truth() starlark.Bool  { return true }
func (c customBuildValue) Hash() (uint32, error) { return 0, fmt.Errorf("unhashable: custom_build") }

func (l *loader) absIf(thread *starlark.Thread, p string) string {
	if p == "" {
		return ""
	}
	return l.abs(thread, p)
}
