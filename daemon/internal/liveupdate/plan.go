// Package liveupdate decides whether a batch of file changes can be applied
// to a running container (sync, run, restart) or needs a rebuild, and
// applies it: files stream to loop's sync agent in the container (package
// agent), `run` steps execute through the exec API, and a restart restarts
// the process through the agent's supervisor when the container runs one,
// the container through the engine otherwise. It never sends a file that resolves outside its sync's
// local path, nor writes outside the sync's container path.
package liveupdate

import (
	"fmt"
	"path"
	"path/filepath"
	"sort"

	"github.com/moby/patternmatcher"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// Change is one changed path on the host (absolute). Deleted is what the
// watcher saw; Apply does not trust it: it stats every path when it builds
// the batch, so a file deleted and re-created in between is written, and
// one written then deleted is removed.
type Change struct {
	Path    string
	Deleted bool
}

// Decision is what Plan chose: exactly one of FallBack and Update is set,
// or neither when every change was ignored (nothing to do).
type Decision struct {
	FallBack *FallBack
	Update   *Update
}

// FallBack says the change at Path cannot be live-updated and why; the
// engine rebuilds the image instead.
type FallBack struct {
	Reason string
	Path   string
}

// Update is a live update to apply with Apply.
type Update struct {
	// Files are the changed paths with their container paths, sorted by
	// container path (parents before children).
	Files []FileSync
	// Runs are the run steps to execute, in declaration order: those
	// without triggers and those whose triggers matched a changed file.
	Runs []model.Run
	// Restart restarts the application (process or container, see
	// Target.Restart) after syncs and runs.
	Restart bool
	// Skip, when set, names more host paths Apply leaves out when it walks
	// a synced directory (the image's ignore rules: a file the image
	// excludes must not reach the container through its directory either).
	Skip func(path string, isDir bool) bool

	// ignore holds lu.Ignore so Apply also skips ignored files it finds
	// inside a synced directory. Nil when the Update was built by hand.
	ignore *patternmatcher.PatternMatcher
}

// FileSync maps one changed host path to its container path under Sync.
type FileSync struct {
	LocalPath     string
	ContainerPath string
	// Deleted is the watcher's view (see Change); Apply re-checks.
	Deleted bool
	Sync    model.Sync
}

// Plan decides what to do with changes. Changes matching lu.Ignore are
// dropped. Any change matching FallBackOn, or under no Sync (and not
// matching RestartOn, which restarts without syncing, like Compose's
// `action: restart`), gives a FallBack. Otherwise the Update syncs every
// change, runs the steps whose triggers match (or that have none) and
// restarts when lu.Restart is set or a change matched RestartOn. Patterns
// are absolute, .dockerignore style; a plain path also matches everything
// below it. Plan does no I/O.
func Plan(lu *model.LiveUpdate, changes []Change) (Decision, error) {
	if lu == nil {
		return Decision{}, fmt.Errorf("plan live update: no live_update")
	}
	for _, s := range lu.Syncs {
		if !filepath.IsAbs(s.LocalPath) || !path.IsAbs(s.ContainerPath) {
			return Decision{}, fmt.Errorf("plan live update: sync(%q, %q): both paths must be absolute", s.LocalPath, s.ContainerPath)
		}
	}
	ignore, err := newMatcher("ignore", lu.Ignore)
	if err != nil {
		return Decision{}, err
	}
	fallBack, err := newMatcher("fall_back_on", lu.FallBackOn)
	if err != nil {
		return Decision{}, err
	}
	restartOn, err := newMatcher("restart_on", lu.RestartOn)
	if err != nil {
		return Decision{}, err
	}

	// Keep the last report per path, ignored ones dropped.
	deleted := map[string]bool{}
	var paths []string
	for _, c := range changes {
		p := filepath.Clean(c.Path)
		if !filepath.IsAbs(p) {
			return Decision{}, fmt.Errorf("plan live update: changed path %q is not absolute", c.Path)
		}
		if match(ignore, p) {
			continue
		}
		if _, seen := deleted[p]; !seen {
			paths = append(paths, p)
		}
		deleted[p] = c.Deleted
	}
	if len(paths) == 0 {
		return Decision{}, nil
	}
	for _, p := range paths {
		if match(fallBack, p) {
			return Decision{FallBack: &FallBack{Reason: "matches fall_back_on", Path: p}}, nil
		}
	}

	u := &Update{Restart: lu.Restart, ignore: ignore}
	for _, p := range paths {
		restart := match(restartOn, p)
		u.Restart = u.Restart || restart
		s, ok := syncFor(lu.Syncs, p)
		if !ok {
			if restart {
				continue
			}
			return Decision{FallBack: &FallBack{Reason: "not under any sync", Path: p}}, nil
		}
		cp, err := containerPath(s, p)
		if err != nil {
			return Decision{}, err
		}
		u.Files = append(u.Files, FileSync{LocalPath: p, ContainerPath: cp, Deleted: deleted[p], Sync: s})
	}
	sort.Slice(u.Files, func(i, j int) bool { return u.Files[i].ContainerPath < u.Files[j].ContainerPath })

	for _, r := range lu.Runs {
		if len(r.Triggers) == 0 {
			u.Runs = append(u.Runs, r)
			continue
		}
		trig, err := newMatcher("run trigger", r.Triggers)
		if err != nil {
			return Decision{}, err
		}
		for _, p := range paths {
			if match(trig, p) {
				u.Runs = append(u.Runs, r)
				break
			}
		}
	}
	return Decision{Update: u}, nil
}

// syncFor returns the sync with the longest local path containing p.
func syncFor(syncs []model.Sync, p string) (model.Sync, bool) {
	var best model.Sync
	found := false
	for _, s := range syncs {
		lp := filepath.Clean(s.LocalPath)
		if pathrule.Within(lp, p) && (!found || len(lp) > len(filepath.Clean(best.LocalPath))) {
			best, found = s, true
		}
	}
	return best, found
}

// containerPath maps host path p under s.LocalPath to the container,
// checking the result stays under s.ContainerPath.
func containerPath(s model.Sync, p string) (string, error) {
	rel, ok := pathrule.Rel(s.LocalPath, p)
	if !ok {
		return "", fmt.Errorf("map %s into the container: it is outside %s", p, s.LocalPath)
	}
	root := path.Clean(s.ContainerPath)
	cp := path.Join(root, filepath.ToSlash(rel))
	if !pathrule.Within(root, cp) {
		return "", fmt.Errorf("map %s into the container: %s is outside %s", p, cp, root)
	}
	return cp, nil
}

func newMatcher(what string, patterns []string) (*patternmatcher.PatternMatcher, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("plan live update: %s patterns %q: %w", what, patterns, err)
	}
	// Patterns compile lazily; surface a bad one now rather than never.
	if _, err := pm.MatchesOrParentMatches("/"); err != nil {
		return nil, fmt.Errorf("plan live update: %s patterns %q: %w", what, patterns, err)
	}
	return pm, nil
}

// match reports whether p or one of its parents matches pm (nil matches
// nothing). Patterns were checked by newMatcher, so errors cannot occur.
func match(pm *patternmatcher.PatternMatcher, p string) bool {
	if pm == nil {
		return false
	}
	ok, _ := pm.MatchesOrParentMatches(p)
	return ok
}
