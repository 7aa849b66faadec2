package argosync

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// HealthStatus is Argo CD's health of one object.
type HealthStatus string

// Health statuses, as Argo CD names them.
const (
	Healthy     HealthStatus = "Healthy"
	Progressing HealthStatus = "Progressing"
	Degraded    HealthStatus = "Degraded"
	Suspended   HealthStatus = "Suspended"
	Missing     HealthStatus = "Missing"
)

// Health is a status with Argo CD's message.
type Health struct {
	Status  HealthStatus
	Message string
}

// Assess applies Argo CD's built-in health rules. ok is false for kinds that have no
// health (they count as healthy for waves).
func Assess(o *unstructured.Unstructured) (h Health, ok bool) {
	if o.GetDeletionTimestamp() != nil && o.GetKind() != "Pod" {
		return Health{Progressing, "pending deletion"}, true
	}
	gvk := o.GroupVersionKind()
	switch {
	case gvk.Group == "apps" && gvk.Kind == "Deployment":
		return deploymentHealth(o), true
	case gvk.Group == "apps" && gvk.Kind == "StatefulSet":
		return statefulSetHealth(o), true
	case gvk.Group == "apps" && gvk.Kind == "DaemonSet":
		return daemonSetHealth(o), true
	case gvk.Group == "apps" && gvk.Kind == "ReplicaSet":
		return replicaSetHealth(o), true
	case gvk.Group == "" && gvk.Kind == "Pod":
		return podHealth(o), true
	case gvk.Group == "" && gvk.Kind == "Service":
		if str(o, "spec", "type") == "LoadBalancer" && len(slice(o, "status", "loadBalancer", "ingress")) == 0 {
			return Health{Progressing, "waiting for a load balancer address"}, true
		}
		return Health{Status: Healthy}, true
	case gvk.Group == "networking.k8s.io" && gvk.Kind == "Ingress":
		if len(slice(o, "status", "loadBalancer", "ingress")) == 0 {
			return Health{Progressing, "waiting for a load balancer address"}, true
		}
		return Health{Status: Healthy}, true
	case gvk.Group == "" && gvk.Kind == "PersistentVolumeClaim":
		switch str(o, "status", "phase") {
		case "Lost":
			return Health{Degraded, "claim lost"}, true
		case "Bound":
			return Health{Status: Healthy}, true
		default:
			return Health{Progressing, "waiting for the claim to be bound"}, true
		}
	case gvk.Group == "batch" && gvk.Kind == "Job":
		return jobHealth(o), true
	case gvk.Group == "autoscaling" && gvk.Kind == "HorizontalPodAutoscaler":
		return hpaHealth(o), true
	case gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition":
		return crdHealth(o), true
	case gvk.Group == "apiregistration.k8s.io" && gvk.Kind == "APIService":
		if c := condition(o, "Available"); c != nil && c["status"] == "True" {
			return Health{Status: Healthy}, true
		} else if c != nil {
			return Health{Progressing, fmt.Sprint(c["message"])}, true
		}
		return Health{Progressing, "waiting for the Available condition"}, true
	}
	return Health{}, false
}

func deploymentHealth(o *unstructured.Unstructured) Health {
	if b, _, _ := unstructured.NestedBool(o.Object, "spec", "paused"); b {
		return Health{Suspended, "deployment is paused"}
	}
	if num(o, "status", "observedGeneration") < num(o, "metadata", "generation") {
		return Health{Progressing, "waiting for rollout to finish: observed deployment generation less than desired generation"}
	}
	if c := condition(o, "Progressing"); c != nil && c["reason"] == "ProgressDeadlineExceeded" {
		return Health{Degraded, fmt.Sprintf("deployment %q exceeded its progress deadline", o.GetName())}
	}
	replicas := specReplicas(o)
	updated, total, available := num(o, "status", "updatedReplicas"), num(o, "status", "replicas"), num(o, "status", "availableReplicas")
	switch {
	case updated < replicas:
		return Health{Progressing, fmt.Sprintf("waiting for rollout to finish: %d out of %d new replicas have been updated", updated, replicas)}
	case total > updated:
		return Health{Progressing, fmt.Sprintf("waiting for rollout to finish: %d old replicas are pending termination", total-updated)}
	case available < updated:
		return Health{Progressing, fmt.Sprintf("waiting for rollout to finish: %d of %d updated replicas are available", available, updated)}
	}
	return Health{Status: Healthy}
}

func statefulSetHealth(o *unstructured.Unstructured) Health {
	if num(o, "status", "observedGeneration") < num(o, "metadata", "generation") {
		return Health{Progressing, "waiting for statefulset spec update to be observed"}
	}
	if str(o, "spec", "updateStrategy", "type") == "OnDelete" {
		return Health{Healthy, "statefulset has OnDelete update strategy"}
	}
	replicas := specReplicas(o)
	if ready := num(o, "status", "readyReplicas"); ready < replicas {
		return Health{Progressing, fmt.Sprintf("waiting for %d pods to be ready", replicas-ready)}
	}
	partition := num(o, "spec", "updateStrategy", "rollingUpdate", "partition")
	if partition > 0 {
		if num(o, "status", "updatedReplicas") < replicas-partition {
			return Health{Progressing, "waiting for partitioned roll out to finish"}
		}
		return Health{Status: Healthy}
	}
	if str(o, "status", "updateRevision") != str(o, "status", "currentRevision") {
		return Health{Progressing, "waiting for statefulset rolling update to complete"}
	}
	return Health{Status: Healthy}
}

func daemonSetHealth(o *unstructured.Unstructured) Health {
	if num(o, "status", "observedGeneration") < num(o, "metadata", "generation") {
		return Health{Progressing, "waiting for rollout to finish: observed daemon set generation less than desired generation"}
	}
	if str(o, "spec", "updateStrategy", "type") == "OnDelete" {
		return Health{Healthy, "daemon set has OnDelete update strategy"}
	}
	desired := num(o, "status", "desiredNumberScheduled")
	if u := num(o, "status", "updatedNumberScheduled"); u < desired {
		return Health{Progressing, fmt.Sprintf("waiting for daemon set rollout: %d of %d updated", u, desired)}
	}
	if a := num(o, "status", "numberAvailable"); a < desired {
		return Health{Progressing, fmt.Sprintf("waiting for daemon set rollout: %d of %d available", a, desired)}
	}
	return Health{Status: Healthy}
}

func replicaSetHealth(o *unstructured.Unstructured) Health {
	if num(o, "status", "observedGeneration") < num(o, "metadata", "generation") {
		return Health{Progressing, "waiting for rollout to finish: observed replica set generation less than desired generation"}
	}
	if c := condition(o, "ReplicaFailure"); c != nil && c["status"] == "True" {
		return Health{Degraded, fmt.Sprint(c["message"])}
	}
	if a, r := num(o, "status", "availableReplicas"), specReplicas(o); a < r {
		return Health{Progressing, fmt.Sprintf("waiting for rollout to finish: %d out of %d new replicas are available", a, r)}
	}
	return Health{Status: Healthy}
}

func podHealth(o *unstructured.Unstructured) Health {
	for _, cs := range slice(o, "status", "containerStatuses") {
		m, _ := cs.(map[string]any)
		w, _, _ := unstructured.NestedString(m, "state", "waiting", "reason")
		if w == "CrashLoopBackOff" || w == "ErrImagePull" || w == "ImagePullBackOff" || w == "CreateContainerConfigError" ||
			w == "InvalidImageName" || w == "CreateContainerError" {
			msg, _, _ := unstructured.NestedString(m, "state", "waiting", "message")
			return Health{Degraded, strings.TrimSpace(w + " " + msg)}
		}
	}
	switch str(o, "status", "phase") {
	case "Succeeded":
		return Health{Status: Healthy}
	case "Failed":
		return Health{Degraded, str(o, "status", "message")}
	case "Running":
		policy := str(o, "spec", "restartPolicy")
		if policy == "" || policy == "Always" {
			if c := condition(o, "Ready"); c != nil && c["status"] == "True" {
				return Health{Status: Healthy}
			}
		}
		return Health{Progressing, "pod is running"}
	}
	return Health{Progressing, "pod is pending"}
}

func jobHealth(o *unstructured.Unstructured) Health {
	if c := condition(o, "Failed"); c != nil && c["status"] == "True" {
		return Health{Degraded, fmt.Sprint(c["message"])}
	}
	if c := condition(o, "Complete"); c != nil && c["status"] == "True" {
		return Health{Status: Healthy}
	}
	if b, _, _ := unstructured.NestedBool(o.Object, "spec", "suspend"); b {
		return Health{Suspended, "job is suspended"}
	}
	return Health{Progressing, "job is running"}
}

// crdHealth follows Argo CD's CustomResourceDefinition check, except that a CRD not yet
// Established is Progressing rather than Degraded: right after it is created it is not.
func crdHealth(o *unstructured.Unstructured) Health {
	if c := condition(o, "NamesAccepted"); c != nil && c["status"] == "False" {
		return Health{Degraded, fmt.Sprintf("CRD names have not been accepted: %v", c["message"])}
	}
	if c := condition(o, "NonStructuralSchema"); c != nil && c["status"] == "True" {
		return Health{Degraded, fmt.Sprintf("schema violations found: %v", c["message"])}
	}
	if c := condition(o, "Established"); c == nil || c["status"] != "True" {
		return Health{Progressing, "waiting for the CRD to be established"}
	}
	return Health{Status: Healthy}
}

func hpaHealth(o *unstructured.Unstructured) Health {
	conds := slice(o, "status", "conditions")
	if len(conds) == 0 {
		return Health{Progressing, "waiting for the autoscaler's conditions"}
	}
	for _, c := range conds {
		m, _ := c.(map[string]any)
		reason, _ := m["reason"].(string)
		if m["status"] == "False" && (m["type"] == "AbleToScale" || m["type"] == "ScalingActive") && strings.HasPrefix(reason, "Failed") {
			return Health{Degraded, fmt.Sprint(m["message"])}
		}
	}
	return Health{Status: Healthy}
}

func condition(o *unstructured.Unstructured, typ string) map[string]any {
	for _, c := range slice(o, "status", "conditions") {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

func specReplicas(o *unstructured.Unstructured) int64 {
	if _, found, _ := unstructured.NestedFieldNoCopy(o.Object, "spec", "replicas"); !found {
		return 1
	}
	return num(o, "spec", "replicas")
}

func num(o *unstructured.Unstructured, path ...string) int64 {
	v, _, _ := unstructured.NestedFieldNoCopy(o.Object, path...)
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	case int:
		return int64(n)
	}
	return 0
}

func str(o *unstructured.Unstructured, path ...string) string {
	s, _, _ := unstructured.NestedString(o.Object, path...)
	return s
}

func slice(o *unstructured.Unstructured, path ...string) []any {
	v, _, _ := unstructured.NestedFieldNoCopy(o.Object, path...)
	s, _ := v.([]any)
	return s
}
