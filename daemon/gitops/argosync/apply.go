package argosync

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/model"
)

// applyTask applies one task's object as its sync options say: skipped when
// ApplyOutOfSyncOnly=true and it is in sync; with RespectIgnoreDifferences=true, the
// ignored fields kept as they are live; replaced (created, or updated whole) with
// Replace=true, deleted and created again with Force=true as well; else server-side
// applied. It returns the object as applied.
func (s *Syncer) applyTask(ctx context.Context, t Task, o Options, pol *policy) (got *unstructured.Unstructured, skipped bool, err error) {
	obj := t.Obj
	if !t.Hook && pol.is(nil, model.OptApplyOutOfSyncOnly, "true") {
		st, err := s.compareOne(ctx, obj, pol)
		if err != nil {
			return nil, false, err
		}
		if st.Status == Synced {
			return obj, true, nil
		}
	}
	if !t.Hook && len(pol.ignore) > 0 && pol.is(nil, model.OptRespectIgnoreDifferences, "true") {
		live, err := s.get(ctx, obj)
		switch {
		case err == nil:
			// Argo CD keeps the live values only of an object that exists.
			if obj, err = pol.respectIgnored(obj, live); err != nil {
				return nil, false, err
			}
		case !apierrors.IsNotFound(err):
			return nil, false, fmt.Errorf("read %s: %w", Key(obj), err)
		}
	}
	if pol.is(obj, model.OptReplace, "true") {
		got, err := s.replace(ctx, obj, pol, pol.is(obj, model.OptForce, "true"))
		return got, false, err
	}
	got, err = s.apply(ctx, obj, pol, false)
	return got, false, err
}

// replace is kubectl replace (create when missing): the live object becomes obj whole,
// fields other managers set included. force deletes it first and creates it again.
func (s *Syncer) replace(ctx context.Context, obj *unstructured.Unstructured, pol *policy, force bool) (*unstructured.Unstructured, error) {
	ri, err := s.resource(obj)
	if err != nil {
		return nil, err
	}
	create := func() (*unstructured.Unstructured, error) {
		got, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: FieldManager, FieldValidation: fieldValidation(obj, pol)})
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", Key(obj), err)
		}
		return got, nil
	}
	live, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return create()
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", Key(obj), err)
	case force:
		if _, err := s.deleteAndWait(ctx, obj); err != nil {
			return nil, err
		}
		return create()
	}
	obj = obj.DeepCopy()
	obj.SetResourceVersion(live.GetResourceVersion())
	got, err := ri.Update(ctx, obj, metav1.UpdateOptions{FieldManager: FieldManager, FieldValidation: fieldValidation(obj, pol)})
	if err != nil {
		return nil, fmt.Errorf("replace %s: %w", Key(obj), err)
	}
	return got, nil
}

// fieldValidation is kubectl's strict validation, or none with Validate=false.
func fieldValidation(obj *unstructured.Unstructured, pol *policy) string {
	if pol.is(obj, model.OptValidate, "false") {
		return metav1.FieldValidationIgnore
	}
	return metav1.FieldValidationStrict
}

// shared is FailOnSharedResource=true: a message naming the first desired object that
// another app applied, "" when there is none.
func (s *Syncer) shared(ctx context.Context, desired []*unstructured.Unstructured, app string) (string, error) {
	for _, obj := range desired {
		if _, isHook, skip := hookPhases(obj); isHook || skip {
			continue
		}
		live, err := s.get(ctx, obj)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read %s: %w", Key(obj), err)
		}
		if other := live.GetLabels()[LabelApp]; other != "" && other != app {
			return fmt.Sprintf("shared resource found: %s is already applied by app %s (FailOnSharedResource=true)", Key(obj), other), nil
		}
	}
	return "", nil
}

// createNamespace is CreateNamespace=true: the destination namespace is made when it
// does not exist, with spec.syncPolicy.managedNamespaceMetadata's labels and
// annotations, which are also applied to an existing one. It is not tracked as the
// app's, so it is never pruned nor deleted with the app. A Namespace of that name among
// the desired objects wins, as in Argo CD.
func (s *Syncer) createNamespace(ctx context.Context, desired []*unstructured.Unstructured, o Options, pol *policy, res *Result) error {
	if !pol.is(nil, model.OptCreateNamespace, "true") || o.Namespace == "" {
		return nil
	}
	for _, d := range desired {
		if d.GetKind() == "Namespace" && d.GroupVersionKind().Group == "" && d.GetName() == o.Namespace {
			return nil
		}
	}
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(o.Namespace)
	if l := o.Policy.NamespaceLabels; len(l) > 0 {
		ns.SetLabels(l)
	}
	if a := o.Policy.NamespaceAnnotations; len(a) > 0 {
		ns.SetAnnotations(a)
	}
	_, err := s.get(ctx, ns)
	switch {
	case err == nil && len(o.Policy.NamespaceLabels) == 0 && len(o.Policy.NamespaceAnnotations) == 0:
		return nil
	case err != nil && !apierrors.IsNotFound(err):
		return fmt.Errorf("read namespace %s: %w", o.Namespace, err)
	}
	action := "namespace-metadata"
	if err != nil {
		action = "create-namespace"
	}
	if _, err := s.apply(ctx, ns, pol, false); err != nil {
		return err
	}
	res.Steps = append(res.Steps, Step{Action: action, Key: Key(ns), Phase: PreSync, Wave: 0})
	return nil
}
