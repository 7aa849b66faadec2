package watch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// barriers are the markers of Barrier requests. The watcher writes each one
// into a directory of its own (created in the system's temp dir, never below a
// root the user declared, removed when Run returns) and watches that
// directory with the same inotify instance as the roots. The kernel keeps one
// queue per instance, in the order things happened, so when the marker's
// Create comes back every event of a change made before the request has been
// read ahead of it.
type barriers struct {
	mu   sync.Mutex
	reqs []uint64 // requested, not yet written
	kick chan struct{}

	// Owned by Run's goroutine.
	dir     string
	written map[string]uint64 // marker path → token
}

// Barrier asks for a barrier: an Event with Barrier set to token is delivered
// on Events after every event the kernel queued before this call, that is,
// after the events of every change completed before it. It returns at once;
// Run's goroutine writes the marker. A barrier requested before Run is
// delivered once Run has walked the roots.
func (w *Watcher) Barrier(token uint64) {
	w.bar.mu.Lock()
	w.bar.reqs = append(w.bar.reqs, token)
	w.bar.mu.Unlock()
	select {
	case w.bar.kick <- struct{}{}:
	default:
	}
}

// openBarriers makes the marker directory and watches it.
func (w *Watcher) openBarriers() error {
	dir, err := os.MkdirTemp("", "loop-barrier-")
	if err != nil {
		return fmt.Errorf("make the barrier directory: %w", err)
	}
	if err := w.fsw.Add(dir); err != nil {
		_ = os.RemoveAll(dir)
		return fmt.Errorf("watch the barrier directory: %w", err)
	}
	w.bar.dir = dir
	w.bar.written = map[string]uint64{}
	return nil
}

func (w *Watcher) closeBarriers() {
	if w.bar.dir != "" {
		_ = os.RemoveAll(w.bar.dir)
	}
}

// writeBarriers writes the markers of pending requests; called on Run's
// goroutine with mu held. A marker that cannot be written releases its
// barrier at once (after the events read so far) and is counted as an error.
func (w *Watcher) writeBarriers(t time.Time) {
	w.bar.mu.Lock()
	reqs := w.bar.reqs
	w.bar.reqs = nil
	w.bar.mu.Unlock()
	for _, tok := range reqs {
		if w.bar.dir == "" {
			w.emit(Event{Barrier: tok, Time: t}) // no marker directory: noted when it failed
			continue
		}
		p := filepath.Join(w.bar.dir, strconv.FormatUint(tok, 10))
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			err = f.Close()
		}
		if err != nil {
			w.noteError(fmt.Errorf("write barrier marker: %w", err))
			w.emit(Event{Barrier: tok, Time: t})
			continue
		}
		w.bar.written[p] = tok
	}
}

// barrierEvent handles an event in the marker directory: the Create of a
// marker releases its barrier. It reports whether path was in that directory
// (such events are never file events).
func (w *Watcher) barrierEvent(path string, op Op, t time.Time) bool {
	if w.bar.dir == "" || filepath.Dir(path) != w.bar.dir {
		return false
	}
	if tok, ok := w.bar.written[path]; ok && op.Has(Create) {
		delete(w.bar.written, path)
		_ = os.Remove(path)
		w.emit(Event{Barrier: tok, Time: t})
	}
	return true
}

// releaseBarriers releases every written marker: after an overflow the
// rescan has reported every change, and a lost marker event must not hold a
// barrier forever.
func (w *Watcher) releaseBarriers(t time.Time) {
	for p, tok := range w.bar.written {
		delete(w.bar.written, p)
		_ = os.Remove(p)
		w.emit(Event{Barrier: tok, Time: t})
	}
}
