package argosync

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/model"
)

// TestPrunable: what a pruning sync deletes once it is no longer rendered (loop diff
// reports the same objects as extra).
func TestPrunable(t *testing.T) {
	deleting := obj("v1", "ConfigMap", "ns", "deleting", nil)
	now := metav1.Now()
	deleting.SetDeletionTimestamp(&now)
	for _, c := range []struct {
		name string
		ann  map[string]string
		want bool
	}{
		{"plain", nil, true},
		{"argo-hook", map[string]string{annHook: "PreSync"}, false},
		{"helm-hook", map[string]string{annHelmHook: "post-install"}, false},
		{"prune-false", map[string]string{annSyncOptions: "Prune=false"}, false},
		{"prune-last", map[string]string{annSyncOptions: "PruneLast=true"}, true},
		{"prune-confirm", map[string]string{annSyncOptions: "Prune=confirm"}, false},
		{"prune-true-over-app", map[string]string{annSyncOptions: "Validate=false, Prune=true"}, true},
	} {
		if got := Prunable(obj("v1", "ConfigMap", "ns", c.name, c.ann), model.ArgoSync{}); got != c.want {
			t.Errorf("%s: Prunable = %v, want %v", c.name, got, c.want)
		}
	}
	// The Application's Prune=false holds for every object that does not say otherwise.
	appNoPrune := model.ArgoSync{Options: []string{"Prune=false"}}
	if Prunable(obj("v1", "ConfigMap", "ns", "plain", nil), appNoPrune) {
		t.Error("Prune=false in syncOptions: a plain object is prunable")
	}
	if !Prunable(obj("v1", "ConfigMap", "ns", "p", map[string]string{annSyncOptions: "Prune=true"}), appNoPrune) {
		t.Error("Prune=true on the object does not win over the Application's Prune=false")
	}
	if Prunable(deleting, model.ArgoSync{}) {
		t.Error("an object already being deleted is prunable")
	}
	if got := unwanted([]*unstructured.Unstructured{obj("v1", "ConfigMap", "ns", "a", nil), obj("v1", "ConfigMap", "ns", "b", nil)},
		[]*unstructured.Unstructured{obj("v1", "ConfigMap", "ns", "a", nil)}, &policy{}); len(got) != 1 || got[0].GetName() != "b" {
		t.Errorf("unwanted = %v, want only b", got)
	}
}
