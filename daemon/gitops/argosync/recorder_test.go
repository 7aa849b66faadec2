package argosync

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
)

// event is one change the API server reported. rv is the object's resourceVersion, which
// is etcd's global revision on this server: it orders events across resource types.
type event struct {
	rv  int64
	typ watch.EventType
	obj *unstructured.Unstructured
}

func (e event) kindName() string { return e.obj.GetKind() + "/" + e.obj.GetName() }

// target is what one watch covers: a resource type in a namespace ("" for cluster-scoped
// types), optionally a single name.
type target struct {
	gvr       schema.GroupVersionResource
	namespace string
	name      string
}

func (tg target) client(dyn dynamic.Interface) dynamic.ResourceInterface {
	if tg.namespace != "" {
		return dyn.Resource(tg.gvr).Namespace(tg.namespace)
	}
	return dyn.Resource(tg.gvr)
}

func (tg target) listOptions() metav1.ListOptions {
	if tg.name == "" {
		return metav1.ListOptions{}
	}
	return metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", tg.name).String()}
}

// recorder records every change to its targets from the moment it starts: each watch
// begins at the resourceVersion of a List made just before, so nothing created after
// startRecorder returns can be missed.
type recorder struct {
	dyn     dynamic.Interface
	targets []target
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	startRV map[target]int64 // resourceVersion each watch started from

	mu     sync.Mutex
	events map[target][]event
	err    error
}

func startRecorder(t *testing.T, dyn dynamic.Interface, targets ...target) *recorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{dyn: dyn, targets: targets, cancel: cancel, startRV: map[target]int64{}, events: map[target][]event{}}
	// Stopped at test end; each watch goroutine ends when ctx is cancelled.
	t.Cleanup(r.stop)
	for _, tg := range targets {
		ri := tg.client(dyn)
		list, err := ri.List(ctx, tg.listOptions())
		if err != nil {
			t.Fatalf("list %v: %v", tg, err)
		}
		opts := tg.listOptions()
		opts.ResourceVersion = list.GetResourceVersion()
		if r.startRV[tg], err = strconv.ParseInt(opts.ResourceVersion, 10, 64); err != nil {
			t.Fatalf("list %v: resourceVersion %q: %v", tg, opts.ResourceVersion, err)
		}
		w, err := ri.Watch(ctx, opts)
		if err != nil {
			t.Fatalf("watch %v from %s: %v", tg, opts.ResourceVersion, err)
		}
		r.wg.Add(1)
		go r.run(ctx, tg, w)
	}
	return r
}

func (r *recorder) run(ctx context.Context, tg target, w watch.Interface) {
	defer r.wg.Done()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.ResultChan():
			if !ok {
				r.fail(fmt.Errorf("watch of %v closed early", tg))
				return
			}
			u, isObj := e.Object.(*unstructured.Unstructured)
			if e.Type == watch.Error || !isObj {
				r.fail(fmt.Errorf("watch of %v: %v event %v", tg, e.Type, e.Object))
				return
			}
			if e.Type == watch.Bookmark {
				continue
			}
			rv, err := strconv.ParseInt(u.GetResourceVersion(), 10, 64)
			if err != nil {
				r.fail(fmt.Errorf("watch of %v: resourceVersion %q: %w", tg, u.GetResourceVersion(), err))
				return
			}
			r.mu.Lock()
			r.events[tg] = append(r.events[tg], event{rv: rv, typ: e.Type, obj: u})
			r.mu.Unlock()
		}
	}
}

func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

func (r *recorder) stop() {
	r.cancel()
	r.wg.Wait()
}

// catchUp waits until every watch has delivered the current state: for each listed object
// the event of its current resourceVersion, and for each object seen created but no longer
// listed its deletion. A watch delivers in resourceVersion order, so all earlier events of
// that type are in too.
func (r *recorder) catchUp(t *testing.T, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, tg := range r.targets {
		list, err := tg.client(r.dyn).List(ctx, tg.listOptions())
		if err != nil {
			t.Fatalf("list %v: %v", tg, err)
		}
		for {
			missing := r.missing(tg, list)
			if missing == "" {
				break
			}
			r.mu.Lock()
			err := r.err
			r.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatalf("watch of %v did not catch up: %s", tg, missing)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		t.Fatal(r.err)
	}
}

// missing says what list (taken after the events of interest) has that the watch of tg has
// not delivered yet: a listed object's state at its listed resourceVersion, or the
// deletion of an object the watch saw but list no longer holds. "" when caught up.
func (r *recorder) missing(tg target, list *unstructured.UnstructuredList) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	listRV, _ := strconv.ParseInt(list.GetResourceVersion(), 10, 64)
	last := map[types.UID]event{} // each object's latest event
	for _, e := range r.events[tg] {
		last[e.obj.GetUID()] = e
	}
	listed := map[types.UID]bool{}
	for _, it := range list.Items {
		listed[it.GetUID()] = true
		rv, _ := strconv.ParseInt(it.GetResourceVersion(), 10, 64)
		if e, ok := last[it.GetUID()]; rv > r.startRV[tg] && (!ok || e.rv < rv) {
			return fmt.Sprintf("%s/%s at resourceVersion %d", it.GetKind(), it.GetName(), rv)
		}
	}
	for uid, e := range last {
		if !listed[uid] && e.typ != watch.Deleted && e.rv <= listRV {
			return fmt.Sprintf("the deletion of %s", e.kindName())
		}
	}
	return ""
}

// all returns every recorded event, ordered by resourceVersion.
func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, es := range r.events {
		out = append(out, es...)
	}
	slices.SortStableFunc(out, func(a, b event) int { return int(a.rv - b.rv) })
	return out
}
