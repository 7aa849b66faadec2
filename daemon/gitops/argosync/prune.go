package argosync

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/loop-dev/loop/daemon/model"
)

// AnnKeep on an object keeps it through `loop down`.
const AnnKeep = "loop.dev/keep"

// Tracked lists every live object that loop applied for the app, across all resource types
// the server can list (what Argo CD learns from its cluster cache). Objects the cluster made
// are never among them, even when they copy the app's label or tracking annotation.
func (s *Syncer) Tracked(ctx context.Context, app string) ([]*unstructured.Unstructured, error) {
	lists, err := s.disc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover resource types: %w", err)
	}
	var gvrs []schema.GroupVersionResource
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
			gvrs = append(gvrs, gv.WithResource(r.Name))
		}
	}
	// One list per type, a few at a time: sequentially they take most of a second.
	type listed struct {
		items []unstructured.Unstructured
		err   error
	}
	results := make([]listed, len(gvrs))
	var wg sync.WaitGroup
	slots := make(chan struct{}, 8)
	for i, gvr := range gvrs {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			ul, err := s.cluster.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: LabelApp + "=" + app})
			switch {
			case err == nil:
				results[i].items = ul.Items
			case apierrors.IsNotFound(err) || apierrors.IsMethodNotSupported(err) || apierrors.IsForbidden(err):
			default:
				results[i].err = fmt.Errorf("list %s: %w", gvr.Resource, err)
			}
		}()
	}
	wg.Wait()
	var out []*unstructured.Unstructured
	seen := map[string]bool{}
	for _, r := range results {
		if r.err != nil {
			return nil, r.err
		}
		for i := range r.items {
			o := &r.items[i]
			if !appliedBy(o, app) || seen[Key(o)] {
				continue
			}
			seen[Key(o)] = true
			out = append(out, o)
		}
	}
	return out, nil
}

// appliedBy says whether loop applied o for app: its tracking id names o itself, and no
// owner reference makes it something a controller made. A ReplicaSet copies its
// Deployment's annotations, pods and EndpointSlices copy labels; none of them is applied.
func appliedBy(o *unstructured.Unstructured, app string) bool {
	return o.GetAnnotations()[AnnTrackingID] == trackingID(app, o) && len(o.GetOwnerReferences()) == 0
}

// unwanted picks the live objects that desired no longer holds and pruning may delete.
func unwanted(live, desired []*unstructured.Unstructured, pol *policy) []*unstructured.Unstructured {
	want := map[string]bool{}
	for _, d := range desired {
		want[Key(d)] = true
	}
	var out []*unstructured.Unstructured
	for _, l := range live {
		if !want[Key(l)] && pol.prunable(l) {
			out = append(out, l)
		}
	}
	return out
}

// Prunable says whether a sync that prunes would delete the live object o of an app
// whose policy is p once it is no longer rendered: not a hook, not Prune=false nor
// Prune=confirm (on the object, else in p), not already being deleted.
func Prunable(o *unstructured.Unstructured, p model.ArgoSync) bool {
	pol, err := compilePolicy(p)
	if err != nil {
		pol = &policy{}
	}
	return pol.prunable(o)
}

func (p *policy) prunable(o *unstructured.Unstructured) bool {
	if o.GetDeletionTimestamp() != nil {
		return false
	}
	if v := p.opt(o, model.OptPrune); v == "false" || v == "confirm" {
		return false
	}
	_, isHook, _ := hookPhases(o)
	return !isHook
}

// prune deletes the app's live objects that desired no longer holds, highest wave first,
// with the PrunePropagationPolicy (foreground unless set); last selects the
// PruneLast=true ones, which go after everything else. An object marked Prune=confirm
// is left, with a step saying so (loop cannot ask for the confirmation).
func (s *Syncer) prune(ctx context.Context, live, desired []*unstructured.Unstructured, pol *policy, last bool, res *Result) error {
	var doomed []*unstructured.Unstructured
	for _, l := range unwanted(live, desired, pol) {
		if pol.is(l, model.OptPruneLast, "true") == last {
			doomed = append(doomed, l)
		}
	}
	if !last {
		want := map[string]bool{}
		for _, d := range desired {
			want[Key(d)] = true
		}
		for _, l := range live {
			if !want[Key(l)] && l.GetDeletionTimestamp() == nil && pol.is(l, model.OptPrune, "confirm") {
				res.Steps = append(res.Steps, Step{Action: "prune-needs-confirmation", Key: Key(l), Phase: Sync, Wave: wave(l)})
			}
		}
	}
	slices.SortStableFunc(doomed, func(a, b *unstructured.Unstructured) int {
		if c := cmp.Compare(wave(b), wave(a)); c != 0 {
			return c
		}
		return cmp.Compare(kindRank(b.GetKind()), kindRank(a.GetKind()))
	})
	prop := metav1.DeletePropagationForeground
	switch pol.opt(nil, model.OptPrunePropagationPolicy) {
	case "background":
		prop = metav1.DeletePropagationBackground
	case "orphan":
		prop = metav1.DeletePropagationOrphan
	}
	for _, l := range doomed {
		ri, err := s.resource(l)
		if err != nil {
			return err
		}
		if err := ri.Delete(ctx, l.GetName(), metav1.DeleteOptions{PropagationPolicy: &prop}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("prune %s: %w", Key(l), err)
		}
		res.Steps = append(res.Steps, Step{Action: "prune", Key: Key(l), Phase: Sync, Wave: wave(l)})
	}
	return nil
}

// Down deletes every object loop applied for the app, except those annotated
// loop.dev/keep: "true" and those whose Delete sync option (the object's
// argocd.argoproj.io/sync-options, else the app's p) is false or confirm. It returns
// the keys it deleted (not those already being deleted).
func (s *Syncer) Down(ctx context.Context, app string, p model.ArgoSync) ([]string, error) {
	pol, err := compilePolicy(p)
	if err != nil {
		return nil, fmt.Errorf("down %s: %w", app, err)
	}
	live, err := s.Tracked(ctx, app)
	if err != nil {
		return nil, err
	}
	var deleted []string
	for _, l := range live {
		if d := pol.opt(l, model.OptDelete); l.GetAnnotations()[AnnKeep] == "true" || d == "false" || d == "confirm" || l.GetDeletionTimestamp() != nil {
			continue
		}
		ri, err := s.resource(l)
		if err != nil {
			return deleted, err
		}
		// Only the object as listed: one another app applied since (a resource renamed,
		// an object moved to another resource) has a new resourceVersion and stays.
		prop := metav1.DeletePropagationBackground
		uid, rv := l.GetUID(), l.GetResourceVersion()
		err = ri.Delete(ctx, l.GetName(), metav1.DeleteOptions{PropagationPolicy: &prop,
			Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		switch {
		case apierrors.IsConflict(err):
			continue
		case err != nil && !apierrors.IsNotFound(err):
			return deleted, fmt.Errorf("delete %s: %w", Key(l), err)
		}
		deleted = append(deleted, Key(l))
	}
	return deleted, nil
}
