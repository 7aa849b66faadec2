package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func warning(name, ns, kind, obj, uid, reason, msg string, count int32) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("ev-" + name)},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: obj, UID: types.UID(uid)},
		Type:           corev1.EventTypeWarning, Reason: reason, Message: msg, Count: count,
	}
}

// TestEventFollowLog: the events about a resource's pods and workloads that happen
// after the follow started are logged once each, as Tilt shows them; a count going
// up says nothing more, a new message does; an event from before the follow is
// logged only when it happens again; other objects' events are not the resource's.
func TestEventFollowLog(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := fake.NewClientset()
	events := cs.CoreV1().Events("app")
	mustCreate := func(e *corev1.Event) {
		t.Helper()
		if _, err := events.Create(ctx, e, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mustUpdate := func(e *corev1.Event) {
		t.Helper()
		if _, err := events.Update(ctx, e, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	old := warning("old", "app", "Pod", "web-1", "pod-1", "Unhealthy", "Readiness probe failed: connection refused", 4)
	mustCreate(old)
	hub := newEventHub(cs.CoreV1(), cs)
	defer hub.Close()
	f := hub.follow(ctx, []string{"app"}, true)
	defer f.stop()

	dep := &unstructured.Unstructured{}
	dep.SetKind("Deployment")
	dep.SetName("web")
	dep.SetNamespace("app")
	pods := []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "app", UID: "pod-1",
		OwnerReferences: []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f", UID: "rs-1"}}}}}
	o := ownedBy(Workloads{Objects: []*unstructured.Unstructured{dep}}, "default", pods)

	var out strings.Builder
	// logged waits until the informer has what the test made, then logs.
	logged := func(want int) string {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for len(f.matching(o)) < want {
			if time.Now().After(deadline) {
				t.Fatalf("the informer holds %d of the resource's events, want %d", len(f.matching(o)), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		out.Reset()
		f.log(o, &out)
		return out.String()
	}
	if got := logged(1); got != "" {
		t.Fatalf("an event from before the follow was logged:\n%s", got)
	}

	probe := warning("probe", "app", "Pod", "web-1", "pod-1", "Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404", 1)
	mustCreate(probe)
	mustCreate(warning("sched", "app", "ReplicaSet", "web-5d8f", "rs-2", "FailedCreate", "pods \"web-5d8f-\" is forbidden", 1))
	mustCreate(warning("other", "app", "Pod", "db-1", "pod-9", "BackOff", "Back-off restarting failed container", 1))
	mustCreate(warning("otherrs", "app", "ReplicaSet", "web-db-77aa", "rs-9", "FailedCreate", "quota", 1))
	mustCreate(warning("dep", "app", "Deployment", "web", "dep-1", "ProgressDeadlineExceeded", "too slow", 1))
	got := logged(4)
	for _, want := range []string{
		"[event: pod app/web-1] Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404\n",
		"[event: replicaset app/web-5d8f] FailedCreate: pods \"web-5d8f-\" is forbidden\n",
		"[event: deployment app/web] ProgressDeadlineExceeded: too slow\n",
	} {
		if strings.Count(got, want) != 1 {
			t.Errorf("log has %q %d times, want once:\n%s", want, strings.Count(got, want), got)
		}
	}
	if strings.Contains(got, "db-1") || strings.Contains(got, "quota") {
		t.Errorf("another workload's events were logged:\n%s", got)
	}

	// Counts going up: nothing more, except the old event, which happened again.
	probe.Count = 7
	mustUpdate(probe)
	old.Count = 5
	mustUpdate(old)
	// stored waits until the informer holds an event's update.
	stored := func(name string, ok func(*corev1.Event) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if o, found, _ := hub.ns["app"].inf.GetIndexer().GetByKey("app/" + name); found && ok(o.(*corev1.Event)) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("the informer never had the update of event %s", name)
	}
	stored("probe", func(e *corev1.Event) bool { return eventCount(e) == 7 })
	stored("old", func(e *corev1.Event) bool { return eventCount(e) == 5 })
	if got := logged(0); got != "[event: pod app/web-1] Unhealthy: Readiness probe failed: connection refused\n" {
		t.Errorf("after the counts went up, the log got %q, want the old event once (it happened again)", got)
	}
	if got := logged(0); got != "" {
		t.Errorf("logged again with nothing new: %q", got)
	}
	// A new message about the same object is news.
	probe.Message = "Liveness probe failed: timeout"
	mustUpdate(probe)
	stored("probe", func(e *corev1.Event) bool { return e.Message == probe.Message })
	if got := logged(0); got != "[event: pod app/web-1] Unhealthy: Liveness probe failed: timeout\n" {
		t.Errorf("a new message: log got %q", got)
	}
}

func TestObjectName(t *testing.T) {
	for _, tc := range []struct {
		ref  corev1.ObjectReference
		want string
	}{
		{corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "a"}, "pod a"},
		{corev1.ObjectReference{Kind: "ReplicaSet", Namespace: "dev", Name: "b-1"}, "replicaset dev/b-1"},
	} {
		if got := objectName(tc.ref); got != tc.want {
			t.Errorf("objectName(%+v) = %q, want %q", tc.ref, got, tc.want)
		}
	}
}

// TestFailureOf: which container states fail a rollout, and what the failure says.
func TestFailureOf(t *testing.T) {
	crash := crashLooping()
	f := failureOf(crash)
	if f == nil || f.reason != "CrashLoopBackOff" || f.ended == nil {
		t.Fatalf("crash loop: %+v", f)
	}
	if got, want := f.text([]string{"starting", "the end"}), "pod p: container app: CrashLoopBackOff (exited with code 3, Error); its last lines:\n  starting\n  the end"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	again := crashLooping()
	again.Status.ContainerStatuses[0].RestartCount++
	if failureOf(again).key() == f.key() {
		t.Errorf("another crash has the same key %q", f.key())
	}
	pull := func(reason string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "q", UID: "u2"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: `failed to pull "r/x:1": not found`}}}}}}
	}
	p1, p2 := failureOf(pull("ErrImagePull")), failureOf(pull("ImagePullBackOff"))
	if p1 == nil || p2 == nil || p1.key() != p2.key() {
		t.Fatalf("ErrImagePull and ImagePullBackOff are one failure: %+v %+v", p1, p2)
	}
	if got, want := p1.text(nil), `pod q: container app: ErrImagePull: failed to pull "r/x:1": not found`; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	cfg := pull("CreateContainerConfigError")
	if f := failureOf(cfg); f == nil || f.reason != "CreateContainerConfigError" {
		t.Errorf("CreateContainerConfigError: %+v", f)
	}
	for _, ok := range []string{"ContainerCreating", "PodInitializing"} {
		if f := failureOf(pull(ok)); f != nil {
			t.Errorf("%s is not a failure: %+v", ok, f)
		}
	}
	// A Job's pod (restartPolicy Never) that exited non-zero has failed for
	// good; the same exit of a container that will restart is not yet a failure.
	exited := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "j", UID: "u3"}, Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever},
		Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "main",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 123, Reason: "Error"}}}}}}
	if f := failureOf(exited); f == nil || f.text(nil) != "pod j: container main: Terminated (exited with code 123, Error)" {
		t.Errorf("a Job's pod that exited 123: %+v", f)
	}
	exited.Spec.RestartPolicy = corev1.RestartPolicyAlways
	if f := failureOf(exited); f != nil {
		t.Errorf("an exit before a restart failed the rollout: %+v", f)
	}
	going := crashLooping()
	going.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	if f := failureOf(going); f != nil {
		t.Errorf("a pod going away failed the rollout: %+v", f)
	}
}

// TestFailureCheckBefore: a pod failing when the rollout starts is not its failure
// until it crashes again.
func TestFailureCheckBefore(t *testing.T) {
	c := newFailureCheck(nil, nil)
	bare := crashLooping()
	bare.Status.ContainerStatuses[0].LastTerminationState.Terminated = nil // no log to read
	c.start([]corev1.Pod{bare})
	if got := c.find(context.Background(), []corev1.Pod{bare}); got != "" {
		t.Fatalf("a failure from before the rollout: %q", got)
	}
	bare.Status.ContainerStatuses[0].RestartCount++
	if got := c.find(context.Background(), []corev1.Pod{bare}); !strings.Contains(got, "CrashLoopBackOff") {
		t.Fatalf("it crashed again: %q, want the failure", got)
	}
}

// TestFailFastGrace: a failure ends the deploy's context at once, with the reason;
// within the grace period (ci_settings k8s_grace_period) it does not, and once the
// deploy has returned nothing does.
func TestFailFastGrace(t *testing.T) {
	ff, ctx := NewFailFast(context.Background(), 0)
	ff.begin()
	ff.WaitStarted(context.Background())
	if !ff.watching() {
		t.Fatal("a new FailFast does not watch")
	}
	ff.fail("pod p: container app: CrashLoopBackOff")
	if err := context.Cause(ctx); !errors.Is(err, ErrPodFailing) || !strings.Contains(err.Error(), "CrashLoopBackOff") {
		t.Fatalf("after a failure the deploy's context ends with %v, want the failure", err)
	}
	if err := ff.Stop(); !errors.Is(err, ErrPodFailing) {
		t.Fatalf("Stop = %v, want the failure", err)
	}

	ff, ctx = NewFailFast(context.Background(), time.Hour)
	ff.fail("pod p: container app: ImagePullBackOff")
	if ctx.Err() != nil {
		t.Fatalf("a failure within the grace period ended the deploy: %v", context.Cause(ctx))
	}
	if err := ff.Stop(); err != nil {
		t.Fatalf("Stop = %v, want nil: nothing failed the deploy", err)
	}
	if ff.watching() {
		t.Fatal("a stopped FailFast still watches")
	}
	var none *FailFast
	none.begin()
	if none.watching() {
		t.Fatal("no FailFast watches")
	}
}
