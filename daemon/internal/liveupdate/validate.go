package liveupdate

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/reference"

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
		for _, b := range BaseImages(i, all) {
			visit(b)
		}
	}
	visit(img)
	return out
}

// BaseImages are the images of all that img is built from: the docker_build
// refs its Dockerfile names in FROM or COPY --from (build args and ARG
// defaults substituted), or a custom_build's image_deps. A Dockerfile that
// cannot be read has none (the build reports it).
func BaseImages(img *model.Image, all []*model.Image) []*model.Image {
	var refs []string
	switch {
	case img.Custom != nil:
		refs = img.Custom.ImageDeps
	case img.DockerfileContents != "":
		refs = dockerfileImages(img.DockerfileContents, img.BuildArgs)
	case img.Dockerfile != "":
		data, err := os.ReadFile(img.Dockerfile)
		if err != nil {
			return nil
		}
		refs = dockerfileImages(string(data), img.BuildArgs)
	}
	var out []*model.Image
	for _, r := range refs {
		for _, cand := range all {
			if cand != img && refMatches(cand.Ref, r) && !containsImage(out, cand) {
				out = append(out, cand)
			}
		}
	}
	return out
}

// refMatches reports whether an image named used is the one built as ref:
// the same repository, and the same tag when ref has one (as Tilt's
// RefSelector matches).
func refMatches(ref, used string) bool {
	r, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	u, err := reference.ParseNormalizedNamed(used)
	if err != nil {
		return false
	}
	if r.Name() != u.Name() {
		return false
	}
	if rt, ok := r.(reference.Tagged); ok {
		ut, ok := u.(reference.Tagged)
		return ok && ut.Tag() == rt.Tag()
	}
	return true
}

// dockerfileImages lists the images a Dockerfile names in FROM and in COPY
// --from=, with $VAR, ${VAR} and ${VAR:-default} replaced by the build args
// or else the ARG defaults.
func dockerfileImages(df string, buildArgs map[string]string) []string {
	vars := map[string]string{}
	var out []string
	for _, ins := range instructions(df) {
		fields := strings.Fields(ins)
		if len(fields) == 0 {
			continue
		}
		args := fields[1:]
		switch strings.ToUpper(fields[0]) {
		case "ARG":
			for _, a := range args {
				name, def, hasDef := strings.Cut(a, "=")
				if v, ok := buildArgs[name]; ok {
					vars[name] = v
				} else if hasDef {
					vars[name] = strings.Trim(def, `"'`)
				}
			}
		case "FROM":
			for len(args) > 0 && strings.HasPrefix(args[0], "--") {
				args = args[1:]
			}
			if len(args) > 0 {
				if img := expand(args[0], vars); img != "" {
					out = append(out, img)
				}
			}
		case "COPY":
			for _, a := range args {
				if from, ok := strings.CutPrefix(a, "--from="); ok {
					out = append(out, from)
				}
			}
		}
	}
	return out
}

// instructions splits a Dockerfile into instructions: comment lines dropped,
// lines ending in a backslash joined with the next.
func instructions(df string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(df))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		out = append(out, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// expand replaces $VAR, ${VAR} and ${VAR:-default} in s.
func expand(s string, vars map[string]string) string {
	return os.Expand(s, func(v string) string {
		if name, def, ok := strings.Cut(v, ":-"); ok {
			if val := vars[name]; val != "" {
				return val
			}
			return def
		}
		return vars[v]
	})
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

func containsImage(list []*model.Image, img *model.Image) bool {
	for _, v := range list {
		if v == img {
			return true
		}
	}
	return false
}

// Describe is img as `loop dump resources` shows it, with the refs of the
// images of all it is built from.
func Describe(img *model.Image, all []*model.Image) model.ResourceImage {
	d := model.ResourceImage{Ref: img.Ref, Context: img.Context, Dockerfile: img.Dockerfile, LiveUpdate: img.LiveUpdate}
	if img.Custom != nil {
		d.Context, d.Dockerfile, d.Custom = "", "", img.Custom.Command.Argv
	}
	for _, b := range BaseImages(img, all) {
		d.BuiltFrom = append(d.BuiltFrom, b.Ref)
	}
	return d
}
