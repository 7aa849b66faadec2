package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"

	"github.com/loop-dev/loop/daemon/model"
)

// Options say where the image a build makes goes.
type Options struct {
	// Registry, when set, gives the name a built ref (name:tag) is pushed
	// as: a custom_build's command is asked for an image of that name
	// ($EXPECTED_REF), as Tilt asks, so that a command that pushes itself
	// pushes to the cluster's registry.
	Registry func(ref string) (string, error)
	// RegistryHost is that registry's host ($EXPECTED_REGISTRY).
	RegistryHost string
}

// customWaitDelay bounds how long a finished custom_build command's output
// is read after it exits (a background process it left may hold the pipe).
const customWaitDelay = 5 * time.Second

// buildCustom runs a custom_build's command as Tilt does: in its dir, with
// the daemon's environment, the command's env= and $EXPECTED_REF (name:tag
// the command must build), $EXPECTED_IMAGE, $EXPECTED_TAG, $EXPECTED_REGISTRY
// (and $REGISTRY_HOST) when a registry is used, and $TILT_IMAGE_i /
// $TILT_IMAGE_MAP_i for its image_deps (deps are their built refs, in
// order). tag= names the image the command makes instead, and
// outputs_image_ref_to= the file the command writes it to. The image is then
// found in the engine and tagged name:loop-<image ID>, unless the command
// skips the local engine (skips_local_docker).
func (b *Builder) buildCustom(ctx context.Context, img *model.Image, deps []string, opts Options, logs io.Writer) (Result, error) {
	start := time.Now()
	cb := img.Custom
	repo := repository(img.Ref)
	var expected string
	res := Result{NoPush: cb.DisablePush || cb.SkipsLocalDocker, NotLocal: cb.SkipsLocalDocker}
	switch {
	case cb.OutputsImageRefTo != "":
		if err := os.Remove(cb.OutputsImageRefTo); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Result{}, fmt.Errorf("custom_build %s: %w", img.Ref, err)
		}
	case cb.Tag != "":
		// The command names the image itself: it knows no registry (Tilt).
		expected = repo + ":" + cb.Tag
	default:
		expected = repo + ":" + TagPrefix + "build-" + fmt.Sprint(time.Now().Unix())
		if opts.Registry != nil {
			named, err := opts.Registry(expected)
			if err != nil {
				return Result{}, fmt.Errorf("custom_build %s: %w", img.Ref, err)
			}
			expected, res.ForRegistry = named, true
		}
	}

	env := os.Environ()
	keys := make([]string, 0, len(cb.Env))
	for k := range cb.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+cb.Env[k])
	}
	if expected != "" {
		named, err := reference.ParseNormalizedNamed(expected)
		if err != nil {
			return Result{}, fmt.Errorf("custom_build %s: expected ref %q: %w", img.Ref, expected, err)
		}
		tagged, ok := named.(reference.Tagged)
		if !ok {
			return Result{}, fmt.Errorf("custom_build %s: expected ref %q has no tag", img.Ref, expected)
		}
		env = append(env, "EXPECTED_REF="+expected, "EXPECTED_IMAGE="+reference.Path(named), "EXPECTED_TAG="+tagged.Tag())
	}
	if opts.RegistryHost != "" {
		env = append(env, "REGISTRY_HOST="+opts.RegistryHost, "EXPECTED_REGISTRY="+opts.RegistryHost)
	}
	for i, ref := range deps {
		env = append(env, fmt.Sprintf("TILT_IMAGE_MAP_%d=%s", i, cb.ImageDeps[i]), fmt.Sprintf("TILT_IMAGE_%d=%s", i, ref))
	}

	argv := cb.Command.Argv
	if len(argv) == 0 {
		return Result{}, fmt.Errorf("custom_build %s: no command", img.Ref)
	}
	fmt.Fprintf(logs, "custom_build %s: running %s (EXPECTED_REF=%s)\n", img.Ref, strings.Join(argv, " "), expected)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = cb.Dir, env, logs, logs
	cmd.WaitDelay = customWaitDelay
	if err := cmd.Run(); err != nil {
		return Result{}, fmt.Errorf("custom_build %s: command %q in %s: %w", img.Ref, strings.Join(argv, " "), cb.Dir, err)
	}

	if cb.OutputsImageRefTo != "" {
		data, err := os.ReadFile(cb.OutputsImageRefTo)
		if err != nil {
			return Result{}, fmt.Errorf("custom_build %s: the command should have written the image ref to %s: %w", img.Ref, cb.OutputsImageRefTo, err)
		}
		expected = strings.TrimSpace(string(data))
		named, err := reference.ParseNormalizedNamed(expected)
		if err != nil {
			return Result{}, fmt.Errorf("custom_build %s: image ref %q in %s: %w", img.Ref, expected, cb.OutputsImageRefTo, err)
		}
		if _, ok := named.(reference.Tagged); !ok {
			return Result{}, fmt.Errorf("custom_build %s: image ref %q in %s has no tag", img.Ref, expected, cb.OutputsImageRefTo)
		}
	}
	res.Ref = expected
	if cb.SkipsLocalDocker {
		// The command put the image where it is pulled from (Tilt trusts it too).
		res.Duration = time.Since(start)
		return res, nil
	}
	insp, err := b.cli.ImageInspect(ctx, expected)
	if cerrdefs.IsNotFound(err) {
		return Result{}, fmt.Errorf("custom_build %s: the command made no image %s in the Docker engine: it should build and tag $EXPECTED_REF (or, if it does not use the local engine, set skips_local_docker=True)", img.Ref, expected)
	} else if err != nil {
		return Result{}, fmt.Errorf("inspect image %s: %w", expected, err)
	}
	res.ImageID = insp.ID
	if cb.OutputsImageRefTo == "" {
		// A tag from the image's content, so an unchanged image keeps its ref.
		res.Ref = repository(expected) + ":" + TagPrefix + strings.TrimPrefix(insp.ID, "sha256:")[:12]
		if err := b.cli.ImageTag(ctx, insp.ID, res.Ref); err != nil {
			return Result{}, fmt.Errorf("tag %s as %s: %w", expected, res.Ref, err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}
