package argosync

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SyncStatus is whether live state matches desired state.
type SyncStatus string

// Sync statuses, as Argo CD names them.
const (
	Synced    SyncStatus = "Synced"
	OutOfSync SyncStatus = "OutOfSync"
)

// ObjectStatus is the comparison of one desired object with the cluster.
type ObjectStatus struct {
	Key    string
	Status SyncStatus
	// Live and Desired are normalised (no status, no server bookkeeping); Live is nil
	// when the object is missing. Desired is the server's dry-run result of applying it.
	Live, Desired *unstructured.Unstructured
}

// Compare reports, per non-hook desired object, whether the live object differs from
// what a server-side apply of the desired object would produce (status ignored, and the
// fields o.Policy.IgnoreDifferences names).
func (s *Syncer) Compare(ctx context.Context, objs []*unstructured.Unstructured, o Options) ([]ObjectStatus, error) {
	if o.Namespace == "" {
		o.Namespace = s.cluster.Namespace
	}
	pol, err := compilePolicy(o.Policy)
	if err != nil {
		return nil, fmt.Errorf("compare %s: %w", o.App, err)
	}
	var out []ObjectStatus
	crds := crdScopes(objs)
	for _, obj := range objs {
		if _, isHook, skip := hookPhases(obj); isHook || skip {
			continue
		}
		obj = obj.DeepCopy()
		if err := s.prepare(obj, o, pol, crds); err != nil {
			return nil, err
		}
		st, err := s.compareOne(ctx, obj, pol)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// compareOne compares one prepared desired object with the cluster.
func (s *Syncer) compareOne(ctx context.Context, obj *unstructured.Unstructured, pol *policy) (ObjectStatus, error) {
	st := ObjectStatus{Key: Key(obj), Status: OutOfSync}
	live, err := s.get(ctx, obj)
	if meta.IsNoMatchError(err) {
		// Its CRD is not there yet: the object is missing too.
		err = apierrors.NewNotFound(schema.GroupResource{Group: obj.GroupVersionKind().Group}, obj.GetName())
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return st, fmt.Errorf("read %s: %w", Key(obj), err)
	}
	if err != nil {
		_, d, err := pol.ignored(nil, obj)
		if err != nil {
			return st, err
		}
		st.Desired = normalise(d)
		return st, nil
	}
	// The dry run's answer depends only on the live object (its resourceVersion), the
	// desired one and the ignore rules: while none changed, the last comparison holds
	// and the server is not asked again.
	want, rv := fingerprint(obj, pol.key), live.GetResourceVersion()
	if c, ok := s.compared(st.Key, rv, want); ok {
		return c, nil
	}
	dry, err := s.apply(ctx, obj, pol, true)
	if err != nil {
		return st, err
	}
	l, d, err := pol.ignored(live, dry)
	if err != nil {
		return st, err
	}
	st.Live, st.Desired = normalise(l), normalise(d)
	if reflect.DeepEqual(st.Live.Object, st.Desired.Object) {
		st.Status = Synced
	}
	s.remember(st, rv, want)
	return st, nil
}

// normalise drops what the server changes on its own so that live and desired compare.
func normalise(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	delete(o.Object, "status")
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	unstructured.RemoveNestedField(o.Object, "metadata", "annotations", "deployment.kubernetes.io/revision")
	if len(o.GetAnnotations()) == 0 {
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations")
	}
	return o
}

// comparison is a Compare result kept for as long as neither side changes.
type comparison struct {
	rv   string   // the live object's resourceVersion
	want [32]byte // the prepared desired object's fingerprint
	st   ObjectStatus
}

// compareKeep bounds the comparisons kept (one per object a daemon follows).
const compareKeep = 4096

func fingerprint(obj *unstructured.Unstructured, rules [32]byte) [32]byte {
	b, err := json.Marshal(obj.Object)
	if err != nil {
		return [32]byte{} // never equal to a real fingerprint's cached twin: see compared
	}
	return sha256.Sum256(append(b, rules[:]...))
}

func (s *Syncer) compared(key, rv string, want [32]byte) (ObjectStatus, bool) {
	s.cmpMu.Lock()
	defer s.cmpMu.Unlock()
	c, ok := s.cmp[key]
	if !ok || rv == "" || c.rv != rv || c.want != want || want == ([32]byte{}) {
		return ObjectStatus{}, false
	}
	return c.st, true
}

func (s *Syncer) remember(st ObjectStatus, rv string, want [32]byte) {
	s.cmpMu.Lock()
	defer s.cmpMu.Unlock()
	if s.cmp == nil || len(s.cmp) >= compareKeep {
		s.cmp = map[string]comparison{}
	}
	s.cmp[st.Key] = comparison{rv: rv, want: want, st: st}
}
