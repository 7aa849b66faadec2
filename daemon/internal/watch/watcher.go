package watch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// IgnoreFunc reports whether a path below a root is excluded: an excluded
// directory is neither watched nor entered, and an excluded path produces no
// events. It is called from the watcher's goroutine (and from SetRoots), never
// concurrently with itself.
type IgnoreFunc func(absPath string, isDir bool) bool

// Options configure a Watcher.
type Options struct {
	// Roots are absolute paths of directories or files; they may overlap and
	// may not exist yet.
	Roots []string
	// Ignore may be nil (nothing below the roots is excluded).
	Ignore IgnoreFunc
	// Now stamps events; nil means time.Now.
	Now func() time.Time
	// OnError, when set, hears why a root change requested with RequestRoots
	// failed; it is called from the watcher's goroutine.
	OnError func(error)
}

// Stats describe what a Watcher watches.
type Stats struct {
	Watches   int           // directories with an inotify watch
	Entries   int           // files and directories in the snapshot
	Skipped   int           // excluded directories seen and not entered
	Overflows int           // kernel queue overflows, each followed by a rescan
	Events    uint64        // events delivered on Events
	Walk      time.Duration // duration of the last full walk
	Walks     int           // full walks for SetRoots after Run started
	Errors    int           // errors that did not stop the watcher
	LastError string        // the latest of those
}

// ErrStopped is returned by SetRoots after Run has returned.
var ErrStopped = errors.New("watcher stopped")

// Watcher reports file events under a set of roots. Create it with New, then
// call Run once; SetRoots, Stats, Events and Ready are safe for concurrent use.
type Watcher struct {
	now     func() time.Time
	events  chan []Event
	ready   chan struct{}
	started atomic.Bool
	sent    atomic.Uint64

	onRootsError func(error)
	// reroot carries the latest RequestRoots to Run's goroutine.
	rerootMu  sync.Mutex
	rerootReq *rootsRequest
	reroot    chan struct{}
	bar       barriers

	// Test hooks, set before Run: testErrs injects errors as if fsnotify had
	// reported them; testDrop discards events as a full kernel queue would.
	testErrs chan error
	testDrop func(fsnotify.Event) bool

	mu      sync.Mutex // guards everything below; held while handling events
	fsw     *fsnotify.Watcher
	stopped bool
	tree
	queue []Event // events produced under mu, moved to Run's delivery queue
	stats Stats
	key   string // the key of the roots' last walk (SetRoots)
}

// New validates opts and returns a Watcher that does nothing until Run.
func New(opts Options) (*Watcher, error) {
	roots, err := cleanRoots(opts.Roots)
	if err != nil {
		return nil, err
	}
	w := &Watcher{
		now:          opts.Now,
		events:       make(chan []Event),
		ready:        make(chan struct{}),
		reroot:       make(chan struct{}, 1),
		bar:          barriers{kick: make(chan struct{}, 1)},
		onRootsError: opts.OnError,
	}
	if w.now == nil {
		w.now = time.Now
	}
	w.setRoots(roots, opts.Ignore)
	w.dirs = map[string]*dirState{}
	w.skipped = map[string]bool{}
	return w, nil
}

func cleanRoots(roots []string) ([]string, error) {
	seen := map[string]bool{}
	out := make([]string, 0, len(roots))
	for _, r := range roots {
		if !filepath.IsAbs(r) {
			return nil, fmt.Errorf("watch root %q: not an absolute path", r)
		}
		r = filepath.Clean(r)
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Events delivers events in the order read, in small groups as they are read
// (no debouncing). Events are never dropped: they queue while the receiver is
// busy. The channel is closed when Run returns.
func (w *Watcher) Events() <-chan []Event { return w.events }

// Ready is closed when the initial walk has finished and every root is
// watched. It is never closed if Run fails before that (Events is closed).
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Stats returns the current counts.
func (w *Watcher) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Watches = len(w.dirs)
	s.Skipped = len(w.skipped)
	for _, ds := range w.dirs {
		s.Entries += len(ds.entries)
	}
	s.Events = w.sent.Load()
	return s
}

// SetRoots replaces the roots and the ignore predicate (on a config reload)
// and adds and removes watches for the difference. It reports no events for
// what it finds: files in a new root were not changed by anyone. Before Run
// it only records the roots; after Run returned it returns ErrStopped.
// It reads every watched directory again, so it takes as long as the walk,
// unless key says nothing changed: a non-empty key names the ignore rules, and
// the same roots with the same key as the last successful call keep the watches
// (and the predicate) as they are.
func (w *Watcher) SetRoots(roots []string, ignore IgnoreFunc, key string) error {
	rs, err := cleanRoots(roots)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return ErrStopped
	}
	if key != "" && key == w.key && slices.Equal(rs, w.rootList) {
		return nil
	}
	w.setRoots(rs, ignore)
	w.key = ""
	if w.fsw == nil {
		w.key = key
		return nil // Run walks these roots when it starts.
	}
	start := time.Now()
	err = w.walkAll(false, w.now())
	w.stats.Walk = time.Since(start)
	w.stats.Walks++
	if err == nil {
		w.key = key
	}
	return err
}

type rootsRequest struct {
	roots  []string
	ignore IgnoreFunc
	key    string
}

// RequestRoots is SetRoots carried out by Run's goroutine: it returns at
// once, so a caller that must not wait for a walk (the engine's loop) can
// change the roots. Only the latest request counts; a failure goes to
// Options.OnError. Before Run it takes effect when Run starts.
func (w *Watcher) RequestRoots(roots []string, ignore IgnoreFunc, key string) {
	w.rerootMu.Lock()
	w.rerootReq = &rootsRequest{roots: roots, ignore: ignore, key: key}
	w.rerootMu.Unlock()
	select {
	case w.reroot <- struct{}{}:
	default:
	}
}

func (w *Watcher) takeRootsRequest() *rootsRequest {
	w.rerootMu.Lock()
	defer w.rerootMu.Unlock()
	r := w.rerootReq
	w.rerootReq = nil
	return r
}

// Run walks the roots, then reads and delivers events until ctx is done. It
// returns nil when ctx is done, or an error if the inotify instance cannot be
// created or the initial walk hits the system's watch limit. Events is closed
// when Run returns. Run may be called once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errors.New("run watcher: already started")
	}
	defer close(w.events)
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		w.stop()
		return fmt.Errorf("start inotify: %w", err)
	}
	// fsnotify sends some errors while holding the lock that Add and Remove
	// take; if this goroutine, which calls them, were also the one reading
	// Errors, a rename of a watched directory could deadlock it. A goroutine
	// of its own reads Errors at once; it ends when fsw.Close closes Errors.
	errs := make(chan error, 64)
	overflowed := make(chan struct{}, 1) // an overflow that did not fit in errs
	var fwd sync.WaitGroup
	fwd.Add(1)
	go func() {
		defer fwd.Done()
		for err := range fsw.Errors {
			select {
			case errs <- err:
			default:
				// Full: other errors are only counted, but an overflow
				// must still cause a rescan.
				if errors.Is(err, fsnotify.ErrEventOverflow) {
					select {
					case overflowed <- struct{}{}:
					default:
					}
				}
			}
		}
	}()
	defer func() {
		w.stop()
		_ = fsw.Close() // Waits for fsnotify's reader goroutine to exit.
		fwd.Wait()
		w.closeBarriers()
	}()

	// Roots requested before Run are the ones the first walk covers, so
	// that Ready means they are watched.
	if r := w.takeRootsRequest(); r != nil {
		if err := w.SetRoots(r.roots, r.ignore, r.key); err != nil && w.onRootsError != nil {
			w.onRootsError(err)
		}
	}
	w.mu.Lock()
	w.fsw = fsw
	if berr := w.openBarriers(); berr != nil {
		w.noteError(berr) // barriers are then released without a marker
	}
	start := time.Now()
	err = w.walkAll(false, w.now())
	w.stats.Walk = time.Since(start)
	w.mu.Unlock()
	if err != nil {
		return err
	}
	close(w.ready)

	var pending []Event // delivery queue, owned by this goroutine
	for {
		var out chan<- []Event
		if len(pending) > 0 {
			out = w.events
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fsw.Events:
			if !ok {
				return errors.New("read inotify events: stream closed")
			}
			t := w.now()
			w.mu.Lock()
			w.handle(ev, t)
			// Take what fsnotify already holds, so a burst is handled under
			// one lock and delivered as one group.
		drain:
			for range 256 {
				select {
				case ev, ok = <-fsw.Events:
					if !ok {
						break drain
					}
					w.handle(ev, w.now())
				default:
					break drain
				}
			}
			pending = w.takeQueue(pending)
			w.mu.Unlock()
		case err := <-errs:
			pending = w.onError(err, pending)
		case <-overflowed:
			pending = w.onError(fsnotify.ErrEventOverflow, pending)
		case err := <-w.testErrs:
			pending = w.onError(err, pending)
		case out <- pending:
			w.sent.Add(uint64(len(pending)))
			pending = nil
		case <-w.bar.kick:
			w.mu.Lock()
			w.writeBarriers(w.now())
			pending = w.takeQueue(pending)
			w.mu.Unlock()
		case <-w.reroot:
			if r := w.takeRootsRequest(); r != nil {
				if err := w.SetRoots(r.roots, r.ignore, r.key); err != nil && w.onRootsError != nil {
					w.onRootsError(err)
				}
			}
		}
	}
}

func (w *Watcher) stop() {
	w.mu.Lock()
	w.stopped = true
	w.fsw = nil
	w.mu.Unlock()
}

func (w *Watcher) handle(ev fsnotify.Event, t time.Time) {
	if w.testDrop != nil && w.testDrop(ev) {
		return
	}
	if w.barrierEvent(filepath.Clean(ev.Name), opFrom(ev.Op), t) {
		return
	}
	if err := w.onEvent(ev, t); err != nil {
		w.noteError(err)
	}
}

// onError handles an error from fsnotify: an overflow means events were lost,
// so walk again and report the difference.
func (w *Watcher) onError(err error, pending []Event) []Event {
	if err == nil {
		return pending
	}
	t := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if errors.Is(err, fsnotify.ErrEventOverflow) {
		w.stats.Overflows++
		start := time.Now()
		if werr := w.walkAll(true, t); werr != nil {
			w.noteError(werr)
		}
		w.stats.Walk = time.Since(start)
		w.releaseBarriers(t)
	} else {
		w.noteError(fmt.Errorf("read inotify events: %w", err))
	}
	return w.takeQueue(pending)
}

// emit queues an event; called with mu held.
func (w *Watcher) emit(e Event) { w.queue = append(w.queue, e) }

func (w *Watcher) takeQueue(pending []Event) []Event {
	pending = append(pending, w.queue...)
	clear(w.queue)
	w.queue = w.queue[:0]
	return pending
}

func (w *Watcher) noteError(err error) {
	w.stats.Errors++
	w.stats.LastError = err.Error()
}
