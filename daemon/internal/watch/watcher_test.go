package watch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// waitLimit bounds how long a test waits for an event that should come; it is
// a failsafe, not a timing assertion.
const waitLimit = 10 * time.Second

// collector records everything a Watcher delivers.
type collector struct {
	mu  sync.Mutex
	evs []Event
}

func (c *collector) all() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.evs)
}

// waitFor waits until cond holds for the events so far and returns them.
func (c *collector) waitFor(t *testing.T, what string, cond func([]Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		evs := c.all()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s; got %d events:\n%s", what, len(evs), dump(evs))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitPath waits for an event on path with any of the bits of op.
func (c *collector) waitPath(t *testing.T, path string, op Op) []Event {
	t.Helper()
	return c.waitFor(t, op.String()+" "+path, func(evs []Event) bool { return has(evs, path, op) })
}

func has(evs []Event, path string, op Op) bool {
	for _, e := range evs {
		if e.Path == path && e.Op.Has(op) {
			return true
		}
	}
	return false
}

func dump(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "  %s %s\n", e.Op, e.Path)
	}
	return b.String()
}

// start runs a Watcher until the test ends and waits until it is ready.
func start(t *testing.T, opts Options, setup ...func(*Watcher)) (*Watcher, *collector) {
	t.Helper()
	w, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range setup {
		f(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{}
	runErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); runErr <- w.Run(ctx) }()
	go func() {
		defer wg.Done()
		for evs := range w.Events() {
			for _, e := range evs {
				if e.Time.IsZero() {
					t.Errorf("event %s %s has no time", e.Op, e.Path)
				}
			}
			c.mu.Lock()
			c.evs = append(c.evs, evs...)
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-w.Ready():
	case err := <-runErr:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("watcher not ready")
	}
	return w, c
}

func write(t testing.TB, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// lossyQueue stands for a full kernel queue: while dropping, events are
// lost (their names go to dropped); errs injects errors such as an overflow.
type lossyQueue struct {
	dropping atomic.Bool
	dropped  chan string
	errs     chan error
}

func newLossyQueue() *lossyQueue {
	return &lossyQueue{dropped: make(chan string, 1000), errs: make(chan error)}
}

// install sets the watcher's test hooks; pass it to start.
func (q *lossyQueue) install(w *Watcher) {
	w.testErrs = q.errs
	w.testDrop = func(ev fsnotify.Event) bool {
		if !q.dropping.Load() {
			return false
		}
		q.dropped <- ev.Name
		return true
	}
}

// watched returns the directories fsnotify watches for the roots (not the
// barrier markers' own), sorted.
func watched(w *Watcher) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fsw == nil {
		return nil
	}
	l := slices.DeleteFunc(w.fsw.WatchList(), func(d string) bool { return d == w.bar.dir })
	slices.Sort(l)
	return l
}

func TestWriteCreateRemoveRename(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "old.txt"), "old")
	_, c := start(t, Options{Roots: []string{dir}})

	a := filepath.Join(dir, "a.txt")
	write(t, a, "1")
	c.waitPath(t, a, Create)
	write(t, a, "22")
	c.waitPath(t, a, Write)

	b := filepath.Join(dir, "b.txt")
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	c.waitPath(t, a, Rename)
	c.waitPath(t, b, Create)

	if err := os.Remove(b); err != nil {
		t.Fatal(err)
	}
	c.waitPath(t, b, Remove)

	// An atomic save: write a temporary file, rename it over the target.
	target := filepath.Join(dir, "old.txt")
	tmp := filepath.Join(dir, ".old.txt.tmp")
	write(t, tmp, "new")
	if err := os.Rename(tmp, target); err != nil {
		t.Fatal(err)
	}
	c.waitPath(t, target, Create)

	if err := os.Chmod(target, 0o755); err != nil {
		t.Fatal(err)
	}
	c.waitPath(t, target, Chmod)
}

func TestNewNestedDirectoriesReportEveryFile(t *testing.T) {
	dir := t.TempDir()
	w, c := start(t, Options{Roots: []string{dir}})

	// Like `mkdir -p a/b/c && touch ...` or a checkout: everything is created
	// before the watcher can watch the new directories.
	var want []string
	for _, sub := range []string{"a", "a/b", "a/b/c", "a/d"} {
		mkdir(t, filepath.Join(dir, sub))
		for i := range 20 {
			p := filepath.Join(dir, sub, fmt.Sprintf("f%d.go", i))
			write(t, p, "x")
			want = append(want, p)
		}
	}
	c.waitFor(t, "every new file", func(evs []Event) bool {
		for _, p := range want {
			if !has(evs, p, Create|Write) {
				return false
			}
		}
		return true
	})
	if got := w.Stats().Watches; got != 5 {
		t.Errorf("watches = %d, want 5 (root, a, a/b, a/b/c, a/d); list %v", got, watched(w))
	}

	// The new directories are watched, not just scanned once.
	late := filepath.Join(dir, "a/b/c/late.go")
	write(t, late, "y")
	c.waitPath(t, late, Create)
}

func TestIgnoredDirectoryIsNotWatched(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"src/pkg", "node_modules/left-pad/lib", "node_modules/x"} {
		mkdir(t, filepath.Join(dir, d))
	}
	write(t, filepath.Join(dir, "node_modules/left-pad/index.js"), "x")
	ignore := func(p string, isDir bool) bool {
		return filepath.Base(p) == "node_modules" || strings.HasSuffix(p, ".swp")
	}
	var asked sync.Map
	w, c := start(t, Options{Roots: []string{dir}, Ignore: func(p string, isDir bool) bool {
		asked.Store(p, true)
		return ignore(p, isDir)
	}})

	if got := w.Stats().Watches; got != 3 {
		t.Errorf("watches = %d, want 3 (root, src, src/pkg); list %v", got, watched(w))
	}
	for _, p := range watched(w) {
		if strings.Contains(p, "node_modules") {
			t.Errorf("watching %s", p)
		}
	}
	if _, ok := asked.Load(filepath.Join(dir, "node_modules/left-pad")); ok {
		t.Error("the walk entered the ignored node_modules")
	}

	write(t, filepath.Join(dir, "node_modules/left-pad/index.js"), "changed")
	mkdir(t, filepath.Join(dir, "node_modules/new"))
	write(t, filepath.Join(dir, "src/.main.go.swp"), "x")
	sentinel := filepath.Join(dir, "src/main.go")
	write(t, sentinel, "package main")
	// inotify keeps order, so anything about the ignored paths came before this.
	evs := c.waitPath(t, sentinel, Create)
	for _, e := range evs {
		if strings.Contains(e.Path, "node_modules") || strings.HasSuffix(e.Path, ".swp") {
			t.Errorf("event from an ignored path: %s %s", e.Op, e.Path)
		}
	}
	if got := w.Stats().Watches; got != 3 {
		t.Errorf("watches after changes = %d, want 3; list %v", got, watched(w))
	}
}

func TestFileRoot(t *testing.T) {
	dir := t.TempDir()
	tf := filepath.Join(dir, "Tiltfile")
	write(t, tf, "v1")
	w, c := start(t, Options{Roots: []string{tf}})

	if got := watched(w); !slices.Equal(got, []string{dir}) {
		t.Errorf("watched %v, want only %s", got, dir)
	}
	write(t, filepath.Join(dir, "sibling.txt"), "x")
	write(t, tf, "v2")
	c.waitPath(t, tf, Write)

	// Atomic save over the Tiltfile.
	tmp := filepath.Join(dir, "Tiltfile.tmp")
	write(t, tmp, "v3")
	if err := os.Rename(tmp, tf); err != nil {
		t.Fatal(err)
	}
	evs := c.waitPath(t, tf, Create)
	for _, e := range evs {
		if e.Path != tf {
			t.Errorf("event for a path that is not the root: %s %s", e.Op, e.Path)
		}
	}
}

func TestRootCreatedLater(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "a/b/c")
	fileRoot := filepath.Join(dir, "later/Tiltfile")
	w, c := start(t, Options{Roots: []string{root, fileRoot}})
	if got := watched(w); !slices.Equal(got, []string{dir}) {
		t.Errorf("watched %v, want the nearest existing parent %s", got, dir)
	}

	mkdir(t, filepath.Join(root, "d"))
	f := filepath.Join(root, "d/f.txt")
	write(t, f, "x")
	write(t, filepath.Join(dir, "a/b/outside.txt"), "x")
	c.waitPath(t, f, Create)

	mkdir(t, filepath.Dir(fileRoot))
	write(t, filepath.Join(dir, "later/other"), "x")
	write(t, fileRoot, "x")
	evs := c.waitPath(t, fileRoot, Create)
	for _, e := range evs {
		if e.Path != root && !strings.HasPrefix(e.Path, root+"/") && e.Path != fileRoot {
			t.Errorf("event outside the roots: %s %s", e.Op, e.Path)
		}
	}

	// Removing the root and creating it again is followed too.
	if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
		t.Fatal(err)
	}
	c.waitPath(t, f, Remove)
	c.waitPath(t, root, Remove)
	g := filepath.Join(root, "g.txt")
	mkdir(t, root)
	write(t, g, "x")
	c.waitPath(t, g, Create)
}

func TestRemovedAndRenamedDirectories(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "sub/deep"))
	write(t, filepath.Join(dir, "sub/deep/f.txt"), "x")
	w, c := start(t, Options{Roots: []string{dir}})
	if got := w.Stats().Watches; got != 3 {
		t.Fatalf("watches = %d, want 3", got)
	}

	// A rename reports every file that left, and the new name is watched under
	// its new path.
	if err := os.Rename(filepath.Join(dir, "sub"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	c.waitPath(t, filepath.Join(dir, "sub"), Rename)
	c.waitPath(t, filepath.Join(dir, "sub/deep/f.txt"), Remove)
	c.waitPath(t, filepath.Join(dir, "moved/deep/f.txt"), Create)
	g := filepath.Join(dir, "moved/deep/g.txt")
	write(t, g, "x")
	evs := c.waitPath(t, g, Create)
	for _, e := range evs {
		if strings.HasPrefix(e.Path, filepath.Join(dir, "sub")+"/") && e.Op.Has(Create|Write) {
			t.Errorf("event under the old name: %s %s", e.Op, e.Path)
		}
	}

	if err := os.RemoveAll(filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	sentinel := filepath.Join(dir, "sentinel")
	write(t, sentinel, "x")
	c.waitPath(t, sentinel, Create)
	if got := w.Stats().Watches; got != 1 {
		t.Errorf("watches after removal = %d, want 1; list %v", got, watched(w))
	}
	if got := len(watched(w)); got != 1 {
		t.Errorf("fsnotify still watches %d directories: %v", got, watched(w))
	}
}

func TestOverflowRescansAndReportsTheDifference(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"changed.txt", "removed.txt", "same.txt"} {
		write(t, filepath.Join(dir, f), "before")
	}
	mkdir(t, filepath.Join(dir, "gone/inner"))
	write(t, filepath.Join(dir, "gone/inner/x"), "x")

	// While dropping, events are lost as in a full kernel queue; the sentinel
	// tells the test that everything before it was lost.
	q := newLossyQueue()
	w, c := start(t, Options{Roots: []string{dir}}, q.install)
	dropping := &q.dropping
	dropped, errs := q.dropped, q.errs
	before := w.Stats().Watches

	dropping.Store(true)
	write(t, filepath.Join(dir, "changed.txt"), "after, longer")
	if err := os.Remove(filepath.Join(dir, "removed.txt")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "added.txt"), "new")
	mkdir(t, filepath.Join(dir, "newdir/nested"))
	write(t, filepath.Join(dir, "newdir/nested/n.txt"), "n")
	if err := os.RemoveAll(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	sentinel := filepath.Join(dir, "sentinel")
	write(t, sentinel, "s")
	for name := range dropped {
		if name == sentinel {
			break
		}
	}
	dropping.Store(false)
	if n := len(c.all()); n != 0 {
		t.Fatalf("events leaked past the drop hook:\n%s", dump(c.all()))
	}

	errs <- fsnotify.ErrEventOverflow
	want := []struct {
		path string
		op   Op
	}{
		{"changed.txt", Write},
		{"removed.txt", Remove},
		{"added.txt", Create},
		{"newdir", Create},
		{"newdir/nested/n.txt", Create},
		{"gone/inner/x", Remove},
		{"gone", Remove},
		{"sentinel", Create},
	}
	evs := c.waitFor(t, "the rescan's events", func(evs []Event) bool {
		for _, x := range want {
			if !has(evs, filepath.Join(dir, x.path), x.op) {
				return false
			}
		}
		return true
	})
	if has(evs, filepath.Join(dir, "same.txt"), Create|Write|Remove|Chmod) {
		t.Errorf("unchanged file reported:\n%s", dump(evs))
	}
	// root, gone, gone/inner before; root, newdir, newdir/nested after.
	if s := w.Stats(); s.Overflows != 1 || s.Watches != before || len(watched(w)) != before {
		t.Errorf("stats = %+v, fsnotify list %v; want 1 overflow and %d watches", s, watched(w), before)
	}

	// The directory created during the overflow is watched now.
	late := filepath.Join(dir, "newdir/nested/late.txt")
	write(t, late, "x")
	c.waitPath(t, late, Create)
}

func TestSetRoots(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	mkdir(t, filepath.Join(a, "sub"))
	mkdir(t, filepath.Join(b, "gen"))
	w, c := start(t, Options{Roots: []string{a}})
	if got := w.Stats().Watches; got != 2 {
		t.Fatalf("watches = %d, want 2", got)
	}

	if err := w.SetRoots([]string{a, b}, nil, ""); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Watches; got != 4 {
		t.Errorf("watches after adding b = %d, want 4; list %v", got, watched(w))
	}
	fb := filepath.Join(b, "gen/f.txt")
	write(t, fb, "x")
	c.waitPath(t, fb, Create)
	s1 := filepath.Join(b, "s1.txt")
	write(t, s1, "x")
	mark := len(c.waitPath(t, s1, Create))

	// Drop a, and ignore b/gen.
	if err := w.SetRoots([]string{b}, func(p string, isDir bool) bool { return filepath.Base(p) == "gen" }, ""); err != nil {
		t.Fatal(err)
	}
	if got := watched(w); !slices.Equal(got, []string{b}) {
		t.Errorf("watched %v, want only %s", got, b)
	}
	write(t, filepath.Join(a, "sub/x.txt"), "x")
	write(t, filepath.Join(b, "gen/f.txt"), "y")
	sentinel := filepath.Join(b, "s2.txt")
	write(t, sentinel, "x")
	evs := c.waitPath(t, sentinel, Create)
	for _, e := range evs[mark:] {
		if strings.HasPrefix(e.Path, a+"/") || (e.Path == fb && e.Op.Has(Write)) {
			t.Errorf("event from a dropped root or ignored directory: %s %s", e.Op, e.Path)
		}
	}
	if err := w.SetRoots([]string{"relative"}, nil, ""); err == nil {
		t.Error("SetRoots accepted a relative root")
	}
}

// TestSetRootsSameKeySkipsWalk: a config reload that changes neither the roots nor
// the ignore rules (same key) does not walk the tree again; another key, other
// roots, or no key does.
func TestSetRootsSameKeySkipsWalk(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	mkdir(t, a)
	mkdir(t, b)
	w, _ := start(t, Options{})
	set := func(key string, roots ...string) int {
		t.Helper()
		if err := w.SetRoots(roots, nil, key); err != nil {
			t.Fatal(err)
		}
		return w.Stats().Walks
	}
	n := set("k1", a)
	for _, c := range []struct {
		key   string
		roots []string
		walks bool
	}{
		{"k1", []string{a}, false},
		{"k2", []string{a}, true},
		{"k2", []string{a, b}, true},
		{"k2", []string{b, a}, false}, // the same roots in another order
		{"", []string{a, b}, true},
		{"", []string{a, b}, true},
	} {
		m := set(c.key, c.roots...)
		if walked := m > n; walked != c.walks {
			t.Errorf("SetRoots(%v, key %q): walked %v, want %v", c.roots, c.key, walked, c.walks)
		}
		n = m
	}
}

func TestSetRootsBeforeRunAndAfterStop(t *testing.T) {
	dir := t.TempDir()
	w, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetRoots([]string{dir}, nil, ""); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	go func() {
		for range w.Events() {
		}
	}()
	<-w.Ready()
	if got := w.Stats().Watches; got != 1 {
		t.Errorf("watches = %d, want 1", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w.SetRoots([]string{dir}, nil, ""); !errors.Is(err, ErrStopped) {
		t.Errorf("SetRoots after stop: %v, want ErrStopped", err)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestNewRejectsRelativeRoot(t *testing.T) {
	if _, err := New(Options{Roots: []string{"src"}}); err == nil {
		t.Fatal("New accepted a relative root")
	}
}

// burst writes n files and returns the batches that carried them.
func burst(t testing.TB, n int, quiet, max time.Duration) []Batch {
	t.Helper()
	dir := t.TempDir()
	w, err := New(Options{Roots: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	b := NewBatcher(quiet, max, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	go func() { defer wg.Done(); b.Run(ctx) }()
	go func() {
		defer wg.Done()
		for evs := range w.Events() {
			b.Add(evs)
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	<-w.Ready()

	want := map[string]bool{}
	for i := range n {
		p := filepath.Join(dir, fmt.Sprintf("f%04d.txt", i))
		want[p] = true
		write(t, p, "x")
	}
	var batches []Batch
	timeout := time.After(waitLimit)
	for len(want) > 0 {
		select {
		case bt := <-b.Batches():
			batches = append(batches, bt)
			for _, e := range bt.Events {
				delete(want, e.Path)
			}
		case <-timeout:
			t.Fatalf("%d paths never batched", len(want))
		}
	}
	return batches
}

func TestBurstOfWritesIsFewBatches(t *testing.T) {
	batches := burst(t, 1000, RebuildQuiet, RebuildMax)
	if len(batches) > 2 {
		t.Errorf("1000 writes came in %d batches, want at most 2", len(batches))
	}
	seen := map[string]bool{}
	for _, bt := range batches {
		for _, e := range bt.Events {
			seen[e.Path] = true
		}
	}
	if len(seen) != 1000 {
		t.Errorf("batches carry %d paths, want 1000", len(seen))
	}
}

func TestRootInsideIgnoredDirectoryAndSymlinkRoot(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "node_modules/mylib")
	mkdir(t, lib)
	mkdir(t, filepath.Join(dir, "node_modules/other"))
	real := filepath.Join(t.TempDir(), "real")
	mkdir(t, real)
	link := filepath.Join(dir, "linked")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	ignore := func(p string, isDir bool) bool { return filepath.Base(p) == "node_modules" }
	w, c := start(t, Options{Roots: []string{dir, lib, link}, Ignore: ignore})

	// node_modules/other is not watched; the symlink root is, by its own path.
	got := watched(w)
	if want := []string{dir, link, lib}; !slices.Equal(got, want) {
		t.Errorf("watched %v, want %v", got, want)
	}
	f := filepath.Join(lib, "index.js")
	write(t, f, "x")
	c.waitPath(t, f, Create)
	g := filepath.Join(link, "g.txt")
	write(t, g, "x")
	c.waitPath(t, g, Create)
}
