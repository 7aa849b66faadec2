package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestKubeCustomBuild: a custom_build (built FROM a docker_build through
// image_deps) for a Deployment on the test cluster: the command is asked for
// the registry's name ($EXPECTED_REF, $EXPECTED_REGISTRY), loop pushes what
// it made to the cluster's registry, and the pod template names it from
// there, with entrypoint= as the container's command and container_args= as
// its args.
func TestKubeCustomBuild(t *testing.T) {
	testenv.BusyboxAs(t, "loop/busybox:latest")
	dyn := kubeClient(t)
	reg := clusterRegistry(t, dyn)
	ns := fmt.Sprintf("loop-custom-%d", time.Now().UnixNano()%1000000)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/Dockerfile": "FROM loop/busybox:latest\nCOPY greeting /greeting\n",
		"base/greeting":   "hi\n",
		"app/Dockerfile":  "ARG BASE\nFROM $BASE\nCMD [\"sleep\", \"3600\"]\n",
		"app/build.sh": "set -e\ncase \"$EXPECTED_REF\" in \"$EXPECTED_REGISTRY\"/*) ;; *) echo \"EXPECTED_REF $EXPECTED_REF is not in $EXPECTED_REGISTRY\"; exit 1;; esac\n" +
			"docker build -q --label " + testenv.TestLabel + "=1 --build-arg BASE=\"$TILT_IMAGE_0\" -t \"$EXPECTED_REF\" .\n",
		"k8s.yaml": nsDeployment(ns, "capp", "{name: app, image: loop/capp, command: [old], args: [old]}"),
		"Tiltfile": `docker_build('loop/cbase', 'base')
custom_build('loop/capp', 'sh build.sh', ['app'], dir='app', image_deps=['loop/cbase'],
             entrypoint=['sleep'], container_args=['3600'])
k8s_yaml('k8s.yaml')
`,
	})
	t.Cleanup(func() {
		_ = dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	h.waitFor("capp ready", 3*time.Minute, func() bool {
		if st := h.status["capp"]; st.Phase == api.PhaseError {
			t.Fatalf("capp failed: %s", st.Error)
		}
		return h.status["capp"].Phase == api.PhaseReady
	})
	c := deploymentContainer(t, ns, "capp")
	image, _ := c["image"].(string)
	if !strings.HasPrefix(image, reg+"/loop_capp:loop-") {
		t.Fatalf("deployment image %q, want %s/loop_capp:loop-<id>", image, reg)
	}
	testenv.RegistryHas(t, image)
	if fmt.Sprint(c["command"], c["args"]) != "[sleep] [3600]" {
		t.Errorf("command %v args %v, want entrypoint= and container_args=", c["command"], c["args"])
	}
}

// TestKubeDockerBuildWithRestart: the built-in docker_build_with_restart on the
// real node restarts the process in place, as on Compose: loop's init container
// puts the agent into the pod and the pod template runs the entrypoint under its
// supervisor (nothing pulled but loop's own images); a synced change restarts the
// process in the same pod and container (a new pid, the synced file read at start,
// served through the port forward, no rollout). A container the kubelet restarts
// (PID 1 told to stop) keeps the agent, gets the synced files replayed and restarts
// in place again; so does the pod that replaces a deleted one.
func TestKubeDockerBuildWithRestart(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-restart")
	port := testenv.FreePort(t)
	dir := restartProject(t, "rapp", port, realDeployment("rapp", ns, "loop/rapp", 1, "", ""))
	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "rapp")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServed(t, url+"msg", "v1", time.Minute)
	spec := podsOf(t, cs, ns, "app=rapp")[0].Spec
	if got := fmt.Sprint(spec.Containers[0].Command, spec.Containers[0].Args); !strings.HasPrefix(got, "[/.loop/agent supervise -- sh -c ") {
		t.Errorf("command and args %s, want the entrypoint under the agent's supervisor", got)
	}
	if len(spec.InitContainers) != 1 || spec.InitContainers[0].Name != "loop-agent" {
		t.Errorf("init containers %+v, want loop's agent install", spec.InitContainers)
	}

	pod := onePod(t, cs, ns, "app=rapp")
	pid := pidServed(t, url)
	save := func(file, content string) {
		t.Helper()
		t0 := time.Now()
		writeFiles(t, dir, map[string]string{file: content})
		u := h.waitUpdate("rapp", t0, 2*time.Minute)
		if u.Kind != api.UpdateLive || u.Error != "" || !hasSpan(&u, api.SpanRestart) {
			t.Fatalf("the save of %s: update %+v, want a live update with a restart", file, u)
		}
	}
	save("app/msg", "v2")
	waitServed(t, url+"msg", "v2", time.Minute) // polled while the new process sleeps before it listens
	// The pod refused connections while its process restarted; the port
	// forward stayed up all along (announced once, never retried).
	if n, retried := h.logCount("rapp", "forwarding "), h.logCount("rapp", "(retrying)"); n != 1 || retried != 0 {
		t.Errorf("the port forward: announced %d times, retried %d times; want once, never", n, retried)
	}
	if p := onePod(t, cs, ns, "app=rapp"); p.UID != pod.UID || restarts(p) != 0 {
		t.Fatalf("after the restart: pod %s (%d container restarts), want pod %s, its container not restarted", p.UID, restarts(p), pod.UID)
	}
	if again := pidServed(t, url); again == pid {
		t.Fatalf("the process's pid is still %s: not restarted", pid)
	}

	// The kubelet restarts the container: it starts from the image again
	// (msg v1) with the agent still in the pod's volume.
	if _, err := execIn(t, ns, pod.Name, "app", "kill", "1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		if p := onePod(t, cs, ns, "app=rapp"); restarts(p) < 1 || !running(p) {
			return fmt.Errorf("container of %s not restarted and running yet", p.Name)
		}
		return nil
	})
	save("app/other", "x")
	waitServed(t, url+"msg", "v2", time.Minute) // replayed before the restart
	if p := onePod(t, cs, ns, "app=rapp"); p.UID != pod.UID {
		t.Fatalf("pod %s after a container restart, want %s", p.UID, pod.UID)
	}

	// A pod replaced: the new one gets the agent from its init container.
	if err := cs.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, func() error {
		if p := onePod(t, cs, ns, "app=rapp"); p.UID == pod.UID || !running(p) {
			return fmt.Errorf("pod %s not replaced and running yet", p.Name)
		}
		return nil
	})
	save("app/msg", "v3")
	waitServed(t, url+"msg", "v3", time.Minute)
}

// TestKubeCustomBuildWithRestart: the built-in custom_build_with_restart on the
// real node: the command builds the image under the registry's name, loop pushes
// it, and a synced change restarts the process in place (same pod, new content).
func TestKubeCustomBuildWithRestart(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-crestart")
	port := testenv.FreePort(t)
	dir := restartProject(t, "crapp", port, realDeployment("crapp", ns, "loop/crapp", 1, "", ""))
	writeFiles(t, dir, map[string]string{"Tiltfile": fmt.Sprintf(`load('ext://restart_process', 'custom_build_with_restart')
custom_build_with_restart('loop/crapp', 'docker build -q --label %s=1 -t $EXPECTED_REF .', ['Dockerfile', 'app'],
                          entrypoint=%s, live_update=[sync('app', '/app')])
k8s_yaml('k8s.yaml')
k8s_resource('crapp', port_forwards=['%d:8080'])
`, testenv.TestLabel, strings.ReplaceAll(servedAtStart, "$", "$$"), port)})
	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "crapp")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServed(t, url+"msg", "v1", time.Minute)
	restartsInPlace(t, h, cs, ns, "crapp", dir, url)
}

// restartsInPlace saves app/msg as "v2" in dir and checks that the save was a
// live update of resource with a restart, that url serves the new message, and
// that its pod (the one of ns labelled app=resource) is the same one, its
// container not restarted. It returns the pod.
func restartsInPlace(t *testing.T, h *harness, cs kubernetes.Interface, ns, resource, dir, url string) corev1.Pod {
	t.Helper()
	pod := onePod(t, cs, ns, "app="+resource)
	t0 := time.Now()
	writeFiles(t, dir, map[string]string{"app/msg": "v2"})
	if u := h.waitUpdate(resource, t0, 2*time.Minute); u.Kind != api.UpdateLive || u.Error != "" || !hasSpan(&u, api.SpanRestart) {
		t.Fatalf("the save: update %+v, want a live update with a restart", u)
	}
	waitServed(t, url+"msg", "v2", time.Minute)
	if p := onePod(t, cs, ns, "app="+resource); p.UID != pod.UID || restarts(p) != 0 {
		t.Fatalf("after the restart: pod %s (%d container restarts), want pod %s, its container not restarted", p.UID, restarts(p), pod.UID)
	}
	return pod
}

// TestKubeRestartContainerInPod: restart_container() in a docker_build's live
// update, the command the image's own (CMD, no entrypoint=), the pod running as
// a non-root user: the process restarts in place under the supervisor, the
// agent's session started from the pod's volume.
func TestKubeRestartContainerInPod(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-rcpod")
	port := testenv.FreePort(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app/Dockerfile": "FROM loop/busybox:latest\nCOPY msg /app/msg\nRUN chown -R 65534:65534 /app\nCMD " + servedAtStart + "\n",
		"app/msg":        "v1",
		"k8s.yaml": realDeployment("rc", ns, "loop/rc", 1,
			"securityContext: {runAsUser: 65534, runAsGroup: 65534, runAsNonRoot: true}\n", ""),
		"Tiltfile": fmt.Sprintf(`docker_build('loop/rc', 'app', live_update=[sync('app/msg', '/app/msg'), restart_container()])
k8s_yaml('k8s.yaml')
k8s_resource('rc', port_forwards=['%d:8080'])
`, port),
	})
	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "rc")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServed(t, url+"msg", "v1", time.Minute)
	pod := onePod(t, cs, ns, "app=rc")
	if c := pod.Spec.Containers[0]; fmt.Sprint(c.Command, c.Args) != "[/.loop/agent supervise --] [sh -c "+strings.ReplaceAll(servedAtStartScript, "$", "$$")+"]" {
		t.Errorf("command %q args %q, want the image's CMD (its $ written $$) under the supervisor", c.Command, c.Args)
	}
	pid := pidServed(t, url)
	restartsInPlace(t, h, cs, ns, "rc", dir, url)
	if again := pidServed(t, url); again == pid {
		t.Fatalf("the process's pid is still %s: not restarted", pid)
	}
	if out, err := execIn(t, ns, pod.Name, "app", "sh", "-c", "id -u; ls /tmp/.loop 2>&1"); err == nil || !strings.HasPrefix(out, "65534\n") {
		t.Fatalf("user and /tmp/.loop: %q, %v; want 65534 and no agent installed in /tmp (the session runs the pod's)", out, err)
	}
}

// TestKubeRestartReadOnlyRoot: docker_build_with_restart for a container with a
// read-only root filesystem: the supervisor runs (its agent and socket are on the
// pod's volume) and the pod serves; syncs cannot be written, which the log says
// once, and a save rebuilds and rolls out instead.
func TestKubeRestartReadOnlyRoot(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	ns := realNamespace(t, cs, "loop-rorestart")
	port := testenv.FreePort(t)
	dir := restartProject(t, "ro", port, realDeployment("ro", ns, "loop/ro", 1, "",
		"securityContext: {readOnlyRootFilesystem: true}\nvolumeMounts: [{name: tmp, mountPath: /tmp}]\n")+
		"      volumes: [{name: tmp, emptyDir: {}}]\n")
	h := startUp(t, dir, "up")
	h.waitReady(3*time.Minute, "ro")
	h.waitLog("ro", time.Minute, "read-only root filesystem and cannot be written at /app", "changes rebuild")
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	waitServed(t, url+"msg", "v1", time.Minute)
	if c := onePod(t, cs, ns, "app=ro").Spec.Containers[0]; !strings.HasPrefix(fmt.Sprint(c.Command), "[/.loop/agent supervise -- ") {
		t.Errorf("command %q, want the supervisor's", c.Command)
	}
	t0 := time.Now()
	writeFiles(t, dir, map[string]string{"app/msg": "v2"})
	if u := h.waitUpdate("ro", t0, 3*time.Minute); u.Kind != api.UpdateRebuild || u.Error != "" {
		t.Fatalf("the save's update: %+v, want a rebuild", u)
	}
	waitServed(t, url+"msg", "v2", 2*time.Minute)
}

// restartProject writes a project into a new temp dir and returns it: image
// loop/<resource> (app/ on busybox) built by docker_build_with_restart, its
// entrypoint servedAtStart, live-updated by sync('app', '/app'), deployed by
// manifest as resource, whose port 8080 is forwarded to port.
func restartProject(t *testing.T, resource string, port int, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM loop/busybox:latest\nCOPY app /app\n",
		"app/msg":    "v1",
		"k8s.yaml":   manifest,
		"Tiltfile": fmt.Sprintf(`load('ext://restart_process', 'docker_build_with_restart')
docker_build_with_restart('loop/%[1]s', '.', entrypoint=%[2]s, live_update=[sync('app', '/app')])
k8s_yaml('k8s.yaml')
k8s_resource(%[1]q, port_forwards=['%[3]d:8080'])
`, resource, strings.ReplaceAll(servedAtStart, "$", "$$"), port), // entrypoint= is a pod template's command: $$ is $
	})
	return dir
}

// servedAtStartScript copies /app/msg and the shell's pid (exec keeps it) where
// httpd serves them, at start: what is served changes only when the process
// restarts. Written to /tmp (writable by any user). It listens 0.3 s after it
// starts, so requests in between are refused.
const servedAtStartScript = "mkdir -p /tmp/srv && cp /app/msg /tmp/srv/msg && echo $$ > /tmp/srv/pid && sleep 0.3 && exec httpd -f -p 8080 -h /tmp/srv"

// servedAtStart is servedAtStartScript as an entrypoint (Starlark and JSON).
var servedAtStart = fmt.Sprintf(`["sh", "-c", %q]`, servedAtStartScript)

// pidServed is the pid the served process wrote at its start.
func pidServed(t *testing.T, url string) string {
	t.Helper()
	got, err := httpGet(url + "pid")
	if err != nil || strings.TrimSpace(got) == "" {
		t.Fatalf("GET %spid: %q, %v", url, got, err)
	}
	return strings.TrimSpace(got)
}

// onePod is the one pod of ns that selector selects (not going away).
func onePod(t *testing.T, cs kubernetes.Interface, ns, selector string) corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	eventually(t, time.Minute, func() error {
		if pods = podsOf(t, cs, ns, selector); len(pods) != 1 {
			return fmt.Errorf("%d pods %s in %s, want 1", len(pods), selector, ns)
		}
		return nil
	})
	return pods[0]
}

func restarts(p corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}

func running(p corev1.Pod) bool {
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Running == nil {
			return false
		}
	}
	return p.Status.Phase == corev1.PodRunning && len(p.Status.ContainerStatuses) > 0
}

// nsDeployment is the YAML of Namespace ns and a Deployment name in it
// whose one container is container (a YAML flow mapping).
func nsDeployment(ns, name, container string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers:
      - %[3]s
`, ns, name, container)
}

// deploymentContainer is the first container of Deployment name in ns.
func deploymentContainer(t *testing.T, ns, name string) map[string]any {
	t.Helper()
	dep, err := kubeClient(t).Resource(gvrDeployment).Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		t.Fatalf("deployment %s/%s has no containers", ns, name)
	}
	c, _ := cs[0].(map[string]any)
	return c
}

// logCount is how many lines of the resource's log contain sub.
func (h *harness) logCount(resource, sub string) int {
	h.t.Helper()
	n := 0
	h.waitFor("the log of "+resource, time.Second, func() bool {
		n = 0
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == resource && strings.Contains(ev.Text, sub) {
				n++
			}
		}
		return true
	})
	return n
}
