package argosync

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Phase is an Argo CD sync phase.
type Phase string

// The sync phases in the order they run; SyncFail runs only when a sync fails.
const (
	PreSync  Phase = "PreSync"
	Sync     Phase = "Sync"
	PostSync Phase = "PostSync"
	SyncFail Phase = "SyncFail"
)

var phaseOrder = map[Phase]int{PreSync: 0, Sync: 1, PostSync: 2, SyncFail: 3}

// Annotations Argo CD and Helm put on objects, as Argo CD reads them.
const (
	annHook             = "argocd.argoproj.io/hook"
	annHookDeletePolicy = "argocd.argoproj.io/hook-delete-policy"
	annSyncWave         = "argocd.argoproj.io/sync-wave"
	annSyncOptions      = "argocd.argoproj.io/sync-options"
	annHelmHook         = "helm.sh/hook"
	annHelmHookWeight   = "helm.sh/hook-weight"
	annHelmDeletePolicy = "helm.sh/hook-delete-policy"
)

// DeletePolicy is a hook deletion policy.
type DeletePolicy string

// Hook deletion policies; BeforeHookCreation is the default.
const (
	BeforeHookCreation DeletePolicy = "BeforeHookCreation"
	HookSucceeded      DeletePolicy = "HookSucceeded"
	HookFailed         DeletePolicy = "HookFailed"
)

// kindOrder is gitops-engine's apply order of kinds within a phase and wave; kinds not
// listed go last.
var kindOrder = func() map[string]int {
	kinds := []string{"Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
		"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
		"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole", "ClusterRoleList",
		"ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList",
		"Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
		"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService"}
	m := map[string]int{}
	for i, k := range kinds {
		m[k] = i
	}
	return m
}()

// Task is one object to apply (or one hook to run) in a sync.
type Task struct {
	Obj   *unstructured.Unstructured
	Phase Phase
	Wave  int
	// Hook is true for hooks: they are created fresh each sync and deleted per DeletePolicies.
	Hook           bool
	DeletePolicies []DeletePolicy
}

// hookPhases reads the phases an object is a hook of: Argo CD's annotation wins over
// Helm's ("crd-install" marks no hook). ok is false for a plain resource; skip is true for
// hook "Skip" and for Helm hooks of no event that maps to a phase.
func hookPhases(o *unstructured.Unstructured) (phases []Phase, ok, skip bool) {
	ann := o.GetAnnotations()
	if v, has := ann[annHook]; has {
		for _, p := range splitList(v) {
			switch p {
			case "Skip":
				skip = true
			case string(PreSync), string(Sync), string(PostSync), string(SyncFail):
				phases = append(phases, Phase(p))
			}
		}
		return phases, len(phases) > 0, skip
	}
	if v, has := ann[annHelmHook]; has && v != "crd-install" {
		for _, p := range splitList(v) {
			switch p {
			case "pre-install", "pre-upgrade":
				phases = appendUnique(phases, PreSync)
			case "post-install", "post-upgrade":
				phases = appendUnique(phases, PostSync)
			}
		}
		// A Helm hook of only events Argo CD does not run (test, pre-delete, ...) is
		// neither run nor applied.
		return phases, len(phases) > 0, len(phases) == 0
	}
	return nil, false, false
}

func deletePolicies(o *unstructured.Unstructured) []DeletePolicy {
	ann := o.GetAnnotations()
	var ps []DeletePolicy
	for _, p := range splitList(ann[annHookDeletePolicy]) {
		ps = appendUnique(ps, DeletePolicy(p))
	}
	helm := map[string]DeletePolicy{"before-hook-creation": BeforeHookCreation, "hook-succeeded": HookSucceeded, "hook-failed": HookFailed}
	for _, p := range splitList(ann[annHelmDeletePolicy]) {
		if dp, ok := helm[p]; ok {
			ps = appendUnique(ps, dp)
		}
	}
	if len(ps) == 0 {
		ps = []DeletePolicy{BeforeHookCreation}
	}
	return ps
}

// wave reads argocd.argoproj.io/sync-wave, else (for Helm hooks) helm.sh/hook-weight, else 0.
func wave(o *unstructured.Unstructured) int {
	ann := o.GetAnnotations()
	for _, k := range []string{annSyncWave, annHelmHookWeight} {
		if v, ok := ann[k]; ok {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				return n
			}
		}
	}
	return 0
}

// Plan turns rendered objects into ordered tasks the way Argo CD sorts its sync tasks:
// phase, wave, kind order, name. A hook of several phases becomes one task per phase;
// Namespaces and CRDs move ahead to the earliest phase and wave of the objects that use them.
func Plan(objs []*unstructured.Unstructured) []Task {
	var tasks []Task
	for _, o := range objs {
		phases, isHook, skip := hookPhases(o)
		if skip {
			continue
		}
		if !isHook {
			tasks = append(tasks, Task{Obj: o, Phase: Sync, Wave: wave(o)})
			continue
		}
		for _, p := range phases {
			tasks = append(tasks, Task{Obj: o.DeepCopy(), Phase: p, Wave: wave(o), Hook: true, DeletePolicies: deletePolicies(o)})
		}
	}
	pullAhead(tasks)
	slices.SortStableFunc(tasks, compareTasks)
	return tasks
}

func compareTasks(a, b Task) int {
	if c := cmp.Compare(phaseOrder[a.Phase], phaseOrder[b.Phase]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Wave, b.Wave); c != 0 {
		return c
	}
	if c := cmp.Compare(kindRank(a.Obj.GetKind()), kindRank(b.Obj.GetKind())); c != 0 {
		return c
	}
	return cmp.Compare(a.Obj.GetName(), b.Obj.GetName())
}

func kindRank(kind string) int {
	if r, ok := kindOrder[kind]; ok {
		return r
	}
	return len(kindOrder)
}

// pullAhead gives each non-hook Namespace and CRD the earliest (phase, wave) of the
// objects that live in it or are of its kind, so they exist before their users.
func pullAhead(tasks []Task) {
	for i := range tasks {
		t := &tasks[i]
		if t.Hook {
			continue
		}
		var uses func(o *unstructured.Unstructured) bool
		switch t.Obj.GetKind() {
		case "Namespace":
			ns := t.Obj.GetName()
			uses = func(o *unstructured.Unstructured) bool { return o.GetNamespace() == ns }
		case "CustomResourceDefinition":
			group, _, _ := unstructured.NestedString(t.Obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(t.Obj.Object, "spec", "names", "kind")
			uses = func(o *unstructured.Unstructured) bool {
				gvk := o.GroupVersionKind()
				return gvk.Group == group && gvk.Kind == kind
			}
		default:
			continue
		}
		for _, u := range tasks {
			if !uses(u.Obj) {
				continue
			}
			if phaseOrder[u.Phase] < phaseOrder[t.Phase] || (u.Phase == t.Phase && u.Wave < t.Wave) {
				if u.Phase != SyncFail {
					t.Phase, t.Wave = u.Phase, u.Wave
				}
			}
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func appendUnique[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}
