package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/loop-dev/loop/daemon/gitops"
	"github.com/loop-dev/loop/daemon/gitops/argosync"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

func writeProject(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		writeFile(t, dir, name, data)
	}
}

// TestRenderArgoApps: loop render writes the Tiltfile's own objects by namespace and
// each Argo CD app (declared or generated) under its name, with built image refs.
func TestRenderArgoApps(t *testing.T) {
	dir := t.TempDir()
	writeProject(t, dir, map[string]string{
		"Tiltfile": "k8s_yaml('own.yaml')\nargocd_app('apps.yaml')\nargocd_appset('appset.yaml')\n",
		"own.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own, namespace: tools}\n",
		"apps.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source: {path: manifests}
  destination: {namespace: web-ns}
`,
		"appset.yaml": `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: envs}
spec:
  generators: [{list: {elements: [{env: dev}, {env: qa}]}}]
  template:
    metadata: {name: 'web-{{env}}'}
    spec: {source: {path: manifests}, destination: {namespace: '{{env}}'}}
`,
		"manifests/deploy.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example/web}]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: web-reader}
rules: []
`,
	})
	_, errOut, code := runLoop(t, dir, "render", "--out", "out", "--image", "example/web=example/web:loop-1")
	if code != 0 {
		t.Fatalf("render exit %d: %s", code, errOut)
	}
	for _, f := range []string{"tools/configmap-own.yaml", "web/web-ns/deployment-web.yaml", "web/_unnamespaced/clusterrole-web-reader.yaml",
		"web-dev/dev/deployment-web.yaml", "web-qa/qa/deployment-web.yaml"} {
		data, err := os.ReadFile(filepath.Join(dir, "out", f))
		if err != nil {
			t.Errorf("render --out did not write %s: %v\nstderr: %s", f, err, errOut)
			continue
		}
		if strings.HasPrefix(filepath.Base(f), "deployment") && !strings.Contains(string(data), "image: example/web:loop-1") {
			t.Errorf("%s lacks the built image ref:\n%s", f, data)
		}
	}
	out, _, code := runLoop(t, dir, "render")
	if code != 0 || strings.Count(out, "kind: Deployment") != 3 || !strings.Contains(out, "namespace: web-ns") {
		t.Fatalf("render stream (exit %d) lacks the apps' objects:\n%s", code, out)
	}

	// An app named like a namespace directory of the Tiltfile's objects is refused.
	writeProject(t, dir, map[string]string{"own.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own, namespace: web}\n"})
	_, errOut, code = runLoop(t, dir, "render", "--out", "out2")
	if code != 1 || !strings.Contains(errOut, `Argo CD app "web" would share`) {
		t.Fatalf("collision: exit %d, stderr %s", code, errOut)
	}
	// A render error names the Tiltfile line that declared the source.
	writeProject(t, dir, map[string]string{"apps.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source: {path: nowhere}
`})
	_, errOut, code = runLoop(t, dir, "render")
	if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "Tiltfile")+":2: ") || !strings.Contains(errOut, "nowhere") {
		t.Fatalf("render error: exit %d, stderr %s", code, errOut)
	}
}

// testKubeconfig is the test control plane's kubeconfig (make test-cluster); no cluster
// is a failure, never a skip.
func testKubeconfig(t *testing.T) string {
	t.Helper()
	kc := os.Getenv("KUBECONFIG")
	if kc == "" {
		kc = "/tmp/loop-test-cluster/kubeconfig"
		if _, err := os.Stat(kc); err != nil {
			t.Fatalf("no test cluster: KUBECONFIG is unset and %s is missing; run make test-cluster (make test does)", kc)
		}
	}
	t.Setenv("KUBECONFIG", kc)
	return kc
}

var (
	gvrNamespaces  = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrConfigMaps  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrDeployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// TestDiffOnCluster applies a project the way loop syncs it, then edits and removes
// objects behind loop's back: loop diff exits 0 while the cluster matches and 1 with a
// unified diff naming the changed fields once it does not.
func TestDiffOnCluster(t *testing.T) {
	kc := testKubeconfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := argosync.Connect("", nil)
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("loop-diff-%d", rand.IntN(1e6))
	nsObj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}}
	if _, err := c.Dynamic.Resource(gvrNamespaces).Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace (is the test cluster up? make test-cluster): %v", err)
	}
	t.Cleanup(func() { _ = c.Dynamic.Resource(gvrNamespaces).Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	dir := t.TempDir()
	writeProject(t, dir, map[string]string{
		"Tiltfile":   "docker_build('example/diffweb', '.')\nk8s_yaml('app.yaml')\nargocd_app('apps.yaml')\n",
		"Dockerfile": "FROM scratch\n",
		"app.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: own, namespace: %[1]s}
data: {greeting: hello}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: example/diffweb}]}
`, ns),
		"apps.yaml": fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: diff-argo}
spec:
  source: {path: manifests}
  destination: {namespace: %s}
`, ns),
		"manifests/cm.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: from-argo}\ndata: {k: v}\n",
		"manifests/old.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: old}\ndata: {k: old}\n",
	})
	// Apply what loop would: the built ref in the Deployment (as pushed to the test
	// cluster's registry), each app synced under its name.
	conf, err := tiltfile.Load(ctx, filepath.Join(dir, "Tiltfile"), tiltfile.Options{Output: &strings.Builder{}})
	if err != nil {
		t.Fatal(err)
	}
	apps, err := render.Apps(ctx, conf, render.Images{"example/diffweb": "127.0.0.1:5001/example_diffweb:loop-0123456789ab"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := argosync.NewSyncer(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		res, err := s.Sync(ctx, a.Objects, argosync.Options{App: a.Name, Namespace: a.Namespace, WaveTimeout: time.Minute})
		if err != nil || !res.Succeeded {
			t.Fatalf("sync %s: %v %+v", a.Name, err, res)
		}
	}

	// In sync: the live loop-built ref of the docker_build image counts as desired.
	out, errOut, code := runLoop(t, dir, "diff")
	if code != 0 || out != "" || !strings.Contains(errOut, "in sync: 4 objects in kube context kind-loop-test") {
		t.Fatalf("in-sync diff: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}

	// Edit two objects behind loop's back.
	cms := c.Dynamic.Resource(gvrConfigMaps).Namespace(ns)
	edit := func(ri interface {
		Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
		Update(context.Context, *unstructured.Unstructured, metav1.UpdateOptions, ...string) (*unstructured.Unstructured, error)
	}, name string, value any, path ...string) {
		t.Helper()
		o, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := unstructured.SetNestedField(o.Object, value, path...); err != nil {
			t.Fatal(err)
		}
		if _, err := ri.Update(ctx, o, metav1.UpdateOptions{FieldManager: "someone-else"}); err != nil {
			t.Fatal(err)
		}
	}
	edit(cms, "own", "edited", "data", "greeting")
	edit(c.Dynamic.Resource(gvrDeployments).Namespace(ns), "web", int64(3), "spec", "replicas")
	out, errOut, code = runLoop(t, dir, "diff")
	if code != 1 {
		t.Fatalf("drifted diff: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"# ConfigMap/" + ns + "/own (app ", "--- live/ConfigMap/" + ns + "/own\n+++ desired/ConfigMap/" + ns + "/own\n",
		"-  greeting: edited\n+  greeting: hello\n",
		"# apps/Deployment/" + ns + "/web (app ", "-  replicas: 3\n+  replicas: 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "from-argo") || strings.Contains(out, "managedFields") || strings.Contains(out, "resourceVersion") || strings.Contains(out, "status:") {
		t.Errorf("diff shows an unchanged object or server bookkeeping:\n%s", out)
	}
	if !strings.Contains(errOut, "2 of 4 objects differ from kube context kind-loop-test") {
		t.Errorf("stderr = %q", errOut)
	}

	// An object deleted behind loop's back is missing; one no longer rendered is extra.
	if err := cms.Delete(ctx, "from-argo", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "manifests", "old.yaml")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runLoop(t, dir, "diff", "-o", "json")
	if code != 1 {
		t.Fatalf("json diff: exit %d\n%s\n%s", code, out, errOut)
	}
	var rep gitops.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("diff -o json is not JSON: %v\n%s", err, out)
	}
	states := map[string]string{}
	for _, o := range rep.Objects {
		states[o.Key] = o.App + " " + o.State
	}
	for key, want := range map[string]string{
		"ConfigMap/" + ns + "/own":       "changed",
		"apps/Deployment/" + ns + "/web": "changed",
		"ConfigMap/" + ns + "/from-argo": "diff-argo missing",
		"ConfigMap/" + ns + "/old":       "diff-argo extra",
	} {
		if !strings.HasSuffix(states[key], want) {
			t.Errorf("%s = %q, want %q (all: %v)", key, states[key], want, states)
		}
	}
	if rep.Differ != 4 || rep.Context != "kind-loop-test" {
		t.Errorf("report differ %d context %q, want 4 in kind-loop-test", rep.Differ, rep.Context)
	}

	// A context that is not local is refused until allow_k8s_contexts names it.
	cfg, err := clientcmd.LoadFromFile(kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Contexts["staging"] = cfg.Contexts[cfg.CurrentContext]
	cfg.CurrentContext = "staging"
	staging := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, staging); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", staging)
	_, errOut, code = runLoop(t, dir, "diff")
	if code != 1 || !strings.Contains(errOut, `refusing to deploy to kube context "staging"`) || !strings.Contains(errOut, `allow_k8s_contexts("staging")`) {
		t.Fatalf("non-local context: exit %d, stderr %s", code, errOut)
	}
	writeProject(t, dir, map[string]string{"Tiltfile": "allow_k8s_contexts('staging')\nk8s_yaml('app.yaml')\n"})
	_, errOut, code = runLoop(t, dir, "diff")
	if code != 1 || !strings.Contains(errOut, "differ from kube context staging") {
		t.Fatalf("allowed context: exit %d, stderr %s", code, errOut)
	}
}

// TestDiffWithoutKubernetesObjects: nothing to compare is in sync, without a cluster.
func TestDiffWithoutKubernetesObjects(t *testing.T) {
	dir := t.TempDir()
	writeProject(t, dir, map[string]string{"Tiltfile": "local_resource('x', 'true')\n"})
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-such-kubeconfig"))
	_, errOut, code := runLoop(t, dir, "diff")
	if code != 0 || !strings.Contains(errOut, "declares no Kubernetes objects") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
}
