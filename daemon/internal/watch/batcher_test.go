package watch

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock that moves only when told, with timers that fire when
// it passes their deadline. Every Reset is announced on armed, so a test can
// wait until the Batcher has seen its Add before moving the clock.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
	armed  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_000_000, 0), armed: make(chan time.Time, 1000)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, ch: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	t.arm(d)
	return t
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for _, t := range c.timers {
		t.fireIfDue()
	}
}

// waitArmed waits until a timer is set for the deadline at.
func (c *fakeClock) waitArmed(t *testing.T, at time.Time) {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case got := <-c.armed:
			if got.Equal(at) {
				return
			}
		case <-timeout:
			t.Fatalf("no timer armed for %v", at)
		}
	}
}

type fakeTimer struct {
	c        *fakeClock
	ch       chan time.Time
	deadline time.Time
	active   bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

// arm is called with c.mu held. Like a Go 1.23 timer, a Reset discards a
// value not yet received.
func (t *fakeTimer) arm(d time.Duration) {
	select {
	case <-t.ch:
	default:
	}
	t.deadline = t.c.now.Add(d)
	t.active = true
	t.fireIfDue()
}

func (t *fakeTimer) fireIfDue() {
	if t.active && !t.deadline.After(t.c.now) {
		t.active = false
		t.ch <- t.c.now
	}
}

func (t *fakeTimer) Reset(d time.Duration) {
	t.c.mu.Lock()
	t.arm(d)
	at := t.deadline
	t.c.mu.Unlock()
	t.c.armed <- at
}

func (t *fakeTimer) Stop() {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	t.active = false
	select {
	case <-t.ch:
	default:
	}
}

func startBatcher(t *testing.T, quiet, max time.Duration) (*Batcher, *fakeClock) {
	t.Helper()
	clk := newFakeClock()
	b := NewBatcher(quiet, max, clk.Now, clk.NewTimer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if _, ok := <-b.Batches(); ok {
			t.Error("Batches not closed after Run returned")
		}
	})
	return b, clk
}

func ev(path string, op Op, at time.Time) Event { return Event{Path: path, Op: op, Time: at} }

// noBatch checks that nothing is being offered. It is exact, not timed: the
// fake clock fired no timer, so Run has nothing due.
func noBatch(t *testing.T, b *Batcher) {
	t.Helper()
	select {
	case bt := <-b.Batches():
		t.Fatalf("unexpected batch %+v", bt)
	default:
	}
}

func nextBatch(t *testing.T, b *Batcher) Batch {
	t.Helper()
	select {
	case bt := <-b.Batches():
		return bt
	case <-time.After(waitLimit):
		t.Fatal("no batch")
	}
	return Batch{}
}

func paths(bt Batch) []string {
	var ps []string
	for _, e := range bt.Events {
		ps = append(ps, e.Path)
	}
	return ps
}

func TestBatcherQuietPeriod(t *testing.T) {
	b, clk := startBatcher(t, 20*time.Millisecond, 250*time.Millisecond)
	t0 := clk.Now()
	b.Add([]Event{ev("/a", Write, t0)})
	clk.waitArmed(t, t0.Add(20*time.Millisecond))

	clk.Advance(15 * time.Millisecond)
	noBatch(t, b)
	b.Add([]Event{ev("/b", Write, clk.Now())}) // restarts the quiet period
	clk.waitArmed(t, t0.Add(35*time.Millisecond))
	clk.Advance(19 * time.Millisecond)
	noBatch(t, b)
	clk.Advance(time.Millisecond)

	bt := nextBatch(t, b)
	if got, want := paths(bt), []string{"/a", "/b"}; !slices.Equal(got, want) {
		t.Errorf("batch paths %v, want %v", got, want)
	}
	if !bt.First.Equal(t0) || !bt.Last.Equal(t0.Add(15*time.Millisecond)) {
		t.Errorf("First, Last = %v, %v; want %v, %v", bt.First, bt.Last, t0, t0.Add(15*time.Millisecond))
	}
}

func TestBatcherMaxWait(t *testing.T) {
	b, clk := startBatcher(t, 20*time.Millisecond, 100*time.Millisecond)
	t0 := clk.Now()
	// An event every 15 ms never leaves 20 ms of quiet; max cuts the batch.
	for i := range 6 {
		b.Add([]Event{ev(fmt.Sprintf("/f%d", i), Write, clk.Now())})
		clk.waitArmed(t, clk.Now().Add(20*time.Millisecond))
		clk.Advance(15 * time.Millisecond)
		noBatch(t, b)
	}
	// Now t0+90ms; the 7th event would move quiet to 110ms, max says 100ms.
	b.Add([]Event{ev("/f6", Write, clk.Now())})
	clk.waitArmed(t, t0.Add(100*time.Millisecond))
	clk.Advance(10 * time.Millisecond)
	bt := nextBatch(t, b)
	if len(bt.Events) != 7 {
		t.Errorf("batch has %d events, want 7: %v", len(bt.Events), paths(bt))
	}

	// The next event starts a new batch with its own max.
	b.Add([]Event{ev("/g", Write, clk.Now())})
	clk.waitArmed(t, clk.Now().Add(20*time.Millisecond))
	clk.Advance(20 * time.Millisecond)
	if got := paths(nextBatch(t, b)); !slices.Equal(got, []string{"/g"}) {
		t.Errorf("second batch %v, want [/g]", got)
	}
}

func TestBatcherDeduplicates(t *testing.T) {
	b, clk := startBatcher(t, 20*time.Millisecond, time.Second)
	t0 := clk.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	b.Add([]Event{ev("/a", Create, at(1)), ev("/a", Write, at(2)), ev("/b", Write, at(3))})
	b.Add([]Event{ev("/a", Remove, at(4)), ev("/c", Create, at(5)), ev("/b", Chmod, at(6))})
	clk.waitArmed(t, t0.Add(20*time.Millisecond))
	clk.Advance(20 * time.Millisecond)
	bt := nextBatch(t, b)
	want := []Event{ev("/a", Create|Write|Remove, at(1)), ev("/c", Create, at(5)), ev("/b", Write|Chmod, at(3))}
	if !slices.Equal(bt.Events, want) {
		t.Errorf("events %+v, want %+v (every op, first time, order of last event)", bt.Events, want)
	}
	if !bt.First.Equal(at(1)) || !bt.Last.Equal(at(6)) {
		t.Errorf("First, Last = %v, %v", bt.First, bt.Last)
	}
}

func TestBatcherKeepsEverythingAcrossBatches(t *testing.T) {
	b, clk := startBatcher(t, 10*time.Millisecond, 50*time.Millisecond)
	var sent, got []string
	for round := range 20 {
		var evs []Event
		for i := range round%4 + 1 {
			p := fmt.Sprintf("/r%d/f%d", round, i)
			sent = append(sent, p)
			evs = append(evs, ev(p, Write, clk.Now()))
		}
		b.Add(evs)
		clk.waitArmed(t, clk.Now().Add(10*time.Millisecond))
		if round%3 == 2 { // let some batches become due
			clk.Advance(10 * time.Millisecond)
			got = append(got, paths(nextBatch(t, b))...)
		} else {
			clk.Advance(5 * time.Millisecond)
		}
	}
	clk.Advance(time.Second)
	got = append(got, paths(nextBatch(t, b))...)
	if !slices.Equal(got, sent) {
		t.Errorf("delivered %v\nwant %v", got, sent)
	}
}

func TestBatcherMergesDueBatchesTheReceiverHasNotTaken(t *testing.T) {
	b, clk := startBatcher(t, 10*time.Millisecond, time.Second)
	b.Add([]Event{ev("/a", Write, clk.Now())})
	clk.waitArmed(t, clk.Now().Add(10*time.Millisecond))
	clk.Advance(10 * time.Millisecond) // due; nobody receives yet
	b.Add([]Event{ev("/b", Write, clk.Now()), ev("/a", Remove, clk.Now())})
	clk.waitArmed(t, clk.Now().Add(10*time.Millisecond))
	clk.Advance(10 * time.Millisecond)
	// Both batches are due; the receiver gets one, with all of /a's ops.
	var bt Batch
	deadline := time.After(waitLimit)
	for len(bt.Events) < 2 {
		select {
		case bt = <-b.Batches():
		case <-deadline:
			t.Fatal("no merged batch")
		}
		if len(bt.Events) == 1 {
			t.Fatalf("received the first batch alone: it was due before the second: %+v", bt)
		}
	}
	want := []Event{ev("/b", Write, bt.Events[0].Time), ev("/a", Write|Remove, bt.Events[1].Time)}
	if !slices.Equal(bt.Events, want) {
		t.Errorf("events %+v, want %+v", bt.Events, want)
	}
}

// The engine passes its own clock, which in its tests may not move: the
// timer alone must still let batches out.
func TestBatcherWithStoppedClock(t *testing.T) {
	frozen := time.Unix(5, 0)
	b := NewBatcher(time.Millisecond, 5*time.Millisecond, func() time.Time { return frozen })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	b.Add([]Event{ev("/x", Write, frozen)})
	if got := paths(nextBatch(t, b)); !slices.Equal(got, []string{"/x"}) {
		t.Errorf("batch %v", got)
	}
}
