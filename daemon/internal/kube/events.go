package kube

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Events are indexed by the object they are about: its UID, and its kind and name
// (a workload's events are found by the name loop applied it with).
const (
	byObjectUID  = "involvedObject.uid"
	byObjectName = "involvedObject.kindName"
)

// eventHub keeps the Warning events of the namespaces loop follows pods in: one
// list and watch per namespace (a client-go informer), started when a resource there
// is first followed and shared by every resource of that namespace, so that a
// resource's events cost no request of their own. Close stops every watch and waits
// for it.
type eventHub struct {
	core corev1client.CoreV1Interface
	// client says whether the API answers watch-list requests (a fake clientset
	// says it does not); the informers list first otherwise.
	client any

	mu     sync.Mutex
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	ns     map[string]*nsEvents
}

func newEventHub(core corev1client.CoreV1Interface, client any) *eventHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &eventHub{core: core, client: client, ctx: ctx, cancel: cancel, ns: map[string]*nsEvents{}}
}

// nsEvents is one namespace's watch and the followers to tell of a change.
type nsEvents struct {
	inf  cache.SharedIndexInformer
	mu   sync.Mutex
	subs map[chan struct{}]bool
}

func (n *nsEvents) notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for ch := range n.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// namespace returns the watch of ns, starting it on first use; nil once the hub is
// closed.
func (h *eventHub) namespace(ns string) *nsEvents {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		return nil
	}
	if n := h.ns[ns]; n != nil {
		return n
	}
	events := h.core.Events(ns)
	// Only warnings: a rollout's Normal events (Scheduled, Pulling, Created, ...)
	// are most of a namespace's and are never logged.
	warnings := fields.OneTermEqualSelector("type", corev1.EventTypeWarning).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = warnings
			return events.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = warnings
			return events.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, h.client), &corev1.Event{}, 0, cache.Indexers{
		byObjectUID: func(o any) ([]string, error) {
			e, ok := o.(*corev1.Event)
			if !ok || e.InvolvedObject.UID == "" {
				return nil, nil
			}
			return []string{string(e.InvolvedObject.UID)}, nil
		},
		byObjectName: func(o any) ([]string, error) {
			e, ok := o.(*corev1.Event)
			if !ok {
				return nil, nil
			}
			keys := []string{e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name}
			if d, ok := replicaSetOf(e.InvolvedObject); ok {
				keys = append(keys, "Deployment.ReplicaSet/"+d)
			}
			return keys, nil
		},
	})
	n := &nsEvents{inf: inf, subs: map[chan struct{}]bool{}}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { n.notify() },
		UpdateFunc: func(any, any) { n.notify() },
	}); err != nil {
		return nil // only fails on a stopped informer
	}
	h.ns[ns] = n
	h.wg.Add(1)
	go func() { // owned by the hub: ends with its ctx; Close waits for it
		defer h.wg.Done()
		inf.RunWithContext(h.ctx)
	}()
	return n
}

// Close stops every namespace's watch and waits for them; a later follow gets no
// events.
func (h *eventHub) Close() {
	h.mu.Lock()
	h.cancel()
	h.mu.Unlock()
	h.wg.Wait()
}

// eventFollow is one followed resource's view of the events of its namespaces.
type eventFollow struct {
	ns      []*nsEvents
	changed chan struct{} // capacity 1: an event was added or updated since the last look
	// before is each event's count when the follow started: what happened before the
	// rollout is not the rollout's (counted again, it is).
	before map[string]int32
	said   map[string]bool // what was logged: object, reason and message
}

// follow starts following the events of namespaces; with baseline, it waits (at most
// SyncWait) for their first list, so that the events from before the rollout are
// known as such. stop ends the follow. Once the hub is closed, there are no events.
func (h *eventHub) follow(ctx context.Context, namespaces []string, baseline bool) *eventFollow {
	f := &eventFollow{changed: make(chan struct{}, 1), before: map[string]int32{}, said: map[string]bool{}}
	for _, ns := range namespaces {
		n := h.namespace(ns)
		if n == nil {
			continue
		}
		n.mu.Lock()
		n.subs[f.changed] = true
		n.mu.Unlock()
		f.ns = append(f.ns, n)
	}
	if !baseline {
		return f
	}
	sctx, cancel := context.WithTimeout(ctx, SyncWait)
	defer cancel()
	for _, n := range f.ns {
		if cache.WaitForCacheSync(sctx.Done(), n.inf.HasSynced) {
			for _, o := range n.inf.GetStore().List() {
				if e, ok := o.(*corev1.Event); ok {
					f.before[string(e.UID)] = eventCount(e)
				}
			}
		}
	}
	return f
}

// stop ends the follow: changed is told nothing more.
func (f *eventFollow) stop() {
	for _, n := range f.ns {
		n.mu.Lock()
		delete(n.subs, f.changed)
		n.mu.Unlock()
	}
}

// eventCount is how many times an event happened: its count, or its series' count
// (events.k8s.io), at least 1.
func eventCount(e *corev1.Event) int32 {
	c := max(e.Count, 1)
	if e.Series != nil {
		c = max(c, e.Series.Count)
	}
	return c
}

// owned says which objects a resource's events are about: its pods and their
// owners (ReplicaSets, Jobs) by UID, and its workload objects by kind and name,
// with the ReplicaSets of its Deployments (named after them).
type owned struct {
	uids        map[string]bool
	names       map[string]bool // kind/name in the namespace
	deployments map[string]bool // namespace/name
}

func ownedBy(w Workloads, defaultNS string, pods []corev1.Pod) owned {
	o := owned{uids: map[string]bool{}, names: map[string]bool{}, deployments: map[string]bool{}}
	for _, p := range pods {
		o.uids[string(p.UID)] = true
		for _, ref := range p.OwnerReferences {
			o.uids[string(ref.UID)] = true
		}
	}
	for _, obj := range w.Objects {
		ns := obj.GetNamespace()
		if ns == "" {
			ns = defaultNS
		}
		o.names[ns+"/"+obj.GetKind()+"/"+obj.GetName()] = true
		if obj.GetKind() == "Deployment" {
			o.deployments[ns+"/"+obj.GetName()] = true
		}
	}
	return o
}

// has reports whether e is about one of the objects.
func (o owned) has(e *corev1.Event) bool {
	ref := e.InvolvedObject
	if o.uids[string(ref.UID)] || o.names[e.Namespace+"/"+ref.Kind+"/"+ref.Name] {
		return true
	}
	d, ok := replicaSetOf(ref)
	return ok && o.deployments[e.Namespace+"/"+d]
}

// replicaSetOf is the Deployment a ReplicaSet is named after: its name is the
// Deployment's, a dash and the pod template's hash (no dash). A ReplicaSet that could
// not make a pod (FailedCreate) has no pod to know it by.
func replicaSetOf(ref corev1.ObjectReference) (string, bool) {
	if ref.Kind != "ReplicaSet" {
		return "", false
	}
	i := strings.LastIndexByte(ref.Name, '-')
	if i <= 0 {
		return "", false
	}
	return ref.Name[:i], true
}

// matching lists the events of the follow's namespaces about the objects, oldest
// first.
func (f *eventFollow) matching(o owned) []*corev1.Event {
	var out []*corev1.Event
	seen := map[string]bool{}
	add := func(items []any) {
		for _, it := range items {
			if e, ok := it.(*corev1.Event); ok && !seen[string(e.UID)] && o.has(e) {
				seen[string(e.UID)] = true
				out = append(out, e)
			}
		}
	}
	for _, n := range f.ns {
		idx := n.inf.GetIndexer()
		for uid := range o.uids {
			items, _ := idx.ByIndex(byObjectUID, uid)
			add(items)
		}
		for key := range o.names {
			_, kindName, _ := strings.Cut(key, "/")
			items, _ := idx.ByIndex(byObjectName, kindName)
			add(items)
		}
		for key := range o.deployments {
			_, name, _ := strings.Cut(key, "/")
			items, _ := idx.ByIndex(byObjectName, "Deployment.ReplicaSet/"+name)
			add(items)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(out[i]).Before(eventTime(out[j])) })
	return out
}

// eventTime is when an event last happened.
func eventTime(e *corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// log writes the events about o that are new since the follow started, each once:
// an event that happens again (its count goes up) is not logged again unless its
// message changed. As Tilt: "[event: pod NAME] Reason: message".
func (f *eventFollow) log(o owned, logs io.Writer) {
	for _, e := range f.matching(o) {
		if c, ok := f.before[string(e.UID)]; ok && eventCount(e) <= c {
			continue // from before the rollout
		}
		msg := strings.TrimSpace(e.Message)
		key := string(e.InvolvedObject.UID) + "\x00" + e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name + "\x00" + e.Reason + "\x00" + msg
		if f.said[key] {
			continue
		}
		f.said[key] = true
		fmt.Fprintf(logs, "[event: %s] %s\n", objectName(e.InvolvedObject), strings.TrimPrefix(e.Reason+": "+msg, ": "))
	}
}

// objectName names an event's object as Tilt does: its kind in lower case, and its
// namespace unless that is default.
func objectName(ref corev1.ObjectReference) string {
	kind := strings.ToLower(ref.Kind)
	if ref.Namespace == "" || ref.Namespace == metav1.NamespaceDefault {
		return kind + " " + ref.Name
	}
	return kind + " " + ref.Namespace + "/" + ref.Name
}
