package kube

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// crashLooping is a pod whose one container ended (exit 3) and waits to be started again,
// as a kubelet reports it.
func crashLooping() corev1.Pod {
	return corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", UID: "u"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", RestartCount: 2, ContainerID: "containerd://c2",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 20s restarting failed container=app"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				ExitCode: 3, Reason: "Error", ContainerID: "containerd://c2"}},
		}}},
	}
}

func TestPodReports(t *testing.T) {
	for _, tc := range []struct {
		name string
		pod  corev1.Pod
		want []string
	}{
		{"crash loop", crashLooping(), []string{
			"container app waiting: CrashLoopBackOff: back-off 20s restarting failed container=app",
			"container app exited with code 3 (Error)",
		}},
		{"image pull", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "r/x:1"`}},
		}}}}, []string{`container app waiting: ImagePullBackOff: Back-off pulling image "r/x:1"`}},
		{"creating says nothing", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}},
		}}}}, nil},
		{"unschedulable", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available",
		}}}}, []string{"Unschedulable: 0/2 nodes are available"}},
		{"a completed init container says nothing", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, InitContainerStatuses: []corev1.ContainerStatus{{
			Name: "init", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}},
		}}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range podReports(tc.pod) {
				got = append(got, r.text)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("podReports = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLogStreams: a crashed instance is read once after the fact, a running one followed;
// each instance has its own key, so a restart gets a stream of its own.
func TestLogStreams(t *testing.T) {
	p := crashLooping()
	got := logStreams(p)
	if len(got) != 1 || !got[0].previous || got[0].follow || got[0].key != "app/containerd://c2" {
		t.Fatalf("crash-looping pod: %+v, want one read of the previous instance", got)
	}
	p.Status.ContainerStatuses[0].RestartCount = 3
	p.Status.ContainerStatuses[0].ContainerID = "containerd://c3"
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	got = logStreams(p)
	if len(got) != 2 || got[0].key != "app/containerd://c2" || got[1].key != "app/containerd://c3" || !got[1].follow {
		t.Fatalf("restarted pod: %+v, want the old instance's key again and the new one followed", got)
	}
	// A kubelet (kwok) that reports no container ID: instances by restart count.
	bare := corev1.Pod{Spec: p.Spec, Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	if got := logStreams(bare); len(got) != 1 || got[0].key != "app/#0" || !got[0].follow {
		t.Fatalf("pod without container IDs: %+v", got)
	}
}

// TestPodError: the errors tilt ci fails on, judged on the newest pod only
// (a crash-looping pod of the previous rollout next to a newer one that
// runs is no error).
func TestPodError(t *testing.T) {
	running := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "new", CreationTimestamp: metav1.Unix(200, 0)},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	old := crashLooping()
	old.CreationTimestamp = metav1.Unix(100, 0)
	for _, tc := range []struct {
		name string
		pods []corev1.Pod
		want string
	}{
		{"crash loop", []corev1.Pod{old}, "pod p: container app waiting: CrashLoopBackOff"},
		{"older pod crashing", []corev1.Pod{old, running}, ""},
		{"exited non-zero", []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "j"}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "main", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 123}}}}}}},
			"pod j: container main exited with code 123"},
		{"failed", []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "f"}, Status: corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted"}}}, "pod f failed: Evicted"},
		{"creating", []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Status: corev1.PodStatus{Phase: corev1.PodPending,
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}}}, ""},
		{"no pods", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := podError(newest(tc.pods)); got != tc.want {
				t.Fatalf("podError = %q, want %q", got, tc.want)
			}
		})
	}
}
