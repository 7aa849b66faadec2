package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/internal/liveupdate"
)

// LiveTarget returns the live update target of the containers that run image (the
// built ref, as substituted into the objects) in the pods of w. It watches those pods
// (an informer per selector), so finding them on each update asks the API server
// nothing; Close on the target stops the watch.
func (d *Deployer) LiveTarget(w Workloads, image string) (*liveupdate.KubeTarget, error) {
	return d.liveTarget(w, image, func(c corev1.Container) bool { return c.Image == image })
}

// liveTarget is the live update target of the containers in w's pods that
// match says are to be updated; label names them in errors.
func (d *Deployer) liveTarget(w Workloads, label string, match func(corev1.Container) bool) (*liveupdate.KubeTarget, error) {
	image := label
	k, core, err := d.clients()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	pw := watchPods(ctx, core, w.selectors(d.cluster.Namespace))
	find := func(ctx context.Context) ([]agent.PodContainer, error) {
		if !pw.synced(ctx) {
			return nil, fmt.Errorf("pods not listed within %v", SyncWait)
		}
		return d.containersOf(ctx, core, pw.pods(), match), nil
	}
	return liveupdate.NewKubeTarget(k, image, find, func() { cancel(); pw.wait() }), nil
}

// clients returns the exec and core clients, made on first use.
func (d *Deployer) clients() (*agent.Kube, corev1client.CoreV1Interface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clientsLocked()
}

// clientsLocked makes the clients on first use; callers hold d.mu.
func (d *Deployer) clientsLocked() (*agent.Kube, corev1client.CoreV1Interface, error) {
	if d.exec == nil {
		k, err := agent.NewKube(d.cluster.Config)
		if err != nil {
			return nil, nil, err
		}
		core, err := corev1client.NewForConfig(d.cluster.Config)
		if err != nil {
			return nil, nil, fmt.Errorf("make pod client: %w", err)
		}
		d.exec, d.core = k, core
	}
	return d.exec, d.core, nil
}

// containersOf lists the running containers of pods that match, with their
// node's architecture.
func (d *Deployer) containersOf(ctx context.Context, core corev1client.CoreV1Interface, pods []corev1.Pod, match func(corev1.Container) bool) []agent.PodContainer {
	var out []agent.PodContainer
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
			continue
		}
		for _, c := range p.Spec.Containers {
			running, instance := containerState(p, c.Name)
			if !match(c) || !running {
				continue
			}
			pc := agent.PodContainer{Namespace: p.Namespace, Pod: p.Name, Container: c.Name, UID: string(p.UID),
				Instance: instance, Arch: d.nodeArch(ctx, core, p.Spec.NodeName), Supervised: agent.IsSupervised(c.Command)}
			if g := p.Spec.TerminationGracePeriodSeconds; g != nil && pc.Supervised {
				pc.Grace = max(time.Duration(*g)*time.Second, time.Millisecond) // 0 would be the supervisor's 10 s
			}
			out = append(out, pc)
		}
	}
	return out
}

// containerState says whether the container runs (unless the pod's status says it
// does not: a status without the container, as on a fresh pod, counts as running) and
// which instance of it: the runtime's container ID, else the restart count.
func containerState(p corev1.Pod, name string) (bool, string) {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name == name {
			if cs.ContainerID != "" {
				return cs.State.Running != nil, cs.ContainerID
			}
			return cs.State.Running != nil, fmt.Sprint(cs.RestartCount)
		}
	}
	return true, ""
}

// nodeArch is the architecture a node reports, read once per node; "" when unknown.
func (d *Deployer) nodeArch(ctx context.Context, core corev1client.CoreV1Interface, node string) string {
	if node == "" {
		return ""
	}
	d.mu.Lock()
	arch, ok := d.arch[node]
	d.mu.Unlock()
	if ok {
		return arch
	}
	n, err := core.Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	arch = n.Status.NodeInfo.Architecture
	d.mu.Lock()
	d.arch[node] = arch
	d.mu.Unlock()
	return arch
}
