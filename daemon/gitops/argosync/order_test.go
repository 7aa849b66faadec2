package argosync

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func obj(apiVersion, kind, ns, name string, ann map[string]string) *unstructured.Unstructured {
	o := &unstructured.Unstructured{}
	o.SetAPIVersion(apiVersion)
	o.SetKind(kind)
	o.SetNamespace(ns)
	o.SetName(name)
	if ann != nil {
		o.SetAnnotations(ann)
	}
	return o
}

func planKeys(tasks []Task) []string {
	var out []string
	for _, t := range tasks {
		out = append(out, fmt.Sprintf("%s/%d/%s/%s", t.Phase, t.Wave, t.Obj.GetKind(), t.Obj.GetName()))
	}
	return out
}

func TestPlanOrder(t *testing.T) {
	objs := []*unstructured.Unstructured{
		obj("apps/v1", "Deployment", "shop", "web", nil),
		obj("v1", "Service", "shop", "web", nil),
		obj("batch/v1", "Job", "shop", "post", map[string]string{annHook: "PostSync"}),
		obj("batch/v1", "Job", "shop", "migrate", map[string]string{annHook: "PreSync", annHookDeletePolicy: "HookSucceeded"}),
		obj("v1", "ConfigMap", "shop", "late", map[string]string{annSyncWave: "2"}),
		obj("v1", "ConfigMap", "shop", "early", map[string]string{annSyncWave: "-1"}),
		obj("v1", "Namespace", "", "shop", nil),
		obj("v1", "ConfigMap", "shop", "skipped", map[string]string{annHook: "Skip"}),
		obj("batch/v1", "Job", "shop", "helm-pre", map[string]string{annHelmHook: "pre-install,pre-upgrade", annHelmHookWeight: "-5"}),
		obj("example.com/v1", "Widget", "shop", "a", nil),
		obj("v1", "ConfigMap", "shop", "onfail", map[string]string{annHook: "SyncFail"}),
		obj("v1", "ConfigMap", "shop", "weight-ignored", map[string]string{annHelmHookWeight: "9", annSyncWave: "1"}),
		obj("v1", "Pod", "shop", "helm-test", map[string]string{annHelmHook: "test"}),
		obj("v1", "ConfigMap", "shop", "crd-install", map[string]string{annHelmHook: "crd-install"}),
	}
	got := planKeys(Plan(objs))
	want := []string{
		// The Namespace is pulled ahead to the earliest phase/wave of what lives in it.
		"PreSync/-5/Namespace/shop",
		"PreSync/-5/Job/helm-pre",
		"PreSync/0/Job/migrate",
		"Sync/-1/ConfigMap/early",
		"Sync/0/ConfigMap/crd-install",
		"Sync/0/Service/web",
		"Sync/0/Deployment/web",
		"Sync/0/Widget/a",
		"Sync/1/ConfigMap/weight-ignored",
		"Sync/2/ConfigMap/late",
		"PostSync/0/Job/post",
		"SyncFail/0/ConfigMap/onfail",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan =\n%q\nwant\n%q", got, want)
	}
}

func TestDeletePolicies(t *testing.T) {
	cases := []struct {
		ann  map[string]string
		want []DeletePolicy
	}{
		{map[string]string{annHook: "PreSync"}, []DeletePolicy{BeforeHookCreation}},
		{map[string]string{annHookDeletePolicy: "HookSucceeded,HookFailed"}, []DeletePolicy{HookSucceeded, HookFailed}},
		{map[string]string{annHelmDeletePolicy: "hook-succeeded,before-hook-creation"}, []DeletePolicy{HookSucceeded, BeforeHookCreation}},
	}
	for _, c := range cases {
		if got := deletePolicies(obj("v1", "Pod", "", "p", c.ann)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("deletePolicies(%v) = %v, want %v", c.ann, got, c.want)
		}
	}
}

func TestCheckContext(t *testing.T) {
	for _, name := range []string{"kind-dev", "docker-desktop", "minikube", "k3d-x"} {
		if err := CheckContext(name, nil); err != nil {
			t.Errorf("CheckContext(%q) = %v, want local", name, err)
		}
	}
	err := CheckContext("gke_prod", nil)
	if err == nil || !strings.Contains(err.Error(), "allow_k8s_contexts") {
		t.Errorf("CheckContext(gke_prod) = %v, want a refusal naming allow_k8s_contexts", err)
	}
	if err := CheckContext("gke_prod", []string{"gke_prod"}); err != nil {
		t.Errorf("allowed context refused: %v", err)
	}
}

func TestConnectRefusesRemoteContext(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://prod.example.com"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: gke_prod, context: {cluster: prod, user: u}}]
current-context: gke_prod
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	_, err := Connect("", nil)
	if err == nil || !strings.Contains(err.Error(), `allow_k8s_contexts("gke_prod")`) {
		t.Fatalf("Connect = %v, want a refusal naming allow_k8s_contexts", err)
	}
	c, err := Connect("", []string{"gke_prod"})
	if err != nil || c.Context != "gke_prod" {
		t.Fatalf("allowed Connect = %v, %v", c, err)
	}
}
