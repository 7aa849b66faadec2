package liveupdate

import (
	"context"
	"fmt"
	"io"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/model"
)

// Synced are the changes live-updated since an image was built, the latest
// per path: a new container of that image gets them again.
type Synced map[string]Change

// Add records changes that reached the containers.
func (s Synced) Add(changes []Change) {
	for _, c := range changes {
		s[c.Path] = c
	}
}

// Replay brings a new container or pod up to date: the files in synced (the
// caller passes none when the image was rebuilt) and, with initial_sync(),
// every synced file. Run steps and restarts belong to edits, not to this.
// Its spans are added to u.
func Replay(ctx context.Context, t Target, lu *model.LiveUpdate, skip func(string, bool) bool,
	synced Synced, logs io.Writer, u *api.Update) error {
	if lu == nil {
		return nil
	}
	var changes []Change
	for _, c := range synced {
		changes = append(changes, c)
	}
	if lu.InitialSync {
		all, err := InitialSync(lu, skip)
		if err != nil {
			return err
		}
		changes = append(changes, all...)
	}
	if len(changes) == 0 {
		return nil
	}
	d, err := Plan(lu, changes)
	if err != nil || d.Update == nil {
		return err
	}
	up := *d.Update
	up.Runs, up.Restart = nil, false
	up.Skip = skip
	res, err := Apply(ctx, t, up, logs)
	u.Spans = append(u.Spans, Spans(res, 0)...)
	return err
}

// Spans are a live update's timed phases; runs is how many run steps it had.
func Spans(res Result, runs int) []api.Span {
	var out []api.Span
	if res.Sync > 0 {
		out = append(out, api.Span{Name: api.SpanSync, Duration: res.Sync})
	}
	if runs > 0 {
		out = append(out, api.Span{Name: api.SpanRun, Duration: res.Run})
	}
	if res.Restart > 0 {
		out = append(out, api.Span{Name: api.SpanRestart, Duration: res.Restart})
	}
	return out
}

// State is a runtime's live update bookkeeping: the files synced since its
// image was built and whether the last live update failed (the next change
// then rebuilds).
type State struct {
	Synced Synced
	Failed bool
}

// ApplyPlanned applies a plan the engine made for changes to t: u gets the
// kind and spans, and on success changes join Synced.
func (s *State) ApplyPlanned(ctx context.Context, t Target, plan Update, skip func(string, bool) bool,
	changes []Change, logs io.Writer, u *api.Update) error {
	u.Kind = api.UpdateLive
	plan.Skip = skip
	res, err := Apply(ctx, t, plan, logs)
	u.Spans = append(u.Spans, Spans(res, len(plan.Runs))...)
	if err != nil {
		s.Failed = true
		u.Error = err.Error()
		return fmt.Errorf("live update: %w", err)
	}
	if s.Synced == nil {
		s.Synced = Synced{}
	}
	s.Synced.Add(changes)
	return nil
}
