package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/internal/watch"
)

// When pending changes are due, on a clock the test sets: events are stamped
// with it and classify is called as the engine would after each batch.

var t0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// addFiles adds n events spread evenly over [from, to] (times after t0).
func addFiles(r *state, prefix string, n int, from, to time.Duration) {
	for i := range n {
		at := from
		if n > 1 {
			at += (to - from) * time.Duration(i) / time.Duration(n-1)
		}
		r.addChange(watch.Event{Path: fmt.Sprintf("/src/%s%05d", prefix, i), Op: watch.Write, Time: t0.Add(at)}, t0.Add(at))
	}
}

func immediate() *state { return &state{res: &Resource{Name: "r", Immediate: true}} }

func TestSingleSaveGoesOutAtOnce(t *testing.T) {
	r := immediate()
	addFiles(r, "main", 1, time.Second, time.Second)
	r.classify(t0.Add(time.Second + watch.LiveQuiet))
	if want := t0.Add(time.Second + watch.LiveQuiet); !r.due.Equal(want) {
		t.Errorf("a save to an idle resource is due at +%v, want at once (+%v)", r.due.Sub(t0), want.Sub(t0))
	}
}

// A branch switch whose writer pauses 200 ms after 600 ms of fast writes is
// still one burst: the follow-up is not due before the writes resume.
func TestBurstStretchesOverAPause(t *testing.T) {
	r := immediate()
	r.updating = true // the burst's first files are being synced
	addFiles(r, "a", 1800, 0, 600*time.Millisecond)
	r.classify(t0.Add(600 * time.Millisecond))
	if resume := t0.Add(800 * time.Millisecond); !r.due.After(resume) {
		t.Fatalf("follow-up due at +%v, during the writer's pause (writes resume at +%v)", r.due.Sub(t0), resume.Sub(t0))
	}
	addFiles(r, "b", 600, 800*time.Millisecond, time.Second)
	r.classify(t0.Add(time.Second))
	want := t0.Add(time.Second + watch.FollowQuiet + time.Second/watch.BurstSlack)
	if !r.due.Equal(want) {
		t.Errorf("after the last write the follow-up is due at +%v, want +%v", r.due.Sub(t0), want.Sub(t0))
	}
}

// Files arriving at a person's pace keep FollowQuiet, however many.
func TestSlowChangesKeepFollowQuiet(t *testing.T) {
	r := immediate()
	r.updating = true
	addFiles(r, "f", 40, 0, 4*time.Second)
	r.classify(t0.Add(4 * time.Second))
	if want := t0.Add(4*time.Second + watch.FollowQuiet); !r.due.Equal(want) {
		t.Errorf("follow-up due at +%v, want +%v", r.due.Sub(t0), want.Sub(t0))
	}
}

// A burst that never pauses still goes out BurstMax after its first file.
func TestBurstBoundedByBurstMax(t *testing.T) {
	r := immediate()
	r.updating = true
	addFiles(r, "f", 20000, 0, watch.BurstMax-10*time.Millisecond)
	r.classify(t0.Add(watch.BurstMax - 10*time.Millisecond))
	if want := t0.Add(watch.BurstMax); !r.due.Equal(want) {
		t.Errorf("follow-up due at +%v, want BurstMax (+%v)", r.due.Sub(t0), want.Sub(t0))
	}
}
