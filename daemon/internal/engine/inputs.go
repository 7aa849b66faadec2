package engine

import (
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/internal/pathrule"
)

// roots are the paths the resource needs watched.
func (in Inputs) roots() []string {
	out := append([]string(nil), in.Deps...)
	for _, img := range in.Images {
		out = append(out, img.Context)
		if img.Dockerfile != "" {
			out = append(out, img.Dockerfile)
		}
	}
	if lu := in.LiveUpdate; lu != nil {
		for _, s := range lu.Syncs {
			out = append(out, s.LocalPath)
		}
		out = append(out, lu.FallBackOn...)
		out = append(out, lu.RestartOn...)
	}
	return out
}

// skipsDir reports whether nothing below dir concerns the resource.
func (in Inputs) skipsDir(dir string) bool {
	for _, root := range in.roots() {
		if pathrule.Within(dir, root) {
			return false // dir is above a root: must be walked to reach it
		}
		if !pathrule.Within(root, dir) {
			continue
		}
		for _, d := range in.Deps {
			if pathrule.Within(d, dir) && !skips(in.DepsIgnore, dir) {
				return false
			}
		}
		inImage := false
		for _, img := range in.Images {
			if pathrule.Within(img.Context, dir) {
				inImage = true
				if !skips(img.Ignore, dir) {
					return false
				}
			}
		}
		if in.LiveUpdate != nil && !inImage {
			return false // a sync, fall_back_on or restart_on path of its own
		}
	}
	return true
}

func skips(m *ignore.Matcher, dir string) bool { return m != nil && m.SkipDir(dir) }

func ignored(m *ignore.Matcher, path string) bool { return m != nil && m.Ignored(path, false) }

// builtFrom reports whether path is the Dockerfile or an ignore file
// (.dockerignore) of an image the resource builds: config files that also
// change what the image is built from.
func (in Inputs) builtFrom(path string) bool {
	for _, img := range in.Images {
		if img.Dockerfile == path || img.Ignore.Reads(path) {
			return true
		}
	}
	return false
}

// inDeps reports whether path is under one of the deps. A config file that is
// also a dep (helm_resource's chart and values files, a local_resource's
// deps=['Tiltfile']) updates the resource as well as re-running the Tiltfile,
// as Tilt's separate file watches do.
func (in Inputs) inDeps(path string) bool {
	for _, d := range in.Deps {
		if pathrule.Within(d, path) && !ignored(in.DepsIgnore, path) {
			return true
		}
	}
	return false
}

// concerns reports whether a change of path affects the resource. A path an
// image's context ignores does not, unless fall_back_on names it.
func (in Inputs) concerns(path string) bool {
	ignoredByImage := false
	for _, img := range in.Images {
		if path == img.Dockerfile {
			return true
		}
		if pathrule.Within(img.Context, path) {
			if !ignored(img.Ignore, path) {
				return true
			}
			ignoredByImage = true
		}
	}
	if in.inDeps(path) {
		return true
	}
	lu := in.LiveUpdate
	if lu == nil {
		return false
	}
	for _, p := range lu.FallBackOn {
		if pathrule.Within(p, path) {
			return true
		}
	}
	if ignoredByImage {
		return false
	}
	for _, p := range lu.RestartOn {
		if pathrule.Within(p, path) {
			return true
		}
	}
	return in.underSync(path)
}

// underSync reports whether p is below one of the live update's syncs.
func (in Inputs) underSync(p string) bool {
	if in.LiveUpdate == nil {
		return false
	}
	for _, s := range in.LiveUpdate.Syncs {
		if pathrule.Within(s.LocalPath, p) {
			return true
		}
	}
	return false
}
