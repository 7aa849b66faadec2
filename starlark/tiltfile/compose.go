package tiltfile

import (
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/distribution/reference"
	"go.starlark.net/starlark"

	"github.com/loop-dev/loop/daemon/model"
)

// composeBuiltins are docker_compose and dc_resource.
func (l *loader) composeBuiltins() starlark.StringDict {
	return builtins(map[string]builtinFn{
		"docker_compose": l.dockerCompose,
		"dc_resource":    l.dcResource,
	})
}

func (l *loader) dockerCompose(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		configPaths          starlark.Value
		envFile, projectName string
		profiles             stringList
		wait                 bool
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"configPaths", &configPaths, "env_file?", &envFile, "project_name?", &projectName,
		"profiles?", &profiles, "wait?", &wait,
	); err != nil {
		return nil, err
	}
	cp := &model.ComposeProject{ProjectName: projectName, Profiles: profiles.vals, Wait: wait, Pos: pos(thread)}
	var items []starlark.Value
	switch x := configPaths.(type) {
	case starlark.String, *Blob:
		items = []starlark.Value{x}
	case *starlark.List, starlark.Tuple:
		seq := x.(starlark.Indexable)
		for i := 0; i < seq.Len(); i++ {
			items = append(items, seq.Index(i))
		}
	default:
		return nil, fmt.Errorf("%s: for parameter \"configPaths\": got %s, want string, blob or list of them", b.Name(), configPaths.Type())
	}
	if len(items) == 0 {
		return nil, errorf(b, "configPaths must name at least one compose file")
	}
	for _, it := range items {
		switch x := it.(type) {
		case starlark.String:
			path := l.abs(thread, string(x))
			if err := l.statRecord(b, path); err != nil {
				return nil, err
			}
			cp.Paths = append(cp.Paths, path)
		case *Blob:
			if cp.Inline != "" {
				return nil, errorf(b, "configPaths may contain at most one blob")
			}
			cp.Inline = x.text
		default:
			return nil, fmt.Errorf("%s: for parameter \"configPaths\": got %s in list, want string or blob", b.Name(), it.Type())
		}
	}
	if envFile != "" {
		cp.EnvFile = l.abs(thread, envFile)
		if err := l.statRecord(b, cp.EnvFile); err != nil {
			return nil, err
		}
	} else if len(cp.Paths) > 0 {
		// Compose reads .env next to the first file; watch it even if absent.
		l.record(filepath.Join(filepath.Dir(cp.Paths[0]), ".env"))
	}
	l.cfg.Compose = append(l.cfg.Compose, cp)
	return starlark.None, nil
}

func (l *loader) dcResource(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, projectName, newName, readyLog string
		image                                starlark.Value = starlark.None
		trigger                              triggerModeArg
		resourceDeps, labels                 stringList
		links                                linksArg
		autoInit, inferLinks                 optBool
	)
	// Tilt's parameter order; ready_log is loop's.
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "image?", &image, "trigger_mode?", &trigger, "resource_deps?", &resourceDeps,
		"infer_links?", &inferLinks, "links?", &links, "labels?", &labels, "auto_init?", &autoInit,
		"project_name?", &projectName, "new_name?", &newName, "ready_log?", &readyLog,
	); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errorf(b, "name must not be empty")
	}
	var imageRef string
	switch x := image.(type) {
	case starlark.NoneType:
	case starlark.String:
		if _, err := reference.ParseNormalizedNamed(string(x)); err != nil {
			return nil, errorf(b, "image %q is not an image reference: %v", string(x), err)
		}
		imageRef = string(x)
	default:
		return nil, fmt.Errorf("%s: for parameter \"image\": got %s, want string", b.Name(), image.Type())
	}
	if _, err := regexp.Compile(readyLog); err != nil {
		return nil, errorf(b, "ready_log is not a regular expression: %v", err)
	}
	if projectName != "" {
		found := false
		for _, c := range l.cfg.Compose {
			found = found || c.ProjectName == projectName
		}
		if !found {
			return nil, errorf(b, "no docker_compose call has project_name %q", projectName)
		}
	}
	l.cfg.DCResources = append(l.cfg.DCResources, &model.DCResource{
		Name:         name,
		NewName:      newName,
		ResourceDeps: resourceDeps.vals,
		TriggerMode:  trigger.mode,
		Labels:       labels.vals,
		AutoInit:     autoInit.ptr(),
		Links:        links.links,
		InferLinks:   inferLinks.ptr(),
		Image:        imageRef,
		ReadyLog:     readyLog,
		Pos:          pos(thread),
	})
	return starlark.None, nil
}
