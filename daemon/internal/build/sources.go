package build

import (
	"fmt"
	"os"

	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/model"
)

// Source is a tree whose changes reach a built image, with the rules of
// what in it does not.
type Source struct {
	Context    string
	Dockerfile string
	Ignore     *ignore.Matcher
}

// Sources are the trees whose changes rebuild img: its own first (its
// context and Dockerfile, or each of a custom_build's deps with its
// .dockerignore and ignore= patterns, as Tilt reads them), then those of the
// images it is built from, so that a change to a base image rebuilds the
// images built from it.
func Sources(img *model.Image, all []*model.Image) ([]Source, error) {
	chain, err := Chain(img, all)
	if err != nil {
		return nil, err
	}
	var out []Source
	// img first: its own rules are what live updates of it ignore.
	for i := len(chain) - 1; i >= 0; i-- {
		s, err := ownSources(chain[i])
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", chain[i].Ref, err)
		}
		out = append(out, s...)
	}
	return out, nil
}

func ownSources(img *model.Image) ([]Source, error) {
	if img.Custom == nil {
		m, err := ignore.ForContext(img.Context, img.Dockerfile, img.Only, img.Ignore)
		if err != nil {
			return nil, err
		}
		return []Source{{Context: img.Context, Dockerfile: img.Dockerfile, Ignore: m}}, nil
	}
	var out []Source
	for _, d := range img.Custom.Deps {
		s := Source{Context: d}
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			// Tilt: ignore= patterns are relative to each dep.
			m, err := ignore.ForContext(d, "", nil, img.Ignore)
			if err != nil {
				return nil, err
			}
			s.Ignore = m
		}
		out = append(out, s)
	}
	return out, nil
}

// LiveIgnore is what a live update of img ignores: the rules of its own
// sources (the first of srcs, which Sources returned for img; each of a
// custom_build's deps).
func LiveIgnore(img *model.Image, srcs []Source) *ignore.Matcher {
	n := 1
	if img.Custom != nil {
		n = len(img.Custom.Deps)
	}
	if n > len(srcs) {
		n = len(srcs)
	}
	if n == 1 {
		return srcs[0].Ignore
	}
	ms := make([]*ignore.Matcher, 0, n)
	for _, s := range srcs[:n] {
		ms = append(ms, s.Ignore)
	}
	return ignore.Any(ms...)
}
