package argosync

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestBackoffDelay(t *testing.T) {
	want := []time.Duration{5, 10, 20, 40, 80, 160, 180, 180}
	for i, w := range want {
		if got := DefaultHealBackoff().Delay(i + 1); got != w*time.Second {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w*time.Second)
		}
	}
	if got := DefaultHealBackoff().Delay(1000); got != 3*time.Minute {
		t.Errorf("Delay(1000) = %v", got)
	}
}

// TestHealerBackoff drives a Healer on a fake clock with a fake cluster: a sync that keeps
// failing is retried after 5 s, 10 s, ... 3 min and never sooner; success, or finding the
// app in sync, resets the back-off; a cancelled heal does not count as a failure.
func TestHealerBackoff(t *testing.T) {
	now := time.Unix(1700000000, 0)
	drift := []string{"/ConfigMap/ns/a"}
	var syncErr error
	syncOK, syncs := false, 0
	h := &Healer{
		Backoff: DefaultHealBackoff(),
		Now:     func() time.Time { return now },
		compare: func(context.Context, []*unstructured.Unstructured, Options) ([]string, error) { return drift, nil },
		sync: func(ctx context.Context, _ []*unstructured.Unstructured, _ Options) (*Result, error) {
			syncs++
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return &Result{Succeeded: syncOK}, syncErr
		},
	}
	heal := func(ctx context.Context) HealResult {
		t.Helper()
		r, _ := h.Heal(ctx, nil, Options{App: "a"})
		return r
	}
	ctx := context.Background()
	for i, wait := range []time.Duration{5, 10, 20, 40, 80, 160, 180, 180} {
		n := syncs
		r := heal(ctx)
		if syncs != n+1 || !r.RetryAt.Equal(now.Add(wait*time.Second)) {
			t.Fatalf("failure %d: synced %d times, retry at %v, want once and %v later", i+1, syncs-n, r.RetryAt.Sub(now), wait*time.Second)
		}
		retry := r.RetryAt
		now = retry.Add(-time.Millisecond)
		if r := heal(ctx); syncs != n+1 || r.Sync != nil || !r.RetryAt.Equal(retry) || len(r.Drifted) != 1 {
			t.Fatalf("failure %d: heal before the back-off ended = %+v", i+1, r)
		}
		now = retry
	}
	syncOK = true
	if r := heal(ctx); r.Sync == nil || !r.Sync.Succeeded || !r.RetryAt.IsZero() {
		t.Fatalf("good sync: %+v", r)
	}
	syncOK = false
	if r := heal(ctx); !r.RetryAt.Equal(now.Add(5 * time.Second)) {
		t.Fatalf("after a good sync the back-off restarts at 5s, got %v", r.RetryAt.Sub(now))
	}
	if r := heal(ctx); !r.RetryAt.Equal(now.Add(5*time.Second)) || r.Sync != nil {
		t.Fatalf("held back: %+v", r)
	}

	// In sync (someone fixed it): nothing to do, and the back-off is reset.
	drift = nil
	n := syncs
	if r := heal(ctx); syncs != n || len(r.Drifted) != 0 || !r.RetryAt.IsZero() {
		t.Fatalf("in sync: %+v", r)
	}
	drift = []string{"/ConfigMap/ns/a"}
	if r := heal(ctx); syncs != n+1 || !r.RetryAt.Equal(now.Add(5*time.Second)) {
		t.Fatalf("drift after being in sync: synced %d, retry in %v", syncs-n, r.RetryAt.Sub(now))
	}

	// A sync error counts as a failure.
	now = now.Add(5 * time.Second)
	syncErr = errors.New("connection refused")
	if _, err := h.Heal(ctx, nil, Options{}); err == nil || h.failures != 2 {
		t.Fatalf("sync error: err %v, failures %d", err, h.failures)
	}

	// A cancelled heal is the caller's doing: no back-off.
	syncErr = nil
	now = now.Add(10 * time.Second)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	retry := h.retryAt
	if _, err := h.Heal(cctx, nil, Options{}); !errors.Is(err, context.Canceled) || h.failures != 2 || !h.retryAt.Equal(retry) {
		t.Fatalf("cancelled: err %v, failures %d", err, h.failures)
	}
}
