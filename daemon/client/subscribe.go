package client

import (
	"context"
	"errors"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// Message is one item of a subscription; exactly one field is set.
type Message struct {
	// Snapshot replaces everything the subscriber knew: sent on the first
	// connect and after a reconnect that could not resume (daemon restarted,
	// or the subscriber fell behind the event log).
	Snapshot *api.Snapshot
	// Event follows the last Snapshot or Event without gaps.
	Event *api.Event
	// Disconnected reports that the daemon went away; the subscription keeps
	// trying and sends a Snapshot or Events when it is back.
	Disconnected error
}

// SubscribeOptions tune Subscribe.
type SubscribeOptions struct {
	// LogTail is how many last lines per resource each Snapshot carries.
	LogTail int
}

// Subscribe follows the daemon until ctx is done: a Snapshot, then Events;
// on a disconnect a Disconnected message, retries with backoff, then Events
// resumed where they stopped or a new Snapshot. The channel is closed when
// ctx is done, and only then. One goroutine per call, stopped by ctx.
func (c *Client) Subscribe(ctx context.Context, o SubscribeOptions) <-chan Message {
	out := make(chan Message, 1024)
	go func() {
		defer close(out)
		c.subscribe(ctx, o, out)
	}()
	return out
}

func (c *Client) subscribe(ctx context.Context, o SubscribeOptions, out chan<- Message) {
	send := func(m Message) bool {
		select {
		case out <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var (
		instance string
		after    uint64
		reported bool // a Disconnected was sent for the current outage
		delay    = c.o.MinBackoff
	)
	// lost reports a disconnect once per outage and waits before retrying.
	lost := func(err error) bool {
		if !reported {
			if !send(Message{Disconnected: err}) {
				return false
			}
			reported = true
		}
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
		if delay *= 2; delay > c.o.MaxBackoff {
			delay = c.o.MaxBackoff
		}
		return true
	}
	for ctx.Err() == nil {
		if instance == "" {
			snap, err := c.State(ctx, o.LogTail)
			if err != nil {
				if ctx.Err() != nil || !lost(err) {
					return
				}
				continue
			}
			instance, after, reported, delay = snap.Instance, snap.Seq, false, c.o.MinBackoff
			if !send(Message{Snapshot: snap}) {
				return
			}
		}
		st, err := c.Events(ctx, after, instance)
		if errors.Is(err, ErrGap) {
			instance = ""
			continue
		}
		if err != nil {
			if ctx.Err() != nil || !lost(err) {
				return
			}
			continue
		}
		reported, delay = false, c.o.MinBackoff
		for ev := range st.C {
			after = ev.Seq
			if !send(Message{Event: &ev}) {
				return
			}
		}
		err = st.Err()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = unavailable{errors.New("the daemon closed the event stream")}
		}
		if !lost(err) {
			return
		}
	}
}
