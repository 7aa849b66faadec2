package testenv

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// DefaultKubeconfig is where scripts/test-cluster.sh (make test-cluster) writes the
// test control plane's kubeconfig.
const DefaultKubeconfig = "/tmp/loop-test-cluster/kubeconfig"

// ExecNamespace is the test cluster's namespace whose pods' execs run on this
// machine, as user nobody, with TMPDIR set to the exec directory (see the ClusterExec
// in scripts/test-cluster.sh): the only pods live update can reach there.
const ExecNamespace = "loop-exec"

// UseTestCluster points KUBECONFIG at the test control plane when it is unset and
// returns the kubeconfig's path. No cluster is a failure, not a skip.
func UseTestCluster(t testing.TB) string {
	t.Helper()
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		return kc
	}
	if _, err := os.Stat(DefaultKubeconfig); err != nil {
		t.Fatalf("no test cluster: KUBECONFIG is unset and %s is missing; run make test-cluster (make test does)", DefaultKubeconfig)
	}
	// Not t.Setenv: parallel tests call this too, and every caller sets the same value.
	_ = os.Setenv("KUBECONFIG", DefaultKubeconfig)
	return DefaultKubeconfig
}

// KubeConfig returns the REST config of the test cluster's current context.
func KubeConfig(t testing.TB) *rest.Config {
	t.Helper()
	UseTestCluster(t)
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		t.Fatalf("load the test cluster's kubeconfig: %v", err)
	}
	return cfg
}

// ExecDir makes a directory user nobody may write, under the test cluster's exec
// directory, for a container path that live update syncs into; removed after the test.
func ExecDir(t testing.TB) string {
	t.Helper()
	base := filepath.Join(filepath.Dir(UseTestCluster(t)), "kwok", "exec")
	dir, err := os.MkdirTemp(base, "sync-")
	if err != nil {
		t.Fatalf("make exec dir (is the test cluster current? make test-cluster): %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// ExecPod creates a pod with one container in ExecNamespace, waits until it runs and
// deletes it after the test.
func ExecPod(t testing.TB, name, image string) *corev1.Pod {
	t.Helper()
	cs, err := kubernetes.NewForConfig(KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pods := cs.CoreV1().Pods(ExecNamespace)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"loop.dev/test": name}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for {
		_, err = pods.Create(ctx, pod, metav1.CreateOptions{})
		if !apierrors.IsAlreadyExists(err) {
			break
		}
		time.Sleep(100 * time.Millisecond) // the old one is going
	}
	if err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = pods.Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
	for {
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("wait for pod %s: %v", name, err)
		}
		if p.Status.Phase == corev1.PodRunning {
			return p
		}
		select {
		case <-ctx.Done():
			t.Fatalf("pod %s is not running after 60 s: %s", name, p.Status.Phase)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// RegistryHas checks that the registry a ref names (host/name:tag, a plain-HTTP
// registry such as the test cluster's) serves its manifest.
func RegistryHas(t testing.TB, ref string) {
	t.Helper()
	host, rest, _ := strings.Cut(ref, "/")
	name, tag, _ := strings.Cut(rest, ":")
	req, err := http.NewRequest(http.MethodHead, "http://"+host+"/v2/"+name+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("ask the registry for %s: %v", ref, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the registry has no %s: HTTP %d", ref, resp.StatusCode)
	}
}

// The test cluster's real node (scripts/test-node.sh): a kubelet on containerd, where
// pods run real containers. It carries RealNodeLabel and the taint RealNodeLabel:NoSchedule,
// so a pod lands there only when it asks (RealNodeSpec); every other pod goes to kwok's
// fake node.
const (
	RealNodeLabelKey   = "loop.dev/node"
	RealNodeLabelValue = "real"
	RealNodeLabel      = RealNodeLabelKey + "=" + RealNodeLabelValue
)

// RealNodeSpec is what a pod spec needs to run on the real node, as YAML fields of the
// spec (indent it under "spec:").
const RealNodeSpec = `nodeSelector: {"loop.dev/node": real}
tolerations: [{key: loop.dev/node, operator: Equal, value: real, effect: NoSchedule}]
`

// RealNodePatch is a kustomization's patches entry that puts every Deployment's pods on
// the real node (for the "patches:" list of a kustomization.yaml).
const RealNodePatch = `  - target: {kind: Deployment}
    patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: any}
      spec:
        template:
          spec:
            nodeSelector: {"loop.dev/node": real}
            tolerations: [{key: loop.dev/node, operator: Equal, value: real, effect: NoSchedule}]
`

// RealNode checks that the test cluster's real node is there and Ready and returns its
// name. No real node is a failure, not a skip.
func RealNode(t testing.TB) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: RealNodeLabel})
	if err != nil {
		t.Fatalf("list the test cluster's nodes: %v", err)
	}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return n.Name
			}
		}
	}
	t.Fatalf("the test cluster has no Ready real node (a node labelled %s): run make test-cluster (make setup first installs containerd, runc and the CNI plugins)", RealNodeLabel)
	return ""
}
