package liveupdate

import (
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// FuzzContainerPath maps arbitrary host paths through a sync. Plan must never
// panic, and every file it maps must lie under the sync's local path on the
// host and under its container path in the container, at the same relative
// path: no spelling of a host path (.., //, ., a sibling with a common
// prefix) may map outside the container path.
func FuzzContainerPath(f *testing.F) {
	f.Add("/p/src", "/app", "/p/src/a/b.txt")
	f.Add("/p/src", "/app", "/p/src/../etc/passwd")
	f.Add("/p/src", "/", "/p/src/x")
	f.Add("/p/src/", "/app/../etc", "/p/src//a/./b")
	f.Add("/", "/app", "/etc/shadow")
	f.Add("/p/src", "/app", "/p/srcfoo/x")
	f.Add("/p/src", "app", "/p/src/x")
	f.Fuzz(func(t *testing.T, local, ctr, changed string) {
		lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: local, ContainerPath: ctr}}}
		d, err := Plan(lu, []Change{{Path: changed}})
		if err != nil || d.Update == nil {
			return
		}
		lroot, croot := filepath.Clean(local), path.Clean(ctr)
		for _, fs := range d.Update.Files {
			if !pathrule.Within(lroot, fs.LocalPath) {
				t.Fatalf("sync(%q, %q), change %q: local path %q is outside %q", local, ctr, changed, fs.LocalPath, lroot)
			}
			if !pathrule.Within(croot, fs.ContainerPath) || path.Clean(fs.ContainerPath) != fs.ContainerPath {
				t.Fatalf("sync(%q, %q), change %q: container path %q escapes %q", local, ctr, changed, fs.ContainerPath, croot)
			}
			lrel := strings.TrimPrefix(strings.TrimPrefix(fs.LocalPath, lroot), "/")
			crel := strings.TrimPrefix(strings.TrimPrefix(fs.ContainerPath, croot), "/")
			if lrel != crel {
				t.Fatalf("sync(%q, %q), change %q: %q maps to %q (relative %q vs %q)", local, ctr, changed, fs.LocalPath, fs.ContainerPath, lrel, crel)
			}
		}
	})
}
