package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	appsv1client "k8s.io/client-go/kubernetes/typed/apps/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
)

// failingReasons are the waiting reasons of a container that will not run without a
// change: what Argo CD's pod health calls Degraded, and what Tilt's ci counts as a
// pod in error (RunContainerError, StartError).
var failingReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ErrImagePull":               true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"StartError":                 true,
}

// crashTail is how many of a crashed container's last lines its failure carries.
const crashTail = 10

// ErrPodFailing wraps the error of a deploy given up because a pod of the rollout
// cannot run (a crash loop, an image that cannot be pulled, a missing ConfigMap).
var ErrPodFailing = errors.New("pod cannot run")

// podFailure is a container of a pod that cannot run, as its status says.
type podFailure struct {
	uid       string
	pod       string
	container string
	reason    string // its waiting reason
	message   string
	restarts  int32
	ended     *corev1.ContainerStateTerminated // its last instance's end, for a crash
}

// key tells one failure from another: the pod, the container and the reason; for a
// crash, which one (a crash loop crashes again at each restart). An image pull's
// ErrImagePull and ImagePullBackOff are one failure.
func (f podFailure) key() string {
	switch f.reason {
	case "CrashLoopBackOff":
		return fmt.Sprintf("%s/%s/crash/%d", f.uid, f.container, f.restarts)
	case "ErrImagePull", "ImagePullBackOff":
		return f.uid + "/" + f.container + "/pull"
	}
	return f.uid + "/" + f.container + "/" + f.reason
}

// failureOf is the first container of p (init containers first) that waits for a
// failingReason; nil when none does or p is going away.
func failureOf(p corev1.Pod) *podFailure {
	if p.DeletionTimestamp != nil {
		return nil
	}
	all := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range all {
		// A container that will not be restarted (a Job's pod, restartPolicy
		// Never) and exited non-zero has failed for good, as Tilt's ci counts
		// it; one that will be restarted fails once it is in a crash loop.
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && p.Spec.RestartPolicy == corev1.RestartPolicyNever {
			return &podFailure{uid: string(p.UID), pod: p.Name, container: cs.Name, reason: "Terminated", ended: t, restarts: cs.RestartCount}
		}
		w := cs.State.Waiting
		if w == nil || !failingReasons[w.Reason] {
			continue
		}
		f := &podFailure{uid: string(p.UID), pod: p.Name, container: cs.Name, reason: w.Reason, message: strings.TrimSpace(w.Message), restarts: cs.RestartCount}
		if w.Reason == "CrashLoopBackOff" {
			f.ended = cs.LastTerminationState.Terminated
		}
		return f
	}
	return nil
}

// text says what the failure is: the reason, and for a crash how the container
// ended and its last lines (tail) in place of the kubelet's back-off message.
func (f podFailure) text(tail []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pod %s: container %s: %s", f.pod, f.container, f.reason)
	switch {
	case f.ended != nil:
		fmt.Fprintf(&b, " (exited with code %d", f.ended.ExitCode)
		if f.ended.Reason != "" {
			b.WriteString(", " + f.ended.Reason)
		}
		b.WriteString(")")
	case f.message != "":
		b.WriteString(": " + f.message)
	}
	if len(tail) > 0 {
		b.WriteString("; its last lines:\n  " + strings.Join(tail, "\n  "))
	}
	return b.String()
}

// failureCheck finds the failure of a followed resource's rollout: a pod of the
// workloads' current revision that cannot run, for a reason that arose since the
// rollout started. A pod that was already failing is not the rollout's failure
// until it fails again (crashes once more): the fix may be in an object applied
// with the rollout (a ConfigMap) that the pod reads only when it starts again.
// It belongs to one FollowPods.
type failureCheck struct {
	d    *Deployer
	core corev1client.CoreV1Interface
	// before are the failures of the pods at the start.
	before map[string]bool
	// tails are the crashed instances' last lines, read once per instance.
	tails map[string][]string
}

func newFailureCheck(d *Deployer, core corev1client.CoreV1Interface) *failureCheck {
	return &failureCheck{d: d, core: core, tails: map[string][]string{}}
}

// start notes the failures of the pods there are when the rollout starts.
func (c *failureCheck) start(pods []corev1.Pod) {
	c.before = map[string]bool{}
	for _, p := range pods {
		if f := failureOf(p); f != nil {
			c.before[f.key()] = true
		}
	}
}

// find returns the first failure among pods that belongs to the rollout, with its
// text; "" when there is none.
func (c *failureCheck) find(ctx context.Context, pods []corev1.Pod) string {
	for _, p := range pods {
		f := failureOf(p)
		if f == nil || c.before[f.key()] || !c.d.current(ctx, p) {
			continue
		}
		var tail []string
		if f.ended != nil {
			key := f.key()
			if t, ok := c.tails[key]; ok {
				tail = t
			} else {
				tail = lastLines(ctx, c.core, p, f.container, crashTail)
				c.tails[key] = tail
			}
		}
		return f.text(tail)
	}
	return ""
}

// lastLines reads the last n lines of the container's previous (crashed) instance;
// nil when they cannot be read.
func lastLines(ctx context.Context, core corev1client.CoreV1Interface, p corev1.Pod, container string, n int64) []string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rc, err := core.Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: container, Previous: true, TailLines: &n}).Stream(ctx)
	if err != nil {
		return nil
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64*1024))
	if err != nil && len(b) == 0 {
		return nil
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// Kubernetes' annotation of a Deployment's and its ReplicaSets' revision.
const revisionAnnotation = "deployment.kubernetes.io/revision"

// current reports whether p belongs to its workload's current revision: a pod of a
// Deployment's older ReplicaSet, or of a StatefulSet's older revision, going away as
// the rollout proceeds, is not the rollout's failure. While the controller has not
// yet seen the new template (observedGeneration behind), no pod is current. Pods of
// other owners (a bare Pod, a Job, a DaemonSet) are. When the owners cannot be read,
// false: the deploy then waits for health as before.
func (d *Deployer) current(ctx context.Context, p corev1.Pod) bool {
	owner := metav1.GetControllerOf(&p)
	if owner == nil {
		return true
	}
	apps, err := d.appsClient()
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch owner.Kind {
	case "ReplicaSet":
		rs, err := apps.ReplicaSets(p.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		dep := metav1.GetControllerOf(rs)
		if dep == nil || dep.Kind != "Deployment" {
			return true
		}
		dp, err := apps.Deployments(p.Namespace).Get(ctx, dep.Name, metav1.GetOptions{})
		if err != nil || dp.UID != dep.UID || dp.Status.ObservedGeneration < dp.Generation {
			return false
		}
		return rs.Annotations[revisionAnnotation] == dp.Annotations[revisionAnnotation]
	case "StatefulSet":
		ss, err := apps.StatefulSets(p.Namespace).Get(ctx, owner.Name, metav1.GetOptions{})
		if err != nil || ss.UID != owner.UID || ss.Status.ObservedGeneration < ss.Generation {
			return false
		}
		return p.Labels["controller-revision-hash"] == ss.Status.UpdateRevision
	}
	return true
}

// appsClient returns the apps/v1 client, made on first use.
func (d *Deployer) appsClient() (appsv1client.AppsV1Interface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.apps == nil {
		c, err := appsv1client.NewForConfig(d.cluster.Config)
		if err != nil {
			return nil, fmt.Errorf("make apps client: %w", err)
		}
		d.apps = c
	}
	return d.apps, nil
}

// FailFast ends a deploy's wait for health when a pod of the rollout cannot run
// (ErrPodFailing, with the reason), instead of waiting out the wave timeout. Outside
// the grace period from its start (ci_settings k8s_grace_period under loop ci, as
// Tilt's ci), the first failure FollowPods reports cancels the deploy's context.
// Safe for concurrent use.
type FailFast struct {
	ctx context.Context // the deploy's
	// started is closed once FollowPods knows what was there before the rollout
	// (events, failing pods), or has ended.
	started chan struct{}
	once    sync.Once

	mu     sync.Mutex
	cancel context.CancelCauseFunc
	start  time.Time
	grace  time.Duration
	done   bool
}

// NewFailFast returns a FailFast for a deploy under ctx, and the context to deploy
// with, which it cancels on a failure. Stop it when the deploy has returned.
func NewFailFast(ctx context.Context, grace time.Duration) (*FailFast, context.Context) {
	dctx, cancel := context.WithCancelCause(ctx)
	return &FailFast{ctx: dctx, started: make(chan struct{}), cancel: cancel, start: time.Now(), grace: grace}, dctx
}

// begin says FollowPods has noted what was there before the rollout.
func (f *FailFast) begin() {
	if f != nil {
		f.once.Do(func() { close(f.started) })
	}
}

// WaitStarted waits until FollowPods has noted what was there before the rollout
// (at most SyncWait for its first lists), so that what the apply causes is news.
func (f *FailFast) WaitStarted(ctx context.Context) {
	select {
	case <-f.started:
	case <-ctx.Done():
	}
}

// watching reports whether the deploy still waits (failures are worth looking for).
func (f *FailFast) watching() bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.done
}

// fail gives up the deploy for text, unless within the grace period: FollowPods
// looks again at least every PodPoll.
func (f *FailFast) fail(text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done || time.Since(f.start) < f.grace {
		return
	}
	f.done = true
	f.cancel(fmt.Errorf("%w: %s", ErrPodFailing, text))
}

// Stop ends the watch and returns the failure that ended the deploy (wrapping
// ErrPodFailing), if one did.
func (f *FailFast) Stop() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	f.cancel(nil)
	if err := context.Cause(f.ctx); errors.Is(err, ErrPodFailing) {
		return err
	}
	return nil
}
