package watch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/loop-dev/loop/internal/pathrule"
)

// fileStat is the snapshot of one directory entry: enough to notice a change
// made while events were lost, at 24 bytes plus the name.
type fileStat struct {
	size  int64
	mtime int64 // Unix nanoseconds
	mode  fs.FileMode
}

func statOf(fi fs.FileInfo) fileStat {
	return fileStat{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
}

func (s fileStat) isDir() bool { return s.mode.IsDir() }

// diffOp says how an entry changed from prev (if had) to cur; 0 is no change.
// A directory's size and mtime change with its entries, which are reported on
// their own, so only its mode counts.
func diffOp(prev fileStat, had bool, cur fileStat) Op {
	switch {
	case !had || prev.mode.Type() != cur.mode.Type():
		return Create
	case cur.isDir():
		if prev.mode != cur.mode {
			return Chmod
		}
		return 0
	case prev.size != cur.size || prev.mtime != cur.mtime:
		return Write
	case prev.mode != cur.mode:
		return Chmod
	}
	return 0
}

// dirState is one watched directory.
type dirState struct {
	// full: the directory is a root or inside one, and every entry not
	// excluded is tracked. Otherwise it is watched only because a root is (or
	// will be) below it, and entries holds only roots.
	full    bool
	wasFull bool   // full before the current walk touched it
	gen     uint32 // the walk that last reached it
	scanned uint32 // the walk that last read it
	entries map[string]fileStat
}

// tree is the Watcher's view of the file system, guarded by Watcher.mu.
type tree struct {
	roots    map[string]bool
	rootList []string        // sorted: a root sorts before the roots below it
	anc      map[string]bool // proper ancestors of roots
	ignore   IgnoreFunc
	dirs     map[string]*dirState // every watched directory
	skipped  map[string]bool      // excluded directories seen, to know a Remove was of a directory
	gen      uint32               // incremented by each full walk
	walking  bool                 // a full walk is in progress
}

func (t *tree) setRoots(roots []string, ignore IgnoreFunc) {
	t.rootList = roots
	t.roots = make(map[string]bool, len(roots))
	t.anc = map[string]bool{}
	for _, r := range roots {
		t.roots[r] = true
		for a := r; a != "/"; {
			a = parent(a)
			t.anc[a] = true
		}
	}
	t.ignore = ignore
}

func (t *tree) excluded(p string, isDir bool) bool {
	return !t.roots[p] && t.ignore != nil && t.ignore(p, isDir)
}

// reportable: an event for p (in the directory pds, nil if unwatched) is
// delivered.
func (t *tree) reportable(p string, isDir bool, pds *dirState) bool {
	if t.roots[p] {
		return true
	}
	return pds != nil && pds.full && !t.excluded(p, isDir)
}

func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

func base(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// childToward returns the child of dir on the way to p (p is below dir).
func childToward(dir, p string) string {
	start := len(dir) + 1
	if dir == "/" {
		start = 1
	}
	if i := strings.IndexByte(p[start:], '/'); i >= 0 {
		return p[:start+i]
	}
	return p
}

// fatal errors stop the initial walk: watching part of a tree silently is
// worse than a clear error.
func fatal(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EMFILE) || errors.Is(err, fsnotify.ErrClosed)
}

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// walkAll brings watches and snapshot in line with the roots: the initial
// walk, a config reload (emit false) and the rescan after an overflow (emit
// true: report what changed while events were lost).
func (w *Watcher) walkAll(emit bool, t time.Time) error {
	w.gen++
	w.walking = true
	defer func() { w.walking = false }()
	clear(w.skipped)
	for _, r := range w.rootList {
		if err := w.resolve(r, emit, t); err != nil {
			return err
		}
	}
	for d, ds := range w.dirs {
		switch {
		case ds.gen != w.gen: // no longer needed for any root
			delete(w.dirs, d)
			w.unwatch(d)
		case ds.wasFull && !ds.full: // now only an ancestor of roots
			for name := range ds.entries {
				if !w.roots[join(d, name)] {
					delete(ds.entries, name)
				}
			}
		}
	}
	return nil
}

// watchDir adds an inotify watch on d unless it has one (during a full walk
// it always asks again: the directory may have been replaced while events
// were lost, and the kernel gives back the same watch for the same inode).
func (w *Watcher) watchDir(d string, full bool) (*dirState, error) {
	ds := w.dirs[d]
	if ds == nil || w.walking {
		if err := w.fsw.Add(d); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil, fmt.Errorf("watch %s: inotify watch limit reached (raise fs.inotify.max_user_watches or ignore more directories): %w", d, err)
			}
			return nil, fmt.Errorf("watch %s: %w", d, err)
		}
	}
	if ds == nil {
		ds = &dirState{entries: map[string]fileStat{}, gen: w.gen}
		w.dirs[d] = ds
	}
	if ds.gen != w.gen { // first visit of this walk: recompute
		ds.gen = w.gen
		ds.wasFull, ds.full = ds.full, false
	}
	ds.full = ds.full || full
	return ds, nil
}

func (w *Watcher) unwatch(d string) {
	if w.fsw != nil {
		// Fails when the kernel already dropped the watch (directory deleted).
		_ = w.fsw.Remove(d)
	}
}

// note records a non-fatal error and passes fatal ones on.
func (w *Watcher) note(err error) error {
	if err == nil || fatal(err) {
		return err
	}
	if !gone(err) {
		w.noteError(err)
	}
	return nil
}

// resolve watches root r: a directory is walked, a file is watched through
// its parent, a missing root from its nearest existing ancestor.
func (w *Watcher) resolve(r string, emit bool, t time.Time) error {
	a := r
	for {
		if _, err := os.Lstat(a); err == nil {
			break
		}
		if a == "/" {
			return nil
		}
		a = parent(a)
	}
	if a != r {
		w.forget(r, emit, t)
	}
	// Watch each ancestor before looking for the next level, so that a level
	// created meanwhile is either seen by Lstat or reported by the watch.
	for a != r {
		if _, err := w.watchDir(a, false); err != nil {
			return w.note(err)
		}
		next := childToward(a, r)
		fi, err := os.Lstat(next)
		if err != nil || (next != r && !fi.IsDir()) {
			return nil
		}
		a = next
	}
	fi, err := os.Stat(r) // a root that is a symlink to a directory is a directory
	if err != nil {
		fi, err = os.Lstat(r)
		if err != nil {
			return nil
		}
	}
	if fi.IsDir() {
		return w.scanDir(r, emit, t)
	}
	ds, err := w.watchDir(parent(r), false)
	if err != nil {
		return w.note(err)
	}
	name := base(r)
	fi, err = os.Lstat(r) // again, now that changes are reported
	if err != nil {
		return nil
	}
	st := statOf(fi)
	prev, had := ds.entries[name]
	if emit {
		if op := diffOp(prev, had, st); op != 0 {
			w.emit(Event{Path: r, Op: op, Time: t, Dir: st.isDir()})
		}
	}
	ds.entries[name] = st
	return nil
}

// resolveBelow resolves every root at or below dir.
func (w *Watcher) resolveBelow(dir string, emit bool, t time.Time) error {
	for _, r := range w.rootList {
		if pathrule.Within(dir, r) {
			if err := w.resolve(r, emit, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// forget drops root r, which no longer exists, reporting its removal.
func (w *Watcher) forget(r string, emit bool, t time.Time) {
	known := w.dirs[r] != nil
	if ds := w.dirs[parent(r)]; ds != nil {
		if _, had := ds.entries[base(r)]; had {
			delete(ds.entries, base(r))
			known = true
		}
	}
	if known && emit {
		w.emit(Event{Path: r, Op: Remove, Time: t, Dir: w.dirs[r] != nil, Gone: true})
	}
	w.dropTree(r, emit, t)
}

// scanDir watches directory d (a root or inside one), then reads it and
// reconciles its entries with the snapshot, recursing into subdirectories.
// With emit it reports each difference, stamped t.
func (w *Watcher) scanDir(d string, emit bool, t time.Time) error {
	ds, err := w.watchDir(d, true)
	if err != nil {
		return w.note(err)
	}
	if w.walking {
		if ds.scanned == w.gen { // overlapping roots
			return nil
		}
		ds.scanned = w.gen
	}
	ents, err := readDir(d)
	if err != nil {
		return w.note(fmt.Errorf("read directory %s: %w", d, err))
	}
	old := ds.entries
	cur := make(map[string]fileStat, len(ents))
	for _, e := range ents {
		name := e.Name()
		p := join(d, name)
		isDir := e.IsDir()
		if w.excluded(p, isDir) {
			if isDir {
				w.skipped[p] = true
				if w.anc[p] { // a root lies inside an excluded directory
					if err := w.resolveBelow(p, emit, t); err != nil {
						return err
					}
				}
			}
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed since the read; its event follows
		}
		st := statOf(info)
		cur[name] = st
		prev, had := old[name]
		if had && prev.isDir() && !st.isDir() {
			w.dropTree(p, emit, t)
		}
		if emit {
			if op := diffOp(prev, had, st); op != 0 {
				w.emit(Event{Path: p, Op: op, Time: t, Dir: st.isDir()})
			}
		}
		if st.isDir() {
			if err := w.scanDir(p, emit, t); err != nil {
				return err
			}
		}
	}
	for name, st := range old {
		if _, ok := cur[name]; ok {
			continue
		}
		p := join(d, name)
		if emit {
			w.emit(Event{Path: p, Op: Remove, Time: t, Dir: st.isDir(), Gone: true})
		}
		if st.isDir() {
			w.dropTree(p, emit, t)
		}
	}
	ds.entries = cur
	return nil
}

func readDir(d string) ([]fs.DirEntry, error) {
	f, err := os.Open(d)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1) // unsorted: order does not matter here
	if err != nil && len(ents) == 0 {
		return nil, err
	}
	return ents, nil
}

// dropTree unwatches d and everything watched below it, reporting a Remove
// for every entry it knew.
func (w *Watcher) dropTree(d string, emit bool, t time.Time) {
	ds := w.dirs[d]
	if ds == nil {
		return
	}
	delete(w.dirs, d)
	w.unwatch(d)
	for name, st := range ds.entries {
		p := join(d, name)
		if emit {
			w.emit(Event{Path: p, Op: Remove, Time: t, Dir: st.isDir(), Gone: true})
		}
		if st.isDir() {
			w.dropTree(p, emit, t)
		}
	}
	for a := range w.anc { // ancestors of roots watched inside excluded directories
		if a != d && pathrule.Within(d, a) {
			w.dropTree(a, emit, t)
		}
	}
}

// onEvent applies one fsnotify event to the tree and reports it if it
// concerns a root.
func (w *Watcher) onEvent(ev fsnotify.Event, t time.Time) error {
	p := ev.Name
	if strings.HasPrefix(p, "//") { // watch on "/"
		p = filepath.Clean(p)
	}
	op := opFrom(ev.Op)
	if op == 0 {
		return nil
	}
	name := base(p)
	pds := w.dirs[parent(p)]
	self := w.dirs[p]
	if pds == nil && self == nil {
		// From a watch being dropped (its directory was removed or moved
		// away, which was reported then).
		return nil
	}
	if pds != nil && !pds.full && !w.roots[p] && !w.anc[p] && self == nil {
		return nil // a sibling of a root file, or of the way to a missing root
	}

	if op.Has(Remove | Rename) {
		wasDir := self != nil || w.skipped[p]
		if pds != nil {
			if prev, had := pds.entries[name]; had {
				wasDir = wasDir || prev.isDir()
				delete(pds.entries, name)
			}
		}
		delete(w.skipped, p)
		if w.reportable(p, wasDir, pds) {
			w.emit(Event{Path: p, Op: op, Time: t, Dir: wasDir, Gone: true})
		}
		w.dropTree(p, true, t)
		if w.roots[p] || w.anc[p] {
			// Watch from the nearest ancestor, so the root is picked up
			// again when it comes back.
			return w.resolveBelow(p, true, t)
		}
		return nil
	}

	fi, err := os.Lstat(p)
	if err != nil {
		// Gone already; its Remove follows. Report what the kernel said.
		if w.reportable(p, false, pds) {
			w.emit(Event{Path: p, Op: op, Time: t, Gone: true})
		}
		return nil
	}
	isDir := fi.IsDir()
	if !w.reportable(p, isDir, pds) {
		if isDir && op.Has(Create) {
			if pds != nil && pds.full {
				w.skipped[p] = true
			}
			if w.anc[p] {
				return w.resolveBelow(p, true, t)
			}
		}
		return nil
	}
	w.emit(Event{Path: p, Op: op, Time: t, Dir: isDir})
	if pds != nil {
		pds.entries[name] = statOf(fi)
	}
	if isDir && op.Has(Create) {
		return w.scanDir(p, true, t)
	}
	return nil
}
