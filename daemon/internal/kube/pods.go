package kube

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/transport/spdy"

	"github.com/loop-dev/loop/daemon/model"
)

// PodPoll is how often a followed resource's pods are looked at again without a
// change reported by the watch (a failed port forward is retried then).
const PodPoll = 10 * time.Second

// podSelector says which pods belong to a workload.
type podSelector struct {
	namespace string
	name      string          // a bare Pod
	selector  labels.Selector // a controller's spec.selector
}

// Workloads says which pods belong to a resource: those of its workload objects
// (a bare Pod by name, a controller by its spec.selector) and those the extra label
// sets (k8s_resource extra_pod_selectors) select in the workloads' namespaces; with
// SelectorsOnly (discovery_strategy='selectors-only') only the extra ones.
type Workloads struct {
	Objects       []*unstructured.Unstructured
	Extra         []map[string]string
	SelectorsOnly bool
}

// namespaces are the namespaces of w's pods, where its events are.
func (w Workloads) namespaces(defaultNS string) []string {
	var out []string
	for _, s := range w.selectors(defaultNS) {
		out = append(out, s.namespace)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

// selectors finds the pod selectors of w.
func (w Workloads) selectors(defaultNS string) []podSelector {
	var out []podSelector
	nss := map[string]bool{}
	for _, o := range w.Objects {
		ns := o.GetNamespace()
		if ns == "" {
			ns = defaultNS
		}
		if o.GetKind() == "Pod" {
			nss[ns] = true
			out = append(out, podSelector{namespace: ns, name: o.GetName()})
			continue
		}
		ml, found, _ := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
		if !found {
			// Jobs and CronJobs select by template labels.
			ml, found, _ = unstructured.NestedStringMap(o.Object, "spec", "template", "metadata", "labels")
		}
		if len(ml) == 0 && o.GetKind() == "Job" {
			// A Job whose template has no labels: the Job controller labels its
			// pods with the Job's name.
			ml, found = map[string]string{"batch.kubernetes.io/job-name": o.GetName()}, true
		}
		if found && len(ml) > 0 {
			nss[ns] = true
			out = append(out, podSelector{namespace: ns, selector: labels.SelectorFromSet(ml)})
		}
	}
	if w.SelectorsOnly {
		out = nil
	}
	if len(w.Extra) == 0 {
		return out
	}
	if len(nss) == 0 {
		for _, o := range w.Objects {
			if ns := o.GetNamespace(); ns != "" {
				nss[ns] = true
			}
		}
	}
	if len(nss) == 0 {
		nss[defaultNS] = true
	}
	names := make([]string, 0, len(nss))
	for ns := range nss {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		for _, set := range w.Extra {
			out = append(out, podSelector{namespace: ns, selector: labels.SelectorFromSet(set)})
		}
	}
	return out
}

// FollowPods follows the pods of a resource (w) until ctx is done: the output
// of every container of every pod goes to logs, each instance of a restarted
// container in turn (one that ended before it was seen, a crash, is read once
// after the fact), and so does what keeps a pod or container from running
// (unschedulable, an image pull backing off, a crash loop, an exit code) when it
// changes, and so do the Warning events about the pods and workloads (a failing
// probe, FailedScheduling, FailedMount, BackOff, Failed pulls) that happen from the
// start of the follow, each once; each port forward listens on 127.0.0.1 and
// reaches the newest ready pod, moving to the next pod when it changes. While ff
// watches (nil: never), a pod of the rollout that cannot run fails it.
func (d *Deployer) FollowPods(ctx context.Context, w Workloads, forwards []model.PortForward, logs io.Writer, ff *FailFast) {
	defer ff.begin() // also when it cannot follow
	sels := w.selectors(d.cluster.Namespace)
	if len(sels) == 0 {
		return
	}
	_, core, err := d.clients()
	if err != nil {
		fmt.Fprintf(logs, "follow pods: %v\n", err)
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	streams := map[string]map[string]context.CancelFunc{} // pod UID → container instance → its log stream
	said := map[string]map[string]string{}                // pod UID → report key → what was last logged
	fwd := &forwarder{d: d, core: core, forwards: forwards, logs: logs, retry: make(chan struct{}, 1)}
	defer fwd.stop()
	pw := watchPods(ctx, core, sels)
	defer pw.wait()
	// Without a rollout to follow from its start (ff nil: a custom deploy, followed
	// once its command has applied), every event about the pods is news.
	events := d.eventHub(core).follow(ctx, w.namespaces(d.cluster.Namespace), ff != nil)
	defer events.stop()
	failures := newFailureCheck(d, core)
	if ff.watching() {
		// What fails already is known as such before the rollout's pods are looked at.
		pw.synced(ctx)
		failures.start(pw.pods())
	}
	ff.begin()
	// The watch says when pods change; the slow tick retries a port forward that
	// failed and catches anything a watch could miss.
	t := time.NewTicker(PodPoll)
	defer t.Stop()
	for {
		pods := pw.pods()
		seen := map[string]bool{}
		for _, p := range pods {
			uid := string(p.UID)
			seen[uid] = true
			if streams[uid] == nil {
				streams[uid] = map[string]context.CancelFunc{}
			}
			now := map[string]string{}
			for _, r := range podReports(p) {
				if said[uid][r.key] != r.text {
					fmt.Fprintf(logs, "pod %s: %s\n", p.Name, r.text)
				}
				now[r.key] = r.text
			}
			said[uid] = now
			for _, ls := range logStreams(p) {
				if _, ok := streams[uid][ls.key]; ok {
					continue
				}
				sctx, cancel := context.WithCancel(ctx)
				streams[uid][ls.key] = cancel
				wg.Add(1)
				go func(pod corev1.Pod, ls logStream) { // owned by FollowPods: ends with the stream or sctx
					defer wg.Done()
					streamLogs(sctx, core, pod, ls, len(pod.Spec.Containers) > 1, logs)
				}(p, ls)
			}
		}
		for uid, cs := range streams {
			if !seen[uid] {
				for _, cancel := range cs {
					cancel()
				}
				delete(streams, uid)
				delete(said, uid)
			}
		}
		events.log(ownedBy(w, d.cluster.Namespace, pods), logs)
		if ff.watching() {
			if text := failures.find(ctx, pods); text != "" {
				ff.fail(text)
			}
		}
		if len(forwards) > 0 {
			fwd.point(ctx, newestReady(pods))
		}
		select {
		case <-ctx.Done():
			for _, cs := range streams {
				for _, cancel := range cs {
					cancel()
				}
			}
			return
		case <-pw.changed:
		case <-events.changed:
		case <-fwd.retry:
		case <-t.C:
		}
	}
}

// logStream is one container instance's log to read: followed while it runs, or
// read once when it ended before it was seen (previous: the instance before the
// current one).
type logStream struct {
	key       string // container name and instance
	container string
	follow    bool
	previous  bool
}

// logStreams lists the container instances of a pod whose logs there are to read.
// An instance is the runtime's container ID, else (a kubelet that gives none) the
// restart count.
func logStreams(p corev1.Pod) []logStream {
	var out []logStream
	status := map[string]corev1.ContainerStatus{}
	for _, cs := range p.Status.ContainerStatuses {
		status[cs.Name] = cs
	}
	for _, c := range p.Spec.Containers {
		cs, ok := status[c.Name]
		if !ok {
			// No status yet: the pod runs (a kubelet that reports no containers).
			if p.Status.Phase == corev1.PodRunning {
				out = append(out, logStream{key: c.Name + "/", container: c.Name, follow: true})
			}
			continue
		}
		instance := func(id string, restarts int32) string { return c.Name + "/" + instanceKey(id, restarts) }
		if last := cs.LastTerminationState.Terminated; last != nil && cs.RestartCount > 0 {
			out = append(out, logStream{key: instance(last.ContainerID, cs.RestartCount-1), container: c.Name, previous: true})
		}
		switch {
		case cs.State.Running != nil:
			out = append(out, logStream{key: instance(cs.ContainerID, cs.RestartCount), container: c.Name, follow: true})
		case cs.State.Terminated != nil:
			out = append(out, logStream{key: instance(cs.State.Terminated.ContainerID, cs.RestartCount), container: c.Name})
		}
	}
	return out
}

// instanceKey names a container instance: the runtime's container ID, else (a
// kubelet that gives none) its restart count.
func instanceKey(id string, restarts int32) string {
	if id != "" {
		return id
	}
	return fmt.Sprintf("#%d", restarts)
}

// podReport is one thing to say about a pod (key "") or one of its containers, as it
// stands.
type podReport struct{ key, text string }

// podReports says what keeps a pod or its containers from running, as the kubelet
// and scheduler put it: unschedulable, waiting with a reason (ErrImagePull,
// ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError, ...) and how the
// last instance of a container ended.
func podReports(p corev1.Pod) []podReport {
	var out []podReport
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason != "" {
			out = append(out, podReport{"", strings.TrimSpace(c.Reason + ": " + c.Message)})
		}
	}
	all := append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...)
	for _, cs := range all {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" && w.Reason != "PodInitializing" {
			text := "container " + cs.Name + " waiting: " + w.Reason
			if w.Message != "" {
				text += ": " + w.Message
			}
			out = append(out, podReport{cs.Name, text})
		}
		end, instance := cs.State.Terminated, cs.RestartCount
		if end == nil {
			end, instance = cs.LastTerminationState.Terminated, cs.RestartCount-1
		}
		if end != nil && (end.ExitCode != 0 || end.Reason != "Completed") {
			text := fmt.Sprintf("container %s exited with code %d", cs.Name, end.ExitCode)
			if end.Reason != "" {
				text += " (" + end.Reason + ")"
			}
			if end.Message != "" {
				text += ": " + strings.TrimSpace(end.Message)
			}
			out = append(out, podReport{cs.Name + "/ended/" + instanceKey(end.ContainerID, instance), text})
		}
	}
	return out
}

// newestReady is the most recently created pod that is Ready and not going away.
func newestReady(pods []corev1.Pod) *corev1.Pod {
	var ready []corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready = append(ready, p)
			}
		}
	}
	if len(ready) == 0 {
		return nil
	}
	sort.Slice(ready, func(i, j int) bool {
		return ready[i].CreationTimestamp.After(ready[j].CreationTimestamp.Time)
	})
	return &ready[0]
}

// streamLogs copies a container instance's log, line by line, into logs:
// followed until it ends or ctx does, or read once.
func streamLogs(ctx context.Context, core corev1client.CoreV1Interface, pod corev1.Pod, ls logStream, prefix bool, logs io.Writer) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := core.Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: ls.container, Follow: ls.follow, Previous: ls.previous}).Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(logs, "logs of pod %s: %v\n", pod.Name, err)
		}
		return
	}
	defer rc.Close()
	go func() { <-ctx.Done(); rc.Close() }() // unblocks the read below; ends with ctx, at the latest on return
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if prefix {
			line = "[" + ls.container + "] " + line
		}
		fmt.Fprintln(logs, line)
	}
}

// forwarder keeps a resource's port forwards pointed at one pod.
type forwarder struct {
	d        *Deployer
	core     corev1client.CoreV1Interface
	forwards []model.PortForward
	logs     io.Writer

	pod    string // namespace/name forwarded to
	cancel context.CancelFunc
	done   chan struct{}
	// failed is set by the forward's goroutine when it ends with an error: the next
	// look starts it again, which retry asks for after a back-off (a process that
	// restarts in the container ends the forward; waiting for PodPoll left the port
	// dead for seconds).
	failed atomic.Bool
	retry  chan struct{} // capacity 1
	// failures counts the forwards in a row that ended with an error; reset once one
	// is ready. Owned by the forward's goroutines, one at a time.
	failures atomic.Int32
}

// retryAfter is the back-off before the n-th retry in a row (n from 1) of a forward
// that failed: 100 ms doubling, at most PodPoll.
func retryAfter(n int32) time.Duration {
	d := 100 * time.Millisecond
	for i := int32(1); i < n && d < PodPoll; i++ {
		d *= 2
	}
	return min(d, PodPoll)
}

// point moves the forwards to pod (nil: none ready; the forwards stay down).
func (f *forwarder) point(ctx context.Context, pod *corev1.Pod) {
	key := ""
	if pod != nil {
		key = pod.Namespace + "/" + pod.Name
	}
	if f.failed.Load() {
		f.stop() // the forward ended with an error: retried below
	}
	if key == f.pod {
		return
	}
	f.stop()
	f.failures.Store(0) // another pod: announced again
	f.pod = key
	if pod == nil {
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	f.cancel, f.done = cancel, make(chan struct{})
	go func(ns, name string, done chan struct{}) { // owned by the forwarder: stop waits for it
		defer close(done)
		if err := f.run(fctx, ns, name); err != nil && fctx.Err() == nil {
			n := f.failures.Add(1)
			if n == 1 {
				fmt.Fprintf(f.logs, "port forward to pod %s: %v (retrying)\n", name, err)
			}
			f.failed.Store(true)
			select {
			case <-fctx.Done():
			case <-time.After(retryAfter(n)):
				select {
				case f.retry <- struct{}{}:
				default:
				}
			}
		}
	}(pod.Namespace, pod.Name, f.done)
}

func (f *forwarder) stop() {
	if f.cancel != nil {
		f.cancel()
		<-f.done
		f.cancel = nil
	}
	f.pod = ""
	f.failed.Store(false)
}

func (f *forwarder) run(ctx context.Context, ns, name string) error {
	transport, upgrader, err := spdy.RoundTripperFor(f.d.cluster.Config)
	if err != nil {
		return err
	}
	u := f.core.RESTClient().Post().Resource("pods").Namespace(ns).Name(name).SubResource("portforward").URL()
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	var ports []string
	for _, pf := range f.forwards {
		remote := pf.ContainerPort
		if remote == 0 {
			remote = pf.LocalPort
		}
		ports = append(ports, strconv.Itoa(pf.LocalPort)+":"+strconv.Itoa(remote))
	}
	host := "127.0.0.1"
	for _, pf := range f.forwards {
		if pf.Host != "" {
			host = pf.Host
		}
	}
	return f.d.holdForward(ctx, ns+"/"+name, dialer, host, ports, func() {
		if f.failures.Swap(0) == 0 { // said once, not again at each retry
			fmt.Fprintf(f.logs, "forwarding %s → pod %s\n", strings.Join(ports, ", "), name)
		}
	})
}
