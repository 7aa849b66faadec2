package tiltfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

const argoApps = `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  source: {repoURL: https://example.com/r.git, path: charts/web, helm: {valueFiles: [values.yaml]}}
  destination: {server: https://kubernetes.default.svc, namespace: shop}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-an-app}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: plain}
spec:
  source: {path: manifests}
  destination: {namespace: default}
  syncPolicy: {automated: {prune: true, enabled: false}}
`

const argoAppSet = `apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: envs}
spec:
  generators:
    - list: {elements: [{env: dev}]}
    - git: {repoURL: https://example.com/r.git, directories: [{path: 'services/*'}, {path: services/old, exclude: true}]}
  template:
    metadata: {name: '{{env}}'}
    spec: {source: {path: charts/web}, destination: {namespace: '{{env}}'}}
`

func TestArgoBuiltins(t *testing.T) {
	r := loadSrc(t, `
names = argocd_app('deploy/apps.yaml')
if names != ['web', 'plain']: fail('names = %r' % names)
argocd_appset('deploy/sets')
argocd_app('repo/deploy')
argocd_app('other/app.json', repo_root='other')
`, Options{}, map[string]string{
		"deploy/apps.yaml":          argoApps,
		"deploy/sets/appset.yaml":   argoAppSet,
		"deploy/sets/notes.txt":     "not read",
		"repo/.git/HEAD":            "ref: refs/heads/main\n",
		"repo/deploy/app.yml":       strings.Replace(argoApps[:strings.Index(argoApps, "---")], "name: web", "name: in-repo", 1),
		"other/app.json":            `{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": {"name": "json"}, "spec": {"source": {"path": "."}}}`,
		"deploy/sets/kustomization": "resources: []\n",
	})
	if r.err != nil {
		t.Fatalf("load: %v\n%s", r.err, r.out)
	}
	tf := filepath.Join(r.dir, "Tiltfile")
	apps := r.cfg.ArgoApps
	if len(apps) != 4 {
		t.Fatalf("ArgoApps = %d, want 4", len(apps))
	}
	eq(t, "web", *apps[0], model.ArgoApp{Name: "web", Manifest: filepath.Join(r.dir, "deploy/apps.yaml"), RepoRoot: r.dir,
		Path: "charts/web", Namespace: "shop", Prune: true, SelfHeal: true, Pos: model.Position{File: tf, Line: 2, Col: 19}})
	eq(t, "plain", *apps[1], model.ArgoApp{Name: "plain", Manifest: filepath.Join(r.dir, "deploy/apps.yaml"), RepoRoot: r.dir,
		Path: "manifests", Namespace: "default", Pos: model.Position{File: tf, Line: 2, Col: 19}})
	// The Git work tree of the manifest is the repository root.
	eq(t, "in-repo root", [2]string{apps[2].Name, apps[2].RepoRoot}, [2]string{"in-repo", filepath.Join(r.dir, "repo")})
	eq(t, "json root", [2]string{apps[3].Name, apps[3].RepoRoot}, [2]string{"json", filepath.Join(r.dir, "other")})
	eq(t, "appsets", r.cfg.ArgoAppSets, []*model.ArgoAppSet{{Name: "envs", Manifest: filepath.Join(r.dir, "deploy/sets/appset.yaml"),
		RepoRoot: r.dir, Pos: model.Position{File: tf, Line: 4, Col: 14}}})
	// Every manifest read (and the directories listed) reloads the Tiltfile when edited.
	for _, f := range []string{"deploy/apps.yaml", "deploy/sets", "deploy/sets/appset.yaml", "repo/deploy/app.yml", "other/app.json"} {
		if !contains(r.cfg.Files, filepath.Join(r.dir, f)) {
			t.Errorf("Files = %q, want %s", r.cfg.Files, f)
		}
	}
	if contains(r.cfg.Files, filepath.Join(r.dir, "deploy/sets/notes.txt")) {
		t.Errorf("Files lists notes.txt, which argocd_appset does not read")
	}
}

// Missing files and malformed manifests fail at the Tiltfile line of the call, naming
// the manifest's own file:line where there is one.
func TestArgoBuiltinErrors(t *testing.T) {
	app := func(spec string) string {
		return "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\nspec:\n" + spec
	}
	set := func(spec string) string {
		return "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: s}\nspec:\n" +
			"  template: {metadata: {name: a}, spec: {source: {path: .}}}\n" + spec
	}
	cases := []struct{ name, src, file, manifest, want string }{
		{"missing file", "argocd_app('nope.yaml')", "", "", "argocd_app: file not found: "},
		{"wrong type", "argocd_app(1)", "", "", "argocd_app: for parameter \"path\": got int, want string"},
		{"malformed yaml", "argocd_app('m.yaml')", "m.yaml", "kind: [\n", "argocd_app: parse "},
		{"no name", "argocd_app('m.yaml')", "m.yaml", "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {}\nspec: {}\n", "m.yaml:1: Application has no metadata.name"},
		{"helm repo chart", "argocd_app('m.yaml')", "m.yaml", app("  source:\n    repoURL: https://charts.example.com\n    chart: redis\n"), "m.yaml:8: Application \"x\": spec.source.chart \"redis\" comes from a Helm repository"},
		{"multi source chart", "argocd_app('m.yaml')", "m.yaml", app("  sources:\n    - path: a\n    - chart: redis\n      repoURL: https://charts.example.com\n"), "m.yaml:8: Application \"x\": spec.sources[1].chart \"redis\" comes from a Helm repository"},
		{"multi source outside", "argocd_app('m.yaml')", "m.yaml", app("  sources:\n    - path: a\n    - path: ../../x\n"), "m.yaml:8: Application \"x\": spec.sources[1].path \"../../x\" leaves"},
		{"no source", "argocd_app('m.yaml')", "m.yaml", app("  destination: {namespace: a}\n"), "m.yaml:5: Application \"x\" has no spec.source"},
		{"bad sync option", "argocd_app('m.yaml')", "m.yaml", app("  source: {path: .}\n  syncPolicy:\n    syncOptions:\n      - CreateNamespace=true\n      - PruneLast=soon\n"), "m.yaml:10: Application \"x\": syncPolicy.syncOptions: sync option PruneLast=soon: want true, false"},
		{"bad jq", "argocd_app('m.yaml')", "m.yaml", app("  source: {path: .}\n  ignoreDifferences:\n    - kind: ConfigMap\n      jqPathExpressions: ['.data[']\n"), "m.yaml:8: Application \"x\": spec.ignoreDifferences[0]: jqPathExpressions"},
		{"path outside", "argocd_app('m.yaml')", "m.yaml", app("  source:\n    path: ../../etc\n"), "m.yaml:7: Application \"x\": spec.source.path \"../../etc\" leaves the repository root"},
		{"bad bool", "argocd_app('m.yaml')", "m.yaml", app("  source: {path: .}\n  syncPolicy:\n    automated:\n      prune: maybe\n"), "m.yaml:9: Application \"x\": syncPolicy.automated.prune is not a bool"},
		{"no application", "argocd_app('m.yaml')", "m.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n", "argocd_app: no Argo CD Application"},
		{"duplicate", "argocd_app('m.yaml')\nargocd_app('m.yaml')", "m.yaml", app("  source: {path: .}\n"), "m.yaml:1: an Application named \"x\" is already declared"},
		{"bad repo_root", "argocd_app('m.yaml', repo_root='nope')", "m.yaml", app("  source: {path: .}\n"), "argocd_app: repo_root"},
		{"appset of an app", "argocd_appset('m.yaml')", "m.yaml", app("  source: {path: .}\n"), "argocd_appset: no Argo CD ApplicationSet"},
		{"appset template patch", "argocd_appset('m.yaml')", "m.yaml", set("  goTemplate: true\n  templatePatch: |\n    spec: {}\n  generators: [{list: {elements: []}}]\n"), "m.yaml:7: ApplicationSet \"s\": spec.templatePatch is not supported"},
		{"appset clusters", "argocd_appset('m.yaml')", "m.yaml", set("  generators:\n    - clusters: {}\n"), "m.yaml:7: ApplicationSet \"s\": generator 0 (clusters): only the list and git directories"},
		{"appset git files", "argocd_appset('m.yaml')", "m.yaml", set("  generators:\n    - git:\n        files: [{path: a.json}]\n"), "m.yaml:8: ApplicationSet \"s\": generator 0: the git files generator"},
		{"appset no generators", "argocd_appset('m.yaml')", "m.yaml", set(""), "m.yaml:4: ApplicationSet \"s\" has no spec.generators"},
		{"appset missing", "\nargocd_appset('gone/')", "", "", "argocd_appset: file not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var extra map[string]string
			if c.file != "" {
				extra = map[string]string{c.file: c.manifest}
			}
			r := loadSrc(t, c.src, Options{}, extra)
			assertErrAt(t, r, "Tiltfile", strings.Count(c.src, "\n")+1, c.want)
			if c.file != "" && !contains(r.cfg.Files, filepath.Join(r.dir, c.file)) {
				t.Errorf("Files = %q, want the manifest watched so fixing it reloads", r.cfg.Files)
			}
		})
	}
}

const kubeconfigDev = `apiVersion: v1
kind: Config
current-context: dev
contexts:
  - name: dev
    context: {cluster: c, user: u, namespace: team}
clusters: [{name: c, cluster: {server: https://127.0.0.1:1}}]
users: [{name: u, user: {token: t}}]
`

const kubeconfigProd = `apiVersion: v1
kind: Config
current-context: prod
contexts:
  - name: prod
    context: {cluster: c, user: u}
  - name: kind-x
    context: {cluster: c, user: u}
clusters: [{name: c, cluster: {server: https://127.0.0.1:2}}]
users: [{name: u, user: {token: t}}]
`

func TestK8sContextAndNamespace(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dev, prod := write("dev.yaml", kubeconfigDev), write("prod.yaml", kubeconfigProd)
	write("home/.kube/config", strings.Replace(kubeconfigProd, "current-context: prod", "current-context: kind-x", 1))
	cases := []struct {
		name, kubeconfig, home, ctx, ns string
	}{
		// KUBECONFIG files merge in order: the first current-context wins.
		{"KUBECONFIG list", dev + string(filepath.ListSeparator) + prod, "", "dev", "team"},
		{"KUBECONFIG one file", prod, "", "prod", "default"},
		{"home config", "", filepath.Join(dir, "home"), "kind-x", "default"},
		{"no kubeconfig", "", filepath.Join(dir, "nobody"), "", "default"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := []string{"HOME=" + c.home}
			if c.kubeconfig != "" {
				env = append(env, "KUBECONFIG="+c.kubeconfig)
			}
			r := loadSrc(t, `
c, n = k8s_context(), k8s_namespace()
if c != '`+c.ctx+`': fail('k8s_context() = %r' % c)
if n != '`+c.ns+`': fail('k8s_namespace() = %r' % n)
allow_k8s_contexts(k8s_context())
`, Options{Env: env})
			if r.err != nil {
				t.Fatalf("load: %v", r.err)
			}
			if c.kubeconfig != "" && !contains(r.cfg.Files, strings.Split(c.kubeconfig, string(filepath.ListSeparator))[0]) {
				t.Errorf("Files = %q, want the kubeconfig", r.cfg.Files)
			}
		})
	}
	bad := write("bad.yaml", "current-context: [\n")
	r := loadSrc(t, "\nk8s_namespace()\n", Options{Env: []string{"KUBECONFIG=" + bad}})
	assertErrAt(t, r, "Tiltfile", 2, "k8s_namespace: load kubeconfig")
	r = loadSrc(t, "k8s_context(1)\n", Options{})
	assertErrAt(t, r, "Tiltfile", 1, "k8s_context: got 1 arguments, want at most 0")
}
