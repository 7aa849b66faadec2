package sync

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// AnnKeep on an object keeps it through `loop down`.
const AnnKeep = "loop.dev/keep"

// Tracked lists every live object stamped with the app's label, across all resource
// types the server can list (what Argo CD learns from its cluster cache).
func (s *Syncer) Tracked(ctx context.Context, app string) ([]*unstructured.Unstructured, error) {
	lists, err := s.disc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resource types: %w", err)
	}
	var out []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") || !slices.Contains(r.Verbs, "delete") {
				continue
			}
			// Events and leases churn and are never applied by loop.
			if r.Kind == "Event" || r.Kind == "Lease" {
				continue
			}
			ul, err := s.cluster.Dynamic.Resource(gv.WithResource(r.Name)).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=" + app})
			if err != nil {
				if apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsForbidden(err) {
					continue
				}
				return nil, fmt.Errorf("list %s: %w", r.Name, err)
			}
			for i := range ul.Items {
				o := &ul.Items[i]
				// Only what loop stamped itself (pods of a tracked Deployment copy its labels).
				if !strings.HasPrefix(o.GetAnnotations()[AnnTrackingID], app+":") || seen[Key(o)] {
					continue
				}
				seen[Key(o)] = true
				out = append(out, o)
			}
		}
	}
	return out, nil
}

// prune deletes tracked objects of the app that desired no longer holds, highest wave
// first; last selects the PruneLast=true ones, which go after everything else.
func (s *Syncer) prune(ctx context.Context, desired []*unstructured.Unstructured, o Options, last bool, res *Result) error {
	want := map[string]bool{}
	for _, d := range desired {
		want[Key(d)] = true
	}
	live, err := s.Tracked(ctx, o.App)
	if err != nil {
		return err
	}
	var doomed []*unstructured.Unstructured
	for _, l := range live {
		if want[Key(l)] || l.GetDeletionTimestamp() != nil || hasSyncOption(l, "Prune=false") {
			continue
		}
		if _, isHook, _ := hookPhases(l); isHook {
			continue
		}
		if hasSyncOption(l, "PruneLast=true") != last {
			continue
		}
		doomed = append(doomed, l)
	}
	slices.SortStableFunc(doomed, func(a, b *unstructured.Unstructured) int {
		if c := cmp.Compare(wave(b), wave(a)); c != 0 {
			return c
		}
		return cmp.Compare(kindRank(b.GetKind()), kindRank(a.GetKind()))
	})
	for _, l := range doomed {
		ri, err := s.resource(l)
		if err != nil {
			return err
		}
		prop := metav1.DeletePropagationBackground
		if err := ri.Delete(ctx, l.GetName(), metav1.DeleteOptions{PropagationPolicy: &prop}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("prune %s: %w", Key(l), err)
		}
		res.Steps = append(res.Steps, Step{Action: "prune", Key: Key(l), Phase: Sync, Wave: wave(l)})
	}
	return nil
}

// Down deletes every object loop applied for the app, except those annotated
// loop.dev/keep: "true". It returns the keys it deleted.
func (s *Syncer) Down(ctx context.Context, app string) ([]string, error) {
	live, err := s.Tracked(ctx, app)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, l := range live {
		if l.GetAnnotations()[AnnKeep] == "true" {
			continue
		}
		ri, err := s.resource(l)
		if err != nil {
			return deleted, err
		}
		prop := metav1.DeletePropagationBackground
		if err := ri.Delete(ctx, l.GetName(), metav1.DeleteOptions{PropagationPolicy: &prop}); err != nil && !apierrors.IsNotFound(err) {
			return deleted, fmt.Errorf("delete %s: %w", Key(l), err)
		}
		deleted = append(deleted, Key(l))
	}
	return deleted, nil
}
