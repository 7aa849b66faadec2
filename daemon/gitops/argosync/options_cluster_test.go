package argosync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

func hasStep(steps []Step, action, keySuffix string) bool {
	return slices.ContainsFunc(steps, func(s Step) bool { return s.Action == action && strings.HasSuffix(s.Key, keySuffix) })
}

// CreateNamespace=true: a sync into a namespace that does not exist makes it, with
// managedNamespaceMetadata, first; prune and down leave it. Without the option the
// sync fails as Argo CD's does.
func TestCreateNamespace(t *testing.T) {
	s := connect(t)
	ns := testNamespace(t, s, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n")

	res, err := s.Sync(ctx, objs, Options{App: "nsless", Namespace: ns})
	if err != nil || res.Succeeded || !strings.Contains(res.Message, "not found") {
		t.Fatalf("sync without CreateNamespace into a missing namespace: %v %+v, want a failure saying not found", err, res)
	}

	opts := Options{App: "createns", Namespace: ns, Prune: true, Policy: model.ArgoSync{
		Options:              []string{"CreateNamespace=true"},
		NamespaceLabels:      map[string]string{"team": "shop"},
		NamespaceAnnotations: map[string]string{"owner": "loop-test"},
	}}
	res, err = s.Sync(ctx, objs, opts)
	if err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	if len(res.Steps) < 2 || res.Steps[0].Action != "create-namespace" || res.Steps[0].Key != "/Namespace//"+ns {
		t.Errorf("steps %v, want create-namespace first", res.Steps)
	}
	nsRes := s.cluster.Dynamic.Resource(gvrNamespace)
	live, err := nsRes.Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if live.GetLabels()["team"] != "shop" || live.GetAnnotations()["owner"] != "loop-test" {
		t.Errorf("namespace labels %v annotations %v, want the managed metadata", live.GetLabels(), live.GetAnnotations())
	}
	if _, err := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "a", metav1.GetOptions{}); err != nil {
		t.Fatalf("the app's ConfigMap: %v", err)
	}
	// The namespace is not the app's: a pruning sync of nothing and down leave it.
	if res, err := s.Sync(ctx, nil, opts); err != nil || !res.Succeeded || !hasStep(res.Steps, "prune", "/a") {
		t.Fatalf("pruning sync: %v %+v, want a pruned", err, res)
	}
	if deleted, err := s.Down(ctx, "createns", model.ArgoSync{}); err != nil || len(deleted) != 0 {
		t.Fatalf("down: %v %v, want nothing left to delete", deleted, err)
	}
	live, err = nsRes.Get(ctx, ns, metav1.GetOptions{})
	if err != nil || live.GetDeletionTimestamp() != nil {
		t.Fatalf("namespace after prune and down: %v (deleting: %v), want it kept", err, live != nil && live.GetDeletionTimestamp() != nil)
	}
}

// ignoreDifferences: a field another actor changes is not drift, self-heal does not put
// it back, and with RespectIgnoreDifferences=true a sync keeps it.
func TestIgnoreDifferencesOnCluster(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := parse(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: pointer}
data: {k: desired, other: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: managed}
data: {k: desired, other: "1"}
`)
	opts := Options{App: "ignore", Namespace: ns, Policy: model.ArgoSync{IgnoreDifferences: []model.IgnoreDifference{
		{Kind: "ConfigMap", Name: "pointer", JSONPointers: []string{"/data/k"}},
		{Group: "*", Kind: "*", Name: "managed", ManagedFieldsManagers: []string{"scaler"}},
	}}}
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	cms := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns)
	edit := func(name, k string) {
		t.Helper()
		live, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_ = unstructured.SetNestedField(live.Object, k, "data", "k")
		if _, err := cms.Update(ctx, live, metav1.UpdateOptions{FieldManager: "scaler"}); err != nil {
			t.Fatal(err)
		}
	}
	value := func(name, key string) string {
		t.Helper()
		live, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, _, _ := unstructured.NestedString(live.Object, "data", key)
		return v
	}
	edit("pointer", "theirs")
	edit("managed", "theirs")
	sts, err := s.Compare(ctx, objs, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Status != Synced {
			t.Errorf("%s is %s after another actor changed an ignored field", st.Key, st.Status)
		}
	}
	h := s.NewHealer()
	r, err := h.Heal(ctx, objs, opts)
	if err != nil || len(r.Drifted) != 0 || r.Sync != nil {
		t.Fatalf("heal: %v %+v, want no drift and no sync", err, r)
	}
	// Without the ignore rules the same edit is drift.
	sts, err = s.Compare(ctx, objs, Options{App: "ignore", Namespace: ns})
	if err != nil || sts[0].Status != OutOfSync {
		t.Fatalf("without ignoreDifferences: %v %+v, want OutOfSync", err, sts)
	}

	// A real change syncs; RespectIgnoreDifferences=true keeps the ignored fields.
	objs[0].Object["data"].(map[string]any)["other"] = "2"
	objs[1].Object["data"].(map[string]any)["other"] = "2"
	respect := opts
	respect.Policy.Options = []string{"RespectIgnoreDifferences=true"}
	if res, err := s.Sync(ctx, objs, respect); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	for _, n := range []string{"pointer", "managed"} {
		if k, other := value(n, "k"), value(n, "other"); k != "theirs" || other != "2" {
			t.Errorf("%s after a RespectIgnoreDifferences sync: k=%q other=%q, want theirs and 2", n, k, other)
		}
	}
	// Without it the desired state is applied as it is, as Argo CD does.
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	if k := value("pointer", "k"); k != "desired" {
		t.Errorf("pointer after a plain sync: k=%q, want desired", k)
	}
}

// ServerSideApply=true and Replace=true, seen on the live objects: apply keeps a label
// another actor added and records an Apply under loop's field manager; replace makes
// the object the desired one whole (the label goes) with an Update.
func TestServerSideApplyAndReplace(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := parse(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: ssa
  annotations: {argocd.argoproj.io/sync-options: ServerSideApply=true}
data: {k: "1"}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: rep
  annotations: {argocd.argoproj.io/sync-options: Replace=true}
data: {k: "1"}
`)
	opts := Options{App: "ssa-replace", Namespace: ns}
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	cms := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns)
	for _, n := range []string{"ssa", "rep"} {
		live, err := cms.Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		l := live.GetLabels()
		l["added-by"] = "actor"
		live.SetLabels(l)
		if _, err := cms.Update(ctx, live, metav1.UpdateOptions{FieldManager: "actor"}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range objs {
		objs[i].Object["data"] = map[string]any{"k": "2"}
	}
	if res, err := s.Sync(ctx, objs, opts); err != nil || !res.Succeeded {
		t.Fatalf("second sync: %v %+v", err, res)
	}
	operation := func(live *unstructured.Unstructured) metav1.ManagedFieldsOperationType {
		for _, mf := range live.GetManagedFields() {
			if mf.Manager == FieldManager {
				return mf.Operation
			}
		}
		return ""
	}
	ssa, err := cms.Get(ctx, "ssa", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ssa.GetLabels()["added-by"] != "actor" || operation(ssa) != metav1.ManagedFieldsOperationApply || ssa.Object["data"].(map[string]any)["k"] != "2" {
		t.Errorf("ssa: labels %v, loop's operation %q, data %v; want the actor's label kept, Apply, k=2", ssa.GetLabels(), operation(ssa), ssa.Object["data"])
	}
	if _, ok := ssa.GetAnnotations()["kubectl.kubernetes.io/last-applied-configuration"]; ok {
		t.Error("ssa has a client-side last-applied-configuration")
	}
	rep, err := cms.Get(ctx, "rep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rep.GetLabels()["added-by"]; ok || operation(rep) != metav1.ManagedFieldsOperationUpdate || rep.Object["data"].(map[string]any)["k"] != "2" {
		t.Errorf("rep: labels %v, loop's operation %q, data %v; want the label gone, Update, k=2", rep.GetLabels(), operation(rep), rep.Object["data"])
	}
}

// retryLog records a sync's retry lines and calls onFail with the attempt number of
// each failure, on the syncing goroutine, before the back-off.
type retryLog struct {
	mu     sync.Mutex
	lines  []string
	onFail func(attempt int)
}

func (r *retryLog) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.lines = append(r.lines, strings.TrimSpace(string(p)))
	n := len(r.lines)
	r.mu.Unlock()
	if r.onFail != nil {
		r.onFail(n)
	}
	return len(p), nil
}

// syncPolicy.retry: a sync that fails twice (its namespace is missing) and then finds
// the namespace succeeds on the third attempt, each failure logged with its number; with
// no retries left, the last failure is the result.
func TestSyncRetry(t *testing.T) {
	s := connect(t)
	ns := testNamespace(t, s, false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs := parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
	retry := &model.ArgoRetry{Limit: 1, Backoff: 10 * time.Millisecond, Factor: 2, MaxDuration: 50 * time.Millisecond}
	log := &retryLog{}
	res, err := s.Sync(ctx, objs, Options{App: "retry", Namespace: ns, Log: log, Policy: model.ArgoSync{Retry: retry}})
	if err != nil || res.Succeeded || res.Attempts != 2 {
		t.Fatalf("sync with limit 1 into a missing namespace: %v %+v, want 2 failed attempts", err, res)
	}
	if len(log.lines) != 2 || !strings.HasPrefix(log.lines[0], "sync failed (attempt 1 of 2): ") || !strings.Contains(log.lines[0], "retrying in 10ms") ||
		!strings.HasPrefix(log.lines[1], "sync failed (attempt 2 of 2): ") || !strings.HasSuffix(log.lines[1], "no retries left") {
		t.Errorf("log %q", log.lines)
	}

	retry.Limit = 5
	log = &retryLog{onFail: func(attempt int) {
		if attempt == 2 {
			testNamespaceCreate(t, s, ns)
		}
	}}
	res, err = s.Sync(ctx, objs, Options{App: "retry", Namespace: ns, Log: log, Policy: model.ArgoSync{Retry: retry}})
	if err != nil || !res.Succeeded || res.Attempts != 3 {
		t.Fatalf("sync: %v %+v, want success on attempt 3", err, res)
	}
	if len(log.lines) != 2 || !strings.HasPrefix(log.lines[1], "sync failed (attempt 2 of 6): ") || !strings.Contains(log.lines[1], "retrying in 20ms") {
		t.Errorf("log %q, want attempts 1 and 2 of 6, the second backing off 20ms", log.lines)
	}
}

func testNamespaceCreate(t *testing.T, s *Syncer, ns string) {
	t.Helper()
	if _, err := s.cluster.Dynamic.Resource(gvrNamespace).Create(context.Background(), obj("v1", "Namespace", "", ns, nil), metav1.CreateOptions{}); err != nil {
		t.Error(err)
	}
}

// ApplyOutOfSyncOnly, FailOnSharedResource, Validate=false, SkipDryRunOnMissingResource,
// PrunePropagationPolicy and Prune=confirm as Argo CD documents them.
func TestSyncOptionsOnCluster(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cms := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns)
	objs := parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
	only := Options{App: "outofsync", Namespace: ns, Policy: model.ArgoSync{Options: []string{"ApplyOutOfSyncOnly=true"}}}
	if res, err := s.Sync(ctx, objs, only); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	before, _ := cms.Get(ctx, "a", metav1.GetOptions{})
	objs[1].Object["data"] = map[string]any{"k": "new"}
	res, err := s.Sync(ctx, objs, only)
	if err != nil || !res.Succeeded || !hasStep(res.Steps, "in-sync", "/a") || !hasStep(res.Steps, "apply", "/b") {
		t.Fatalf("ApplyOutOfSyncOnly: %v %+v, want a left, b applied", err, res)
	}
	if after, _ := cms.Get(ctx, "a", metav1.GetOptions{}); after.GetResourceVersion() != before.GetResourceVersion() {
		t.Error("a, in sync, was written")
	}

	// Another app syncing the same objects fails with FailOnSharedResource=true.
	res, err = s.Sync(ctx, objs, Options{App: "other", Namespace: ns, Policy: model.ArgoSync{Options: []string{"FailOnSharedResource=true"}}})
	if err != nil || res.Succeeded || !strings.Contains(res.Message, "is already applied by app outofsync") || len(res.Steps) != 0 {
		t.Fatalf("FailOnSharedResource: %v %+v, want a failure before any step", err, res)
	}

	// Validate=false: a field the schema does not know is dropped instead of refused
	// (by a replace: server-side apply refuses it whatever the validation, as
	// kubectl apply --server-side does).
	bad := parse(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, annotations: {argocd.argoproj.io/sync-options: Replace=true}}\nbogus: 1\n")
	if res, err := s.Sync(ctx, bad, Options{App: "validate", Namespace: ns}); err != nil || res.Succeeded || !strings.Contains(res.Message, "bogus") {
		t.Fatalf("strict validation: %v %+v, want the unknown field refused", err, res)
	}
	bad[0].SetAnnotations(map[string]string{annSyncOptions: "Replace=true,Validate=false"})
	if res, err := s.Sync(ctx, bad, Options{App: "validate", Namespace: ns}); err != nil || !res.Succeeded {
		t.Fatalf("Validate=false: %v %+v", err, res)
	}

	// A kind nothing serves: refused before anything is applied, unless
	// SkipDryRunOnMissingResource=true, which applies what comes before it.
	missing := parse(t, `apiVersion: v1
kind: ConfigMap
metadata: {name: first, annotations: {argocd.argoproj.io/sync-wave: "-1"}}
---
apiVersion: example.loop.dev/v1
kind: NotServed
metadata: {name: x}
`)
	if _, err := s.Sync(ctx, missing, Options{App: "dryrun", Namespace: ns}); err == nil {
		t.Fatal("a kind the server does not serve was not refused")
	}
	if _, err := cms.Get(ctx, "first", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("first was applied by a refused sync: %v", err)
	}
	res, err = s.Sync(ctx, missing, Options{App: "dryrun", Namespace: ns, Policy: model.ArgoSync{Options: []string{"SkipDryRunOnMissingResource=true"}}})
	if err != nil || res.Succeeded || !hasStep(res.Steps, "apply", "/first") {
		t.Fatalf("SkipDryRunOnMissingResource: %v %+v, want first applied and the sync failing at x", err, res)
	}

	// Prune=confirm is never pruned (loop cannot ask); orphan propagation prunes b
	// and not what it owns.
	objs[0].SetAnnotations(map[string]string{annSyncOptions: "Prune=confirm"})
	if res, err := s.Sync(ctx, objs, only); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	prune := Options{App: "outofsync", Namespace: ns, Prune: true, Policy: model.ArgoSync{Options: []string{"PrunePropagationPolicy=orphan"}}}
	res, err = s.Sync(ctx, nil, prune)
	if err != nil || !res.Succeeded || !hasStep(res.Steps, "prune", "/b") || !hasStep(res.Steps, "prune-needs-confirmation", "/a") || hasStep(res.Steps, "prune", "/a") {
		t.Fatalf("prune: %v %+v, want b pruned and a waiting for a confirmation", err, res)
	}
	if _, err := cms.Get(ctx, "a", metav1.GetOptions{}); err != nil {
		t.Fatalf("a (Prune=confirm) was pruned: %v", err)
	}
}

// A multi-source app whose Helm source takes a value file from the source with ref
// "values", synced to the cluster.
func TestMultiSourceValuesOnCluster(t *testing.T) {
	s, ns := testCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	files := map[string]string{
		"charts/web/Chart.yaml":        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"charts/web/values.yaml":       "greeting: hello\n",
		"charts/web/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {greeting: {{ .Values.greeting | quote }}}\n",
		"envs/dev/values.yaml":         "greeting: hi from dev\n",
		"app.yaml": fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  destination: {namespace: %s}
  sources:
    - {repoURL: https://git.example/shop.git, path: charts/web, helm: {valueFiles: [$values/envs/dev/values.yaml]}}
    - {repoURL: https://git.example/shop.git, ref: values}
`, ns),
	}
	for name, text := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apps, err := render.ArgoApps(ctx, filepath.Join(dir, "app.yaml"), dir)
	if err != nil {
		t.Fatal(err)
	}
	a := apps[0]
	render.DefaultNamespace(a.Objects, a.Namespace)
	if res, err := s.Sync(ctx, a.Objects, Options{App: a.Name, Namespace: a.Namespace, Policy: a.Sync}); err != nil || !res.Succeeded {
		t.Fatalf("sync: %v %+v", err, res)
	}
	live, err := s.cluster.Dynamic.Resource(gvrConfigMap).Namespace(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g, _, _ := unstructured.NestedString(live.Object, "data", "greeting"); g != "hi from dev" {
		t.Errorf("greeting = %q, want the value from $values/envs/dev/values.yaml", g)
	}
}
