package liveupdate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/agentwire"
)

// These cases were found by the randomized no-loss run (daemon/noloss_test.go);
// each lost a change or failed a live update before its fix.

func opList(f *fakeTarget) []string {
	var out []string
	for _, op := range f.ops {
		out = append(out, op.Kind.String()+" "+op.Path)
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// A directory removed and created again within one batch replaces the
// container's directory: the old children (whose removals a moved directory
// never reports) must not survive.
func TestApplyRecreatedDirectoryIsReplaced(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "d/new.txt"), "new", 0o644)
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: dir, ContainerPath: "/app"}}}
	d, err := Plan(lu, []Change{{Path: filepath.Join(dir, "d"), Deleted: true}})
	if err != nil || d.Update == nil {
		t.Fatalf("plan: %+v, %v", d, err)
	}
	f := &fakeTarget{}
	if _, err := Apply(context.Background(), f, *d.Update, nil); err != nil {
		t.Fatal(err)
	}
	ops := opList(f)
	rm, mk, wr := indexOf(ops, agentwire.OpRemove.String()+" /app/d"), indexOf(ops, agentwire.OpMkdir.String()+" /app/d"), indexOf(ops, agentwire.OpWrite.String()+" /app/d/new.txt")
	if rm < 0 || mk < rm || wr < mk {
		t.Fatalf("ops = %v, want remove /app/d, then mkdir /app/d, then its file", ops)
	}
}

// A child deleted on the host is removed in the container even when its
// directory is sent in the same batch (a Mkdir merges; it covers nothing).
func TestApplyMkdirDoesNotSwallowChildRemoval(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "d/kept.txt"), "k", 0o644)
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: dir, ContainerPath: "/app"}}}
	u := plan(t, lu, filepath.Join(dir, "d"), filepath.Join(dir, "d/gone.txt"))
	f := &fakeTarget{}
	if _, err := Apply(context.Background(), f, u, nil); err != nil {
		t.Fatal(err)
	}
	ops := opList(f)
	if indexOf(ops, agentwire.OpRemove.String()+" /app/d/gone.txt") < 0 {
		t.Fatalf("ops = %v, want the removal of /app/d/gone.txt", ops)
	}
	if indexOf(ops, agentwire.OpRemove.String()+" /app/d") >= 0 {
		t.Fatalf("ops = %v: a directory that was not deleted must not be replaced", ops)
	}
}

// Update.Skip (the image's ignore rules) applies inside a synced directory.
func TestApplySkipInsideDirectory(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "d/a.txt"), "a", 0o644)
	write(t, filepath.Join(dir, "d/b.ign"), "b", 0o644)
	write(t, filepath.Join(dir, "d/skip/c.txt"), "c", 0o644)
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: dir, ContainerPath: "/app"}}}
	u := plan(t, lu, filepath.Join(dir, "d"))
	u.Skip = func(p string, isDir bool) bool {
		return strings.HasSuffix(p, ".ign") || (isDir && filepath.Base(p) == "skip")
	}
	f := &fakeTarget{}
	if _, err := Apply(context.Background(), f, u, nil); err != nil {
		t.Fatal(err)
	}
	got := f.byPath()
	if _, ok := got["/app/d/a.txt"]; !ok {
		t.Fatalf("ops = %v, want /app/d/a.txt", opList(f))
	}
	for _, p := range []string{"/app/d/b.ign", "/app/d/skip", "/app/d/skip/c.txt"} {
		if _, ok := got[p]; ok {
			t.Fatalf("ops = %v: %s is skipped and must not be sent", opList(f), p)
		}
	}
}

// A loop of links inside the sync is sent as a link, not a failed update.
func TestApplySymlinkLoop(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("b", filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: dir, ContainerPath: "/app"}}}
	u := plan(t, lu, filepath.Join(dir, "a"))
	f := &fakeTarget{}
	if _, err := Apply(context.Background(), f, u, nil); err != nil {
		t.Fatalf("apply a link loop: %v", err)
	}
	if op := f.byPath()["/app/a"]; op.Kind != agentwire.OpSymlink || op.Target != "b" {
		t.Fatalf("ops = %v, want /app/a -> b", opList(f))
	}
}
