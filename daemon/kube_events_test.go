package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// crashDockerfile is an image whose process says two lines and exits with code 3.
const crashDockerfile = "FROM loop/busybox:latest\n" +
	"CMD [\"sh\", \"-c\", \"echo starting up; echo the last words before the crash; exit 3\"]\n"

// servedProbe makes a container ready once it has /www/index.txt (httpdDockerfile's
// image), never for crashDockerfile's: without a probe, a container that crashes
// right after it started can be Ready for a moment, long enough for its Deployment to
// be healthy (as Argo CD and Tilt see it) before the crash is reported.
const servedProbe = "readinessProbe:\n  exec: {command: [test, -e, /www/index.txt]}\n  periodSeconds: 1\n"

// TestKubePodEventsInLog: the Warning events about a resource's pods on the real node
// are in its log, as Tilt shows them: a readiness probe that fails (the kubelet's
// Unhealthy event), a pod no node can take (the scheduler's FailedScheduling) and a
// volume that cannot be mounted (FailedMount).
func TestKubePodEventsInLog(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-events")
	probe := "readinessProbe:\n  httpGet: {path: /missing, port: 8080}\n  periodSeconds: 1\n"
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile":          "docker_build('loop/kprobe', 'app')\nk8s_yaml(['probe.yaml', 'nowhere.yaml', 'nomount.yaml'])\n",
		"app/Dockerfile":    httpdDockerfile,
		"app/www/index.txt": "up\n",
		"probe.yaml":        realDeployment("probe", ns, "loop/kprobe", 1, "", probe),
		// A volume of a ConfigMap that is not there: the kubelet cannot mount it.
		"nomount.yaml": realDeployment("nomount", ns, "loop/kprobe", 1,
			"volumes:\n- name: cfg\n  configMap: {name: missing}\n", "volumeMounts:\n- {name: cfg, mountPath: /cfg}\n"),
		// A node selector no node has: the scheduler says so in an event.
		"nowhere.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: nowhere, namespace: %s}
spec:
  replicas: 1
  selector: {matchLabels: {app: nowhere}}
  template:
    metadata: {labels: {app: nowhere}}
    spec:
      nodeSelector: {loop.dev/node: nowhere}
      containers:
      - name: app
        image: loop/never-scheduled:1
`, ns),
	})
	h := startUp(t, dir, "up")
	h.waitLog("probe", 2*time.Minute, "[event: pod "+ns+"/probe-", "Unhealthy: Readiness probe failed: HTTP probe failed with statuscode: 404")
	h.waitLog("nowhere", 2*time.Minute, "[event: pod "+ns+"/nowhere-", "FailedScheduling: ")
	h.waitLog("nomount", 2*time.Minute, "[event: pod "+ns+"/nomount-", `FailedMount: MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found`)
	// Once each: the probe fails every second, its event's count goes up, the log
	// says it once (a first failure with another message, connection refused before
	// httpd listens, is another line).
	eventually(t, time.Minute, func() error {
		list, err := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "reason=Unhealthy"})
		if err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Count >= 3 {
				return nil
			}
		}
		return fmt.Errorf("the probe's event has not happened 3 times yet: %d events", len(list.Items))
	})
	h.mu.Lock()
	n := 0
	for _, ev := range h.events {
		if ev.Kind == api.EventLog && ev.Resource == "probe" && strings.Contains(ev.Text, "Readiness probe failed: HTTP probe failed with statuscode: 404") {
			n++
		}
	}
	h.mu.Unlock()
	if n != 1 {
		t.Errorf("the probe's 404 is in the log %d times, want once", n)
	}
}

// ciProject writes a project of one Deployment, named resource, on the real node and
// returns its Tiltfile: built from a Dockerfile when dockerfile is set. The run's
// timeout is long, so that only a failure seen at once ends it within the test's
// deadline.
func ciProject(t *testing.T, ns, resource, image, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	tf := "k8s_yaml('k8s.yaml')\nci_settings(timeout='10m')\n"
	files := map[string]string{"k8s.yaml": realDeployment(resource, ns, image, 1, "", servedProbe)}
	if dockerfile != "" {
		tf = fmt.Sprintf("docker_build(%q, 'app')\n", image) + tf
		files["app/Dockerfile"] = dockerfile
	}
	files["Tiltfile"] = tf
	writeFiles(t, dir, files)
	return filepath.Join(dir, "Tiltfile")
}

// runCI runs loop ci on tf with a deadline far below the run's own timeout and the
// deploy's wave timeout (5 minutes), and returns its error.
func runCI(t *testing.T, tf string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), time.Minute)
		defer dcancel()
		_ = daemon.Down(dctx, daemon.Options{Tiltfile: tf}, true)
	})
	err := daemon.CI(ctx, daemon.Options{Tiltfile: tf})
	t.Logf("loop ci: %v", err)
	if ctx.Err() != nil {
		t.Fatalf("loop ci was still waiting at the test's deadline (the pod's failure did not end it): %v", err)
	}
	return err
}

// TestKubeCIFailsFast: loop ci fails as soon as a pod of the rollout cannot run, with
// the reason, instead of waiting for the deploy's or the run's timeout: a container in
// CrashLoopBackOff (with its exit code and last lines) and an image that was never
// pushed (ErrImagePull or ImagePullBackOff, with the image).
func TestKubeCIFailsFast(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	t.Run("crash", func(t *testing.T) {
		ns := realNamespace(t, cs, "loop-ci-crash")
		err := runCI(t, ciProject(t, ns, "crash", "loop/kcrash-ci", crashDockerfile))
		if !errors.Is(err, daemon.ErrResourceFailed) {
			t.Fatalf("ci error = %v, want a resource failure", err)
		}
		for _, want := range []string{"crash", "CrashLoopBackOff", "exited with code 3", "the last words before the crash"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("ci error %q does not say %q", err, want)
			}
		}
	})
	t.Run("never pushed", func(t *testing.T) {
		ns := realNamespace(t, cs, "loop-ci-pull")
		missing := clusterRegistry(t, kubeClient(t)) + "/loop-test/never-pushed:1"
		err := runCI(t, ciProject(t, ns, "nopull", missing, ""))
		if !errors.Is(err, daemon.ErrResourceFailed) {
			t.Fatalf("ci error = %v, want a resource failure", err)
		}
		msg := err.Error()
		pulled := strings.Contains(msg, "ErrImagePull") || strings.Contains(msg, "ImagePullBackOff")
		if !pulled || !strings.Contains(msg, "never-pushed") {
			t.Errorf("ci error %q does not say ErrImagePull (or ImagePullBackOff) of the image", msg)
		}
	})
}

// TestKubeCrashLoopThenFixed: under loop up a resource whose pod crash-loops is in
// error with the reason and the crash's last lines; an edit that fixes it rolls out a
// pod that runs and the resource is ready again (the old pod, still crashing while it
// goes, is not the new rollout's failure).
func TestKubeCrashLoopThenFixed(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-crashfix")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile":          "docker_build('loop/kcrash-fix', 'app')\nk8s_yaml('k8s.yaml')\n",
		"app/Dockerfile":    crashDockerfile,
		"app/www/index.txt": "fixed\n",
		"k8s.yaml":          realDeployment("crashfix", ns, "loop/kcrash-fix", 1, "", servedProbe),
	})
	h := startUp(t, dir, "up")
	h.waitFor("crashfix in error", 2*time.Minute, func() bool { return h.status["crashfix"].Phase == api.PhaseError })
	if e := h.statusOf("crashfix").Error; !strings.Contains(e, "CrashLoopBackOff") || !strings.Contains(e, "the last words before the crash") {
		t.Fatalf("crashfix's error = %q, want CrashLoopBackOff and the crash's last lines", e)
	}
	// The pods are still followed: the kubelet's back-off is in the log.
	h.waitLog("crashfix", time.Minute, "[event: pod "+ns+"/crashfix-", "BackOff: Back-off restarting failed container app")
	t0 := time.Now()
	writeFiles(t, dir, map[string]string{"app/Dockerfile": httpdDockerfile})
	if u := h.waitUpdate("crashfix", t0, 3*time.Minute); u.Error != "" {
		t.Fatalf("the fix's update failed: %s", u.Error)
	}
	h.waitReady(time.Minute, "crashfix")
}
