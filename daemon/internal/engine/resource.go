package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/internal/compose"
	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
	"github.com/loop-dev/loop/daemon/internal/localres"
	"github.com/loop-dev/loop/daemon/internal/watch"
	"github.com/loop-dev/loop/daemon/model"
)

// resource is one unit the engine updates: a local_resource, a Compose
// service or a group of Kubernetes objects. Its definition fields are set when the config is applied and not
// changed after; its state fields are owned by the engine goroutine.
type resource struct {
	// Definition.
	name     string
	typ      string // "local" or "compose"
	deps     []string
	trigger  model.TriggerMode
	autoInit bool
	labels   []string
	links    []api.Link
	hash     string

	local       *model.LocalResource
	localIgnore *ignore.Matcher

	proj        *compose.Project
	svc         *compose.Service
	image       *model.Image // built by loop; nil when the service runs a given image
	imageIgnore *ignore.Matcher
	lu          *model.LiveUpdate

	// State.
	gen        int
	phase      api.Phase
	errText    string
	needsInit  bool
	started    bool
	updating   bool
	replaced   bool
	everReady  bool
	probeReady bool
	last       *api.Update
	pending    map[string]watch.Event
	firstEdit  time.Time
	batched    time.Time
	lastEvent  time.Time
	// lastDone is when the last update finished.
	lastDone time.Time
	due      time.Time
	// liveFailed forces the next update to rebuild.
	liveFailed bool
	// readyLog (ready_log=) makes a matching log line the readiness signal
	// after a process start; logReadyAt is the last match, awaitLog says an
	// update waits for one.
	readyLog   *regexp.Regexp
	logReadyAt time.Time
	awaitLog   bool
	// triggered runs pending changes of a manual resource once.
	triggered bool

	// Runtime handles; created by workers, handed over through result.apply.
	ref         string
	containerID string
	target      liveTarget
	// synced are changes live-updated since the image was built: a new
	// container from the same image gets them again.
	synced map[string]liveupdate.Change

	// Kubernetes: the objects to deploy, the images they use and the k8s_kind
	// image paths.
	kobjs   []*unstructured.Unstructured
	kimages []kubeImage
	// luImage is the image whose live_update lu is (a Kubernetes resource
	// live-updates the containers that run it).
	luImage string
	kinds   map[string][]render.ImagePath
	// drift are the deployed objects whose live state differs (OutOfSync).
	drift     []string
	kforwards []model.PortForward
	// kextra and kselOnly are k8s_resource's extra_pod_selectors and
	// discovery_strategy='selectors-only'.
	kextra   []map[string]string
	kselOnly bool
	// prune and selfHeal follow an Argo CD app's syncPolicy.automated.
	prune, selfHeal bool

	runner   *localres.Runner
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
}

// pendingBatch is what an update takes from a resource's pending changes.
type pendingBatch struct {
	edit    time.Time
	batched time.Time
	changes []liveupdate.Change
}

// configure applies what every *_resource call can set: resource_deps, labels,
// trigger_mode and auto_init (unset ones keep the defaults).
func (r *resource) configure(deps, labels []string, trigger model.TriggerMode, autoInit *bool) {
	r.deps = append(r.deps, deps...)
	r.labels = labels
	if trigger != "" {
		r.trigger = trigger
	}
	if autoInit != nil {
		r.autoInit = *autoInit
	}
}

func (r *resource) autoTrigger() bool {
	return r.trigger != model.TriggerManual && r.trigger != model.TriggerManualNoInit
}

// roots are the paths the resource needs watched.
func (r *resource) roots() []string {
	var out []string
	if r.local != nil {
		out = append(out, r.local.Deps...)
	}
	if r.image != nil {
		out = append(out, r.image.Context)
		if r.image.Dockerfile != "" {
			out = append(out, r.image.Dockerfile)
		}
	}
	if r.lu != nil {
		for _, s := range r.lu.Syncs {
			out = append(out, s.LocalPath)
		}
		out = append(out, r.lu.FallBackOn...)
		out = append(out, r.lu.RestartOn...)
	}
	for _, k := range r.kimages {
		out = append(out, k.img.Context)
		if k.img.Dockerfile != "" {
			out = append(out, k.img.Dockerfile)
		}
	}
	return out
}

// skipsDir reports whether the resource has no interest in anything below dir.
func (r *resource) skipsDir(dir string) bool {
	for _, root := range r.roots() {
		if within(dir, root) {
			return false // dir is above a root: must be walked to reach it
		}
		if !within(root, dir) {
			continue
		}
		if r.local != nil && (r.localIgnore == nil || !r.localIgnore.SkipDir(dir)) {
			return false
		}
		if r.image != nil && within(r.image.Context, dir) && (r.imageIgnore == nil || !r.imageIgnore.SkipDir(dir)) {
			return false
		}
		if r.lu != nil && r.image == nil {
			return false
		}
		for _, k := range r.kimages {
			if within(k.img.Context, dir) && (k.ign == nil || !k.ign.SkipDir(dir)) {
				return false
			}
		}
	}
	return true
}

// builtFrom reports whether path is the Dockerfile or an ignore file
// (.dockerignore) of an image the resource builds: config files that also change
// what the image is built from.
func (r *resource) builtFrom(path string) bool {
	if r.image != nil && (r.image.Dockerfile == path || r.imageIgnore.Reads(path)) {
		return true
	}
	for _, k := range r.kimages {
		if k.img.Dockerfile == path || k.ign.Reads(path) {
			return true
		}
	}
	return false
}

// concerns reports whether a change of path affects the resource.
func (r *resource) concerns(path string) bool {
	for _, k := range r.kimages {
		if within(k.img.Context, path) && (k.ign == nil || !k.ign.Ignored(path, false)) {
			return true
		}
		if path == k.img.Dockerfile {
			return true
		}
	}
	if r.local != nil {
		for _, d := range r.local.Deps {
			if within(d, path) {
				return r.localIgnore == nil || !r.localIgnore.Ignored(path, false)
			}
		}
		return false
	}
	if r.lu != nil {
		for _, p := range r.lu.FallBackOn {
			if within(p, path) {
				return true
			}
		}
	}
	if r.image != nil && within(r.image.Context, path) {
		return r.imageIgnore == nil || !r.imageIgnore.Ignored(path, false)
	}
	if r.image != nil && path == r.image.Dockerfile {
		return true
	}
	if r.lu != nil {
		for _, s := range r.lu.Syncs {
			if within(s.LocalPath, path) {
				return true
			}
		}
		for _, p := range r.lu.RestartOn {
			if within(p, path) {
				return true
			}
		}
	}
	return false
}

func (r *resource) addChange(ev watch.Event, now time.Time) {
	if r.pending == nil {
		r.pending = map[string]watch.Event{}
	}
	if len(r.pending) == 0 {
		r.firstEdit, r.batched = ev.Time, now
	} else if ev.Time.Before(r.firstEdit) {
		r.firstEdit = ev.Time
	}
	if prev, ok := r.pending[ev.Path]; ok {
		ev.Op |= prev.Op
		ev.Time = prev.Time
	}
	r.pending[ev.Path] = ev
	if ev.Time.After(r.lastEvent) {
		r.lastEvent = ev.Time
	}
}

// classify sets when the pending batch is due. A save to an idle resource
// that can be live-updated, or to a local_resource, goes out at once (the
// watcher's batcher already waited for the save to finish). Changes that
// arrive while an update runs or right after it, or a batch of many files,
// are a burst: they wait for FollowQuiet of quiet (at most BurstMax) and go
// out as one follow-up. A rebuild costs seconds and waits for RebuildQuiet.
func (r *resource) classify(now time.Time) {
	if r.local != nil || r.canLiveUpdate() {
		burst := len(r.pending) > watch.BurstFiles
		if !burst && !r.updating && now.Sub(r.lastDone) > watch.FollowWindow {
			r.due = now
			return
		}
		due := r.lastEvent.Add(watch.FollowQuiet)
		if max := r.firstEdit.Add(watch.BurstMax); due.After(max) {
			due = max
		}
		r.due = due
		return
	}
	due := r.lastEvent.Add(watch.RebuildQuiet - watch.LiveQuiet)
	if max := r.firstEdit.Add(watch.RebuildMax); due.After(max) {
		due = max
	}
	r.due = due
}

func (r *resource) canLiveUpdate() bool {
	if r.lu == nil || r.liveFailed || r.target == nil {
		return false
	}
	d, err := liveupdate.Plan(r.lu, r.pendingChanges())
	return err == nil && d.FallBack == nil
}

// pendingChanges lists the pending changes, without transient files
// outside every sync: a path created since the last update that is gone
// again (a compiler's or editor's temp file) changed nothing an image could
// have. This costs one lstat per such path.
func (r *resource) pendingChanges() []liveupdate.Change {
	out := make([]liveupdate.Change, 0, len(r.pending))
	for p, ev := range r.pending {
		if ev.Op&watch.Create != 0 && ev.Op&(watch.Remove|watch.Rename) != 0 && !r.underSync(p) {
			// Under a sync the path may have existed before the Create
			// (an atomic save renames onto an existing file, which reports
			// Create): its removal must reach the container.
			if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		// A directory outside every sync changes nothing by itself: the
		// files in it have events of their own.
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() && !r.underSync(p) {
			continue
		}
		out = append(out, liveupdate.Change{Path: p, Deleted: ev.Op&watch.Remove != 0 || ev.Op&watch.Rename != 0})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (r *resource) takePending() *pendingBatch {
	b := &pendingBatch{edit: r.firstEdit, batched: r.batched, changes: r.pendingChanges()}
	r.pending = nil
	r.firstEdit, r.lastEvent = time.Time{}, time.Time{}
	return b
}

// readyNow reports readiness right after a successful update.
func (r *resource) readyNow() bool {
	if r.local != nil && r.local.ReadinessProbe != nil && !r.local.ServeCmd.Empty() {
		return r.probeReady
	}
	return true
}

func (r *resource) status() api.ResourceStatus {
	st := api.ResourceStatus{
		Name: r.name, Type: r.typ, Labels: r.labels, Phase: r.phase, Error: r.errText,
		ContainerID: r.containerID, Image: r.ref, PendingFiles: len(r.pending), Drift: r.drift, Links: r.links,
	}
	if r.last != nil {
		u := *r.last
		st.LastUpdate = &u
	}
	return st
}

// carryOver keeps runtime handles of the definition being replaced when they
// still apply (the same container keeps serving until the update replaces it).
func (r *resource) carryOver(old *resource) {
	r.gen = old.gen + 1
	if old.typ == r.typ && r.typ == "compose" {
		r.containerID = old.containerID
		r.ref = old.ref
	}
	r.last = old.last
	r.everReady = old.everReady
}

// stop ends the resource's background work: serve commands, log streams,
// the sync agent session.
func (r *resource) stop() {
	if r.bgCancel != nil {
		r.bgCancel()
	}
	if r.runner != nil {
		_ = r.runner.Close()
	}
	if r.target != nil {
		r.target.Close()
	}
	r.bg.Wait()
}

// specHash fingerprints a resource definition so a reload only replaces
// resources whose definition changed.
func specHash(parts ...any) string {
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

// resourcesFor turns a config into resource definitions. It reads compose
// files, so it runs on a worker, not in the engine goroutine.
func resourcesFor(ctx context.Context, cfg *model.Config, env []string) ([]*resource, []string, error) {
	var out []*resource
	files := append([]string(nil), cfg.Files...)
	names := map[string]bool{}
	add := func(r *resource) error {
		if names[r.name] {
			return fmt.Errorf("resource %q is declared twice", r.name)
		}
		names[r.name] = true
		out = append(out, r)
		return nil
	}
	dirOfTiltfile := filepath.Dir(cfg.Tiltfile)
	images := map[string]*model.Image{}
	for _, img := range cfg.Images {
		images[img.Ref] = img
	}
	defaultTrigger := cfg.Settings.TriggerMode
	if defaultTrigger == "" {
		defaultTrigger = model.TriggerAuto
	}

	for _, lr := range cfg.LocalResources {
		var ign *ignore.Matcher
		if len(lr.Ignore) > 0 {
			m, err := ignore.FromPatterns(dirOfTiltfile, lr.Ignore)
			if err != nil {
				return nil, files, fmt.Errorf("local_resource %q ignore: %w", lr.Name, err)
			}
			ign = m
		}
		tm := lr.TriggerMode
		if tm == "" {
			tm = defaultTrigger
		}
		r := &resource{
			name: lr.Name, typ: "local", deps: lr.ResourceDeps, trigger: tm, autoInit: lr.AutoInit,
			labels: lr.Labels, links: apiLinks(lr.Links), local: lr, localIgnore: ign, hash: specHash("local", lr),
		}
		if lr.ReadyLog != "" {
			re, err := regexp.Compile(lr.ReadyLog)
			if err != nil {
				return nil, files, fmt.Errorf("local_resource %q ready_log: %w", lr.Name, err)
			}
			r.readyLog = re
		}
		if err := add(r); err != nil {
			return nil, files, err
		}
	}

	dcOpts := map[string]*model.DCResource{}
	for _, dc := range cfg.DCResources {
		dcOpts[dc.Name] = dc
	}
	for _, cp := range cfg.Compose {
		proj, err := compose.Load(ctx, cp, env)
		if err != nil {
			return nil, files, err
		}
		files = append(files, proj.Files...)
		for _, svc := range proj.Services {
			r := &resource{name: svc.Name, typ: "compose", trigger: defaultTrigger, autoInit: true, proj: proj, svc: svc}
			if dc := dcOpts[svc.Name]; dc != nil {
				if dc.NewName != "" {
					r.name = dc.NewName
				}
				r.configure(dc.ResourceDeps, dc.Labels, dc.TriggerMode, dc.AutoInit)
				r.links = apiLinks(dc.Links)
				if dc.ReadyLog != "" {
					re, err := regexp.Compile(dc.ReadyLog)
					if err != nil {
						return nil, files, fmt.Errorf("dc_resource %q ready_log: %w", dc.Name, err)
					}
					r.readyLog = re
				}
			}
			if dc := dcOpts[svc.Name]; dc == nil || dc.InferLinks == nil || *dc.InferLinks {
				r.links = append(r.links, publishedLinks(svc.Ports)...)
			}
			for dep := range svc.DependsOn {
				r.deps = append(r.deps, dep)
			}
			sort.Strings(r.deps)
			if img, ok := images[svc.Image]; ok && img.Custom == nil {
				r.image = img
			} else if svc.Build != nil {
				r.image = svc.Build
			}
			if r.image != nil {
				m, err := ignore.ForContext(r.image.Context, r.image.Dockerfile, r.image.Only, r.image.Ignore)
				if err != nil {
					return nil, files, fmt.Errorf("service %s: %w", svc.Name, err)
				}
				r.imageIgnore = m
				files = append(files, m.Files()...)
				r.lu = r.image.LiveUpdate
				if r.lu == nil {
					r.lu = svc.LiveUpdate
				}
			}
			r.hash = specHash("compose", proj.Name, svc, r.image, r.deps, r.trigger, dcOpts[svc.Name])
			if err := add(r); err != nil {
				return nil, files, err
			}
		}
	}
	kres, kfiles, err := kubeResources(ctx, cfg, defaultTrigger)
	files = append(files, kfiles...)
	if err != nil {
		return nil, files, err
	}
	for _, r := range kres {
		if err := add(r); err != nil {
			return nil, files, err
		}
	}
	for _, r := range out {
		for _, d := range r.deps {
			if !names[d] {
				return nil, files, fmt.Errorf("resource %q: resource_deps names %q, which is not a resource", r.name, d)
			}
		}
	}
	return out, files, nil
}

// apiLinks converts the Tiltfile's links.
func apiLinks(ls []model.Link) []api.Link {
	var out []api.Link
	for _, l := range ls {
		out = append(out, api.Link{URL: l.URL, Name: l.Name})
	}
	return out
}

// publishedLinks are a Compose service's published TCP ports as links (Tilt's
// infer_links); a port the engine picks has no known number and no link.
func publishedLinks(ports []compose.Port) []api.Link {
	var out []api.Link
	for _, p := range ports {
		if p.HostPort == "" || (p.Protocol != "" && p.Protocol != "tcp") {
			continue
		}
		host := p.HostIP
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		out = append(out, api.Link{URL: "http://" + net.JoinHostPort(host, p.HostPort) + "/"})
	}
	return out
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

func (r *resource) underSync(p string) bool {
	if r.lu == nil {
		return false
	}
	for _, s := range r.lu.Syncs {
		if within(s.LocalPath, p) {
			return true
		}
	}
	return false
}
