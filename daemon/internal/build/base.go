package build

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/reference"

	"github.com/loop-dev/loop/daemon/model"
)

// BaseImages are the images of all that img is built from: the docker_build
// refs its Dockerfile names in FROM or COPY --from (build args and ARG
// defaults substituted), or a custom_build's image_deps. A Dockerfile that
// cannot be read has none (the build reports it).
func BaseImages(img *model.Image, all []*model.Image) []*model.Image {
	var refs []string
	if img.Custom != nil {
		refs = img.Custom.ImageDeps
	} else if df, err := readDockerfile(img); err == nil {
		for _, ins := range instructions(string(df), img.BuildArgs) {
			for _, u := range ins.images() {
				refs = append(refs, u.ref)
			}
		}
	}
	var out []*model.Image
	for _, r := range refs {
		if b := imageFor(r, img, all); b != nil && !containsImage(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// imageFor is the image of all (other than self) that an image named used is.
func imageFor(used string, self *model.Image, all []*model.Image) *model.Image {
	for _, cand := range all {
		if cand != self && refMatches(cand.Ref, used) {
			return cand
		}
	}
	return nil
}

// Chain is what building img takes, in order: the images it is built from
// (recursively, each once), then img. A cycle is an error naming it.
func Chain(img *model.Image, all []*model.Image) ([]*model.Image, error) {
	var out, path []*model.Image
	done := map[*model.Image]bool{}
	var visit func(*model.Image) error
	visit = func(i *model.Image) error {
		if done[i] {
			return nil
		}
		if containsImage(path, i) {
			var names []string
			for _, p := range append(path, i) {
				names = append(names, p.Ref)
			}
			return fmt.Errorf("images are built from each other: %s", strings.Join(names, " -> "))
		}
		path = append(path, i)
		for _, b := range BaseImages(i, all) {
			if err := visit(b); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		done[i] = true
		out = append(out, i)
		return nil
	}
	if err := visit(img); err != nil {
		return nil, err
	}
	return out, nil
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

// instruction is one Dockerfile instruction: its text with continuation
// lines joined, the lines it spans (0-based, inclusive) and the ARG values
// in effect where it stands.
type instruction struct {
	text        string
	first, last int
	vars        map[string]string
}

// imageUse is an image an instruction names: FROM's image or COPY --from's.
type imageUse struct {
	ref  string // with $VAR, ${VAR} and ${VAR:-default} replaced
	word int    // index of the word in the instruction's fields
	from bool   // a COPY --from= word
}

// images are the images ins names.
func (ins instruction) images() []imageUse {
	fields := strings.Fields(ins.text)
	if len(fields) == 0 {
		return nil
	}
	switch strings.ToUpper(fields[0]) {
	case "FROM":
		i := 1
		for i < len(fields) && strings.HasPrefix(fields[i], "--") {
			i++
		}
		if i < len(fields) {
			if ref := expand(fields[i], ins.vars); ref != "" {
				return []imageUse{{ref: ref, word: i}}
			}
		}
	case "COPY":
		var out []imageUse
		for i, a := range fields[1:] {
			if from, ok := strings.CutPrefix(a, "--from="); ok {
				out = append(out, imageUse{ref: from, word: i + 1, from: true})
			}
		}
		return out
	}
	return nil
}

// instructions splits a Dockerfile into instructions: comment lines dropped,
// lines ending in a backslash joined with the next. Each carries the ARG
// values set before it: buildArgs, else the ARG defaults.
func instructions(df string, buildArgs map[string]string) []instruction {
	var out []instruction
	vars := map[string]string{}
	var cur strings.Builder
	first, n := -1, -1
	sc := bufio.NewScanner(strings.NewReader(df))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	add := func(last int) {
		ins := instruction{text: cur.String(), first: first, last: last, vars: vars}
		out = append(out, ins)
		if f := strings.Fields(ins.text); len(f) > 0 && strings.EqualFold(f[0], "ARG") {
			next := make(map[string]string, len(vars)+1)
			for k, v := range vars {
				next[k] = v
			}
			for _, a := range f[1:] {
				name, def, hasDef := strings.Cut(a, "=")
				if v, ok := buildArgs[name]; ok {
					next[name] = v
				} else if hasDef {
					next[name] = strings.Trim(def, `"'`)
				}
			}
			vars = next
		}
		cur.Reset()
		first = -1
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") {
			continue
		}
		if first < 0 {
			if line == "" {
				continue
			}
			first = n
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		add(n)
	}
	if first >= 0 {
		add(n)
	}
	return out
}

// rewriteBases returns df with every FROM and COPY --from that names an image
// of built (by the ref as written in the config) naming the built ref
// instead, as Tilt injects its built refs. Instructions it does not change
// keep their lines as written.
func rewriteBases(df string, buildArgs map[string]string, built map[string]string) string {
	lines := strings.Split(df, "\n")
	ins := instructions(df, buildArgs)
	for i := len(ins) - 1; i >= 0; i-- {
		in := ins[i]
		fields := strings.Fields(in.text)
		changed := false
		for _, u := range in.images() {
			for ref, to := range built {
				if !refMatches(ref, u.ref) {
					continue
				}
				if u.from {
					fields[u.word] = "--from=" + to
				} else {
					fields[u.word] = to
				}
				changed = true
				break
			}
		}
		if changed {
			lines = append(lines[:in.first], append([]string{strings.Join(fields, " ")}, lines[in.last+1:]...)...)
		}
	}
	return strings.Join(lines, "\n")
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

func containsImage(list []*model.Image, img *model.Image) bool {
	for _, v := range list {
		if v == img {
			return true
		}
	}
	return false
}
