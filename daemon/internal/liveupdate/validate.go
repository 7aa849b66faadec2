package liveupdate

import (
	"fmt"
	"strings"

	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// Validate checks the live_update of an image a resource deploys, as Tilt
// does when it assembles resources (internal/tiltfile/tiltfile_state.go,
// validateLiveUpdate): every sync source and every fall_back_on path must be
// under a path the image watches — its build context (a custom_build's deps)
// or that of an image it is built from (a docker_build whose ref the
// Dockerfile names in FROM or COPY --from, or a custom_build's image_deps),
// recursively. Changes anywhere else would never reach the image. Images
// that no resource deploys, and only=, are not checked (Tilt does not). all
// are the config's images, where base images are looked up.
func Validate(img *model.Image, all []*model.Image) error {
	lu := img.LiveUpdate
	if lu == nil {
		return nil
	}
	watched := WatchedPaths(img, all)
	for _, s := range lu.Syncs {
		if !under(watched, s.LocalPath) {
			return fmt.Errorf("%scheck the live_update of %s: sync source %s is not under a path the image or an image it is built from watches (%s)",
				where(s.Pos, lu.Pos), img.Ref, s.LocalPath, strings.Join(watched, ", "))
		}
	}
	for _, p := range lu.FallBackOn {
		if !under(watched, p) {
			return fmt.Errorf("%scheck the live_update of %s: fall_back_on path %s is not under a path the image or an image it is built from watches (%s)",
				where(lu.Pos), img.Ref, p, strings.Join(watched, ", "))
		}
	}
	return nil
}

// WatchedPaths are the paths whose changes reach img: its own (build
// context, or a custom_build's deps) and those of the images it is built
// from, in that order, without repeats.
func WatchedPaths(img *model.Image, all []*model.Image) []string {
	var out []string
	seen := map[*model.Image]bool{}
	var visit func(*model.Image)
	visit = func(i *model.Image) {
		if seen[i] {
			return
		}
		seen[i] = true
		own := []string{i.Context}
		if i.Custom != nil {
			own = i.Custom.Deps
		}
		for _, p := range own {
			if p != "" && !contains(out, p) {
				out = append(out, p)
			}
		}
		for _, b := range build.BaseImages(i, all) {
			visit(b)
		}
	}
	visit(img)
	return out
}

func under(roots []string, p string) bool {
	for _, r := range roots {
		if pathrule.Within(r, p) {
			return true
		}
	}
	return false
}

// where is the first known position as "file:line:col: ".
func where(ps ...model.Position) string {
	for _, p := range ps {
		if p.File != "" && p.Line > 0 {
			return fmt.Sprintf("%s:%d:%d: ", p.File, p.Line, p.Col)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Describe is img as `loop dump resources` shows it, with the refs of the
// images of all it is built from.
func Describe(img *model.Image, all []*model.Image) model.ResourceImage {
	d := model.ResourceImage{Ref: img.Ref, Context: img.Context, Dockerfile: img.Dockerfile, LiveUpdate: img.LiveUpdate,
		Entrypoint: img.Entrypoint, ContainerArgs: img.ContainerArgs}
	if img.Custom != nil {
		d.Context, d.Dockerfile, d.Custom = "", "", img.Custom.Command.Argv
	}
	for _, b := range build.BaseImages(img, all) {
		d.BuiltFrom = append(d.BuiltFrom, b.Ref)
	}
	return d
}
