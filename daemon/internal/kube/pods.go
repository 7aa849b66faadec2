package kube

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
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
	"k8s.io/client-go/tools/portforward"
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
// of every container of every running pod goes to logs (a pod that appears later,
// after a rollout, too), and each port forward listens on 127.0.0.1 and reaches the
// newest ready pod, moving to the next pod when it changes.
func (d *Deployer) FollowPods(ctx context.Context, w Workloads, forwards []model.PortForward, logs io.Writer) {
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
	streams := map[string]context.CancelFunc{} // pod UID → its log streams
	fwd := &forwarder{d: d, core: core, forwards: forwards, logs: logs}
	defer fwd.stop()
	pw := watchPods(ctx, core, sels)
	defer pw.wait()
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
			if _, ok := streams[uid]; ok || p.Status.Phase != corev1.PodRunning {
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			streams[uid] = cancel
			for _, c := range p.Spec.Containers {
				wg.Add(1)
				go func(pod corev1.Pod, container string) { // owned by FollowPods: ends with the stream or sctx
					defer wg.Done()
					streamLogs(sctx, core, pod, container, len(pod.Spec.Containers) > 1, logs)
				}(p, c.Name)
			}
		}
		for uid, cancel := range streams {
			if !seen[uid] {
				cancel()
				delete(streams, uid)
			}
		}
		if len(forwards) > 0 {
			fwd.point(ctx, newestReady(pods))
		}
		select {
		case <-ctx.Done():
			for _, cancel := range streams {
				cancel()
			}
			return
		case <-pw.changed:
		case <-t.C:
		}
	}
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

// streamLogs copies a container's log, followed, line by line into logs.
func streamLogs(ctx context.Context, core corev1client.CoreV1Interface, pod corev1.Pod, container string, prefix bool, logs io.Writer) {
	rc, err := core.Pods(pod.Namespace).GetLogs(pod.Name, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(logs, "logs of pod %s: %v\n", pod.Name, err)
		}
		return
	}
	defer rc.Close()
	go func() { <-ctx.Done(); rc.Close() }() // unblocks the read below; ends with ctx
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if prefix {
			line = "[" + container + "] " + line
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
	// poll starts it again.
	failed atomic.Bool
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
	f.pod = key
	if pod == nil {
		return
	}
	fctx, cancel := context.WithCancel(ctx)
	f.cancel, f.done = cancel, make(chan struct{})
	go func(ns, name string, done chan struct{}) { // owned by the forwarder: stop waits for it
		defer close(done)
		if err := f.run(fctx, ns, name); err != nil && fctx.Err() == nil {
			fmt.Fprintf(f.logs, "port forward to pod %s: %v\n", name, err)
			f.failed.Store(true)
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
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
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
	readyCh := make(chan struct{})
	stopCh := make(chan struct{})
	go func() { <-ctx.Done(); close(stopCh) }() // ends the forward with ctx
	fw, err := portforward.NewOnAddresses(dialer, []string{host}, ports, stopCh, readyCh, io.Discard, io.Discard)
	if err != nil {
		return err
	}
	go func() { // announces the forward once it listens; ends with it
		select {
		case <-readyCh:
			fmt.Fprintf(f.logs, "forwarding %s → pod %s\n", strings.Join(ports, ", "), name)
		case <-stopCh:
		}
	}()
	return fw.ForwardPorts()
}
