package tiltfile

import (
	"slices"
	"strings"

	"go.starlark.net/starlark"
)

// builtinExtension returns loop's own version of the extension a
// load('ext://NAME') (or load_dynamic) names, when loop has one and Options.NoBuiltinExtensions
// is off: the same function names and parameters as the tilt-extensions one,
// on loop's own mechanisms, so that it works offline.
func (l *loader) builtinExtension(name string) (starlark.StringDict, bool) {
	ext, ok := strings.CutPrefix(name, "ext://")
	if !ok || l.opts.NoBuiltinExtensions {
		return nil, false
	}
	ext = strings.Trim(ext, "/")
	if ext == "restart_process" {
		return builtins(map[string]builtinFn{
			"docker_build_with_restart": l.withRestart(l.dockerBuild, "context"),
			"custom_build_with_restart": l.withRestart(l.customBuild, "command", "deps"),
		}), true
	}
	if m := l.helmExtension(ext); m != nil {
		return m, true
	}
	return nil, false
}

// restartParams are the restart_process functions' own parameters after the
// image's (ref and context, or ref, command and deps); every other keyword
// goes to docker_build or custom_build.
var restartParams = []string{"entrypoint", "live_update", "base_suffix", "restart_file", "trigger", "exit_policy"}

// withRestart is restart_process's docker_build_with_restart (build is
// docker_build, lead "context") or custom_build_with_restart (custom_build;
// "command", "deps"). The extension builds a second image whose entrypoint
// is a file-watching wrapper copied from an image on a public registry, and
// appends a run() step that touches the watched file. loop builds the one
// image with entrypoint= and appends restart_container(): on Compose and in
// pods the process then runs under loop's agent supervisor (the agent is put
// into the container by loop, not built into the image), which restarts it in
// place after each live update (or only when a changed file matches
// trigger=). base_suffix and restart_file name the extension's second image
// and watched file, which loop does not need.
func (l *loader) withRestart(build builtinFn, lead ...string) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		own, rest := splitKwargs(kwargs, append(append([]string{"ref"}, lead...), restartParams...))
		var (
			imageArgs               = make([]starlark.Value, 1+len(lead))
			entrypoint              starlark.Value
			liveUpdate              stepsArg
			baseSuffix, restartFile string
			exitPolicy              = "restart"
			trigger                 stringList
			pairs                   []any
		)
		pairs = append(pairs, "ref", &imageArgs[0])
		for i, name := range lead {
			pairs = append(pairs, name, &imageArgs[i+1])
		}
		pairs = append(pairs, "entrypoint", &entrypoint, "live_update", &liveUpdate,
			"base_suffix?", &baseSuffix, "restart_file?", &restartFile, "trigger?", &trigger, "exit_policy?", &exitPolicy)
		if err := starlark.UnpackArgs(b.Name(), args, own, pairs...); err != nil {
			return nil, err
		}
		var ep cmdArg
		if err := ep.Unpack(entrypoint); err != nil || ep.cmd.Empty() {
			return nil, errorf(b, "`entrypoint` must be a string or list of strings: got %s", entrypoint.Type())
		}
		if len(liveUpdate.steps) == 0 {
			return nil, errorf(b, "`%s` requires at least one live_update step", b.Name())
		}
		for _, s := range liveUpdate.steps {
			if s.kind == stepRestart {
				return nil, errorf(b, "`%s` is not compatible with live_update step: `restart_container()` (this extension is meant to REPLACE restart_container() )", b.Name())
			}
		}
		for _, kv := range rest {
			switch k := string(kv[0].(starlark.String)); {
			case len(lead) == 2 && k == "skips_local_docker":
				return nil, errorf(b, "`custom_build_with_restart` is not compatible with `skips_local_docker`, because it needs access to the image")
			case len(lead) == 2 && k == "disable_push":
				return nil, errorf(b, "`custom_build_with_restart` is not compatible with `disable_push`")
			case len(lead) == 2 && k == "tag":
				return nil, errorf(b, "`custom_build_with_restart` renames your base image, so is not compatible with `tag`")
			}
		}
		switch exitPolicy {
		case "restart":
		case "continue":
		default:
			return nil, errorf(b, "exit_policy must be 'restart' or 'continue', got %q", exitPolicy)
		}

		steps := starlark.NewList(nil)
		for _, s := range liveUpdate.steps {
			_ = steps.Append(s) // a new list is not frozen
		}
		_ = steps.Append(&liveUpdateStep{kind: stepRestart, pos: pos(thread)})
		kw := append([]starlark.Tuple{
			{starlark.String("entrypoint"), entrypoint},
			{starlark.String("live_update"), steps},
		}, rest...)
		n := len(l.cfg.Images)
		out, err := build(thread, b, starlark.Tuple(imageArgs), kw)
		if err != nil {
			return nil, err
		}
		if exitPolicy == "continue" && len(l.cfg.Images) > n {
			// The container outlives the process; the next live update
			// starts it again.
			l.cfg.Images[n].LiveUpdate.KeepOnExit = true
		}
		if len(trigger.vals) > 0 && len(l.cfg.Images) > n {
			// Tilt's run(trigger=): restart only when one of these changed.
			lu := l.cfg.Images[n].LiveUpdate
			lu.Restart, lu.RestartOn = false, l.absAll(thread, trigger.vals)
		}
		return out, nil
	}
}

// splitKwargs separates the keyword arguments named in names from the others.
func splitKwargs(kwargs []starlark.Tuple, names []string) (own, rest []starlark.Tuple) {
	for _, kv := range kwargs {
		k, _ := starlark.AsString(kv[0])
		if slices.Contains(names, k) {
			own = append(own, kv)
		} else {
			rest = append(rest, kv)
		}
	}
	return own, rest
}
