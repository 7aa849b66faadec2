package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// kubeClient connects to the test control plane (make test-cluster) as a user would,
// through KUBECONFIG.
func kubeClient(t testing.TB) dynamic.Interface {
	t.Helper()
	dyn, err := dynamic.NewForConfig(testenv.KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	return dyn
}

var (
	gvrDeployment = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	gvrConfigMap  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrService    = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

func kubeManifest(ns, greeting string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata:
  name: %[1]s
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: kapp-config
  namespace: %[1]s
data:
  greeting: %[2]s
---
apiVersion: v1
kind: Service
metadata:
  name: kapp
  namespace: %[1]s
spec:
  selector: {app: kapp}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kapp
  namespace: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: kapp}
  template:
    metadata:
      labels: {app: kapp}
    spec:
      containers:
      - name: web
        image: loop/kapp
        ports: [{containerPort: 8080}]
`, ns, greeting)
}

// TestKubeUpDeploysRebuildsAndRedeploys runs `up` on a project with a docker_build and
// k8s_yaml against the real control plane: the workload, the Service that selects its
// pods and the object k8s_resource attaches are one resource, the rest (the Namespace)
// "uncategorized"; the built image ref lands in the
// pod template; the pod's output reaches the resource's log; a workload dropped from
// the manifest is deleted from the cluster; an edited manifest is re-rendered and applied; an edited source file
// rebuilds and rolls the Deployment to the new ref; an object changed behind loop's
// back is reported as drift until the next deploy; a broken manifest is an error with
// its file and line while the deploy stays; `down` deletes what was applied.
func TestKubeUpDeploysRebuildsAndRedeploys(t *testing.T) {
	testenv.BusyboxAs(t, "loop/busybox:latest")
	dyn := kubeClient(t)
	ns := fmt.Sprintf("loop-kube-up-%d", time.Now().UnixNano()%1000000)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile": `docker_build('loop/kapp', 'app')
k8s_yaml('k8s/app.yaml')
k8s_resource('kapp', objects=['kapp-config:configmap'], labels=['k8s'],
             port_forwards=[port_forward(18093, 8080, name='web')], links=[link('https://docs.example/kapp', 'docs')])
`,
		"app/Dockerfile":  "FROM loop/busybox:latest\nCOPY index.html /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
		"app/index.html":  "one\n",
		"k8s/app.yaml":    kubeManifest(ns, "hello") + extraWorkload(ns),
		"app/.gitkeep":    "",
		"k8s/README.text": "not a manifest\n",
	})
	t.Cleanup(func() {
		_ = dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	ready := func(names ...string) func() bool {
		return func() bool {
			for _, n := range names {
				if h.status[n].Phase != api.PhaseReady {
					return false
				}
			}
			return true
		}
	}
	h.waitFor("kapp, extra and uncategorized ready", 3*time.Minute, ready("kapp", "extra", "uncategorized"))

	ctx := context.Background()
	dep, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "kapp", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	image1, policy := containerImage(dep)
	// The test cluster advertises a registry (KEP-1755): the image was pushed there and
	// the Deployment names it from there.
	reg := clusterRegistry(t, dyn)
	if !strings.HasPrefix(image1, reg+"/loop_kapp:loop-") || policy != "IfNotPresent" {
		t.Fatalf("deployment image %q policy %q, want the built %s/loop_kapp:<tag> with IfNotPresent", image1, policy, reg)
	}
	testenv.RegistryHas(t, image1)
	if st := h.statusOf("kapp"); st.Image != image1 || st.Type != "k8s" || len(st.Labels) != 1 {
		t.Fatalf("status of kapp = %+v, want type k8s, image %s, label k8s", st, image1)
	}
	if l := h.statusOf("kapp").Links; len(l) != 2 || l[0] != (api.Link{URL: "https://docs.example/kapp", Name: "docs"}) ||
		l[1] != (api.Link{URL: "http://localhost:18093/", Name: "web"}) {
		t.Fatalf("links of kapp = %+v, want links= then the port forward", l)
	}
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		name string
		app  string
	}{{gvrDeployment, "kapp", "kapp"}, {gvrConfigMap, "kapp-config", "kapp"}, {gvrService, "kapp", "kapp"}} {
		live, err := dyn.Resource(o.gvr).Namespace(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s %s: %v", o.gvr.Resource, o.name, err)
		}
		if got := live.GetLabels()["loop.dev/app"]; got != o.app {
			t.Errorf("%s %s is tracked as app %q, want %q", o.gvr.Resource, o.name, got, o.app)
		}
	}

	// The pod's output reaches the resource's log (on the test cluster kwok serves
	// every container's log from one file, in the CRI log format).
	podLine := "hello from the pod in " + ns
	logFile := filepath.Join(filepath.Dir(os.Getenv("KUBECONFIG")), "kwok", "logs", "pod-logs.log")
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("the test cluster's pod log file: %v", err)
	}
	_, err = fmt.Fprintf(f, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), podLine)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("the pod's log line in kapp's log", 30*time.Second, func() bool {
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == "kapp" && ev.Text == podLine {
				return true
			}
		}
		return false
	})

	// An object edited behind loop's back shows as drift (OutOfSync).
	cm, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "kapp-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cm.Object, "changed by hand", "data", "greeting"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvrConfigMap).Namespace(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Well before the 30 s periodic compare: the objects' watch reports the edit.
	h.waitFor("kapp's ConfigMap out of sync", 10*time.Second, func() bool {
		d := h.status["kapp"].Drift
		return len(d) == 1 && d[0] == "/ConfigMap/"+ns+"/kapp-config"
	})
	if d := h.statusOf("uncategorized").Drift; len(d) != 0 {
		t.Fatalf("uncategorized drifted too: %v", d)
	}

	// An edited manifest is rendered again and applied.
	writeFiles(t, dir, map[string]string{"k8s/app.yaml": kubeManifest(ns, "edited")})
	eventually(t, time.Minute, func() error {
		cm, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "kapp-config", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if g, _, _ := unstructured.NestedString(cm.Object, "data", "greeting"); g != "edited" {
			return fmt.Errorf("greeting is %q", g)
		}
		return nil
	})
	h.waitFor("kapp ready and in sync after the manifest edit", time.Minute, func() bool {
		return h.status["kapp"].Phase == api.PhaseReady && len(h.status["kapp"].Drift) == 0
	})
	// The edit also dropped the workload extra: its resource left the config, and its
	// Deployment leaves the cluster (as in Tilt).
	eventually(t, time.Minute, func() error {
		live, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "extra", metav1.GetOptions{})
		if err == nil && live.GetDeletionTimestamp() == nil {
			return errors.New("deployment extra is still there after its resource left the config")
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	})
	if _, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "kapp", metav1.GetOptions{}); err != nil {
		t.Fatalf("deployment kapp went with extra: %v", err)
	}

	// An edited source rebuilds the image and rolls the Deployment to it.
	writeFiles(t, dir, map[string]string{"app/index.html": "two\n"})
	var image2 string
	eventually(t, 2*time.Minute, func() error {
		dep, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "kapp", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if image2, _ = containerImage(dep); image2 == image1 {
			return fmt.Errorf("image still %s", image2)
		}
		return nil
	})
	h.waitFor("kapp ready after the rebuild", time.Minute, ready("kapp"))
	t.Logf("image %s, after the edit %s", image1, image2)
	if !strings.HasPrefix(image2, reg+"/loop_kapp:loop-") {
		t.Fatalf("after the rebuild the image is %q", image2)
	}
	testenv.RegistryHas(t, image2)
	if u := h.statusOf("kapp").LastUpdate; u == nil || u.Kind != api.UpdateRebuild || u.Edit.IsZero() {
		t.Fatalf("last update of kapp = %+v, want a timed rebuild", u)
	}

	// A broken manifest: an error naming the file and line; what runs stays.
	writeFiles(t, dir, map[string]string{"k8s/app.yaml": kubeManifest(ns, "edited") + "---\nkind: [broken\n"})
	brokenLine := fmt.Sprintf("line %d", strings.Count(kubeManifest(ns, "edited"), "\n")+2)
	eventually(t, time.Minute, func() error {
		for _, e := range h.configErrors() {
			if strings.Contains(e, "app.yaml") && strings.Contains(e, brokenLine) {
				t.Logf("config error: %s", e)
				return nil
			}
		}
		return fmt.Errorf("no config error naming app.yaml and %s: %q", brokenLine, h.configErrors())
	})
	if st := h.statusOf("kapp"); st.Phase != api.PhaseReady {
		t.Fatalf("kapp is %s while the manifest is broken, want it to keep running", st.Phase)
	}
	writeFiles(t, dir, map[string]string{"k8s/app.yaml": kubeManifest(ns, "fixed")})
	eventually(t, time.Minute, func() error {
		cm, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "kapp-config", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if g, _, _ := unstructured.NestedString(cm.Object, "data", "greeting"); g != "fixed" {
			return fmt.Errorf("greeting is %q", g)
		}
		return nil
	})

	h.stop()
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := daemon.Down(dctx, daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")}, false); err != nil {
		t.Fatalf("down: %v", err)
	}
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		name string
	}{{gvrDeployment, "kapp"}, {gvrConfigMap, "kapp-config"}, {gvrService, "kapp"}} {
		live, err := dyn.Resource(o.gvr).Namespace(ns).Get(ctx, o.name, metav1.GetOptions{})
		if err == nil && live.GetDeletionTimestamp() == nil {
			t.Errorf("%s %s is still there after down", o.gvr.Resource, o.name)
		} else if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("%s %s: %v", o.gvr.Resource, o.name, err)
		}
	}
}

// extraWorkload is a second Deployment, a resource of its own.
func extraWorkload(ns string) string {
	return fmt.Sprintf(`---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: extra
  namespace: %s
spec:
  replicas: 1
  selector:
    matchLabels: {app: extra}
  template:
    metadata:
      labels: {app: extra}
    spec:
      containers:
      - name: c
        image: busybox
`, ns)
}

// clusterRegistry is the registry host the test cluster advertises in its KEP-1755
// ConfigMap (scripts/test-cluster.sh).
func clusterRegistry(t *testing.T, dyn dynamic.Interface) string {
	t.Helper()
	cm, err := dyn.Resource(gvrConfigMap).Namespace("kube-public").Get(context.Background(), "local-registry-hosting", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the test cluster's local-registry-hosting ConfigMap: %v", err)
	}
	data, _, _ := unstructured.NestedString(cm.Object, "data", "localRegistryHosting.v1")
	for _, l := range strings.Split(data, "\n") {
		if h, ok := strings.CutPrefix(l, "host: "); ok {
			return strings.Trim(h, `"`)
		}
	}
	t.Fatalf("no host in %q", data)
	return ""
}

func containerImage(dep *unstructured.Unstructured) (image, policy string) {
	cs, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	if len(cs) == 0 {
		return "", ""
	}
	c, _ := cs[0].(map[string]any)
	image, _ = c["image"].(string)
	policy, _ = c["imagePullPolicy"].(string)
	return image, policy
}

// TestKubeRefusesRemoteContext: a kube context that is not local is refused with a
// message naming allow_k8s_contexts; once the Tiltfile allows it, the deploy goes
// through to the cluster.
func TestKubeRefusesRemoteContext(t *testing.T) {
	dyn := kubeClient(t)
	src, err := clientcmd.LoadFromFile(os.Getenv("KUBECONFIG"))
	if err != nil {
		t.Fatal(err)
	}
	cur := src.Contexts[src.CurrentContext]
	if cur == nil {
		t.Fatalf("kubeconfig has no current context")
	}
	// The same cluster under a name that is not a local one.
	remote := src.DeepCopy()
	remote.Contexts = map[string]*clientcmdapi.Context{"prod-eu": cur}
	remote.CurrentContext = "prod-eu"
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*remote, kc); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	name := fmt.Sprintf("loop-remote-%d", time.Now().UnixNano()%1000000)
	manifest := fmt.Sprintf("k8s_yaml(blob('apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\n  namespace: default\\ndata:\\n  a: b\\n'))\n", name)
	dir := t.TempDir()
	tf := filepath.Join(dir, "Tiltfile")
	writeFiles(t, dir, map[string]string{"Tiltfile": manifest})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err = daemon.CI(ctx, daemon.Options{Tiltfile: tf})
	if !errors.Is(err, daemon.ErrResourceFailed) || !strings.Contains(err.Error(), "allow_k8s_contexts") || !strings.Contains(err.Error(), "prod-eu") {
		t.Fatalf("ci on a remote context: %v, want a refusal naming prod-eu and allow_k8s_contexts", err)
	}
	if _, err := dyn.Resource(gvrConfigMap).Namespace("default").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the refused deploy reached the cluster: %v", err)
	}

	writeFiles(t, dir, map[string]string{"Tiltfile": "allow_k8s_contexts('prod-eu')\n" + manifest})
	t.Cleanup(func() { _ = daemon.Down(context.Background(), daemon.Options{Tiltfile: tf}, false) })
	if err := daemon.CI(ctx, daemon.Options{Tiltfile: tf}); err != nil {
		t.Fatalf("ci with the context allowed: %v", err)
	}
	if _, err := dyn.Resource(gvrConfigMap).Namespace("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatalf("the allowed deploy did not reach the cluster: %v", err)
	}
}

// TestKubeArgoAppPrunesAndHeals: an argocd_app is one resource, synced into its
// destination namespace as its syncPolicy says: a manifest removed from the app's
// directory is pruned (automated.prune), and an object edited behind loop's back is put
// back (automated.selfHeal).
func TestKubeArgoAppPrunesAndHeals(t *testing.T) {
	dyn := kubeClient(t)
	ns := fmt.Sprintf("loop-argo-%d", time.Now().UnixNano()%1000000)
	app := "guestbook-" + ns[len("loop-argo-"):]
	dir := t.TempDir()
	cm := func(name, v string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\ndata:\n  v: %q\n", name, v)
	}
	writeFiles(t, dir, map[string]string{
		"Tiltfile": "argocd_app('apps/guestbook.yaml')\n",
		"apps/guestbook.yaml": fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %s
spec:
  source:
    path: guestbook
  destination:
    namespace: %s
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
`, app, ns),
		"guestbook/namespace.yaml": fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", ns),
		"guestbook/one.yaml":       cm("one", "1"),
		"guestbook/two.yaml":       cm("two", "2"),
	})
	t.Cleanup(func() {
		_ = dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	h.waitFor(app+" ready", 2*time.Minute, func() bool { return h.status[app].Phase == api.PhaseReady })
	ctx := context.Background()
	for _, n := range []string{"one", "two"} {
		if _, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, n, metav1.GetOptions{}); err != nil {
			t.Fatalf("configmap %s in the app's destination namespace: %v", n, err)
		}
	}

	// Removed from the tree: pruned.
	if err := os.Remove(filepath.Join(dir, "guestbook", "two.yaml")); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		live, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "two", metav1.GetOptions{})
		if err == nil && live.GetDeletionTimestamp() == nil {
			return errors.New("configmap two is still there")
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	})
	if _, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "one", metav1.GetOptions{}); err != nil {
		t.Fatalf("configmap one went with two: %v", err)
	}
	h.waitFor(app+" ready after the prune", time.Minute, func() bool { return h.status[app].Phase == api.PhaseReady })

	// Edited behind loop's back: healed.
	live, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "one", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(live.Object, "by hand", "data", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvrConfigMap).Namespace(ns).Update(ctx, live, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		live, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "one", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if v, _, _ := unstructured.NestedString(live.Object, "data", "v"); v != "1" {
			return fmt.Errorf("configmap one has v=%q, not healed yet", v)
		}
		return nil
	})
}

// TestKubeLiveUpdateIntoPods runs `up` on a docker_build with live_update deployed to
// the real control plane: a save under the sync reaches the pod's container through
// the sync agent over a Kubernetes exec stream, run() steps run there through exec,
// and the Deployment keeps its image (no rebuild); a change outside the syncs
// rebuilds, and live updates then reach the new pod. The test cluster runs execs into
// pods of testenv.ExecNamespace on this machine as user nobody, so the container
// paths are a directory made for the test (see scripts/test-cluster.sh).
func TestKubeLiveUpdateIntoPods(t *testing.T) {
	testenv.BusyboxAs(t, "loop/busybox:latest")
	dyn := kubeClient(t)
	ns := testenv.ExecNamespace
	name := fmt.Sprintf("klive-%d", time.Now().UnixNano()%1000000)
	target := testenv.ExecDir(t)
	dir := t.TempDir()
	manifest := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
      - name: web
        image: loop/klive
`, name, ns)
	writeFiles(t, dir, map[string]string{
		"Tiltfile": fmt.Sprintf(`docker_build('loop/klive', 'app', live_update=[
    sync('app/src', '%[1]s/app'),
    run('cat %[1]s/app/main.txt > %[1]s/ran.txt', trigger=['app/src/main.txt']),
])
k8s_yaml('k8s.yaml')
`, target),
		"app/Dockerfile":    "FROM loop/busybox:latest\nCOPY src /app\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/app\"]\n",
		"app/src/main.txt":  "v1\n",
		"app/src/other.txt": "other\n",
		"app/src/gone.txt":  "gone\n",
		"k8s.yaml":          manifest,
	})
	ctx := context.Background()
	t.Cleanup(func() {
		_ = dyn.Resource(gvrDeployment).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	h.waitFor(name+" ready", 3*time.Minute, func() bool { return h.status[name].Phase == api.PhaseReady })
	image := func() string {
		dep, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		img, _ := containerImage(dep)
		return img
	}
	image1 := image()
	readTarget := func(rel string) string {
		b, _ := os.ReadFile(filepath.Join(target, rel))
		return string(b)
	}
	waitLive := func(what string, since time.Time) *api.Update {
		t.Helper()
		var last *api.Update
		h.waitFor(what, time.Minute, func() bool {
			last = h.status[name].LastUpdate
			return last != nil && last.Started.After(since) && !last.Ready.IsZero()
		})
		if last.Kind != api.UpdateLive || last.Error != "" {
			t.Fatalf("%s: update %+v, want a live update without error", what, last)
		}
		return last
	}

	// A save under the sync: the file reaches the container and the run step runs.
	t0 := time.Now()
	writeFiles(t, dir, map[string]string{"app/src/main.txt": "v2\n"})
	u := waitLive("the first live update", t0)
	if got := readTarget("app/main.txt"); got != "v2\n" {
		t.Fatalf("synced file in the pod: %q, want v2", got)
	}
	if got := readTarget("ran.txt"); got != "v2\n" {
		t.Fatalf("run step's output in the pod: %q, want v2", got)
	}
	spans := map[api.SpanName]bool{}
	for _, s := range u.Spans {
		spans[s.Name] = true
	}
	if !spans["sync"] || !spans["run"] || spans["build"] || spans["deploy"] {
		t.Fatalf("live update spans %+v, want sync and run only", u.Spans)
	}
	// Files the run step does not trigger on: synced (a removal too), nothing run.
	if err := os.WriteFile(filepath.Join(target, "ran.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	writeFiles(t, dir, map[string]string{"app/src/other.txt": "changed\n"})
	if err := os.Remove(filepath.Join(dir, "app/src/gone.txt")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("other.txt synced and gone.txt removed in the pod", time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(target, "app/gone.txt"))
		return readTarget("app/other.txt") == "changed\n" && os.IsNotExist(err)
	})
	waitLive("the second live update", t0)
	if got := readTarget("ran.txt"); got != "" {
		t.Fatalf("the run step ran for files it does not trigger on: ran.txt = %q", got)
	}
	if got := image(); got != image1 {
		t.Fatalf("the live updates changed the deployment's image: %s → %s", image1, got)
	}

	// A pod that replaces the live-updated one starts from the image: the next update
	// first gives it every file synced since the deploy. (Its "file system" is this
	// machine's, so the test removes what the new container would not have.)
	gvrPod := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	pods, err := dyn.Resource(gvrPod).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("pods of %s: %v, %v", name, pods, err)
	}
	oldUID := pods.Items[0].GetUID()
	if err := os.RemoveAll(filepath.Join(target, "app")); err != nil {
		t.Fatal(err)
	}
	if err := dyn.Resource(gvrPod).Namespace(ns).Delete(ctx, pods.Items[0].GetName(), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, func() error {
		pods, err := dyn.Resource(gvrPod).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if phase, _, _ := unstructured.NestedString(p.Object, "status", "phase"); p.GetUID() != oldUID && phase == "Running" && p.GetDeletionTimestamp() == nil {
				return nil
			}
		}
		return errors.New("no new running pod yet")
	})
	t0 = time.Now()
	writeFiles(t, dir, map[string]string{"app/src/third.txt": "3\n"})
	waitLive("the live update after the pod was replaced", t0)
	_, goneErr := os.Stat(filepath.Join(target, "app/gone.txt"))
	if readTarget("app/main.txt") != "v2\n" || readTarget("app/other.txt") != "changed\n" || readTarget("app/third.txt") != "3\n" || !os.IsNotExist(goneErr) {
		t.Fatalf("the new pod lacks the files synced before it started: main %q, other %q, third %q, gone %v",
			readTarget("app/main.txt"), readTarget("app/other.txt"), readTarget("app/third.txt"), goneErr)
	}

	// A change outside the syncs rebuilds and rolls out; live updates reach the new pod.
	writeFiles(t, dir, map[string]string{
		"app/Dockerfile":   "FROM loop/busybox:latest\nCOPY src /app\nCMD [\"httpd\", \"-f\", \"-p\", \"8081\", \"-h\", \"/app\"]\n",
		"app/src/main.txt": "v3\n",
	})
	eventually(t, 2*time.Minute, func() error {
		if got := image(); got == image1 {
			return fmt.Errorf("image still %s", got)
		}
		return nil
	})
	h.waitFor(name+" ready after the rebuild", 2*time.Minute, func() bool {
		u := h.status[name].LastUpdate
		return h.status[name].Phase == api.PhaseReady && u != nil && u.Kind == api.UpdateRebuild && !u.Ready.IsZero()
	})
	t0 = time.Now()
	writeFiles(t, dir, map[string]string{"app/src/main.txt": "v4\n"})
	waitLive("a live update after the rebuild", t0)
	if got := readTarget("app/main.txt"); got != "v4\n" {
		t.Fatalf("synced file after the rebuild: %q, want v4", got)
	}
}
