// Package argosync owns applying rendered objects to a cluster the way Argo CD syncs an
// application: server-side apply under field manager "loop", ordered by phase, wave, kind
// and name, waiting for Argo CD's health between waves, running hooks with their delete
// policies, tracking what it applied so it can prune it, and reporting drift.
package argosync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"

	"github.com/loop-dev/loop/daemon/model"
)

// Tracking keys loop stamps on everything it applies.
const (
	// AnnTrackingID is "app:group/kind:namespace/name", like Argo CD's tracking-id.
	AnnTrackingID = "loop.dev/tracking-id"
	// LabelApp selects an app's objects when looking for what to prune.
	LabelApp = "loop.dev/app"
	// FieldManager is loop's server-side apply field manager.
	FieldManager = "loop"
)

// Syncer applies objects to one cluster.
type Syncer struct {
	cluster *Cluster
	disc    discovery.CachedDiscoveryInterface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	// Now names generateName hooks; tests may replace it.
	Now func() time.Time
	// PollInterval is how often health is read while waiting for a wave.
	PollInterval time.Duration

	cmpMu sync.Mutex
	cmp   map[string]comparison // Compare's last results, by object key
}

// NewSyncer makes a Syncer for a connected cluster.
func NewSyncer(c *Cluster) (*Syncer, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(c.Config)
	if err != nil {
		return nil, fmt.Errorf("discovery for %s: %w", c.Context, err)
	}
	cached := memory.NewMemCacheClient(dc)
	return &Syncer{cluster: c, disc: cached, mapper: restmapper.NewDeferredDiscoveryRESTMapper(cached),
		Now: time.Now, PollInterval: 200 * time.Millisecond}, nil
}

// Options say how to sync one app.
type Options struct {
	// App names the app; it keys tracking and pruning.
	App string
	// Namespace is the destination namespace for namespaced objects that set none.
	Namespace string
	// Prune deletes tracked objects of the app that are no longer desired.
	Prune bool
	// Revision goes into generateName hook names (Argo CD uses the commit); default "loop".
	Revision string
	// WaveTimeout bounds the wait for one wave's health; default 5 minutes.
	WaveTimeout time.Duration
	// Policy is what the Argo CD Application says beyond automated: sync options,
	// managed namespace metadata, retry, ignoreDifferences.
	Policy model.ArgoSync
	// Log, when set, hears each failed attempt of a sync that Policy.Retry retries.
	Log io.Writer
}

// Step is one thing a sync did, in order.
type Step struct {
	Action string // "apply", "hook", "prune", "delete-hook"
	Key    string
	Phase  Phase
	Wave   int
}

// Result is what a sync did.
type Result struct {
	Succeeded bool
	Message   string
	Steps     []Step
	// Attempts counts the syncs run: more than 1 when Policy.Retry retried.
	Attempts int
}

// Sync applies objs as one Argo CD sync operation. It returns an error only when the
// cluster could not be talked to; a failed sync (a Degraded object or hook) is a Result
// with Succeeded false, after the SyncFail hooks ran. With o.Policy.Retry, a failed sync
// is run again after the back-off, each failure told to o.Log with its attempt number;
// the Result is the last attempt's, with every attempt's steps.
func (s *Syncer) Sync(ctx context.Context, objs []*unstructured.Unstructured, o Options) (*Result, error) {
	if o.App == "" {
		return nil, errors.New("sync: no app name")
	}
	pol, err := compilePolicy(o.Policy)
	if err != nil {
		return nil, fmt.Errorf("sync %s: %w", o.App, err)
	}
	retry := o.Policy.Retry
	var steps []Step
	for attempt := 1; ; attempt++ {
		res, err := s.syncOnce(ctx, objs, o, pol)
		if res != nil {
			steps = append(steps, res.Steps...)
			res.Steps, res.Attempts = steps, attempt
		}
		if retry == nil || ctx.Err() != nil || (err == nil && res.Succeeded) {
			return res, err
		}
		msg := ""
		if err != nil {
			msg = err.Error()
		} else {
			msg = res.Message
		}
		if retry.Limit >= 0 && int64(attempt) > retry.Limit {
			if o.Log != nil {
				fmt.Fprintf(o.Log, "sync failed (attempt %d of %d): %s; no retries left\n", attempt, retry.Limit+1, msg)
			}
			return res, err
		}
		b := Backoff{Initial: retry.Backoff, Factor: float64(retry.Factor), Max: retry.MaxDuration}
		delay := b.Delay(attempt)
		if o.Log != nil {
			of := "unlimited"
			if retry.Limit >= 0 {
				of = strconv.FormatInt(retry.Limit+1, 10)
			}
			fmt.Fprintf(o.Log, "sync failed (attempt %d of %s): %s; retrying in %s\n", attempt, of, msg, delay)
		}
		if err := sleep(ctx, delay); err != nil {
			return res, err
		}
	}
}

// syncOnce is one attempt of Sync.
func (s *Syncer) syncOnce(ctx context.Context, objs []*unstructured.Unstructured, o Options, pol *policy) (*Result, error) {
	if o.Namespace == "" {
		o.Namespace = s.cluster.Namespace
	}
	if o.Revision == "" {
		o.Revision = "loop"
	}
	if o.WaveTimeout == 0 {
		o.WaveTimeout = 5 * time.Minute
	}
	desired := make([]*unstructured.Unstructured, 0, len(objs))
	crds := crdScopes(objs)
	for _, obj := range objs {
		obj = obj.DeepCopy()
		if err := s.prepare(obj, o, pol, crds); err != nil {
			return nil, err
		}
		desired = append(desired, obj)
	}
	res := &Result{}
	if pol.is(nil, model.OptFailOnSharedResource, "true") {
		if msg, err := s.shared(ctx, desired, o.App); err != nil || msg != "" {
			res.Message = msg
			return res, err
		}
	}
	if err := s.createNamespace(ctx, desired, o, pol, res); err != nil {
		res.Message = err.Error()
		return res, nil
	}
	tasks := Plan(desired)
	started := s.Now()
	var ran []Task // hooks created, for their delete policies
	failed := ""
	// What the app has live is listed once, for both prune passes: it costs a list per type.
	var live []*unstructured.Unstructured
	listed, pruned := false, false
	prune := func(last bool) error {
		pruned = pruned || !last
		if !listed {
			var err error
			if live, err = s.Tracked(ctx, o.App); err != nil {
				return err
			}
			listed = true
		}
		return s.prune(ctx, live, desired, pol, last, res)
	}
	for _, group := range groups(tasks, func(t Task) bool { return t.Phase != SyncFail }) {
		created, err := s.runGroup(ctx, group, o, pol, started, res)
		ran = append(ran, created...)
		if err != nil {
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			failed = err.Error()
			break
		}
		if group[0].Phase == Sync && !nextIsSync(tasks, group) && o.Prune {
			if err := prune(false); err != nil {
				failed = err.Error()
				break
			}
		}
	}
	if failed == "" && o.Prune && !pruned {
		// No Sync-phase wave ran (an app that renders nothing, or only hooks).
		if err := prune(false); err != nil {
			failed = err.Error()
		}
	}
	if failed == "" && o.Prune {
		if err := prune(true); err != nil {
			failed = err.Error()
		}
	}
	if failed != "" {
		res.Message = failed
		for _, group := range groups(tasks, func(t Task) bool { return t.Phase == SyncFail }) {
			created, _ := s.runGroup(ctx, group, o, pol, started, res)
			ran = append(ran, created...)
		}
		s.deleteHooks(ctx, ran, HookFailed, res)
		return res, nil
	}
	res.Succeeded = true
	res.Message = "successfully synced"
	s.deleteHooks(ctx, ran, HookSucceeded, res)
	return res, nil
}

// prepare defaults the namespace and stamps tracking. crds are the scopes of the kinds
// that CRDs among the desired objects define: the server does not know them yet.
//
// With SkipDryRunOnMissingResource=true, an object of a kind the server does not serve
// (and no CRD of the sync defines) is not refused up front: it counts as namespaced and
// is applied at its turn, by when something else may have made its CRD.
func (s *Syncer) prepare(obj *unstructured.Unstructured, o Options, pol *policy, crds map[schema.GroupKind]bool) error {
	namespaced, err := s.namespaced(obj.GroupVersionKind(), crds)
	if err != nil {
		if !meta.IsNoMatchError(err) || !pol.is(obj, model.OptSkipDryRunOnMissingResource, "true") {
			return err
		}
		namespaced = true
	}
	if namespaced && obj.GetNamespace() == "" {
		obj.SetNamespace(o.Namespace)
	}
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnTrackingID] = trackingID(o.App, obj)
	obj.SetAnnotations(ann)
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelApp] = o.App
	obj.SetLabels(labels)
	return nil
}

// namespaced says whether objects of gvk live in namespaces, asking the server, or for a
// kind it does not serve yet, the CRD that is about to define it.
func (s *Syncer) namespaced(gvk schema.GroupVersionKind, crds map[schema.GroupKind]bool) (bool, error) {
	m, err := s.mapping(gvk)
	if err == nil {
		return m.Scope.Name() == meta.RESTScopeNameNamespace, nil
	}
	if ns, ok := crds[gvk.GroupKind()]; ok && meta.IsNoMatchError(err) {
		return ns, nil
	}
	return false, err
}

// crdScopes maps the kinds that the CRDs among objs define to whether they are namespaced.
func crdScopes(objs []*unstructured.Unstructured) map[schema.GroupKind]bool {
	out := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if !isCRD(o) {
			continue
		}
		gk := schema.GroupKind{Group: str(o, "spec", "group"), Kind: str(o, "spec", "names", "kind")}
		out[gk] = str(o, "spec", "scope") != "Cluster"
	}
	return out
}

func isCRD(o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition"
}

func trackingID(app string, obj *unstructured.Unstructured) string {
	gvk := obj.GroupVersionKind()
	return fmt.Sprintf("%s:%s/%s:%s/%s", app, gvk.Group, gvk.Kind, obj.GetNamespace(), obj.GetName())
}

// groups splits sorted tasks into runs of equal (phase, wave), keeping those keep accepts.
func groups(tasks []Task, keep func(Task) bool) [][]Task {
	var out [][]Task
	for _, t := range tasks {
		if !keep(t) {
			continue
		}
		if n := len(out); n > 0 && out[n-1][0].Phase == t.Phase && out[n-1][0].Wave == t.Wave {
			out[n-1] = append(out[n-1], t)
			continue
		}
		out = append(out, []Task{t})
	}
	return out
}

func nextIsSync(tasks []Task, group []Task) bool {
	for _, t := range tasks {
		if t.Phase == Sync && t.Wave > group[0].Wave {
			return true
		}
	}
	return false
}

// runGroup applies one wave and waits for it to be healthy. It returns the hooks it created.
func (s *Syncer) runGroup(ctx context.Context, group []Task, o Options, pol *policy, started time.Time, res *Result) ([]Task, error) {
	var created []Task
	live := make([]*unstructured.Unstructured, 0, len(group))
	for _, t := range group {
		obj := t.Obj
		action := "apply"
		if t.Hook {
			action = "hook"
			if obj.GetName() == "" {
				// Argo CD names generateName hooks after the revision, phase and start time.
				obj.SetName(fmt.Sprintf("%s%s-%s-%d", obj.GetGenerateName(), shortRev(o.Revision),
					strings.ToLower(string(t.Phase)), started.Unix()))
				obj.SetGenerateName("")
				ann := obj.GetAnnotations()
				ann[AnnTrackingID] = trackingID(o.App, obj)
				obj.SetAnnotations(ann)
			}
			if slices.Contains(t.DeletePolicies, BeforeHookCreation) {
				existed, err := s.deleteAndWait(ctx, obj)
				if err != nil {
					return created, err
				}
				if existed {
					res.Steps = append(res.Steps, Step{Action: "delete-hook", Key: Key(obj), Phase: t.Phase, Wave: t.Wave})
				}
			}
		}
		got, skipped, err := s.applyTask(ctx, t, o, pol)
		if err != nil {
			return created, err
		}
		if skipped {
			action = "in-sync"
		}
		if t.Hook {
			created = append(created, t)
		}
		res.Steps = append(res.Steps, Step{Action: action, Key: Key(obj), Phase: t.Phase, Wave: t.Wave})
		live = append(live, got)
		if isCRD(got) {
			// What follows in this wave may be of the CRD's kind, and can be applied only once
			// the API server serves it.
			if err := s.waitServed(ctx, got, o.WaveTimeout); err != nil {
				return created, err
			}
		}
	}
	return created, s.waitHealthy(ctx, live, o.WaveTimeout)
}

// waitServed waits until crd is Established and discovery maps its kind.
func (s *Syncer) waitServed(ctx context.Context, crd *unstructured.Unstructured, timeout time.Duration) error {
	if err := s.waitHealthy(ctx, []*unstructured.Unstructured{crd}, timeout); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	gk := schema.GroupKind{Group: str(crd, "spec", "group"), Kind: str(crd, "spec", "names", "kind")}
	for {
		s.mapper.Reset()
		_, err := s.mapper.RESTMapping(gk)
		if err == nil {
			return nil
		}
		if !meta.IsNoMatchError(err) {
			return fmt.Errorf("map %s: %w", gk, err)
		}
		if err := sleep(ctx, s.PollInterval); err != nil {
			return fmt.Errorf("wait for the API server to serve %s: %w", gk, err)
		}
	}
}

func shortRev(r string) string {
	if len(r) > 7 {
		return r[:7]
	}
	return r
}

// Key names an object as group/kind/namespace/name.
func Key(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	return strings.Join([]string{gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName()}, "/")
}

func (s *Syncer) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// A CRD applied earlier in this sync: forget the cached discovery and retry.
		s.mapper.Reset()
		m, err = s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", gvk, err)
	}
	return m, nil
}

func (s *Syncer) resource(obj *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	m, err := s.mapping(obj.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return s.cluster.Dynamic.Resource(m.Resource).Namespace(obj.GetNamespace()), nil
	}
	return s.cluster.Dynamic.Resource(m.Resource), nil
}

// apply server-side applies obj (dryRun: only ask the server what it would be), with
// kubectl's strict field validation unless Validate=false.
func (s *Syncer) apply(ctx context.Context, obj *unstructured.Unstructured, pol *policy, dryRun bool) (*unstructured.Unstructured, error) {
	ri, err := s.resource(obj)
	if err != nil {
		return nil, err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force, FieldValidation: fieldValidation(obj, pol)}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", Key(obj), err)
	}
	// A patch, not Apply: ApplyOptions carry no field validation.
	got, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", Key(obj), err)
	}
	return got, nil
}

func (s *Syncer) get(ctx context.Context, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	ri, err := s.resource(obj)
	if err != nil {
		return nil, err
	}
	return ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
}

// deleteAndWait deletes obj (and, for Jobs, its pods) and waits until it is gone. existed
// is false when there was nothing to delete.
func (s *Syncer) deleteAndWait(ctx context.Context, obj *unstructured.Unstructured) (existed bool, err error) {
	ri, err := s.resource(obj)
	if err != nil {
		return false, err
	}
	prop := metav1.DeletePropagationForeground
	err = ri.Delete(ctx, obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &prop})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", Key(obj), err)
	}
	for {
		_, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err != nil {
			return true, fmt.Errorf("wait for deletion of %s: %w", Key(obj), err)
		}
		if err := sleep(ctx, s.PollInterval); err != nil {
			return true, fmt.Errorf("wait for deletion of %s: %w", Key(obj), err)
		}
	}
}

// waitHealthy polls until every object is Healthy (or has no health) and fails on Degraded.
func (s *Syncer) waitHealthy(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pending := objs
	for {
		var still []*unstructured.Unstructured
		for _, obj := range pending {
			live, err := s.get(ctx, obj)
			if err != nil {
				if ctx.Err() != nil {
					return fmt.Errorf("wait for %s: %w", Key(obj), ctx.Err())
				}
				return fmt.Errorf("read %s: %w", Key(obj), err)
			}
			h, ok := Assess(live)
			switch {
			case !ok || h.Status == Healthy:
			case h.Status == Degraded:
				return fmt.Errorf("%s is Degraded: %s", Key(obj), h.Message)
			default:
				still = append(still, live)
			}
		}
		if len(still) == 0 {
			return nil
		}
		pending = still
		if err := sleep(ctx, s.PollInterval); err != nil {
			h, _ := Assess(pending[0])
			return fmt.Errorf("wait for %s to be healthy (%s: %s): %w", Key(pending[0]), h.Status, h.Message, err)
		}
	}
}

// deleteHooks deletes the hooks whose policies include policy.
func (s *Syncer) deleteHooks(ctx context.Context, hooks []Task, policy DeletePolicy, res *Result) {
	for _, t := range hooks {
		if !slices.Contains(t.DeletePolicies, policy) {
			continue
		}
		ri, err := s.resource(t.Obj)
		if err != nil {
			continue
		}
		prop := metav1.DeletePropagationBackground
		if err := ri.Delete(ctx, t.Obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &prop}); err == nil || apierrors.IsNotFound(err) {
			res.Steps = append(res.Steps, Step{Action: "delete-hook", Key: Key(t.Obj), Phase: t.Phase, Wave: t.Wave})
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WaitHealthy waits, at most timeout, until every object's live state is
// healthy by Argo CD's rules (or has no health), and fails on Degraded: for
// objects applied by something else, such as a k8s_custom_deploy's command.
func (s *Syncer) WaitHealthy(ctx context.Context, objs []*unstructured.Unstructured, timeout time.Duration) error {
	return s.waitHealthy(ctx, objs, timeout)
}
