package argosync

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// WatchApp calls changed whenever a live object of the app changes: one list and watch
// (a client-go informer) per resource type and namespace of objs, selecting the app's
// label, as Argo CD watches what it manages instead of polling it. It returns once the
// watches are started; they run until ctx is done, and wait waits for them. Objects of
// a type the server does not know yet are not watched (the caller's periodic compare
// still sees them).
func (s *Syncer) WatchApp(ctx context.Context, objs []*unstructured.Unstructured, o Options, changed func()) (wait func()) {
	if o.Namespace == "" {
		o.Namespace = s.cluster.Namespace
	}
	type target struct {
		gvr schema.GroupVersionResource
		ns  string
	}
	seen := map[target]bool{}
	crds := crdScopes(objs)
	var wg sync.WaitGroup
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(any, any) { changed() },
		DeleteFunc: func(any) { changed() },
	}
	sel := LabelApp + "=" + o.App
	for _, obj := range objs {
		if _, isHook, skip := hookPhases(obj); isHook || skip {
			continue
		}
		obj = obj.DeepCopy()
		if err := s.prepare(obj, o, &policy{}, crds); err != nil {
			continue
		}
		m, err := s.mapping(obj.GroupVersionKind())
		if err != nil {
			continue
		}
		t := target{gvr: m.Resource}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			t.ns = obj.GetNamespace()
		}
		if seen[t] {
			continue
		}
		seen[t] = true
		ri := s.cluster.Dynamic.Resource(t.gvr).Namespace(t.ns)
		lw := &cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
				lo.LabelSelector = sel
				return ri.List(ctx, lo)
			},
			WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
				lo.LabelSelector = sel
				return ri.Watch(ctx, lo)
			},
		}
		inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
		if _, err := inf.AddEventHandler(handler); err != nil {
			continue
		}
		wg.Add(1)
		go func() { // owned by WatchApp's caller through wait: ends with ctx
			defer wg.Done()
			inf.RunWithContext(ctx)
		}()
	}
	return wg.Wait
}
