package kube

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/internal/engine"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/model"
)

// A deployed resource's live objects are compared with what loop applied when
// a watch reports a change to one of them (driftSettle later, so that a burst
// of changes, a rollout's, is one comparison), and every driftInterval in
// case a watch missed one.
const (
	driftInterval = 30 * time.Second
	driftSettle   = 250 * time.Millisecond
)

// Kind makes the engine's resources of the config's Kubernetes sources:
// rendered as Argo CD would, grouped by workload as Tilt does, deployed with
// Argo CD's ordering and health, followed (pods' logs, port forwards, drift)
// and live-updated through the sync agent in the pods.
type Kind struct {
	Docker  *client.Client
	Builder *build.Builder

	mu      sync.Mutex
	conn    *Deployer
	connKey string
	old     []*Deployer // replaced connections, still used by resources deployed with them
}

// NewKind returns the Kubernetes kind, building with b (shared with the
// other kinds); it connects to the current kube context when a resource
// first deploys.
func NewKind(cli *client.Client, b *build.Builder) *Kind {
	return &Kind{Docker: cli, Builder: b}
}

// connect returns the cluster connection, made on first use for these allowed
// contexts (allow_k8s_contexts).
func (k *Kind) connect(allowed []string) (*Deployer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := strings.Join(allowed, "\x00")
	if k.conn != nil && k.connKey == key {
		return k.conn, nil
	}
	d, err := Connect(allowed, k.Docker)
	if err != nil {
		return nil, err
	}
	if k.conn != nil {
		k.old = append(k.old, k.conn)
	}
	k.conn, k.connKey = d, key
	return d, nil
}

// Close stops what the cluster connections share between resources (the watches
// of their namespaces' events) and waits for it; call it once the resources'
// runtimes are closed.
func (k *Kind) Close() {
	k.mu.Lock()
	conns := append(k.old, k.conn)
	k.conn, k.old = nil, nil
	k.mu.Unlock()
	for _, d := range conns {
		if d != nil {
			d.Close()
		}
	}
}

// Load renders the config's Kubernetes sources and groups them into
// resources (it reads manifests, kustomizations and charts).
func (k *Kind) Load(ctx context.Context, cfg *model.Config) (engine.Loaded, error) {
	out := engine.Loaded{Sources: SourceRoots(cfg)}
	groups, err := Render(ctx, cfg)
	if err != nil {
		return out, err
	}
	kinds, err := kindSelectors(cfg.K8sKinds)
	if err != nil {
		return out, err
	}
	trigger := engine.DefaultTrigger(cfg)
	var defs []*definition
	var first []string // resources every workload waits for: namespaces and CRDs
	for _, g := range groups {
		r := &engine.Resource{Name: g.Name, Type: "k8s", Trigger: trigger, AutoInit: true}
		d := &definition{k: k, name: g.Name, objs: g.Objects, kinds: kinds, all: cfg.Images, allowed: cfg.Settings.AllowedK8sContexts, custom: g.Custom, release: g.Release}
		if g.App != nil {
			// An Argo CD app syncs as its syncPolicy says.
			d.policy = AppPolicy{Namespace: g.App.Namespace, Prune: g.App.Prune, Sync: g.App.Sync}
			d.selfHeal = g.App.SelfHeal
		}
		if s := g.Spec; s != nil {
			d.forwards = s.PortForwards
			d.extra, d.selOnly = s.ExtraPodSelectors, s.SelectorsOnly
			r.Links = append(engine.Links(s.Links), forwardLinks(s.PortForwards)...)
			r.Deps = append(r.Deps, s.ResourceDeps...)
			r.Labels = s.Labels
			if s.TriggerMode != "" {
				r.Trigger = s.TriggerMode
			}
			if s.AutoInit != nil {
				r.AutoInit = *s.AutoInit
			}
		}
		imgs := Images(g.Objects, cfg.Images, cfg.K8sKinds)
		if cd := g.Custom; cd != nil {
			if imgs, err = customImages(cd, cfg.Images); err != nil {
				return out, err
			}
			r.Inputs.Deps = cd.Deps
			r.Detail.Custom = &model.CustomRef{ApplyCmd: cd.ApplyCmd.Argv, DeleteCmd: cd.DeleteCmd.Argv, Deps: cd.Deps}
		}
		if g.Release != nil {
			r.Inputs.Deps = g.Release.Deps
		}
		for _, img := range imgs {
			// As Tilt, at assembly and for deployed images only: the syncs
			// must be under a path the image (or its base images) watches.
			if err := liveupdate.Validate(img, cfg.Images); err != nil {
				return out, err
			}
			srcs, err := build.Sources(img, cfg.Images)
			if err != nil {
				return out, fmt.Errorf("resource %s: image %s: %w", g.Name, img.Ref, err)
			}
			chain, _ := build.Chain(img, cfg.Images) // Sources reported a cycle
			d.images = append(d.images, img)
			d.chains = append(d.chains, chain)
			for _, s := range srcs {
				out.Files = append(out.Files, s.Ignore.Files()...)
				r.Inputs.Images = append(r.Inputs.Images, engine.ImageInput(s))
			}
			if img.LiveUpdate != nil && d.lu == nil {
				// One image's containers are live-updated; changes only another
				// image's live_update would sync rebuild.
				d.lu, d.luImage = img.LiveUpdate, img.Ref
				r.Inputs.LiveUpdate, r.Inputs.LiveIgnore = img.LiveUpdate, build.LiveIgnore(img, srcs)
			}
		}
		if cd := g.Custom; cd != nil && cd.LiveUpdate != nil && d.lu == nil {
			// image_selector / container_selector pick the containers.
			d.lu = cd.LiveUpdate
			r.Inputs.LiveUpdate = cd.LiveUpdate
		}
		if rel := g.Release; rel != nil && rel.LiveUpdate != nil && d.lu == nil {
			// helm_resource's live_update, for an image of the chart's.
			d.lu = rel.LiveUpdate
			r.Inputs.LiveUpdate = rel.LiveUpdate
		}
		for _, o := range g.Objects {
			r.Detail.Objects = append(r.Detail.Objects, model.ObjectRef{Kind: o.GetKind(), Name: o.GetName(), Namespace: o.GetNamespace()})
		}
		for _, img := range d.images {
			r.Detail.Images = append(r.Detail.Images, liveupdate.Describe(img, cfg.Images))
		}
		if !g.Workload && holdsClusterScaffolding(g.Objects) {
			first = append(first, g.Name)
		}
		r.Open = func(h engine.Host) engine.Runtime { return &deployed{definition: d, h: h} }
		r.Remove = d.remove
		out.Resources = append(out.Resources, r)
		defs = append(defs, d)
	}
	for i, r := range out.Resources {
		d := defs[i]
		if len(d.images) > 0 || containsWorkload(d.objs) || d.custom != nil {
			for _, f := range first {
				if f != r.Name && !contains(r.Deps, f) {
					r.Deps = append(r.Deps, f)
				}
			}
		}
		r.Hash = engine.Hash("k8s", d.objs, d.chains, r.Deps, r.Trigger, r.AutoInit, r.Labels, d.forwards, d.policy, d.selfHeal, r.Links, d.extra, d.selOnly, d.custom, d.release)
	}
	return out, nil
}

// forwardLinks are a Kubernetes resource's port forwards as links.
func forwardLinks(pfs []model.PortForward) []api.Link {
	var out []api.Link
	for _, pf := range pfs {
		host := pf.Host
		if host == "" {
			host = "localhost"
		}
		path := pf.LinkPath
		if path == "" {
			path = "/"
		}
		out = append(out, api.Link{URL: "http://" + net.JoinHostPort(host, strconv.Itoa(pf.LocalPort)) + path, Name: pf.Name})
	}
	return out
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

// definition is one Kubernetes resource as declared.
type definition struct {
	k      *Kind
	name   string
	objs   []*unstructured.Unstructured
	images []*model.Image
	// chains are each image's Chain: the images it is built from, then it.
	chains   [][]*model.Image
	all      []*model.Image // the config's images
	kinds    []kindSelector // k8s_kind and k8s_image_json_path: image paths
	lu       *model.LiveUpdate
	luImage  string // the image whose containers lu updates
	forwards []model.PortForward
	// extra and selOnly are k8s_resource's extra_pod_selectors and
	// discovery_strategy='selectors-only'.
	extra    []map[string]string
	selOnly  bool
	policy   AppPolicy // an Argo CD app's syncPolicy and ignoreDifferences
	selfHeal bool      // an Argo CD app's syncPolicy.automated.selfHeal
	allowed  []string  // allow_k8s_contexts, for remove
	// custom is the k8s_custom_deploy whose commands deploy and delete the
	// resource; nil when loop applies objs itself.
	custom *model.CustomDeploy
	// release is the Helm release the objects are (helm_resource): recorded
	// after each deploy, uninstalled by remove.
	release *model.HelmRelease
}

// deployed is a deployed resource as loop follows it: the live update target
// in its pods, its pods' logs and port forwards, its drift.
type deployed struct {
	*definition
	h      engine.Host
	ref    string // the live-updated image's deployed ref
	target *liveupdate.KubeTarget
	state  liveupdate.State
	// unsupervised says why the live update's restarts cannot go through the
	// agent's supervisor in the pods ("" when they do, or none are asked for).
	unsupervised string

	pods, drift background // following the pods; comparing with the cluster
}

// background is one goroutine a deployed resource owns: started by start, ended
// (cancelled and waited for) by stop.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *background) start(f func(ctx context.Context)) {
	b.stop()
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() { // owned by b: stop cancels it and waits
		defer close(b.done)
		f(ctx)
	}()
}

func (b *background) stop() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
		b.cancel = nil
	}
}

// liveTarget is where planned live updates go; nil when none can.
func (rt *deployed) liveTarget() liveupdate.Target {
	if rt.lu == nil || rt.target == nil {
		return nil
	}
	return rt.target
}

// Update live-updates the pods when the engine planned it, else builds the images, substitutes the built refs and deploys the objects (ready when healthy).
func (rt *deployed) Update(ctx context.Context, j engine.Job) engine.Outcome {
	return engine.RunUpdate(ctx, j, rt.h, &rt.state, rt.liveTarget, rt.deploy)
}

func (rt *deployed) deploy(ctx context.Context, j engine.Job, u api.Update) engine.Outcome {
	logs := rt.h.Log
	fail := func(err error) engine.Outcome {
		u.Error = err.Error()
		return engine.Outcome{Update: u, Err: err}
	}
	var allowed []string
	var defReg *model.Registry
	if j.Config != nil {
		allowed, defReg = j.Config.Settings.AllowedK8sContexts, j.Config.Settings.DefaultRegistry
	}
	k, err := rt.k.connect(allowed)
	if err != nil {
		return fail(err)
	}
	var reg *Registry
	if len(rt.images) > 0 {
		if reg, err = k.Registry(ctx, defReg); err != nil {
			return fail(err)
		}
	}
	built := render.Images{}
	results := map[string]build.Result{} // by image name, as built (before any push)
	var load []string                    // images kind nodes must be given (no registry)
	var opts build.Options
	if reg != nil {
		opts.RegistryHost = reg.Host
		opts.Registry = func(ref string) (string, error) {
			push, _, err := reg.Refs(ref)
			return push, err
		}
	}
	for _, img := range rt.images {
		t0 := time.Now()
		bres, err := rt.k.Builder.BuildWith(ctx, img, rt.all, opts, logs)
		u.Spans = append(u.Spans, api.Span{Name: api.SpanBuild, Duration: time.Since(t0)})
		if err != nil {
			return fail(fmt.Errorf("build %s: %w", img.Ref, err))
		}
		ref := bres.Ref
		results[img.Ref] = bres
		switch {
		case reg != nil:
			push, pull, err := reg.Refs(bres.Ref)
			if bres.ForRegistry {
				// A custom_build made the image under the registry's name.
				push, pull = bres.Ref, reg.HostFromCluster+strings.TrimPrefix(bres.Ref, reg.Host)
			} else if err != nil {
				return fail(err)
			}
			if !bres.NoPush {
				t0 := time.Now()
				err = rt.k.Builder.Push(ctx, bres.Ref, push, logs)
				u.Spans = append(u.Spans, api.Span{Name: api.SpanPush, Duration: time.Since(t0)})
				if err != nil {
					return fail(fmt.Errorf("push to the registry of %s: %w", reg.Source, err))
				}
			}
			ref = pull
		case !bres.NotLocal:
			load = append(load, ref)
		}
		built[img.Ref] = ref
	}
	desired := make([]*unstructured.Unstructured, len(rt.objs))
	for i, o := range rt.objs {
		desired[i] = o.DeepCopy()
	}
	overrides := map[string]render.Override{}
	for _, img := range rt.images {
		if img.Entrypoint != nil || img.ContainerArgs != nil || img.MatchInEnv {
			overrides[img.Ref] = render.Override{Command: img.Entrypoint, Args: img.ContainerArgs, InEnv: img.MatchInEnv}
		}
	}
	render.OverrideContainers(desired, overrides, built)
	substituteImages(desired, built, rt.kinds)
	if agentLoad := rt.supervise(ctx, k, desired, built, results, reg, logs); agentLoad != "" {
		load = append(load, agentLoad)
	}
	// The pods are followed from the start of the rollout, so that what keeps them
	// from running (a crash, an image that cannot be pulled) is in the log while the
	// deploy waits for their health, not after it gave up. A custom deploy's objects
	// are known once its command has printed them. A pod of the rollout that cannot
	// run (a crash loop, an image that cannot be pulled) ends the wait for health at
	// once, with the reason, as Tilt's ci fails on a pod in error (under loop ci, after
	// ci_settings' k8s_grace_period).
	w := Workloads{Objects: desired, Extra: rt.extra, SelectorsOnly: rt.selOnly}
	t0 := time.Now()
	if rt.custom != nil {
		if err = k.LoadImages(ctx, load, logs); err == nil {
			desired, err = k.applyCustom(ctx, rt.custom, built, logs)
		}
	} else {
		var grace time.Duration
		if rt.h.CI && j.Config != nil {
			grace = j.Config.Settings.K8sGracePeriod
		}
		ff, dctx := NewFailFast(ctx, grace)
		rt.pods.start(func(ctx context.Context) { k.FollowPods(ctx, w, rt.forwards, rt.h.ProcessLog, ff) })
		ff.WaitStarted(ctx)
		err = k.Deploy(dctx, rt.name, desired, load, rt.policy, logs)
		if failed := ff.Stop(); failed != nil {
			err = failed
		}
	}
	u.Spans = append(u.Spans, api.Span{Name: api.SpanDeploy, Duration: time.Since(t0)})
	if err != nil {
		return fail(err)
	}
	if rt.custom != nil {
		w.Objects = desired
		rt.pods.start(func(ctx context.Context) { k.FollowPods(ctx, w, rt.forwards, rt.h.ProcessLog, nil) })
	}
	var image string
	if len(rt.images) > 0 {
		image = built[rt.images[0].Ref]
	}
	if rt.target != nil {
		rt.target.Close()
		rt.target = nil
	}
	if rt.lu != nil {
		if rt.luImage != "" {
			image = built[rt.luImage]
		}
		if image != rt.ref {
			rt.state.Synced = nil // rebuilt: the image has every file
		}
		rt.ref = image
		if !rt.h.CI { // ci watches nothing: no live updates
			if rt.target, err = rt.connectLive(ctx, k, w, image, j.Skip, logs, &u); err != nil {
				fmt.Fprintf(logs, "live update: %v (changes will rebuild)\n", err)
			}
		}
	}
	if rt.release != nil {
		if err := k.RecordRelease(ctx, rt.release, desired, logs); err != nil {
			return fail(err)
		}
	}
	rt.state.Failed = false
	rt.followDrift(k, desired)
	u.Ready = rt.h.Now()
	return engine.Outcome{Update: u, Image: image}
}

// connectLive connects to the deployed pods' containers that run the
// live-updated image (off the change path) and brings them up to date: the
// files live-updated since the image was built and, with initial_sync(),
// every synced file. nil means live updates cannot reach them.
func (rt *deployed) connectLive(ctx context.Context, k *Deployer, w Workloads, ref string,
	skip *ignore.Matcher, logs io.Writer, u *api.Update) (*liveupdate.KubeTarget, error) {
	lu := rt.lu
	if len(lu.Syncs) == 0 && len(lu.Runs) == 0 {
		return nil, nil
	}
	if (lu.Restart || len(lu.RestartOn) > 0) && rt.unsupervised != "" {
		// A sync without the restart would leave the old process running
		// (restart_process's docker_build_with_restart): rebuild instead.
		fmt.Fprintf(logs, "live update: %v (%s); changes rebuild and redeploy\n", liveupdate.ErrRestartInPod, rt.unsupervised)
		return nil, nil
	}
	label, match := ref, func(c corev1.Container) bool { return c.Image == ref }
	if rt.custom != nil {
		label, match = customMatch(rt.custom, ref)
	} else if rel := rt.release; rel != nil && rel.LiveUpdate != nil && rt.lu == rel.LiveUpdate {
		label, match = selectorMatch(rel.ImageSelector, rel.ContainerSelector, ref)
	} else if where, dests := readOnlyDests(w.Objects, ref, lu.Syncs); len(dests) > 0 {
		fmt.Fprintf(logs, "live update: %s has a read-only root filesystem and cannot be written at %s (not on a writable volume); changes rebuild and redeploy\n",
			where, strings.Join(dests, ", "))
		return nil, nil
	}
	t, err := k.liveTarget(w, label, match)
	if err != nil {
		return nil, err
	}
	t.Restarted = func(pc agent.PodContainer, asked time.Time) { k.cutForwards(pc.Namespace+"/"+pc.Pod, asked) }
	if err := t.Connect(ctx); err != nil {
		t.Close()
		return nil, err
	}
	if err := liveupdate.Replay(ctx, t, lu, skip.Ignored, rt.state.Synced, logs, u); err != nil {
		fmt.Fprintf(logs, "sync files into the new pods: %v\n", err)
	}
	return t, nil
}

// followDrift follows a deployed resource's drift until the next deploy or
// Close: the live objects are compared with desired when a watch reports a
// change, and every driftInterval; the engine hears when the set of
// out-of-sync objects changes.
func (rt *deployed) followDrift(k *Deployer, desired []*unstructured.Unstructured) {
	if rt.custom != nil {
		return // its command owns the objects: no drift against loop's apply
	}
	name, selfHeal, pol := rt.name, rt.selfHeal, rt.policy
	logs := rt.h.ProcessLog
	rt.drift.start(func(ctx context.Context) {
		changed := make(chan struct{}, 1)
		wait := k.WatchDrift(ctx, name, desired, pol, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
		defer wait()
		t := time.NewTicker(driftInterval)
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
				case <-time.After(driftSettle):
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
				if keys, healed, err = k.Heal(ctx, name, desired, pol, logs); healed {
					keys = nil
				}
			} else {
				keys, err = k.Drift(ctx, name, desired, pol)
			}
			if err != nil || strings.Join(keys, "\n") == strings.Join(last, "\n") {
				continue // the cluster did not answer: keep what was reported
			}
			last = keys
			rt.h.Report(engine.Report{DriftSet: true, Drift: keys})
		}
	})
}

// stopFollowing stops following the pods and the drift.
func (rt *deployed) stopFollowing() {
	rt.pods.stop()
	rt.drift.stop()
}

// Close stops following the resource and ends the agent sessions; the
// objects stay (Remove deletes them when the resource leaves the config).
func (rt *deployed) Close() {
	rt.stopFollowing()
	if rt.target != nil {
		rt.target.Close()
		rt.target = nil
	}
}

// remove deletes what was applied for a resource that left the config (as
// Tilt does). A failed load never gets here, so a broken Tiltfile deletes
// nothing.
func (d *definition) remove(ctx context.Context, logs io.Writer) {
	if d.custom != nil {
		if err := DeleteCustom(ctx, d.custom, logs); err != nil && ctx.Err() == nil {
			fmt.Fprintf(logs, "%s left the config: %v\n", d.name, err)
		}
		return
	}
	k, err := d.k.connect(d.allowed)
	if err != nil {
		fmt.Fprintf(logs, "delete the objects of %s: %v\n", d.name, err)
		return
	}
	keys, err := k.Remove(ctx, d.name, d.policy)
	for _, key := range keys {
		fmt.Fprintf(logs, "%s left the config: deleted %s\n", d.name, key)
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintf(logs, "delete the objects of %s: %v\n", d.name, err)
	}
	if d.release != nil {
		if err := k.UninstallRelease(ctx, d.release); err != nil && ctx.Err() == nil {
			fmt.Fprintf(logs, "%s left the config: %v\n", d.name, err)
		}
	}
}

// customImages are the images a k8s_custom_deploy's image_deps name, built
// before its apply_cmd runs.
func customImages(cd *model.CustomDeploy, all []*model.Image) ([]*model.Image, error) {
	var out []*model.Image
	for _, ref := range cd.ImageDeps {
		i := slices.IndexFunc(all, func(img *model.Image) bool { return img.Ref == ref })
		if i < 0 {
			return nil, posErr(cd.Pos, fmt.Errorf("k8s_custom_deploy(%q): image_deps names %q, which no docker_build or custom_build builds", cd.Name, ref))
		}
		out = append(out, all[i])
	}
	return out, nil
}
