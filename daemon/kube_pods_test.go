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
	"github.com/loop-dev/loop/daemon/internal/agent"
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
	port := exampleOnRealNode(t, dir, ns)
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
	t0 = time.Now()
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
	if u := h.waitUpdate("web", t0, 3*time.Minute); u.Kind != api.UpdateRebuild || u.Error != "" {
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
		gone := func(what string, err error) error {
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err == nil:
				return errors.New(what + " is still there after down")
			}
			return fmt.Errorf("%s after down: %w", what, err)
		}
		_, derr := cs.AppsV1().Deployments(ns).Get(ctx, "loop-example-web", metav1.GetOptions{})
		_, serr := cs.CoreV1().Services(ns).Get(ctx, "loop-example-web", metav1.GetOptions{})
		_, cerr := cs.CoreV1().ConfigMaps(ns).Get(ctx, "loop-example-web-config", metav1.GetOptions{})
		return errors.Join(gone("deployment", derr), gone("service", serr), gone("configmap", cerr))
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

// exampleOnRealNode makes dir, a copy of examples/kubernetes, deploy to namespace ns
// with its pods on the real node, and forward a free local port, which it returns.
func exampleOnRealNode(t *testing.T, dir, ns string) int {
	t.Helper()
	port := testenv.FreePort(t)
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
	return port
}

// realDeployment is a Deployment of replicas pods on the real node, one container
// "app" of image, with the pod-level YAML podExtra (indented as spec fields) and the
// container-level containerExtra.
func realDeployment(name, ns, image string, replicas int, podExtra, containerExtra string) string {
	indent := func(s, pad string) string {
		if s == "" {
			return ""
		}
		return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad) + "\n"
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: %[4]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      terminationGracePeriodSeconds: 1
%[5]s      containers:
      - name: app
        image: %[3]s
%[6]s`, name, ns, image, replicas, indent(testenv.RealNodeSpec+podExtra, "      "), indent(containerExtra, "        "))
}

// execIn runs argv in a pod's container and returns its output; an exit code other
// than 0 is an error.
func execIn(t testing.TB, ns, pod, container string, argv ...string) (string, error) {
	t.Helper()
	k, err := agent.NewKube(testenv.KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out strings.Builder
	code, err := k.Exec(ctx, agent.PodContainer{Namespace: ns, Pod: pod, Container: container}, argv, nil, &out, &out)
	if err == nil && code != 0 {
		err = fmt.Errorf("%v in %s: exit code %d: %s", argv, pod, code, out.String())
	}
	return out.String(), err
}

// waitLog waits until the resource's log has a line containing each of subs.
func (h *harness) waitLog(resource string, timeout time.Duration, subs ...string) {
	h.t.Helper()
	for _, sub := range subs {
		h.waitFor(fmt.Sprintf("%q in the log of %s", sub, resource), timeout, func() bool {
			for _, ev := range h.events {
				if ev.Kind == api.EventLog && ev.Resource == resource && strings.Contains(ev.Text, sub) {
					return true
				}
			}
			return false
		})
	}
}

// waitUpdate waits for the resource's first update started after since to be ready and
// returns it.
func (h *harness) waitUpdate(resource string, since time.Time, timeout time.Duration) api.Update {
	h.t.Helper()
	var u api.Update
	h.waitFor("an update of "+resource, timeout, func() bool {
		last := h.status[resource].LastUpdate
		if last == nil || !last.Started.After(since) || (last.Ready.IsZero() && last.Error == "") {
			return false
		}
		u = *last
		return true
	})
	return u
}

// httpdDockerfile is busybox httpd serving /www, the image's copy of app/www.
const httpdDockerfile = "FROM loop/busybox:latest\nCOPY www /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"

// httpdProject writes a project into a new temp dir and returns it: image built from
// app/ with dockerfile, live-updated by sync('app/www', '/www'), deployed by manifest
// (k8s.yaml) as resource, whose port 8080 is forwarded to port.
func httpdProject(t testing.TB, image, resource string, port int, dockerfile, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile": fmt.Sprintf(`docker_build(%q, 'app', live_update=[sync('app/www', '/www')])
k8s_yaml('k8s.yaml')
k8s_resource(%q, port_forwards=['%d:8080'])
`, image, resource, port),
		"app/Dockerfile":    dockerfile,
		"app/www/index.txt": "image\n",
		"k8s.yaml":          manifest,
	})
	return dir
}

// TestKubeLiveUpdateRealContainers live-updates two replicas of a Deployment whose
// containers run as user nobody, on the real node: loop installs its agent through the
// exec API into /tmp (the image's root is not the user's), every save reaches both
// containers without a rebuild, a container that restarts (its process killed) gets
// every file synced since the deploy before the next save's, and so does a pod that
// replaces a deleted one. The port forward serves the synced files.
func TestKubeLiveUpdateRealContainers(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-live")
	port := testenv.FreePort(t)
	// sh as the container's process, so that killing httpd ends the container.
	dir := httpdProject(t, "loop/kreal", "web", port,
		"FROM loop/busybox:latest\nCOPY www /www\nRUN chown -R 65534:65534 /www\nCMD [\"sh\", \"-c\", \"httpd -f -p 8080 -h /www & wait\"]\n",
		realDeployment("web", ns, "loop/kreal", 2, "securityContext: {runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true}\n", ""))
	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "web")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServed(t, url+"index.txt", "image\n", time.Minute)

	// inAll checks that every running pod of web has the files.
	inAll := func(files map[string]string) {
		t.Helper()
		eventually(t, time.Minute, func() error {
			pods := podsOf(t, cs, ns, "app=web")
			if len(pods) != 2 {
				return fmt.Errorf("%d pods", len(pods))
			}
			for _, p := range pods {
				for f, want := range files {
					got, err := execIn(t, ns, p.Name, "app", "cat", "/www/"+f)
					if err != nil {
						return err
					}
					if got != want {
						return fmt.Errorf("%s in %s: %q, want %q", f, p.Name, got, want)
					}
				}
			}
			return nil
		})
	}
	save := func(file, content string) {
		t.Helper()
		t0 := time.Now()
		writeFiles(t, dir, map[string]string{"app/www/" + file: content})
		if u := h.waitUpdate("web", t0, time.Minute); u.Kind != api.UpdateLive || u.Error != "" {
			t.Fatalf("the save of %s: update %+v, want a live update", file, u)
		}
	}

	save("a.txt", "a\n")
	inAll(map[string]string{"a.txt": "a\n"})
	waitServed(t, url+"a.txt", "a\n", time.Minute)
	pods := podsOf(t, cs, ns, "app=web")
	for _, p := range pods {
		if out, err := execIn(t, ns, p.Name, "app", "sh", "-c", "id -u; ls /tmp/.loop/agent"); err != nil || out != "65534\n/tmp/.loop/agent\n" {
			t.Fatalf("the agent in %s: %q, %v; want it in /tmp, the container running as 65534", p.Name, out, err)
		}
	}

	// A container restarts: it starts from the image again.
	restarted := pods[0].Name
	if _, err := execIn(t, ns, restarted, "app", "killall", "httpd"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		p, err := cs.CoreV1().Pods(ns).Get(context.Background(), restarted, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st := p.Status.ContainerStatuses; len(st) != 1 || st[0].RestartCount < 1 || st[0].State.Running == nil {
			return fmt.Errorf("container of %s not restarted and running yet: %+v", restarted, st)
		}
		return nil
	})
	if _, err := execIn(t, ns, restarted, "app", "cat", "/www/a.txt"); err == nil {
		t.Fatalf("the restarted container still has a.txt: it did not start from the image")
	}
	save("b.txt", "b\n")
	inAll(map[string]string{"a.txt": "a\n", "b.txt": "b\n"})

	// A pod replaced: the new one gets every file too.
	gone := pods[1].Name
	if err := cs.CoreV1().Pods(ns).Delete(context.Background(), gone, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, func() error {
		ps := podsOf(t, cs, ns, "app=web")
		running := 0
		for _, p := range ps {
			if p.Name == gone {
				return errors.New("the deleted pod is still listed")
			}
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		if running != 2 {
			return fmt.Errorf("%d running pods", running)
		}
		return nil
	})
	save("c.txt", "c\n")
	inAll(map[string]string{"a.txt": "a\n", "b.txt": "b\n", "c.txt": "c\n"})
}

// TestKubeLiveUpdateReadOnlyRoot: a container with a read-only root file system cannot
// be written where the live update syncs. loop says so in the resource's log, once per
// deploy, and a save rebuilds (and rolls out) instead of live-updating; nothing loops.
func TestKubeLiveUpdateReadOnlyRoot(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-rofs")
	port := testenv.FreePort(t)
	dir := httpdProject(t, "loop/krofs", "ro", port, httpdDockerfile,
		realDeployment("ro", ns, "loop/krofs", 1, "", "securityContext: {readOnlyRootFilesystem: true}\n"))
	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "ro")
	h.waitLog("ro", time.Minute, "read-only root filesystem and cannot be written at /www", "changes rebuild")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServed(t, url+"index.txt", "image\n", time.Minute)

	t0 := time.Now()
	writeFiles(t, dir, map[string]string{"app/www/index.txt": "saved\n"})
	if u := h.waitUpdate("ro", t0, 3*time.Minute); u.Kind != api.UpdateRebuild || u.Error != "" {
		t.Fatalf("the save's update: %+v, want a rebuild", u)
	}
	waitServed(t, url+"index.txt", "saved\n", 2*time.Minute)
	h.waitReady(time.Minute, "ro")
	if n := len(h.updatesSince("ro", t0)); n != 1 {
		t.Fatalf("%d updates after one save, want 1", n)
	}
}

// TestKubePodFailuresInLog: what keeps pods on the real node from running is in the
// resource's log while the deploy waits for them: a container that exits (its last
// lines, its exit code, the kubelet's CrashLoopBackOff) and an image that cannot be
// pulled (ErrImagePull or ImagePullBackOff, with the image).
func TestKubePodFailuresInLog(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-fail")
	missing := clusterRegistry(t, kubeClient(t)) + "/loop-test/never-pushed:1"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile": "docker_build('loop/kcrash', 'app')\nk8s_yaml(['crash.yaml', 'nopull.yaml'])\n",
		"app/Dockerfile": "FROM loop/busybox:latest\n" +
			"CMD [\"sh\", \"-c\", \"echo starting up; echo the last words before the crash; exit 3\"]\n",
		"crash.yaml":  realDeployment("crash", ns, "loop/kcrash", 1, "", ""),
		"nopull.yaml": realDeployment("nopull", ns, missing, 1, "", ""),
	})
	h := startUp(t, dir, "up")
	h.waitLog("crash", 2*time.Minute, "the last words before the crash", "exited with code 3 (Error)", "CrashLoopBackOff")
	h.waitLog("nopull", 2*time.Minute, "never-pushed")
	h.waitFor("ErrImagePull or ImagePullBackOff in the log of nopull", time.Minute, func() bool {
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == "nopull" && (strings.Contains(ev.Text, "ErrImagePull") || strings.Contains(ev.Text, "ImagePullBackOff")) {
				return true
			}
		}
		return false
	})
}
