package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/kube"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/model"
)

// Kube deploys Kubernetes resources to one cluster (kube.Deployer).
type Kube interface {
	// Deploy applies a resource's objects (built image refs substituted) and returns
	// once they are healthy. images are the built refs, for clusters that must be
	// given them (kind).
	Deploy(ctx context.Context, resource string, objs []*unstructured.Unstructured, images []string, prune bool, logs io.Writer) error
	// Drift lists the objects whose live state differs from objs.
	Drift(ctx context.Context, resource string, objs []*unstructured.Unstructured) ([]string, error)
	// Remove deletes what was applied for a resource that left the config; it
	// returns the objects it deleted.
	Remove(ctx context.Context, resource string) ([]string, error)
	// Heal syncs objs again when the live objects drifted (selfHeal), with back-off;
	// it returns what had drifted and whether it is back in sync.
	Heal(ctx context.Context, resource string, objs []*unstructured.Unstructured, prune bool, logs io.Writer) ([]string, bool, error)
	// FollowPods streams the logs of the workloads' pods into logs and keeps the port
	// forwards pointed at the newest ready pod, until ctx is done.
	FollowPods(ctx context.Context, w kube.Workloads, forwards []model.PortForward, logs io.Writer)
	// LiveTarget is the live update target of the containers running image in the
	// pods of w; Close on it ends what it holds.
	LiveTarget(w kube.Workloads, image string) (*liveupdate.KubeTarget, error)
	// WatchDrift calls changed whenever a live object of the resource changes, until
	// ctx is done; wait waits for its watches to end.
	WatchDrift(ctx context.Context, resource string, objs []*unstructured.Unstructured, changed func()) (wait func())
	// Registry is where built images are pushed for the cluster to pull them (def,
	// else what the cluster advertises); nil when they are not pushed.
	Registry(ctx context.Context, def *model.Registry) (*kube.Registry, error)
}

// A deployed resource's live objects are compared with what loop applied when a watch
// reports a change to one of them (DriftSettle later, so that a burst of changes, a
// rollout's, is one comparison), and every DriftInterval in case a watch missed one.
var (
	DriftInterval = 30 * time.Second
	DriftSettle   = 250 * time.Millisecond
)

// driftMsg reports a resource's out-of-sync objects.
type driftMsg struct {
	name string
	gen  int
	keys []string
}

// kubeImage is an image a Kubernetes resource builds, with its context's ignore rules.
type kubeImage struct {
	img *model.Image
	ign *ignore.Matcher
}

// kubeResources turns the config's Kubernetes sources into resources: rendered, then
// grouped by workload as Tilt does. It runs on a worker (rendering reads files).
func kubeResources(ctx context.Context, cfg *model.Config, defaultTrigger model.TriggerMode) ([]*resource, []string, error) {
	groups, err := kube.Render(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	var images []*model.Image
	for _, img := range cfg.Images {
		if img.Custom == nil {
			images = append(images, img)
		}
	}
	kinds := kube.KindPaths(cfg.K8sKinds)
	var files []string
	var out []*resource
	var first []string // resources every workload waits for: namespaces and CRDs
	for _, g := range groups {
		r := &resource{name: g.Name, typ: "k8s", trigger: defaultTrigger, autoInit: true, kobjs: g.Objects, kinds: kinds}
		if g.App != nil {
			// An Argo CD app syncs as its syncPolicy says.
			r.prune, r.selfHeal = g.App.Prune, g.App.SelfHeal
		}
		if s := g.Spec; s != nil {
			r.kforwards = s.PortForwards
			r.kextra, r.kselOnly = s.ExtraPodSelectors, s.SelectorsOnly
			r.links = append(apiLinks(s.Links), forwardLinks(s.PortForwards)...)
			r.configure(s.ResourceDeps, s.Labels, s.TriggerMode, s.AutoInit)
		}
		for _, img := range kube.Images(g.Objects, images, cfg.K8sKinds) {
			m, err := ignore.ForContext(img.Context, img.Dockerfile, img.Only, img.Ignore)
			if err != nil {
				return nil, nil, fmt.Errorf("resource %s: image %s: %w", g.Name, img.Ref, err)
			}
			files = append(files, m.Files()...)
			r.kimages = append(r.kimages, kubeImage{img: img, ign: m})
			if img.LiveUpdate != nil && r.lu == nil {
				// One image's containers are live-updated; changes only another
				// image's live_update would sync rebuild.
				r.lu, r.luImage, r.imageIgnore = img.LiveUpdate, img.Ref, m
			}
		}
		if !g.Workload && holdsClusterScaffolding(g.Objects) {
			first = append(first, g.Name)
		}
		out = append(out, r)
	}
	for _, r := range out {
		if len(r.kimages) > 0 || containsWorkload(r.kobjs) {
			for _, f := range first {
				if f != r.name && !contains(r.deps, f) {
					r.deps = append(r.deps, f)
				}
			}
		}
		imgs := make([]*model.Image, len(r.kimages))
		for i, k := range r.kimages {
			imgs[i] = k.img
		}
		r.hash = specHash("k8s", r.kobjs, imgs, r.deps, r.trigger, r.autoInit, r.labels, r.kforwards, r.prune, r.selfHeal, r.links, r.kextra, r.kselOnly)
	}
	return out, files, nil
}

// holdsClusterScaffolding reports objects others need first: namespaces and CRDs.
func holdsClusterScaffolding(objs []*unstructured.Unstructured) bool {
	for _, o := range objs {
		if k := o.GetKind(); k == "Namespace" || k == "CustomResourceDefinition" {
			return true
		}
	}
	return false
}

func containsWorkload(objs []*unstructured.Unstructured) bool {
	for _, o := range objs {
		if _, ok, _ := unstructured.NestedMap(o.Object, "spec", "template"); ok || o.GetKind() == "Pod" {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// kubeConn returns the cluster connection, made on first use for these allowed contexts.
func (e *Engine) kubeConn(allowed []string) (Kube, error) {
	e.kubeMu.Lock()
	defer e.kubeMu.Unlock()
	key := strings.Join(allowed, "\x00")
	if e.kube != nil && e.kubeKey == key {
		return e.kube, nil
	}
	if e.opts.KubeConnect == nil {
		return nil, errors.New("this daemon has no Kubernetes connection")
	}
	k, err := e.opts.KubeConnect(allowed)
	if err != nil {
		return nil, err
	}
	e.kube, e.kubeKey = k, key
	return k, nil
}

// kubeJob builds the resource's images, substitutes the built refs and deploys its
// objects; the update is ready when they are healthy.
func (e *Engine) kubeJob(r *resource, b *pendingBatch) func(ctx context.Context) result {
	name := r.name
	u := api.Update{Kind: api.UpdateInit, Started: e.now()}
	if b != nil {
		u.Kind = api.UpdateRebuild
		u.Edit, u.Batched, u.Files = b.edit, b.batched, len(b.changes)
	}
	logs := e.logWriter(name)
	objs, kimages, kinds, prune := r.kobjs, r.kimages, r.kinds, r.prune
	var allowed []string
	var defReg *model.Registry
	if e.cfg != nil {
		allowed, defReg = e.cfg.Settings.AllowedK8sContexts, e.cfg.Settings.DefaultRegistry
	}
	fail := func(err error) result {
		u.Error = err.Error()
		return result{name: name, update: u, err: err}
	}
	skip := ignore.Any(e.ignore, r.imageIgnore)
	if plan := e.livePlan(r, b, skip); plan != nil {
		return e.liveJob(name, u, r.target, plan, b, logs)
	}
	lu, luImage, prevRef, target := r.lu, r.luImage, r.ref, r.target
	extra, selOnly := r.kextra, r.kselOnly
	synced := copyChanges(r.synced)
	return func(ctx context.Context) result {
		k, err := e.kubeConn(allowed)
		if err != nil {
			return fail(err)
		}
		var reg *kube.Registry
		if len(kimages) > 0 {
			if reg, err = k.Registry(ctx, defReg); err != nil {
				return fail(err)
			}
		}
		built := render.Images{}
		var load []string // images kind nodes must be given (no registry)
		for _, ki := range kimages {
			t0 := time.Now()
			bres, err := e.builder.Build(ctx, ki.img, logs)
			u.Spans = append(u.Spans, api.Span{Name: "build", Duration: time.Since(t0)})
			if err != nil {
				return fail(fmt.Errorf("build %s: %w", ki.img.Ref, err))
			}
			ref := bres.Ref
			if reg != nil {
				push, pull, err := reg.Refs(bres.Ref)
				if err != nil {
					return fail(err)
				}
				t0 := time.Now()
				err = e.builder.Push(ctx, bres.Ref, push, logs)
				u.Spans = append(u.Spans, api.Span{Name: "push", Duration: time.Since(t0)})
				if err != nil {
					return fail(fmt.Errorf("push to the registry of %s: %w", reg.Source, err))
				}
				ref = pull
			} else {
				load = append(load, ref)
			}
			built[ki.img.Ref] = ref
		}
		desired := make([]*unstructured.Unstructured, len(objs))
		for i, o := range objs {
			desired[i] = o.DeepCopy()
		}
		render.SubstituteImages(desired, built, kinds)
		t0 := time.Now()
		err = k.Deploy(ctx, name, desired, load, prune, logs)
		u.Spans = append(u.Spans, api.Span{Name: "deploy", Duration: time.Since(t0)})
		if err != nil {
			return fail(err)
		}
		var newTarget liveTarget
		rebuilt := false
		if lu != nil && e.opts.Mode != ModeCI { // ci watches nothing: no live updates
			ref := built[luImage]
			rebuilt = ref != prevRef
			w := kube.Workloads{Objects: desired, Extra: extra, SelectorsOnly: selOnly}
			if newTarget, err = e.kubeLiveTarget(ctx, k, w, ref, lu, skip, synced, rebuilt, logs, &u); err != nil {
				fmt.Fprintf(logs, "live update: %v (changes will rebuild)\n", err)
			}
		}
		u.Ready = e.now()
		return result{name: name, update: u, apply: func(r *resource) {
			if len(kimages) > 0 {
				r.ref = built[kimages[0].img.Ref]
			}
			if lu != nil {
				r.ref = built[luImage]
			}
			r.drift = nil
			r.liveFailed = false
			if rebuilt {
				r.synced = nil
			}
			if target != nil {
				target.Close()
			}
			r.target = newTarget
			e.watchKube(r, k, desired)
		}}
	}
}

// kubeLiveTarget connects to the deployed pods' containers that run the live-updated
// image (off the change path) and brings them up to date: the files live-updated
// since the image was built, unless it was rebuilt, and with initial_sync() every
// synced file. nil means live updates cannot reach them.
func (e *Engine) kubeLiveTarget(ctx context.Context, k Kube, w kube.Workloads, ref string, lu *model.LiveUpdate,
	skip *ignore.Matcher, synced map[string]liveupdate.Change, rebuilt bool, logs io.Writer, u *api.Update) (liveTarget, error) {
	if len(lu.Syncs) == 0 && len(lu.Runs) == 0 {
		return nil, nil
	}
	if lu.Restart || len(lu.RestartOn) > 0 {
		fmt.Fprintf(logs, "live update: %v\n", liveupdate.ErrRestartInPod)
	}
	t, err := k.LiveTarget(w, ref)
	if err != nil {
		return nil, err
	}
	if err := t.Connect(ctx); err != nil {
		t.Close()
		return nil, err
	}
	if err := e.replay(ctx, t, lu, skip, synced, rebuilt, logs, u); err != nil {
		fmt.Fprintf(logs, "sync files into the new pods: %v\n", err)
	}
	return t, nil
}

// watchKube follows a deployed resource: its pods' logs and port forwards, and its
// drift (the live objects are compared with desired when a watch reports a change,
// and every DriftInterval, and the engine told when the set of out-of-sync objects
// changes). Both loops are owned by the resource (stop ends them) and replaced by the
// next deploy.
func (e *Engine) watchKube(r *resource, k Kube, desired []*unstructured.Unstructured) {
	if r.bgCancel != nil {
		r.bgCancel()
		r.bg.Wait()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.bgCancel = cancel
	name, gen := r.name, r.gen
	logs := e.resourceLog(ctx, r)
	forwards, selfHeal, prune := r.kforwards, r.selfHeal, r.prune
	extra, selOnly := r.kextra, r.kselOnly
	r.bg.Add(2)
	go func() {
		defer r.bg.Done()
		k.FollowPods(ctx, kube.Workloads{Objects: desired, Extra: extra, SelectorsOnly: selOnly}, forwards, logs)
	}()
	go func() {
		defer r.bg.Done()
		changed := make(chan struct{}, 1)
		wait := k.WatchDrift(ctx, name, desired, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		defer wait()
		t := time.NewTicker(DriftInterval)
		defer t.Stop()
		var last []string
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-changed:
				select {
				case <-ctx.Done():
					return
				case <-time.After(DriftSettle):
				}
				select { // what changed meanwhile is part of this comparison
				case <-changed:
				default:
				}
			}
			var keys []string
			var err error
			if selfHeal {
				var healed bool
				if keys, healed, err = k.Heal(ctx, name, desired, prune, logs); healed {
					keys = nil
				}
			} else {
				keys, err = k.Drift(ctx, name, desired)
			}
			if err != nil || strings.Join(keys, "\n") == strings.Join(last, "\n") {
				continue // the cluster did not answer: keep what was reported
			}
			last = keys
			select {
			case e.drifts <- driftMsg{name: name, gen: gen, keys: keys}:
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (e *Engine) onDrift(m driftMsg) {
	r, ok := e.resources[m.name]
	if !ok || r.gen != m.gen || r.updating {
		return
	}
	r.drift = m.keys
	e.emitStatus(r)
}

// removeKube deletes, on a worker, the objects of Kubernetes resources a reload
// dropped from the config (as Tilt does). A failed load never gets here, so a broken
// Tiltfile deletes nothing.
func (e *Engine) removeKube(ctx context.Context, names []string) {
	if len(names) == 0 {
		return
	}
	var allowed []string
	if e.cfg != nil {
		allowed = e.cfg.Settings.AllowedK8sContexts
	}
	logs := e.logWriter("")
	e.workers.Add(1)
	go func() {
		defer e.workers.Done()
		k, err := e.kubeConn(allowed)
		if err != nil {
			fmt.Fprintf(logs, "delete the objects of removed resources: %v\n", err)
			return
		}
		for _, name := range names {
			keys, err := k.Remove(ctx, name)
			for _, key := range keys {
				fmt.Fprintf(logs, "%s left the config: deleted %s\n", name, key)
			}
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(logs, "delete the objects of %s: %v\n", name, err)
			}
		}
	}()
}
