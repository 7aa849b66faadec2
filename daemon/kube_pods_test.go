package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// These tests run on the test cluster's real node (scripts/test-node.sh): a kubelet on
// containerd, so the pods' containers really run, pull from the test registry, serve,
// crash and restart.

// realNamespace makes a namespace for one test and deletes it (with what is left in it)
// after the test.
func realNamespace(t testing.TB, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1000000)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

func clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(testenv.KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// httpGet returns the body of a GET of url, or an error for a failed request or a
// status other than 200.
func httpGet(url string) (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

// waitServed waits until url serves want.
func waitServed(t *testing.T, url, want string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		got, err := httpGet(url)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("GET %s = %q, want %q", url, got, want)
		}
		return nil
	})
}

// podsOf lists the pods of ns that selector selects and that are not going away.
func podsOf(t testing.TB, cs kubernetes.Interface, ns, selector string) []corev1.Pod {
	t.Helper()
	list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatalf("list pods %s in %s: %v", selector, ns, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestKubeExampleOnRealPods runs examples/kubernetes end to end on the real node: loop
// up builds the image, pushes it to the cluster's registry and deploys; containerd pulls
// it and the pod serves HTTP through loop's port forward; a saved page is live-updated
// into the running container and served; a Dockerfile edit rebuilds and rolls out a new
// pod, which serves the new image; loop down removes the objects and the pods go.
func TestKubeExampleOnRealPods(t *testing.T) {
	node := testenv.RealNode(t)
	ensureExampleBase(t)
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-example")
	dir := copyExample(t, "kubernetes")
	port := testenv.FreePort(t)
	// The copy: its own local port and namespace, and its pods on the real node.
	tf, err := os.ReadFile(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"Tiltfile": strings.Replace(string(tf), "'18080:8080'", fmt.Sprintf("'%d:8080'", port), 1),
		"deploy/overlays/dev/kustomization.yaml": fmt.Sprintf(`resources:
  - ../../base
namePrefix: loop-example-
namespace: %s
labels:
  - pairs:
      env: dev
patches:
%s`, ns, testenv.RealNodePatch),
	})
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	page, err := os.ReadFile(filepath.Join(dir, "web/site/index.html"))
	if err != nil {
		t.Fatal(err)
	}

	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "web")
	pods := podsOf(t, cs, ns, "app=web")
	if len(pods) != 1 || pods[0].Spec.NodeName != node || pods[0].Status.Phase != corev1.PodRunning ||
		len(pods[0].Status.ContainerStatuses) != 1 || !strings.HasPrefix(pods[0].Status.ContainerStatuses[0].ContainerID, "containerd://") {
		t.Fatalf("pods of web: %+v, want one running on %s in containerd", pods, node)
	}
	first := pods[0].Name
	waitServed(t, url, string(page), time.Minute)

	// A saved page: live-updated into the running container, no new pod.
	t0 := time.Now()
	writeFiles(t, dir, map[string]string{"web/site/index.html": "<h1>saved</h1>\n"})
	waitServed(t, url, "<h1>saved</h1>\n", time.Minute)
	h.waitFor("the live update", time.Minute, func() bool {
		u := h.status["web"].LastUpdate
		return u != nil && u.Started.After(t0) && !u.Ready.IsZero()
	})
	if u := h.statusOf("web").LastUpdate; u.Kind != api.UpdateLive || u.Error != "" {
		t.Fatalf("the save's update: %+v, want a live update", u)
	}
	if p := podsOf(t, cs, ns, "app=web"); len(p) != 1 || p[0].Name != first {
		t.Fatalf("the live update replaced the pod: %v", p)
	}

	// A Dockerfile edit: a new image, rolled out to a new pod that serves it.
	df, err := os.ReadFile(filepath.Join(dir, "web/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"web/Dockerfile": string(df) + "RUN echo rebuilt >/www/version.txt\n"})
	waitServed(t, url+"version.txt", "rebuilt\n", 3*time.Minute)
	// The new image has the saved page too (it was built from the edited tree).
	waitServed(t, url, "<h1>saved</h1>\n", time.Minute)
	eventually(t, 2*time.Minute, func() error {
		p := podsOf(t, cs, ns, "app=web")
		if len(p) != 1 || p[0].Name == first {
			return fmt.Errorf("pods after the rollout: %d, first %s", len(p), first)
		}
		return nil
	})
	if u := h.statusOf("web").LastUpdate; u == nil || u.Kind != api.UpdateRebuild {
		t.Fatalf("the Dockerfile edit's update: %+v, want a rebuild", u)
	}

	// loop down: the objects go, and with them the pods.
	h.stop()
	dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := daemon.Down(dctx, daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")}, false); err != nil {
		t.Fatalf("down: %v", err)
	}
	ctx := context.Background()
	eventually(t, time.Minute, func() error {
		var errs []error
		if _, err := cs.AppsV1().Deployments(ns).Get(ctx, "loop-example-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deployment after down: %v", err))
		}
		if _, err := cs.CoreV1().Services(ns).Get(ctx, "loop-example-web", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("service after down: %v", err))
		}
		if _, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "loop-example-web-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("configmap after down: %v", err))
		}
		return errors.Join(errs...)
	})
	eventually(t, 2*time.Minute, func() error {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if len(list.Items) > 0 {
			return errors.New(strconv.Itoa(len(list.Items)) + " pods left after down")
		}
		return nil
	})
	if _, err := httpGet(url); err == nil {
		t.Errorf("the port forward still answers after down")
	}
}
