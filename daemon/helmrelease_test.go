package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
)

var (
	gvrSecret    = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	gvrNamespace = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
)

// helm_resource is a Helm release, as the extension's helm upgrade --install
// makes one: each deploy is a revision recorded where the helm CLI reads it
// (Secrets owner=helm), a change to a dep re-applies the chart even when it
// renders the same (an object changed in the cluster is put back), a values
// file change applies the new render, and loop down uninstalls the release.
func TestHelmResourceRelease(t *testing.T) {
	dyn := kubeClient(t)
	dir := copyTree(t, filepath.Join("testdata", "helmrelease"))
	ns := fmt.Sprintf("helmrelease-%d", time.Now().UnixNano()%1000000)
	t.Setenv("HELMRELEASE_NAMESPACE", ns)
	t.Cleanup(func() {
		_ = dyn.Resource(gvrNamespace).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	ctx := context.Background()
	greeting := func() (string, error) {
		cm, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "greeter-rel-config", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		g, _, _ := unstructured.NestedString(cm.Object, "data", "greeting")
		return g, nil
	}
	wantGreeting := func(want string) {
		t.Helper()
		eventually(t, time.Minute, func() error {
			g, err := greeting()
			if err != nil {
				return fmt.Errorf("read the greeting: %w", err)
			}
			if g != want {
				return fmt.Errorf("greeting %q, want %q", g, want)
			}
			return nil
		})
	}
	// revisions lists the release's records: version → status.
	revisions := func() map[string]string {
		t.Helper()
		l, err := dyn.Resource(gvrSecret).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=greeter-rel"})
		if err != nil {
			t.Fatalf("list release secrets: %v", err)
		}
		out := map[string]string{}
		for _, s := range l.Items {
			out[s.GetLabels()["version"]] = s.GetLabels()["status"]
		}
		return out
	}

	h := startUp(t, dir, "up")
	h.waitFor("greeter ready", 3*time.Minute, func() bool { return h.status["greeter"].Phase == api.PhaseReady })
	wantGreeting("hello")
	if got := revisions(); len(got) != 1 || got["1"] != "deployed" {
		t.Fatalf("release records after the first deploy: %v, want revision 1 deployed", got)
	}

	// Someone changes the object in the cluster; a dep the render does not
	// read changes: the release is applied again and the object put back.
	cm, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "greeter-rel-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cm.Object, "changed by hand", "data", "greeting"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(gvrConfigMap).Namespace(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantGreeting("changed by hand")
	writeFiles(t, dir, map[string]string{"notes.txt": "edited\n"})
	wantGreeting("hello")

	// The values file (a --values flag) changes: the new render is applied.
	writeFiles(t, dir, map[string]string{"values.yaml": "greeting: bonjour\n"})
	wantGreeting("bonjour")
	eventually(t, time.Minute, func() error {
		got := revisions()
		var deployed []string
		for v, st := range got {
			if st == "deployed" {
				deployed = append(deployed, v)
			} else if st != "superseded" {
				return fmt.Errorf("revision %s is %s", v, st)
			}
		}
		sort.Strings(deployed)
		if len(got) < 3 || len(deployed) != 1 || deployed[0] != fmt.Sprint(len(got)) {
			return fmt.Errorf("release records %v, want 3 or more revisions, the last one deployed and only it", got)
		}
		return nil
	})

	h.stop()
	if err := daemon.Down(ctx, daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")}, false); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := greeting(); !apierrors.IsNotFound(err) {
		t.Errorf("after down, the ConfigMap: %v, want not found", err)
	}
	if got := revisions(); len(got) != 0 {
		t.Errorf("after down, release records %v, want none (uninstalled)", got)
	}
}

// uninstall_flags=['--keep-history']: loop down deletes the objects and keeps
// the release's last revision, marked uninstalled, as helm uninstall does.
func TestHelmResourceKeepHistory(t *testing.T) {
	dyn := kubeClient(t)
	dir := copyTree(t, filepath.Join("testdata", "helmrelease"))
	ns := fmt.Sprintf("helmrelease-%d", time.Now().UnixNano()%1000000)
	t.Setenv("HELMRELEASE_NAMESPACE", ns)
	t.Setenv("HELMRELEASE_UNINSTALL_FLAG", "--keep-history")
	t.Cleanup(func() {
		_ = dyn.Resource(gvrNamespace).Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")}
	if err := daemon.CI(ctx, o); err != nil {
		t.Fatalf("ci: %v", err)
	}
	if err := daemon.Down(ctx, o, false); err != nil {
		t.Fatalf("down: %v", err)
	}
	if _, err := dyn.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "greeter-rel-config", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("after down, the ConfigMap: %v, want not found", err)
	}
	l, err := dyn.Resource(gvrSecret).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=greeter-rel"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range l.Items {
		got = append(got, s.GetLabels()["version"]+" "+s.GetLabels()["status"])
	}
	if len(got) != 1 || got[0] != "1 uninstalled" {
		t.Errorf("after down, release records %v, want [1 uninstalled]", got)
	}
}
