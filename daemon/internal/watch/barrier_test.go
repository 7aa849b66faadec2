package watch

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// TestBarrierFollowsEarlierWrites: a barrier requested right after writes
// comes back after the events of every one of them, many times over, and
// leaves nothing behind in the roots or the temp dir.
func TestBarrierFollowsEarlierWrites(t *testing.T) {
	root := t.TempDir()
	w, c := start(t, Options{Roots: []string{root}})
	for i := 1; i <= 200; i++ {
		p := filepath.Join(root, "f"+strings.Repeat("x", i%7)+".txt")
		write(t, p, "v"+string(rune('a'+i%26)))
		w.Barrier(uint64(i))
		tok := uint64(i)
		evs := c.waitFor(t, "barrier", func(evs []Event) bool {
			return slices.ContainsFunc(evs, func(e Event) bool { return e.Barrier == tok })
		})
		at := slices.IndexFunc(evs, func(e Event) bool { return e.Barrier == tok })
		if !slices.ContainsFunc(evs[:at], func(e Event) bool { return e.Path == p && e.Op.Has(Write|Create) }) {
			t.Fatalf("round %d: barrier before the write of %s:\n%s", i, p, dump(evs))
		}
		c.mu.Lock()
		c.evs = nil
		c.mu.Unlock()
	}
	for _, e := range c.all() {
		if e.Barrier == 0 && !strings.HasPrefix(e.Path, root) {
			t.Errorf("event outside the root: %s %s", e.Op, e.Path)
		}
	}
	w.mu.Lock()
	dir, left := w.bar.dir, len(w.bar.written)
	w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d markers still outstanding", left)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("marker directory %s holds %d entries (%v)", dir, len(entries), err)
	}
	rootEntries, _ := os.ReadDir(root)
	for _, e := range rootEntries {
		if !strings.HasPrefix(e.Name(), "f") {
			t.Errorf("the barrier left %s in the root", e.Name())
		}
	}
}

// TestBarrierWithNoRoots: a watcher with nothing to watch still answers.
func TestBarrierWithNoRoots(t *testing.T) {
	w, c := start(t, Options{})
	w.Barrier(7)
	c.waitFor(t, "barrier 7", func(evs []Event) bool {
		return slices.ContainsFunc(evs, func(e Event) bool { return e.Barrier == 7 })
	})
}

// TestBatcherBarrierIsDueAtOnce: a barrier ends the quiet period and rides
// with the events queued ahead of it.
func TestBatcherBarrierIsDueAtOnce(t *testing.T) {
	b, clk := startBatcher(t, 20*time.Millisecond, 250*time.Millisecond)
	t0 := clk.Now()
	b.Add([]Event{ev("/a", Write, t0)})
	clk.waitArmed(t, t0.Add(20*time.Millisecond))
	b.Add([]Event{ev("/b", Write, t0), {Barrier: 3, Time: t0}})
	bt := nextBatch(t, b)
	if got, want := paths(bt), []string{"/a", "/b"}; !slices.Equal(got, want) {
		t.Errorf("batch paths %v, want %v", got, want)
	}
	if !slices.Equal(bt.Barriers, []uint64{3}) {
		t.Errorf("barriers %v, want [3]", bt.Barriers)
	}
}

// TestBarrierAfterOverflow: when the kernel queue overflows and the marker's
// event is lost with the others, the rescan reports the lost changes and
// then releases the barrier, after them.
func TestBarrierAfterOverflow(t *testing.T) {
	root := t.TempDir()
	q := newLossyQueue()
	w, c := start(t, Options{Roots: []string{root}}, q.install)
	dropping := &q.dropping
	dropped, errs := q.dropped, q.errs
	dropping.Store(true)
	p := filepath.Join(root, "lost.txt")
	write(t, p, "x")
	w.Barrier(9)
	for name := range dropped {
		if filepath.Base(name) == "9" {
			break // the marker's event, lost too
		}
	}
	dropping.Store(false)
	errs <- fsnotify.ErrEventOverflow
	evs := c.waitFor(t, "barrier 9", func(evs []Event) bool {
		return slices.ContainsFunc(evs, func(e Event) bool { return e.Barrier == 9 })
	})
	at := slices.IndexFunc(evs, func(e Event) bool { return e.Barrier == 9 })
	if !slices.ContainsFunc(evs[:at], func(e Event) bool { return e.Path == p }) {
		t.Fatalf("the barrier came before the rescan's report of %s:\n%s", p, dump(evs))
	}
}
