package kube

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
)

// podWatch keeps the pods of some selectors current with one list and watch per
// selector (client-go informers), so that following an idle resource's pods costs no
// requests; a poll would list them every second.
type podWatch struct {
	infs    []cache.SharedIndexInformer
	changed chan struct{} // capacity 1: a change since the last look
	wg      sync.WaitGroup
}

// watchPods starts the informers; they run until ctx is done. Call wait before
// returning from the owner.
func watchPods(ctx context.Context, core corev1client.CoreV1Interface, sels []podSelector) *podWatch {
	w := &podWatch{changed: make(chan struct{}, 1)}
	notify := func() {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	for _, s := range sels {
		pods := core.Pods(s.namespace)
		narrow := func(o *metav1.ListOptions) {
			if s.name != "" {
				o.FieldSelector = fields.OneTermEqualSelector("metadata.name", s.name).String()
			} else {
				o.LabelSelector = s.selector.String()
			}
		}
		lw := &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				narrow(&o)
				return pods.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				narrow(&o)
				return pods.Watch(ctx, o)
			},
		}
		inf := cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
		if _, err := inf.AddEventHandler(handler); err != nil {
			continue // only fails on a stopped informer
		}
		w.infs = append(w.infs, inf)
		w.wg.Add(1)
		go func() { // owned by the podWatch: ends with ctx; wait waits for it
			defer w.wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	return w
}

// pods lists the pods the informers hold, each once (selectors may overlap).
func (w *podWatch) pods() []corev1.Pod {
	var out []corev1.Pod
	seen := map[types.UID]bool{}
	for _, inf := range w.infs {
		for _, o := range inf.GetStore().List() {
			if p, ok := o.(*corev1.Pod); ok && !seen[p.UID] {
				seen[p.UID] = true
				out = append(out, *p)
			}
		}
	}
	return out
}

// SyncWait bounds how long synced waits for the first list of pods.
const SyncWait = 10 * time.Second

// synced waits until every informer has listed its pods once; false when that did
// not happen within SyncWait (the API server refuses, say) or ctx ended.
func (w *podWatch) synced(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, SyncWait)
	defer cancel()
	fns := make([]cache.InformerSynced, len(w.infs))
	for i, inf := range w.infs {
		fns[i] = inf.HasSynced
	}
	return cache.WaitForCacheSync(ctx.Done(), fns...)
}

func (w *podWatch) wait() { w.wg.Wait() }
