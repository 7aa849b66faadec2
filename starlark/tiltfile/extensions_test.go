package tiltfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// findRoot is how helm_remote, git_resource and others find their data
// folder: walk up from the extension's own folder to the one holding
// tilt_modules.
const findRoot = `
def find_root():
    current = os.path.abspath('./')
    while True:
        if os.path.exists(os.path.join(current, 'tilt_modules')):
            return current
        next_dir = os.path.dirname(current)
        if next_dir == current:
            fail('Could not find root Tiltfile')
        current = next_dir
ROOT = find_root()
`

// The store is laid out as Tilt's: an extension of the default repository
// is tilt_modules/github.com/tilt-dev/tilt-extensions/NAME/Tiltfile, and an
// extension that walks up from its folder looking for tilt_modules finds
// the folder that holds the store.
func TestExtensionStoreLayout(t *testing.T) {
	data := t.TempDir()
	store := filepath.Join(data, "tilt_modules")
	write(t, filepath.Join(store, "github.com/tilt-dev/tilt-extensions/finder/Tiltfile"), findRoot)
	r := loadSrc(t, "load('ext://finder', 'ROOT')\nprint('root=' + ROOT)\n", Options{ExtensionsDir: store})
	if r.err != nil {
		t.Fatalf("load: %v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "root="+data+"\n") {
		t.Errorf("output = %q, want root=%s", r.out, data)
	}

	// An extensions directory holding github.com/... is a store too.
	r = loadSrc(t, "load('ext://finder', 'ROOT')\n", Options{ExtensionsDir: filepath.Join(data, "tilt_modules")})
	if r.err != nil {
		t.Fatal(r.err)
	}
}

// v1alpha1.extension_repo() and extension() say where ext:// loads come
// from: a file:// repository by registered name or by load_host; a remote
// one that is not in the store is a clear error, not a download.
func TestExtensionRegistrations(t *testing.T) {
	files := map[string]string{
		"myrepo/sub/thing/Tiltfile":    "X = 'thing'\n",
		"myrepo/tools/tool/Tiltfile":   "Y = 'tool'\n",
		"tilt_modules/old/Tiltfile":    "Z = 'vendored'\n",
		"tilt_modules/extensions.json": `{"Extensions": [{"Name": "old"}]}`,
	}
	src := `
v1alpha1.extension_repo(name='mine', url='file://' + os.path.abspath('myrepo'))
v1alpha1.extension_repo(name='corp', url='file://' + os.path.abspath('myrepo'), load_host='corp', git_subpath='tools')
v1alpha1.extension(name='thing', repo_name='mine', repo_path='sub/thing')
load('ext://thing', 'X')
load('ext://corp/tool', 'Y')
load('ext://old', 'Z')
if (X, Y, Z) != ('thing', 'tool', 'vendored'): fail('got %s %s %s' % (X, Y, Z))
`
	r := loadSrc(t, src, Options{ExtensionsDir: filepath.Join(t.TempDir(), "tilt_modules")}, files)
	if r.err != nil {
		t.Fatalf("load: %v\n%s", r.err, r.out)
	}
	for _, f := range []string{"myrepo/sub/thing/Tiltfile", "myrepo/tools/tool/Tiltfile", "tilt_modules/old/Tiltfile"} {
		if !contains(r.cfg.Files, filepath.Join(r.dir, f)) {
			t.Errorf("Files = %q, want %s", r.cfg.Files, f)
		}
	}

	store := filepath.Join(t.TempDir(), "tilt_modules")
	for _, c := range []struct{ name, src, want string }{
		{"remote repo absent", `
v1alpha1.extension_repo(name='r', url='https://example.com/owner/exts')
v1alpha1.extension(name='e', repo_name='r', repo_path='e')
load('ext://e', 'x')
`, `extension repo "r" (https://example.com/owner/exts) is not on this machine (looked in ` + filepath.Join(store, "example.com/owner/exts") +
			") and loading uses no network: run `loop fetch`"},
		{"default repo absent", "load('ext://nope', 'x')\n", `extension repo "default" (https://github.com/tilt-dev/tilt-extensions) is not on this machine (looked in ` +
			filepath.Join(store, "github.com/tilt-dev/tilt-extensions") + ")"},
		{"unregistered repo", "v1alpha1.extension(name='e', repo_name='r', repo_path='e')\nload('ext://e', 'x')\n", `extension repo "r" is not registered`},
		{"ref on a file repo", "v1alpha1.extension_repo(name='r', url='file:///tmp', ref='v1')\nv1alpha1.extension(name='e', repo_name='r', repo_path='e')\nload('ext://e', 'x')\n", "ref is not supported for file:// repos"},
		{"relative file repo", "v1alpha1.extension_repo(name='r', url='file://x')\nv1alpha1.extension(name='e', repo_name='r', repo_path='e')\nload('ext://e', 'x')\n", "must be an absolute path"},
		{"escaping repo path", "v1alpha1.extension_repo(name='r', url='file:///tmp')\nv1alpha1.extension(name='e', repo_name='r', repo_path='../etc')\nload('ext://e', 'x')\n", "invalid repo path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("XDG_DATA_HOME", t.TempDir()) // no Tilt store of the machine's
			r := loadSrc(t, c.src, Options{ExtensionsDir: store})
			if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
				t.Errorf("err = %v, want %q", r.err, c.want)
			}
		})
	}
}

// What Tilt itself fetched ($XDG_DATA_HOME/tilt-dev/tilt_modules) is used
// when loop's store does not have the repository.
func TestTiltsStoreIsUsed(t *testing.T) {
	data := t.TempDir()
	t.Setenv("XDG_DATA_HOME", data)
	write(t, filepath.Join(data, "tilt-dev/tilt_modules/github.com/tilt-dev/tilt-extensions/finder/Tiltfile"), findRoot)
	r := loadSrc(t, "load('ext://finder', 'ROOT')\nprint('root=' + ROOT)\n", Options{ExtensionsDir: DefaultExtensionsDir()})
	if r.err != nil {
		t.Fatalf("load: %v", r.err)
	}
	if !strings.Contains(r.out, "root="+filepath.Join(data, "tilt-dev")+"\n") {
		t.Errorf("output = %q", r.out)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A load that needs a repository this machine lacks fails with a *Missing
// (what `loop fetch` downloads, and where), and watches the extension's
// Tiltfile there, so a running loop up loads again once it arrives.
func TestMissingRepoIsFetchable(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	store := filepath.Join(t.TempDir(), "tilt_modules")
	r := loadSrc(t, `
v1alpha1.extension_repo(name='r', url='https://example.com/owner/exts.git', ref='v2')
v1alpha1.extension(name='e', repo_name='r', repo_path='tools/e')
load('ext://e', 'x')
`, Options{ExtensionsDir: store})
	var m *Missing
	if !errors.As(r.err, &m) {
		t.Fatalf("err = %v, want a *Missing", r.err)
	}
	dest := filepath.Join(store, "example.com", "owner", "exts")
	want := Missing{Kind: MissingRepo, Name: "r", URL: "https://example.com/owner/exts.git", Ref: "v2", Dest: dest}
	if *m != want {
		t.Errorf("missing = %+v, want %+v", *m, want)
	}
	if !contains(r.cfg.Files, filepath.Join(dest, "tools", "e", "Tiltfile")) {
		t.Errorf("Files = %q, want the extension's Tiltfile in %s", r.cfg.Files, dest)
	}
}
