package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

// TestKubeDockerBuildWithRestart: the built-in docker_build_with_restart on
// the test cluster: the pod template runs the entrypoint as its command
// (nothing pulled, no helper image); the process cannot be restarted in a
// pod, so a synced change rebuilds and rolls the Deployment to a new image
// instead of syncing into the old process.
func TestKubeDockerBuildWithRestart(t *testing.T) {
	testenv.BusyboxAs(t, "loop/busybox:latest")
	dyn := kubeClient(t)
	ns := fmt.Sprintf("loop-restart-%d", time.Now().UnixNano()%1000000)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": "FROM loop/busybox:latest\nCOPY app /app\n",
		"app/msg":    "v1",
		"k8s.yaml":   nsDeployment(ns, "rapp", "{name: app, image: loop/rapp}"),
		"Tiltfile": `load('ext://restart_process', 'docker_build_with_restart')
docker_build_with_restart('loop/rapp', '.', entrypoint=['httpd', '-f', '-h', '/app'], live_update=[sync('app', '/app')])
k8s_yaml('k8s.yaml')
`,
	})
	t.Cleanup(func() {
		_ = dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("rapp", 1, 3*time.Minute)
	if c := deploymentContainer(t, ns, "rapp"); fmt.Sprint(c["command"]) != "[httpd -f -h /app]" {
		t.Errorf("command %v, want the entrypoint", c["command"])
	}
	first := st.Image
	writeFiles(t, dir, map[string]string{"app/msg": "v2"})
	st = h.waitUpdates("rapp", 2, 3*time.Minute)
	if u := st.LastUpdate; u == nil || u.Kind == api.UpdateLive || st.Image == first {
		t.Fatalf("after a synced change: update %+v image %s (was %s), want a rebuild to a new image", st.LastUpdate, st.Image, first)
	}
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
