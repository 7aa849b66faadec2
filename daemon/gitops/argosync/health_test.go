package argosync

import (
	"testing"

	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestAssess(t *testing.T) {
	cases := []struct {
		name, manifest string
		want           HealthStatus
		has            bool
	}{
		{"deployment available", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 2}, spec: {replicas: 2},
			status: {observedGeneration: 2, replicas: 2, updatedReplicas: 2, availableReplicas: 2}}`, Healthy, true},
		{"deployment old generation", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 3}, spec: {replicas: 1},
			status: {observedGeneration: 2, replicas: 1, updatedReplicas: 1, availableReplicas: 1}}`, Progressing, true},
		{"deployment unavailable", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 1}, spec: {replicas: 2},
			status: {observedGeneration: 1, replicas: 2, updatedReplicas: 2, availableReplicas: 1}}`, Progressing, true},
		{"deployment deadline", `{apiVersion: apps/v1, kind: Deployment, metadata: {generation: 1},
			status: {observedGeneration: 1, conditions: [{type: Progressing, status: "False", reason: ProgressDeadlineExceeded}]}}`, Degraded, true},
		{"deployment paused", `{apiVersion: apps/v1, kind: Deployment, spec: {paused: true}}`, Suspended, true},
		{"job complete", `{apiVersion: batch/v1, kind: Job, status: {conditions: [{type: Complete, status: "True"}]}}`, Healthy, true},
		{"job failed", `{apiVersion: batch/v1, kind: Job, status: {conditions: [{type: Failed, status: "True", message: boom}]}}`, Degraded, true},
		{"job running", `{apiVersion: batch/v1, kind: Job, status: {active: 1}}`, Progressing, true},
		{"pod crashloop", `{apiVersion: v1, kind: Pod, status: {phase: Running, containerStatuses: [{state: {waiting: {reason: CrashLoopBackOff}}}]}}`, Degraded, true},
		{"pod ready", `{apiVersion: v1, kind: Pod, status: {phase: Running, conditions: [{type: Ready, status: "True"}]}}`, Healthy, true},
		{"pvc pending", `{apiVersion: v1, kind: PersistentVolumeClaim, status: {phase: Pending}}`, Progressing, true},
		{"service lb", `{apiVersion: v1, kind: Service, spec: {type: LoadBalancer}}`, Progressing, true},
		{"service", `{apiVersion: v1, kind: Service, spec: {type: ClusterIP}}`, Healthy, true},
		{"ingress", `{apiVersion: networking.k8s.io/v1, kind: Ingress, status: {loadBalancer: {ingress: [{ip: 1.2.3.4}]}}}`, Healthy, true},
		{"statefulset rolling", `{apiVersion: apps/v1, kind: StatefulSet, spec: {replicas: 1},
			status: {readyReplicas: 1, updateRevision: b, currentRevision: a}}`, Progressing, true},
		{"daemonset", `{apiVersion: apps/v1, kind: DaemonSet, status: {desiredNumberScheduled: 2, updatedNumberScheduled: 2, numberAvailable: 2}}`, Healthy, true},
		{"replicaset failure", `{apiVersion: apps/v1, kind: ReplicaSet, status: {conditions: [{type: ReplicaFailure, status: "True"}]}}`, Degraded, true},
		{"apiservice", `{apiVersion: apiregistration.k8s.io/v1, kind: APIService, status: {conditions: [{type: Available, status: "True"}]}}`, Healthy, true},
		{"crd new", `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition}`, Progressing, true},
		{"crd established", `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition,
			status: {conditions: [{type: NamesAccepted, status: "True"}, {type: Established, status: "True"}]}}`, Healthy, true},
		{"crd names refused", `{apiVersion: apiextensions.k8s.io/v1, kind: CustomResourceDefinition,
			status: {conditions: [{type: NamesAccepted, status: "False", message: taken}]}}`, Degraded, true},
		{"configmap has none", `{apiVersion: v1, kind: ConfigMap}`, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(c.manifest), &m); err != nil {
				t.Fatal(err)
			}
			h, ok := Assess(&unstructured.Unstructured{Object: m})
			if ok != c.has || h.Status != c.want {
				t.Errorf("Assess = %v %v, want %v %v", h, ok, c.want, c.has)
			}
		})
	}
}
