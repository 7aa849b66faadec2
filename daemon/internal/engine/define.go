package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/model"
)

// Helpers for kinds that make Resources.

// Hash fingerprints a resource definition, so that a reload replaces only
// resources whose definition changed.
func Hash(parts ...any) string {
	h := sha256.New()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			b = fmt.Appendf(nil, "%v", p)
		}
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Links converts the Tiltfile's links for a resource's status.
func Links(ls []model.Link) []api.Link {
	var out []api.Link
	for _, l := range ls {
		out = append(out, api.Link{URL: l.URL, Name: l.Name})
	}
	return out
}

// DefaultTrigger is the config's trigger mode for resources that set none.
func DefaultTrigger(cfg *model.Config) model.TriggerMode {
	if cfg.Settings.TriggerMode == "" {
		return model.TriggerAuto
	}
	return cfg.Settings.TriggerMode
}

// RunUpdate is the Runtime.Update of a kind that live-updates: the job's
// planned live update when target (nil when none is connected) can take it,
// else full. The outcome says whether the next changes may be live-updated.
func RunUpdate(ctx context.Context, j Job, h Host, state *liveupdate.State, target func() liveupdate.Target,
	full func(context.Context, Job, api.Update) Outcome) Outcome {
	u := api.Update{Kind: api.UpdateInit, Started: j.Started, Edit: j.Edit, Batched: j.Batched, Files: len(j.Changes)}
	if j.Changes != nil {
		u.Kind = api.UpdateRebuild
	}
	if t := target(); j.Live != nil && t != nil && !state.Failed {
		if err := state.ApplyPlanned(ctx, t, *j.Live, j.Skip.Ignored, j.Changes, h.Log, &u); err != nil {
			return Outcome{Update: u, Err: err}
		}
		u.Ready = h.Now()
		return Outcome{Update: u, Live: true}
	}
	o := full(ctx, j, u)
	o.Live = target() != nil && !state.Failed
	return o
}
