package daemon_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/loop-dev/loop/daemon"
)

// TestKubeArgoAppCreateNamespaceCI: the Application shape most teams write, automated
// prune and selfHeal with CreateNamespace=true, whose Job goes into a namespace that
// does not exist, passes `loop ci`: the namespace is made with the managed metadata, the
// Job completes, and `loop down` leaves the namespace (it is not the app's).
func TestKubeArgoAppCreateNamespaceCI(t *testing.T) {
	dyn := kubeClient(t)
	ns := fmt.Sprintf("loop-createns-%d", time.Now().UnixNano()%1000000)
	app := "migrate-" + ns[len("loop-createns-"):]
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile": "argocd_app('apps/migrate.yaml')\n",
		"apps/migrate.yaml": fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %s
spec:
  source:
    path: migrate
  destination:
    namespace: %s
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
    managedNamespaceMetadata:
      labels: {team: data}
`, app, ns),
		"migrate/job.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: example.invalid/migrate:1
`,
	})
	nsRes := dyn.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"})
	t.Cleanup(func() { _ = nsRes.Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	tf := filepath.Join(dir, "Tiltfile")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := daemon.CI(ctx, daemon.Options{Tiltfile: tf}); err != nil {
		t.Fatalf("ci: %v", err)
	}
	live, err := nsRes.Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the destination namespace: %v", err)
	}
	if live.GetLabels()["team"] != "data" {
		t.Errorf("namespace labels %v, want team=data from managedNamespaceMetadata", live.GetLabels())
	}
	job, err := dyn.Resource(schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}).Namespace(ns).Get(ctx, "migrate", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the Job: %v", err)
	}
	if n, _, _ := unstructured.NestedInt64(job.Object, "status", "succeeded"); n != 1 {
		t.Errorf("Job status %v, want succeeded 1", job.Object["status"])
	}
	if err := daemon.Down(ctx, daemon.Options{Tiltfile: tf}, false); err != nil {
		t.Fatalf("down: %v", err)
	}
	live, err = nsRes.Get(ctx, ns, metav1.GetOptions{})
	if err != nil || live.GetDeletionTimestamp() != nil {
		t.Fatalf("namespace after down: %v, want it kept", err)
	}
}
