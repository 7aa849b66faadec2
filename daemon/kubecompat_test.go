package daemon_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/internal/testenv"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

// TestKubeCompatAssembles: the Kubernetes patterns of testdata/kubecompat
// assemble as Tilt assembles them: an extension under tilt_modules finds its
// data folder; helm_resource's chart is one resource of its name (Deployment,
// Service and ConfigMap), its image dep injected through image_keys and built,
// its k8s_resource arguments applied; helm_remote's objects are grouped by
// workload; k8s_custom_deploy is a resource whose objects its apply_cmd prints
// when it runs, its deps watched.
func TestKubeCompatAssembles(t *testing.T) {
	dir, err := filepath.Abs(filepath.Join("testdata", "kubecompat"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECOMPAT_KUBECTL", "")
	ctx := context.Background()
	cfg, err := tiltfile.Load(ctx, filepath.Join(dir, "Tiltfile"), tiltfile.Options{
		Subcommand: "dump", ExtensionsDir: filepath.Join(dir, "tilt_modules"), Output: &strings.Builder{}})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	rs, err := daemon.Resources(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(p string) string { return strings.TrimPrefix(p, dir+"/") }
	var got []string
	for _, r := range rs {
		line := fmt.Sprintf("%s %s deps=%v labels=%v", r.Name, r.Type, r.ResourceDeps, r.Labels)
		for _, o := range r.Objects {
			line += " " + o.Kind + "/" + o.Namespace + "/" + o.Name
		}
		for _, img := range r.Images {
			line += " image=" + img.Ref + "@" + rel(img.Context)
		}
		if c := r.Custom; c != nil {
			line += " apply=" + strings.Join(c.ApplyCmd, " ") + " watches=" + rel(strings.Join(c.Deps, ","))
		}
		for _, l := range r.Links {
			line += " link=" + l.URL
		}
		got = append(got, line)
	}
	want := []string{
		"charts local deps=[] labels=[charts]",
		"web k8s deps=[charts] labels=[charts] Namespace//kubecompat ConfigMap/kubecompat/web-config Service/kubecompat/web Deployment/kubecompat/web image=example/hello@hello link=http://localhost:18080",
		`custom k8s deps=[web] labels=[] apply=sh -c sed "s/NAMESPACE/$NS/" custom.yaml | kubectl apply -f - -o yaml watches=custom.yaml`,
		"remote k8s deps=[web] labels=[] Deployment/kubecompat/remote Service/kubecompat/remote ConfigMap/kubecompat/remote-config",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resources:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKubeCompatOnCluster: loop ci brings testdata/kubecompat up on the test
// cluster (the extension that walks up to tilt_modules loads; helm_resource
// installs its local chart; helm_remote's chart deploys; k8s_custom_deploy's
// apply_cmd applies and prints its objects) and loop down removes it all:
// the chart's objects deleted, the delete_cmd run.
func TestKubeCompatOnCluster(t *testing.T) {
	dyn := kubeClient(t)
	dir := copyTree(t, filepath.Join("testdata", "kubecompat"))
	ns := fmt.Sprintf("kubecompat-%d", time.Now().UnixNano()%1000000)
	t.Setenv("KUBECOMPAT_NAMESPACE", ns)
	t.Setenv("KUBECOMPAT_KUBECTL", "env LOOP_TEST_KUBECTL=1 "+os.Args[0])
	o := daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile"), ExtensionsDir: filepath.Join(dir, "tilt_modules")}
	t.Cleanup(func() { _ = daemon.Down(context.Background(), o, false) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := daemon.CI(ctx, o); err != nil {
		t.Fatalf("ci: %v", err)
	}
	present := func(what string, get func() error) {
		t.Helper()
		if err := get(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
	for _, name := range []string{"web", "remote"} {
		present("deployment "+name, func() error {
			_, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
			return err
		})
	}
	var webImage string
	present("the image dep injected into web", func() error {
		d, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
		if len(cs) > 0 {
			webImage, _ = cs[0].(map[string]any)["image"].(string)
		}
		// The built ref, maybe renamed for the cluster's registry (example_hello).
		if !regexp.MustCompile(`example[/_]hello:loop-`).MatchString(webImage) {
			return fmt.Errorf("web runs %q, want the built example/hello", webImage)
		}
		return nil
	})
	present("custom-config applied by apply_cmd", func() error {
		_, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "custom-config", metav1.GetOptions{})
		return err
	})

	if err := daemon.Down(ctx, o, false); err != nil {
		t.Fatalf("down: %v", err)
	}
	for _, c := range []struct {
		what string
		get  func() error
	}{
		{"deployment web", func() error {
			_, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
			return err
		}},
		{"deployment remote", func() error {
			_, err := dyn.Resource(gvrDeployment).Namespace(ns).Get(ctx, "remote", metav1.GetOptions{})
			return err
		}},
		{"configmap custom-config", func() error {
			_, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "custom-config", metav1.GetOptions{})
			return err
		}},
	} {
		if err := c.get(); !apierrors.IsNotFound(err) {
			t.Errorf("after down, %s: %v, want not found", c.what, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "deleted.txt")); err != nil {
		t.Errorf("delete_cmd did not run: %v", err)
	}
}

// copyTree copies the directory src into a temp dir.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

// fakeKubectl is the kubectl the cluster tests give k8s_custom_deploy
// commands (the test binary run with LOOP_TEST_KUBECTL=1): `apply` applies
// the YAML on stdin server-side and prints the live objects as YAML,
// `delete` deletes them. It returns the exit code.
func fakeKubectl(args []string) int {
	if err := runFakeKubectl(args); err != nil {
		fmt.Fprintln(os.Stderr, "kubectl:", err)
		return 1
	}
	return 0
}

func runFakeKubectl(args []string) error {
	if len(args) == 0 {
		return errors.New("no verb")
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	objs, err := render.Parse(data)
	if err != nil {
		return err
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil).ClientConfig()
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	ctx := context.Background()
	var out []*unstructured.Unstructured
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		ri := dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		switch args[0] {
		case "apply":
			live, err := ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "kubecompat-test", Force: true})
			if err != nil {
				return err
			}
			out = append(out, live)
		case "delete":
			if err := ri.Delete(ctx, o.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		default:
			return fmt.Errorf("unknown verb %q", args[0])
		}
	}
	text, err := render.Encode(out)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(text)
	return err
}

// BenchmarkKubeCompatAssemble: what `loop dump resources` does on
// testdata/kubecompat: load the Tiltfile (three in-process chart renders, an
// extension found under tilt_modules) and assemble its resources.
func BenchmarkKubeCompatAssemble(b *testing.B) {
	dir, err := filepath.Abs(filepath.Join("testdata", "kubecompat"))
	if err != nil {
		b.Fatal(err)
	}
	b.Setenv("KUBECOMPAT_KUBECTL", "")
	ctx := context.Background()
	for b.Loop() {
		cfg, err := tiltfile.Load(ctx, filepath.Join(dir, "Tiltfile"), tiltfile.Options{
			Subcommand: "dump", ExtensionsDir: filepath.Join(dir, "tilt_modules"), Output: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := daemon.Resources(ctx, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// TestKubeCustomDeployLiveUpdate: a k8s_custom_deploy's live_update reaches the
// containers container_selector names in the pods of the objects its apply_cmd
// printed: a saved file is synced into them without running apply_cmd again.
func TestKubeCustomDeployLiveUpdate(t *testing.T) {
	dyn := kubeClient(t)
	ns := testenv.ExecNamespace
	name := fmt.Sprintf("kcustom-%d", time.Now().UnixNano()%1000000)
	target := testenv.ExecDir(t)
	dir := t.TempDir()
	t.Setenv("KUBECOMPAT_KUBECTL", "env LOOP_TEST_KUBECTL=1 "+os.Args[0])
	writeFiles(t, dir, map[string]string{
		"Tiltfile": fmt.Sprintf(`k8s_custom_deploy('%[1]s',
    apply_cmd='echo applied >> applies.txt; $KUBECOMPAT_KUBECTL apply -f - -o yaml < k8s.yaml',
    delete_cmd='$KUBECOMPAT_KUBECTL delete -f - < k8s.yaml',
    container_selector='web',
    live_update=[sync('src', '%[2]s/app')])
`, name, target),
		"k8s.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - {name: sidecar, image: example/sidecar}
      - {name: web, image: example/not-built-here}
`, name, ns),
		"src/a.txt": "v1\n",
	})
	t.Cleanup(func() {
		_ = dyn.Resource(gvrDeployment).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	h.waitFor(name+" ready", 3*time.Minute, func() bool { return h.status[name].Phase == api.PhaseReady })
	saveSyncedLive(t, h, dir, name, target)
	if b, _ := os.ReadFile(filepath.Join(dir, "applies.txt")); string(b) != "applied\n" {
		t.Errorf("apply_cmd ran %q, want once", b)
	}
}

// TestKubeHelmResourceLiveUpdate: helm_resource's live_update with
// image_selector (an image of the chart's that loop does not build, any
// tag) syncs saved files into the containers running it, as the extension
// does through k8s_custom_deploy; the chart is not re-applied for it.
func TestKubeHelmResourceLiveUpdate(t *testing.T) {
	dyn := kubeClient(t)
	ns := testenv.ExecNamespace
	name := fmt.Sprintf("khelmlu-%d", time.Now().UnixNano()%1000000)
	target := testenv.ExecDir(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile": fmt.Sprintf(`load('ext://helm_resource', 'helm_resource')
helm_resource('%[1]s', 'chart', namespace='%[2]s', image_selector='example/chart-web',
    live_update=[sync('src', '%[3]s/app')])
`, name, ns, target),
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"chart/templates/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}}
spec:
  replicas: 1
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - {name: sidecar, image: example/sidecar}
      - {name: web, image: "example/chart-web:1.2"}
`,
		"src/a.txt": "v1\n",
	})
	t.Cleanup(func() {
		_ = dyn.Resource(gvrDeployment).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	h := startUp(t, dir, "up")
	h.waitFor(name+" ready", 3*time.Minute, func() bool { return h.status[name].Phase == api.PhaseReady })
	saveSyncedLive(t, h, dir, name, target)
}

// saveSyncedLive saves src/a.txt in dir and waits for it in target/app (the
// kwok node's exec writes there) and for name's live update to be reported.
func saveSyncedLive(t *testing.T, h *harness, dir, name, target string) {
	t.Helper()
	writeFiles(t, dir, map[string]string{"src/a.txt": "v2\n"})
	h.waitFor("src/a.txt synced into the web container", time.Minute, func() bool {
		b, _ := os.ReadFile(filepath.Join(target, "app", "a.txt"))
		return string(b) == "v2\n"
	})
	var u *api.Update
	h.waitFor("the live update reported", time.Minute, func() bool {
		u = h.status[name].LastUpdate
		return u != nil && u.Kind != api.UpdateInit && !u.Ready.IsZero()
	})
	if u.Kind != api.UpdateLive || u.Error != "" {
		t.Errorf("last update %+v, want a live update", u)
	}
}
