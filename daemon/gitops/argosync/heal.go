package argosync

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Backoff is an exponential back-off: Initial after the first failure, multiplied by
// Factor after each further one, never more than Max.
type Backoff struct {
	Initial time.Duration
	Factor  float64
	Max     time.Duration
}

// DefaultHealBackoff is Argo CD's default sync retry back-off: 5 s, doubling, at most
// 3 min. A function, not a variable, so no caller can change it for everyone; a
// Healer's own Backoff is the knob.
func DefaultHealBackoff() Backoff {
	return Backoff{Initial: 5 * time.Second, Factor: 2, Max: 3 * time.Minute}
}

// Delay is the wait after n consecutive failures (n >= 1).
func (b Backoff) Delay(n int) time.Duration {
	d := float64(b.Initial)
	for i := 1; i < n && d < float64(b.Max); i++ {
		d *= b.Factor
	}
	return min(time.Duration(d), b.Max)
}

// Healer is self-heal for one app (Argo CD's automated selfHeal): each Heal compares the
// live objects with the desired ones and re-syncs when they drifted. After a failed re-sync
// it holds further ones back per Backoff; a successful one, or finding the app in sync,
// resets the back-off. Safe for concurrent use; heals of one app never overlap.
type Healer struct {
	Backoff Backoff
	// Now is the clock; tests replace it.
	Now func() time.Time

	compare func(context.Context, []*unstructured.Unstructured, Options) ([]string, error)
	sync    func(context.Context, []*unstructured.Unstructured, Options) (*Result, error)

	mu       sync.Mutex
	failures int
	retryAt  time.Time
}

// NewHealer makes a Healer for one app on this Syncer's cluster, with DefaultHealBackoff.
func (s *Syncer) NewHealer() *Healer {
	return &Healer{Backoff: DefaultHealBackoff(), Now: time.Now, compare: s.drifted, sync: s.Sync}
}

// HealResult is what one Heal did.
type HealResult struct {
	// Drifted are the keys of objects that were out of sync: missing or edited, else,
	// with Options.Prune, left over to prune. Empty when the app was in sync.
	Drifted []string
	// Sync is the re-sync's result; nil when nothing drifted or the back-off held it back.
	Sync *Result
	// RetryAt, when not zero, is the earliest time the next re-sync may run: call Heal
	// again then if the app is still out of sync.
	RetryAt time.Time
}

// Heal re-syncs objs as o when the live state drifted from them and the back-off allows.
// A failed re-sync (an error or a Result that did not succeed) pushes RetryAt out.
func (h *Healer) Heal(ctx context.Context, objs []*unstructured.Unstructured, o Options) (HealResult, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	drifted, err := h.compare(ctx, objs, o)
	if err != nil {
		return HealResult{}, err
	}
	if len(drifted) == 0 {
		h.failures, h.retryAt = 0, time.Time{}
		return HealResult{}, nil
	}
	out := HealResult{Drifted: drifted}
	if h.Now().Before(h.retryAt) {
		out.RetryAt = h.retryAt
		return out, nil
	}
	res, err := h.sync(ctx, objs, o)
	out.Sync = res
	if err == nil && res != nil && res.Succeeded {
		h.failures, h.retryAt = 0, time.Time{}
		return out, nil
	}
	if ctx.Err() != nil {
		// Cancelled by the caller: not the app's failure.
		return out, err
	}
	h.failures++
	h.retryAt = h.Now().Add(h.Backoff.Delay(h.failures))
	out.RetryAt = h.retryAt
	return out, err
}

// drifted lists the keys of desired objects that are out of sync or, when none is and
// o.Prune is set, of tracked objects that a sync would prune (listing those costs a
// request per resource type, and a re-sync prunes them anyway).
func (s *Syncer) drifted(ctx context.Context, objs []*unstructured.Unstructured, o Options) ([]string, error) {
	sts, err := s.Compare(ctx, objs, o)
	if err != nil {
		return nil, err
	}
	var out []string
	desired := make([]*unstructured.Unstructured, 0, len(sts))
	for _, st := range sts {
		if st.Status == OutOfSync {
			out = append(out, st.Key)
		}
		desired = append(desired, st.Desired)
	}
	if len(out) > 0 || !o.Prune {
		return out, nil
	}
	live, err := s.Tracked(ctx, o.App)
	if err != nil {
		return nil, err
	}
	pol, err := compilePolicy(o.Policy)
	if err != nil {
		return nil, err
	}
	for _, l := range unwanted(live, desired, pol) {
		out = append(out, Key(l))
	}
	return out, nil
}
