package kube

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestFollowPods follows a Deployment's pod on the test control plane, where kwok serves the
// node's kubelet API (scripts/test-cluster.sh): every container's log is the ClusterLogs file
// in the cluster's state directory, and container port 8080 of every pod is forwarded to
// API_PORT+5 on loopback. Both go through the real API server's pods/log and
// pods/portforward, so the test checks that a line appended to that file reaches the writer,
// that a request to the local port reaches a server the test runs on API_PORT+5, and that
// the forward moves to the ReplicaSet's new pod when the pod is deleted.
func TestFollowPods(t *testing.T) {
	kubeconfig := testenv.UseTestCluster(t)
	d, core := testDeployer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := core.Namespaces().List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Fatalf("test cluster does not answer (run make test-cluster): %v", err)
	}

	// Where scripts/test-cluster.sh points kwok: the log file in its state directory (the
	// kubeconfig's directory) and the forward target API_PORT+5.
	logFile := filepath.Join(filepath.Dir(kubeconfig), "kwok", "logs", "pod-logs.log")
	if _, err := os.Stat(logFile); err != nil {
		t.Fatalf("kwok's ClusterLogs file: %v (run make test-cluster)", err)
	}
	api, err := url.Parse(d.cluster.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	apiPort, err := strconv.Atoi(api.Port())
	if err != nil {
		t.Fatalf("API server port of %q: %v", d.cluster.Config.Host, err)
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(apiPort+5))

	// The "container" behind port 8080: answers with a body unique to this run.
	token := fmt.Sprintf("loop-follow-pods-%d-%d", time.Now().UnixNano(), rand.IntN(1e6))
	ln, err := net.Listen("tcp", target)
	if err != nil {
		t.Fatalf("listen on the port-forward target %s: %v", target, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", token, r.URL.Path)
	})}
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); _ = srv.Serve(ln) }() // ends with srv.Close below
	defer func() { srv.Close(); <-srvDone }()

	ns := fmt.Sprintf("loop-follow-pods-%d", rand.IntN(1e6))
	if _, err := core.Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = core.Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) }()
	// Pods need the default ServiceAccount; making it spares waiting for the controller.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := core.ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	deploy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "x", "namespace": ns},
		"spec": map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": "x"}},
			"template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "x"}},
				"spec": map[string]any{"containers": []any{map[string]any{
					"name": "app", "image": "loop/follow-pods-test:never-pulled",
					"ports": []any{map[string]any{"containerPort": int64(8080)}},
				}}},
			},
		},
	}}
	objs := []*unstructured.Unstructured{deploy}
	var deployLog strings.Builder
	if err := d.Deploy(ctx, "follow-pods", objs, nil, AppPolicy{}, &deployLog); err != nil {
		t.Fatalf("deploy: %v\n%s", err, deployLog.String())
	}

	// PodPoll stays at its 10 s: the pods' watch must bring every change sooner.
	localPort := testenv.FreePort(t)
	out := &syncBuffer{}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	followed := make(chan struct{})
	go func() { // stopped by stop(); the test waits on followed
		defer close(followed)
		d.FollowPods(fctx, Workloads{Objects: objs}, []model.PortForward{{LocalPort: localPort, ContainerPort: 8080}}, out, nil)
	}()
	defer func() { stop(); <-followed }()

	first := onlyReadyPod(ctx, t, core, ns, "")
	waitForOutput(t, out, 60*time.Second, "forwarding "+strconv.Itoa(localPort)+":8080 → pod "+first)

	// (1) A line appended to the container log file arrives through pods/log.
	line := token + " log line"
	appendCRILog(t, logFile, line)
	waitForOutput(t, out, 30*time.Second, line)

	// (2) A request to the local port reaches the test's server through pods/portforward.
	getThroughForward(t, localPort, "/first", token+" /first")

	// (3) Deleting the pod: the ReplicaSet makes another, and the forward moves to it.
	if err := core.Pods(ns).Delete(ctx, first, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	second := onlyReadyPod(ctx, t, core, ns, first)
	waitForOutput(t, out, 60*time.Second, "forwarding "+strconv.Itoa(localPort)+":8080 → pod "+second)
	getThroughForward(t, localPort, "/second", token+" /second")
	// The new pod's log stream starts from the top of the file, so the line comes again.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(out.String(), line) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the new pod's log did not repeat %q; output:\n%s", line, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	stop()
	select {
	case <-followed:
	case <-time.After(20 * time.Second):
		t.Fatalf("FollowPods did not return after its context was cancelled; output:\n%s", out.String())
	}
	// The forward is closed with it.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(localPort)), time.Second); err == nil {
		c.Close()
		t.Errorf("port %d still accepts connections after FollowPods returned", localPort)
	}
	t.Logf("FollowPods wrote:\n%s", out.String())
	if strings.Contains(out.String(), "port forward to pod") || strings.Contains(out.String(), "logs of pod") {
		t.Errorf("FollowPods reported errors:\n%s", out.String())
	}
}

// testDeployer connects to the test cluster as a user's kube context.
func testDeployer(t *testing.T) (*Deployer, corev1client.CoreV1Interface) {
	t.Helper()
	testenv.UseTestCluster(t)
	d, err := Connect(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, core, err := d.clients()
	if err != nil {
		t.Fatal(err)
	}
	return d, core
}

// onlyReadyPod waits until the namespace has exactly one Ready pod that is not being deleted
// and is not named not, and returns its name.
func onlyReadyPod(ctx context.Context, t *testing.T, core corev1client.CoreV1Interface, ns, not string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		l, err := core.Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=x"})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for i := range l.Items {
			if p := &l.Items[i]; p.Name != not && p.DeletionTimestamp == nil && newestReady([]corev1.Pod{*p}) != nil {
				names = append(names, p.Name)
			}
		}
		if len(names) == 1 {
			return names[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("want one ready pod (other than %q) in %s, have %v", not, ns, names)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// appendCRILog appends one stdout line in the CRI log format kwok's log reader expects.
func appendCRILog(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("append to %s: %v", path, err)
	}
}

// getThroughForward fetches path from the local port on a fresh connection (so a moved
// forward is used) and checks the body.
func getThroughForward(t *testing.T, port int, path, want string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://127.0.0.1:" + strconv.Itoa(port) + path)
	if err != nil {
		t.Fatalf("GET %s through the forward: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s through the forward: %v", path, err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("GET %s through the forward: %s %q, want %q", path, resp.Status, body, want)
	}
}

// waitForOutput waits until out contains s.
func waitForOutput(t *testing.T, out *syncBuffer, timeout time.Duration, s string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s; output:\n%s", s, timeout, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// syncBuffer is a writer FollowPods' goroutines can share.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
