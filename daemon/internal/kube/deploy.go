package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/loop-dev/loop/daemon/gitops/argosync"
	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/model"
)

// KindClusterLabel marks the node containers of a kind cluster with the cluster's name.
const KindClusterLabel = "io.x-k8s.kind.cluster"

// Deployer deploys to the cluster of one kube context.
type Deployer struct {
	cluster *argosync.Cluster
	syncer  *argosync.Syncer
	docker  *client.Client

	mu      sync.Mutex
	loaded  map[string]bool             // node container + image ID already imported
	healers map[string]*argosync.Healer // per resource: its self-heal back-off
	// pruneChecked is when self-heal last looked for a resource's left-over objects.
	pruneChecked map[string]time.Time
	// For live updates into pods: exec and pod clients, made on first use, and the
	// nodes' architectures.
	exec *agent.Kube
	core corev1client.CoreV1Interface
	apps appsv1client.AppsV1Interface
	arch map[string]string
	// events keeps the Warning events of the namespaces pods are followed in, made on
	// first use; Close stops it.
	events *eventHub
	// reg is the registry the cluster advertises (nil: none), once regRead.
	reg     *Registry
	regRead bool
	// agents are loop's agent images shipped (local ref, with the registry host
	// when pushed) and the refs pods pull them by.
	agents map[string]string
	// forwards are the port forwards held, by pod (namespace/name).
	forwards map[string]map[*podForward]bool
}

// PruneCheckEvery bounds how often self-heal looks for left-over objects to prune:
// that look lists every resource type of the cluster (~60 requests), where the drift
// check reads only the resource's own objects.
const PruneCheckEvery = 30 * time.Second

// Connect connects to the current kube context (KUBECONFIG or ~/.kube/config), refusing
// a context that is not local unless allowed names it. docker, when not nil, loads
// built images into the nodes of a kind cluster.
func Connect(allowed []string, docker *client.Client) (*Deployer, error) {
	c, err := argosync.Connect("", allowed)
	if err != nil {
		return nil, err
	}
	s, err := argosync.NewSyncer(c)
	if err != nil {
		return nil, err
	}
	return &Deployer{cluster: c, syncer: s, docker: docker, loaded: map[string]bool{}, healers: map[string]*argosync.Healer{},
		pruneChecked: map[string]time.Time{}, arch: map[string]string{}, agents: map[string]string{}, forwards: map[string]map[*podForward]bool{}}, nil
}

// Close stops the watches the Deployer shares between followed resources (their
// namespaces' events) and waits for them. Close the resources' followers first.
func (d *Deployer) Close() {
	d.mu.Lock()
	h := d.events
	d.mu.Unlock()
	if h != nil {
		h.Close()
	}
}

// eventHub returns the events watch, made on first use.
func (d *Deployer) eventHub(core corev1client.CoreV1Interface) *eventHub {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.events == nil {
		d.events = newEventHub(core, core)
	}
	return d.events
}

// Context is the kube context deployed to.
func (d *Deployer) Context() string { return d.cluster.Context }

// Namespace is the default namespace of the context.
func (d *Deployer) Namespace() string { return d.cluster.Namespace }

// appName makes a resource name a valid label value (the app label keys tracking).
var invalidLabel = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// AppName is the tracking app of a resource: its name as a label value.
func AppName(resource string) string {
	s := strings.Trim(invalidLabel.ReplaceAllString(resource, "-"), "-._")
	if len(s) > 63 {
		s = strings.Trim(s[:63], "-._")
	}
	if s == "" {
		s = "loop"
	}
	return s
}

// AppPolicy is how an Argo CD app asks to be synced; the zero value (the Tiltfile's own
// objects) applies in the context's namespace and never prunes.
type AppPolicy struct {
	// Namespace is spec.destination.namespace.
	Namespace string
	// Prune is syncPolicy.automated.prune.
	Prune bool
	// Sync is the rest of syncPolicy and spec.ignoreDifferences.
	Sync model.ArgoSync
}

func (p AppPolicy) options(resource string, logs io.Writer) argosync.Options {
	return argosync.Options{App: AppName(resource), Namespace: p.Namespace, Prune: p.Prune, Policy: p.Sync, Log: logs}
}

// Deploy loads images (built refs) into kind nodes when the context is a kind cluster,
// then syncs objs as the resource's app the Argo CD way: ordered waves, hooks, health,
// the app's sync options and retry. It returns when every object is healthy, or an
// error saying which is not.
func (d *Deployer) Deploy(ctx context.Context, resource string, objs []*unstructured.Unstructured, images []string, pol AppPolicy, logs io.Writer) error {
	if len(images) > 0 {
		if err := d.LoadImages(ctx, images, logs); err != nil {
			return err
		}
	}
	res, err := d.syncer.Sync(ctx, objs, pol.options(resource, logs))
	if res != nil {
		for _, s := range res.Steps {
			fmt.Fprintf(logs, "%s %s\n", s.Action, s.Key)
		}
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", resource, err)
	}
	if !res.Succeeded {
		return fmt.Errorf("sync %s: %s", resource, res.Message)
	}
	return nil
}

// Drift returns the keys of the resource's objects whose live state differs from a
// server-side apply of objs (missing ones included, the app's ignoreDifferences left
// out), as Argo CD's OutOfSync.
func (d *Deployer) Drift(ctx context.Context, resource string, objs []*unstructured.Unstructured, pol AppPolicy) ([]string, error) {
	st, err := d.syncer.Compare(ctx, objs, pol.options(resource, nil))
	if err != nil {
		return nil, fmt.Errorf("compare %s: %w", resource, err)
	}
	var out []string
	for _, s := range st {
		if s.Status == argosync.OutOfSync {
			out = append(out, s.Key)
		}
	}
	return out, nil
}

// WatchDrift calls changed whenever a live object of the resource changes (a watch of
// the types its objects have, selecting its app label), until ctx is done; wait waits
// for the watches to end.
func (d *Deployer) WatchDrift(ctx context.Context, resource string, objs []*unstructured.Unstructured, pol AppPolicy, changed func()) (wait func()) {
	return d.syncer.WatchApp(ctx, objs, pol.options(resource, nil), changed)
}

// Heal is Argo CD's automated selfHeal for a resource: when its live objects drifted
// from objs it syncs them again, holding back per the back-off (5 s doubling to 3 min)
// after a failed attempt. It returns the objects that had drifted and whether a re-sync
// put them back.
func (d *Deployer) Heal(ctx context.Context, resource string, objs []*unstructured.Unstructured, pol AppPolicy, logs io.Writer) ([]string, bool, error) {
	prune := pol.Prune
	d.mu.Lock()
	h := d.healers[resource]
	if h == nil {
		h = d.syncer.NewHealer()
		d.healers[resource] = h
	}
	if prune && time.Since(d.pruneChecked[resource]) < PruneCheckEvery {
		prune = false
	} else if prune {
		d.pruneChecked[resource] = time.Now()
	}
	d.mu.Unlock()
	o := pol.options(resource, logs)
	o.Prune = prune
	res, err := h.Heal(ctx, objs, o)
	if err != nil {
		return res.Drifted, false, fmt.Errorf("self-heal %s: %w", resource, err)
	}
	healed := res.Sync != nil && res.Sync.Succeeded
	switch {
	case healed:
		fmt.Fprintf(logs, "self-heal: synced again: %s\n", strings.Join(res.Drifted, ", "))
	case res.Sync != nil:
		fmt.Fprintf(logs, "self-heal failed: %s (next try at %s)\n", res.Sync.Message, res.RetryAt.Format("15:04:05"))
	}
	return res.Drifted, healed, nil
}

// Remove deletes what Deploy applied for one resource (objects annotated to be kept, or
// whose Delete sync option is false or confirm, stay) and returns the keys it deleted.
func (d *Deployer) Remove(ctx context.Context, resource string, pol AppPolicy) ([]string, error) {
	return d.syncer.Down(ctx, AppName(resource), pol.Sync)
}

// LoadImages gets images into every node of a kind cluster the way `kind load
// docker-image` does: the image tar streamed from the Docker engine into
// `ctr --namespace=k8s.io images import` on each node. Other clusters share the
// engine's images or pull them; nothing to do.
func (d *Deployer) LoadImages(ctx context.Context, refs []string, logs io.Writer) error {
	name, ok := strings.CutPrefix(d.cluster.Context, "kind-")
	if !ok || d.docker == nil {
		return nil
	}
	return LoadIntoKind(ctx, d.docker, name, refs, logs, d.seen)
}

func (d *Deployer) seen(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded[key] {
		return true
	}
	d.loaded[key] = true
	return false
}

// LoadIntoKind imports refs into the node containers of kind cluster name. seen, when
// not nil, reports (and records) a node+image pair imported before, which is skipped.
func LoadIntoKind(ctx context.Context, docker *client.Client, name string, refs []string, logs io.Writer, seen func(string) bool) error {
	nodes, err := docker.ContainerList(ctx, container.ListOptions{
		Filters: filters.NewArgs(filters.Arg("label", KindClusterLabel+"="+name), filters.Arg("status", "running")),
	})
	if err != nil {
		return fmt.Errorf("find the nodes of kind cluster %s: %w", name, err)
	}
	if len(nodes) == 0 {
		if seen == nil || !seen("no nodes/"+name) { // said once, not on every deploy
			fmt.Fprintf(logs, "kind cluster %s: no node containers on this Docker engine; images not loaded\n", name)
		}
		return nil
	}
	for _, ref := range refs {
		insp, err := docker.ImageInspect(ctx, ref)
		if err != nil {
			return fmt.Errorf("load %s into kind: %w", ref, err)
		}
		for _, n := range nodes {
			if seen != nil && seen(n.ID+"/"+insp.ID) {
				continue
			}
			if err := importImage(ctx, docker, n.ID, ref); err != nil {
				return fmt.Errorf("load %s into kind node %s: %w", ref, strings.TrimPrefix(firstName(n.Names), "/"), err)
			}
			fmt.Fprintf(logs, "loaded %s into kind node %s\n", ref, strings.TrimPrefix(firstName(n.Names), "/"))
		}
	}
	return nil
}

func firstName(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// importImage streams `docker save ref` into ctr's import on the node.
func importImage(ctx context.Context, docker *client.Client, node, ref string) error {
	ex, err := docker.ContainerExecCreate(ctx, node, container.ExecOptions{
		Cmd:          []string{"ctr", "--namespace=k8s.io", "images", "import", "--all-platforms", "--digests", "-"},
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return err
	}
	hj, err := docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return err
	}
	defer hj.Close()
	tar, err := docker.ImageSave(ctx, []string{ref})
	if err != nil {
		return err
	}
	defer tar.Close()
	var out strings.Builder
	copied := make(chan error, 1)
	go func() { // owned here: ends when the exec's output ends, waited below
		_, err := stdcopy.StdCopy(&out, &out, hj.Reader)
		copied <- err
	}()
	_, werr := io.Copy(hj.Conn, tar)
	if cerr := hj.CloseWrite(); werr == nil {
		werr = cerr
	}
	rerr := <-copied
	insp, err := docker.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return err
	}
	// ctr's own complaint says more than the broken pipe it causes.
	if insp.ExitCode != 0 {
		return fmt.Errorf("ctr images import: exit code %d: %s", insp.ExitCode, strings.TrimSpace(out.String()))
	}
	if werr != nil {
		return fmt.Errorf("stream the image: %w", werr)
	}
	if rerr != nil && !errors.Is(rerr, io.EOF) {
		return fmt.Errorf("read ctr's output: %w", rerr)
	}
	return nil
}
