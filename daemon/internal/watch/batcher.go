package watch

import (
	"context"
	"sync"
	"time"
)

// Batch timing presets (see the package doc for the reasoning).
const (
	// LiveQuiet and LiveMax group events for a live update: a sync costs
	// milliseconds, so a short quiet period loses little if it splits a burst
	// (the engine folds what arrives during an update into one follow-up).
	LiveQuiet = 2 * time.Millisecond
	LiveMax   = 250 * time.Millisecond
	// RebuildQuiet and RebuildMax group events for a rebuild, which costs
	// seconds: wait for the editor, formatter or branch switch to finish.
	RebuildQuiet = 200 * time.Millisecond
	RebuildMax   = 2 * time.Second
	// FollowQuiet is the quiet period the engine waits for before a
	// follow-up update: changes that arrive while an update runs (or just
	// after it), or a batch of more than BurstFiles files, are most likely
	// one burst (a branch switch, a build writing output), best delivered as
	// one more update, not many. BurstMax bounds that wait.
	FollowQuiet = 100 * time.Millisecond
	BurstMax    = 5 * time.Second
	BurstFiles  = 32
	// FollowWindow is how soon after an update a batch still counts as the
	// tail of the same burst: a burst's events come microseconds apart, a
	// person's saves hundreds of milliseconds apart.
	FollowWindow = 25 * time.Millisecond
	// BurstRate and BurstSlack are the rate rule: while more than
	// BurstFiles files arrive at more than BurstRate files a second, a
	// follow-up waits for FollowQuiet plus 1/BurstSlack of the time the
	// burst has run so far (still bounded by BurstMax). A writer that
	// pauses midway through a branch switch (a GC, a busy disk, a loaded
	// machine) then does not cut an update at each pause, while a short
	// burst, and a person's saves (which never reach the rate), keep
	// FollowQuiet.
	BurstRate  = 200 // files a second
	BurstSlack = 4
)

// Batch is a group of events that became due together.
type Batch struct {
	// Events has one event per path, in the order of each path's last event,
	// with the union of the path's Ops (in event order of its last event) and
	// the path's first Time (its edit time).
	Events []Event
	// First and Last are the earliest and latest event Time in the batch.
	First, Last time.Time
	// Barriers are the barrier tokens (Event.Barrier) that arrived with the
	// batch: every event read before them is in this batch or an earlier one.
	Barriers []uint64
}

// Timer is the part of *time.Timer a Batcher uses, so tests can drive it.
type Timer interface {
	C() <-chan time.Time
	Reset(d time.Duration)
	Stop()
}

// TimerFunc starts a Timer that fires once after d.
type TimerFunc func(d time.Duration) Timer

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time   { return r.t.C }
func (r realTimer) Reset(d time.Duration) { r.t.Reset(d) }
func (r realTimer) Stop()                 { r.t.Stop() }

func newRealTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// Batcher groups events into batches: a batch is due quiet after the last Add
// or max after the first Add of the batch, whichever is earlier. Nothing is
// dropped: a due batch that the receiver has not taken yet absorbs the next
// due batch. Add is safe for concurrent use and never blocks on the receiver.
type Batcher struct {
	quiet, max time.Duration
	now        func() time.Time
	newTimer   TimerFunc
	kick       chan struct{} // wakes Run after Add; capacity 1
	out        chan Batch

	mu      sync.Mutex
	pending accumulator // not yet due
	start   time.Time   // clock time of the first Add of pending
	touched time.Time   // clock time of the latest Add
}

// NewBatcher returns a Batcher; now nil means time.Now, and newTimer (at most
// one) replaces the real timer in tests.
func NewBatcher(quiet, max time.Duration, now func() time.Time, newTimer ...TimerFunc) *Batcher {
	b := &Batcher{
		quiet:    quiet,
		max:      max,
		now:      now,
		newTimer: newRealTimer,
		kick:     make(chan struct{}, 1),
		out:      make(chan Batch),
	}
	if b.now == nil {
		b.now = time.Now
	}
	if len(newTimer) > 0 && newTimer[0] != nil {
		b.newTimer = newTimer[0]
	}
	return b
}

// Add queues events; their quiet period starts now.
func (b *Batcher) Add(evs []Event) {
	if len(evs) == 0 {
		return
	}
	b.mu.Lock()
	now := b.now()
	if b.pending.len() == 0 {
		b.start = now
	}
	b.touched = now
	for _, e := range evs {
		b.pending.add(e)
	}
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default: // Run already has a wake-up pending
	}
}

// Batches delivers due batches. The channel is closed when Run returns;
// events not yet delivered then are discarded with it.
func (b *Batcher) Batches() <-chan Batch { return b.out }

// deadline is when pending becomes due; call with mu held and pending
// non-empty. A barrier makes it due at once: its waiter wants what was read
// ahead of it, and a wait must not add a quiet period.
func (b *Batcher) deadline() time.Time {
	if len(b.pending.barriers) > 0 {
		return b.start
	}
	d := b.touched.Add(b.quiet)
	if m := b.start.Add(b.max); m.Before(d) {
		d = m
	}
	return d
}

// Run times batches and delivers them until ctx is done, then closes
// Batches. Call it once.
func (b *Batcher) Run(ctx context.Context) {
	defer close(b.out)
	timer := b.newTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	var (
		ready accumulator // due, waiting for the receiver
		batch Batch       // ready as a Batch, rebuilt when ready grows
		armed time.Time   // the deadline the timer is set for
		fired bool        // the timer reached armed
	)
	for {
		b.mu.Lock()
		if b.pending.len() > 0 {
			dl := b.deadline()
			// Due when the clock says so, or when the timer set for this
			// very deadline fired (a clock that does not move in a test
			// still lets batches out).
			if !b.now().Before(dl) || (fired && dl.Equal(armed)) {
				ready.merge(&b.pending)
				b.pending.reset()
				batch = ready.batch()
				armed = time.Time{}
			} else if !dl.Equal(armed) {
				armed = dl
				timer.Reset(dl.Sub(b.now()))
			}
		} else if !armed.IsZero() {
			armed = time.Time{}
			timer.Stop()
		}
		b.mu.Unlock()
		fired = false

		var out chan<- Batch
		if ready.len() > 0 {
			out = b.out
		}
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-timer.C():
			fired = true
		case out <- batch:
			ready.reset()
			batch = Batch{}
		}
	}
}

// accumulator deduplicates events by path.
type accumulator struct {
	evs         []Event        // in order of each path's last event; Path "" marks a superseded slot
	idx         map[string]int // path → its slot in evs
	first, last time.Time
	barriers    []uint64
}

func (a *accumulator) len() int { return len(a.idx) + len(a.barriers) }

func (a *accumulator) add(e Event) {
	if e.Barrier != 0 {
		a.barriers = append(a.barriers, e.Barrier)
		return
	}
	if a.idx == nil {
		a.idx = map[string]int{}
	}
	if a.first.IsZero() || e.Time.Before(a.first) {
		a.first = e.Time
	}
	if e.Time.After(a.last) {
		a.last = e.Time
	}
	if i, ok := a.idx[e.Path]; ok {
		e.Time = a.evs[i].Time // keep the edit time
		// Keep every op the path saw: Create then Rename of a temp file
		// tells the consumer the path came and went within the batch.
		e.Op |= a.evs[i].Op
		a.evs[i].Path = ""
	}
	a.idx[e.Path] = len(a.evs)
	a.evs = append(a.evs, e)
	if len(a.evs) > 64 && len(a.evs) > 2*len(a.idx) {
		a.compact()
	}
}

func (a *accumulator) compact() {
	live := a.evs[:0]
	for _, e := range a.evs {
		if e.Path != "" {
			a.idx[e.Path] = len(live)
			live = append(live, e)
		}
	}
	clear(a.evs[len(live):])
	a.evs = live
}

// merge adds o's events after a's (o is later).
func (a *accumulator) merge(o *accumulator) {
	for _, e := range o.evs {
		if e.Path != "" {
			a.add(e)
		}
	}
	a.barriers = append(a.barriers, o.barriers...)
	if !o.first.IsZero() && (a.first.IsZero() || o.first.Before(a.first)) {
		a.first = o.first
	}
	if o.last.After(a.last) {
		a.last = o.last
	}
}

func (a *accumulator) batch() Batch {
	evs := make([]Event, 0, len(a.idx))
	for _, e := range a.evs {
		if e.Path != "" {
			evs = append(evs, e)
		}
	}
	return Batch{Events: evs, First: a.first, Last: a.last, Barriers: append([]uint64(nil), a.barriers...)}
}

func (a *accumulator) reset() { *a = accumulator{} }
