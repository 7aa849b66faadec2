package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrPodError is why a `loop ci` deploy failed on a pod in an error state.
var ErrPodError = errors.New("pod in error state")

// podErrorGate fails a `loop ci` deploy on a pod error, as tilt ci does: at
// once, or, with ci_settings(k8s_grace_period=), only when a pod is still in
// error once that long has passed since the deploy started.
type podErrorGate struct {
	mu      sync.Mutex
	msg     string
	changed chan struct{} // capacity 1: a report since watch last looked
}

func newPodErrorGate() *podErrorGate { return &podErrorGate{changed: make(chan struct{}, 1)} }

// report is Workloads.PodErrors: the pods' current error, "" for none. It
// never blocks.
func (g *podErrorGate) report(msg string) {
	g.mu.Lock()
	g.msg = msg
	g.mu.Unlock()
	select {
	case g.changed <- struct{}{}:
	default:
	}
}

// watch calls fail with the pod error once one is reported after the grace
// period from start, and returns; it returns when ctx is done.
func (g *podErrorGate) watch(ctx context.Context, start time.Time, grace time.Duration, fail context.CancelCauseFunc) {
	var graceOver <-chan time.Time
	over := grace <= 0
	if !over {
		t := time.NewTimer(time.Until(start.Add(grace)))
		defer t.Stop()
		graceOver = t.C
	}
	for {
		g.mu.Lock()
		msg := g.msg
		g.mu.Unlock()
		if msg != "" && over {
			fail(fmt.Errorf("%w: %s", ErrPodError, msg))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-g.changed:
		case <-graceOver:
			over, graceOver = true, nil
		}
	}
}
