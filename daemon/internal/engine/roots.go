package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/internal/pathrule"
)

// updateRoots asks the watcher to watch every file and directory that
// matters. The watcher's goroutine walks the tree; the engine goes on.
func (e *Engine) updateRoots(configFiles []string) {
	global := e.ignore
	set := map[string]bool{}
	configFiles = append(append([]string(nil), configFiles...), global.Files()...)
	for _, f := range configFiles {
		set[f] = true
	}
	inputs := make([]Inputs, 0, len(e.resources))
	for _, name := range e.order {
		in := e.resources[name].res.Inputs
		inputs = append(inputs, in)
		for _, root := range in.roots() {
			set[root] = true
		}
	}
	roots := make([]string, 0, len(set))
	for f := range set {
		roots = append(roots, f)
	}
	sort.Strings(roots)
	cfgFiles := map[string]bool{}
	for _, f := range configFiles {
		cfgFiles[f] = true
	}
	// The predicate runs on the watcher's goroutine: it captures only
	// immutable definitions and matchers.
	ign := func(path string, isDir bool) bool {
		if cfgFiles[path] {
			return false
		}
		if global != nil && global.Ignored(path, isDir) {
			return true
		}
		if isDir {
			for _, in := range inputs {
				if !in.skipsDir(path) {
					return false
				}
			}
			return len(inputs) > 0 && !underAny(path, configFiles)
		}
		return false
	}
	e.watcher.RequestRoots(roots, ign, rootsKey(configFiles, global, e.order, inputs))
	e.configFiles = cfgFiles
}

// rootsKey names everything the watcher's ignore predicate depends on: the
// config files, the project-wide rules and what each resource watches and
// ignores (each Matcher's Key covers the rules as read, so no file is read
// again here). A reload that changes none of it (a manifest, a command or a
// port edited) keeps the watches without walking the tree again.
func rootsKey(configFiles []string, global *ignore.Matcher, names []string, inputs []Inputs) string {
	h := sha256.New()
	files := append([]string(nil), configFiles...)
	sort.Strings(files)
	fmt.Fprintf(h, "%q\n%s\n", files, global.Key())
	for i, in := range inputs {
		keys := []string{in.DepsIgnore.Key(), in.LiveIgnore.Key()}
		var imgs [][2]string
		for _, img := range in.Images {
			imgs = append(imgs, [2]string{img.Context, img.Dockerfile})
			keys = append(keys, img.Ignore.Key())
		}
		b, err := json.Marshal([]any{names[i], in.Deps, imgs, in.LiveUpdate, keys})
		if err != nil {
			return "" // no key: walk
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func underAny(path string, roots []string) bool {
	for _, r := range roots {
		if pathrule.Within(r, path) || pathrule.Within(path, r) {
			return true
		}
	}
	return false
}

// underRoot reports whether path is one of roots or below one.
func underRoot(path string, roots []string) bool {
	for _, r := range roots {
		if pathrule.Within(r, path) {
			return true
		}
	}
	return false
}
