package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/provenance"
	"helm.sh/helm/v3/pkg/repo"
)

// chartRepo serves a Helm chart repository over real HTTP with chart demo
// at versions 0.1.0 and 0.2.0 (each version's ConfigMap says which it is).
func chartRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	idx := repo.NewIndexFile()
	for _, v := range []string{"0.1.0", "0.2.0"} {
		src := filepath.Join(t.TempDir(), "demo")
		writeFile(t, src, "Chart.yaml", "apiVersion: v2\nname: demo\nversion: "+v+"\n")
		writeFile(t, src, filepath.Join("templates", "cm.yaml"),
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\ndata:\n  version: "+v+"\n")
		ch, err := loader.Load(src)
		if err != nil {
			t.Fatal(err)
		}
		tgz, err := chartutil.Save(ch, dir)
		if err != nil {
			t.Fatal(err)
		}
		digest, err := provenance.DigestFile(tgz)
		if err != nil {
			t.Fatal(err)
		}
		if err := idx.MustAdd(ch.Metadata, filepath.Base(tgz), srv.URL, digest); err != nil {
			t.Fatal(err)
		}
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL
}

// extensionRepo makes a git repository with extension e and makes git
// fetch it for url (git's insteadOf), so the clone runs as it would from a
// real host, without the network.
func extensionRepo(t *testing.T, url string) {
	t.Helper()
	src := t.TempDir()
	writeFile(t, src, filepath.Join("e", "Tiltfile"), "def greet():\n    return 'hello from e'\n")
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "e"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	cfg := filepath.Join(t.TempDir(), "gitconfig")
	writeFile(t, filepath.Dir(cfg), "gitconfig", "[url \"file://"+src+"\"]\n\tinsteadOf = "+url+"\n")
	t.Setenv("GIT_CONFIG_GLOBAL", cfg)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
}

// fetchHome gives loop an empty data dir (its extension store and chart
// cache) and returns it.
func fetchHome(t *testing.T) string {
	t.Helper()
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	t.Setenv("LOOP_EXTENSIONS_DIR", "")
	t.Setenv("TILT_HELM_REMOTE_CACHE_DIR", "")
	return data
}

// A Tiltfile that needs an extension repository and charts this machine
// lacks fails to load, naming `loop fetch`; loop fetch clones and pulls
// them (git, and a real chart repository over HTTP; charts named by
// helm_remote's repo_url, a helm_repo() and a repository of `helm repo add`);
// then it loads, with the versions asked for; a second fetch has nothing to do.
func TestFetchExtensionRepoAndCharts(t *testing.T) {
	data := fetchHome(t)
	charts := chartRepo(t)
	extensionRepo(t, "https://git.example.invalid/owner/exts")
	// A repository added with `helm repo add community URL`.
	helmConfig := t.TempDir()
	writeFile(t, helmConfig, "repositories.yaml", "apiVersion: v1\nrepositories:\n- name: community\n  url: "+charts+"\n")
	t.Setenv("HELM_REPOSITORY_CONFIG", filepath.Join(helmConfig, "repositories.yaml"))

	project := t.TempDir()
	writeFile(t, project, "Tiltfile", `
v1alpha1.extension_repo(name='mine', url='https://git.example.invalid/owner/exts')
v1alpha1.extension(name='e', repo_name='mine', repo_path='e')
load('ext://e', 'greet')
load('ext://helm_remote', 'helm_remote')
load('ext://helm_resource', 'helm_resource', 'helm_repo')
helm_remote('demo', repo_url='`+charts+`', version='0.1.0', release_name='old')
helm_repo('charts', '`+charts+`')
helm_resource('new', 'charts/demo')
helm_resource('added', 'community/demo', flags=['--version', '0.1.0'])
print(greet())
`)
	_, stderr, code := runLoop(t, project, "dump", "resources")
	if code != 1 || !strings.Contains(stderr, "run `loop fetch`") {
		t.Fatalf("dump before fetch: exit %d, stderr %q; want 1 naming loop fetch", code, stderr)
	}

	out, stderr, code := runLoop(t, project, "fetch")
	if code != 0 {
		t.Fatalf("fetch: exit %d\n%s%s", code, out, stderr)
	}
	store := filepath.Join(data, "loop", "tilt_modules")
	cache := filepath.Join(data, "loop", ".helm")
	for _, want := range []string{
		"fetching extension repository mine from https://git.example.invalid/owner/exts into " + filepath.Join(store, "git.example.invalid", "owner", "exts"),
		"fetching chart demo from " + charts + " into " + filepath.Join(cache, "demo", "0.1.0", "demo"),
		"fetching chart demo from " + charts + " into " + filepath.Join(cache, "charts", "latest", "demo"),
		"fetching chart demo from " + charts + " into " + filepath.Join(cache, "community", "0.1.0", "demo"),
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("fetch output lacks %q:\n%s", want, out)
		}
	}

	out, stderr, code = runLoop(t, project, "dump", "resources", "-o", "yaml")
	if code != 0 {
		t.Fatalf("dump after fetch: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"name: old-cm", "name: new-cm", "name: added-cm"} {
		if !strings.Contains(out, want) {
			t.Errorf("resources lack %q:\n%s", want, out)
		}
	}
	for dir, version := range map[string]string{filepath.Join(cache, "demo", "0.1.0", "demo"): "0.1.0", filepath.Join(cache, "charts", "latest", "demo"): "0.2.0"} {
		b, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
		if err != nil || !strings.Contains(string(b), "version: "+version) {
			t.Errorf("%s: %q, %v; want version %s", dir, b, err, version)
		}
	}

	out, _, code = runLoop(t, project, "fetch")
	if code != 0 || !strings.Contains(out, "nothing to fetch") {
		t.Errorf("second fetch: exit %d, %q; want nothing to fetch", code, out)
	}
}

// A chart the repository does not have: loop fetch fails naming it and the
// repository, and leaves nothing half-fetched in the cache.
func TestFetchFailureLeavesNothing(t *testing.T) {
	data := fetchHome(t)
	charts := chartRepo(t)
	project := t.TempDir()
	writeFile(t, project, "Tiltfile",
		"load('ext://helm_remote', 'helm_remote')\nhelm_remote('nope', repo_url='"+charts+"')\n")
	_, stderr, code := runLoop(t, project, "fetch")
	if code != 1 || !strings.Contains(stderr, "fetch chart nope from "+charts) {
		t.Fatalf("fetch: exit %d, stderr %q; want 1 naming the chart and repository", code, stderr)
	}
	entries, err := os.ReadDir(filepath.Join(data, "loop", ".helm", "nope", "latest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("cache after a failed fetch has %v, want nothing", entries)
	}
}
