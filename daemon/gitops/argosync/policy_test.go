package argosync

import (
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/model"
)

func mustPolicy(t *testing.T, p model.ArgoSync) *policy {
	t.Helper()
	pol, err := compilePolicy(p)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}

func deployment(name string, replicas int64, image string, initNames ...string) *unstructured.Unstructured {
	var inits []any
	for _, n := range initNames {
		inits = append(inits, map[string]any{"name": n, "image": "busybox"})
	}
	spec := map[string]any{"containers": []any{map[string]any{"name": "app", "image": image}}}
	if len(inits) > 0 {
		spec["initContainers"] = inits
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"spec":     map[string]any{"replicas": replicas, "template": map[string]any{"spec": spec}},
	}}
}

// ignoreDifferences: JSON pointers and jq paths leave fields out of both sides, for the
// objects the entry selects only.
func TestIgnoredPointersAndJQ(t *testing.T) {
	pol := mustPolicy(t, model.ArgoSync{IgnoreDifferences: []model.IgnoreDifference{
		{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}},
		{Group: "*", Kind: "Deploy*", Name: "web", JQPathExpressions: []string{`.spec.template.spec.initContainers[] | select(.name == "injected")`}},
	}})
	live := deployment("web", 5, "app:1", "injected")
	desired := deployment("web", 2, "app:1")
	l, d, err := pol.ignored(live, desired)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(l.Object, d.Object) {
		t.Errorf("after ignoring replicas and the injected init container:\nlive    %v\ndesired %v", l.Object, d.Object)
	}
	if live.Object["spec"].(map[string]any)["replicas"] != int64(5) {
		t.Error("ignored changed its argument")
	}
	// What no entry names still differs; the name filter holds.
	l, d, _ = pol.ignored(deployment("web", 5, "app:1"), deployment("web", 2, "app:2"))
	if reflect.DeepEqual(l.Object, d.Object) {
		t.Error("a changed image is ignored")
	}
	l, d, _ = pol.ignored(deployment("api", 1, "app:1", "injected"), deployment("api", 1, "app:1"))
	if reflect.DeepEqual(l.Object, d.Object) {
		t.Error("the jq entry for web ignores api's init containers")
	}
	// A pointer to nothing is skipped.
	l, _, err = pol.ignored(&unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "x"}}}, nil)
	if err != nil || l.GetName() != "x" {
		t.Errorf("ignored(no replicas) = %v, %v", l, err)
	}
}

// managedFieldsManagers: the fields another manager owns in live leave the comparison.
func TestIgnoredManagers(t *testing.T) {
	pol := mustPolicy(t, model.ArgoSync{IgnoreDifferences: []model.IgnoreDifference{
		{Kind: "ConfigMap", ManagedFieldsManagers: []string{"other"}},
	}})
	cm := func(a, b string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "c", "namespace": "ns"}, "data": map[string]any{"a": a, "b": b}}}
	}
	live := cm("theirs", "1")
	live.SetManagedFields([]metav1.ManagedFieldsEntry{
		{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:data":{"f:b":{}}}`)},
		{Manager: "other", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:data":{"f:a":{}}}`)},
	})
	l, d, err := pol.ignored(live, cm("ours", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if l.Object["data"].(map[string]any)["a"] != nil || !reflect.DeepEqual(l.Object["data"], d.Object["data"]) {
		t.Errorf("data.a, owned by other, still compared: live %v desired %v", l.Object["data"], d.Object["data"])
	}
	l, d, _ = pol.ignored(live, cm("theirs", "2"))
	if reflect.DeepEqual(l.Object["data"], d.Object["data"]) {
		t.Error("data.b, owned by loop, is ignored")
	}
}

// RespectIgnoreDifferences=true: the ignored fields keep their live values, the rest is
// desired.
func TestRespectIgnored(t *testing.T) {
	pol := mustPolicy(t, model.ArgoSync{IgnoreDifferences: []model.IgnoreDifference{
		{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}},
	}})
	live := deployment("web", 5, "app:1")
	live.Object["status"] = map[string]any{"replicas": int64(5)}
	got, err := pol.respectIgnored(deployment("web", 2, "app:2"), live)
	if err != nil {
		t.Fatal(err)
	}
	want := deployment("web", 5, "app:2")
	if !reflect.DeepEqual(got.Object, want.Object) {
		t.Errorf("respectIgnored =\n%v\nwant\n%v", got.Object, want.Object)
	}
}

// An option on the object wins over the Application's; options parse as Argo CD lists them.
func TestPolicyOption(t *testing.T) {
	pol := mustPolicy(t, model.ArgoSync{Options: []string{"Replace=true", "PrunePropagationPolicy=orphan"}})
	plain := obj("v1", "ConfigMap", "ns", "a", nil)
	off := obj("v1", "ConfigMap", "ns", "b", map[string]string{annSyncOptions: "Validate=false, Replace=false"})
	if !pol.is(plain, model.OptReplace, "true") || !pol.is(off, model.OptReplace, "false") || !pol.is(off, model.OptValidate, "false") {
		t.Error("the annotation does not win over syncOptions")
	}
	if pol.opt(nil, model.OptPrunePropagationPolicy) != "orphan" || fieldValidation(plain, pol) != metav1.FieldValidationStrict || fieldValidation(off, pol) != metav1.FieldValidationIgnore {
		t.Error("app-level options or validation misread")
	}
	for _, bad := range [][]string{{"CreateNamespace"}, {"Bogus=true"}, {"PrunePropagationPolicy=sideways"}} {
		if _, err := compilePolicy(model.ArgoSync{Options: bad}); err == nil {
			t.Errorf("syncOptions %q accepted", bad)
		}
	}
	if _, _, err := model.ParseSyncOption("CreateNamespace=true", false); err == nil {
		t.Error("CreateNamespace=true accepted on a resource, where Argo CD does not read it")
	}
}

// BenchmarkIgnored: the cost ignoreDifferences adds to one comparison (a pointer and a
// jq path on a Deployment).
func BenchmarkIgnored(b *testing.B) {
	pol, err := compilePolicy(model.ArgoSync{IgnoreDifferences: []model.IgnoreDifference{
		{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}},
		{Group: "apps", Kind: "Deployment", JQPathExpressions: []string{`.spec.template.spec.initContainers[] | select(.name == "injected")`}},
	}})
	if err != nil {
		b.Fatal(err)
	}
	live, desired := deployment("web", 5, "app:1", "injected"), deployment("web", 2, "app:1")
	for b.Loop() {
		if _, _, err := pol.ignored(live, desired); err != nil {
			b.Fatal(err)
		}
	}
}
