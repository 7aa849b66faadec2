package tiltfile

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// extensionBuiltins are what the popular tilt-extensions call beyond the
// essential builtins: the v1alpha1 API object constructors. loop has no API
// server of Tilt's objects: each v1alpha1.* function accepts its keyword
// arguments and returns them as a struct. The constructors of objects Tilt
// would run or show (v1alpha1Objects) warn that loop does not; the spec
// helpers they take are quiet. extension_repo and extension are honoured:
// they say where load('ext://...') finds an extension.
func (l *loader) extensionBuiltins() starlark.StringDict {
	return starlark.StringDict{"v1alpha1": &v1alpha1{l: l}}
}

// v1alpha1Objects are Tilt's v1alpha1 object constructors and why loop
// ignores each.
var v1alpha1Objects = map[string]string{
	"cmd":                  "loop runs no Tilt API Cmd objects (use local_resource)",
	"config_map":           "loop has no Tilt API server to hold ConfigMaps",
	"file_watch":           "loop runs no Tilt API FileWatch objects",
	"kubernetes_apply":     "loop runs no Tilt API KubernetesApply objects (use k8s_yaml)",
	"kubernetes_discovery": "loop runs no Tilt API KubernetesDiscovery objects",
	"ui_button":            "buttons are part of Tilt's web UI, which loop does not have",
}

// v1alpha1Specs are the constructors of the values the objects take.
var v1alpha1Specs = []string{
	"config_map_disable_source", "disable_source", "exec_action", "forward",
	"handler", "http_get_action", "http_header", "ignore_def",
	"kubernetes_apply_cmd", "kubernetes_discovery_template_spec",
	"kubernetes_image_locator", "kubernetes_image_object_descriptor",
	"kubernetes_watch_ref", "label_selector", "label_selector_requirement",
	"object_selector", "pod_log_stream_template_spec", "port_forward_template_spec",
	"probe", "restart_on_spec", "start_on_spec", "tcp_socket_action",
	"ui_bool_input_spec", "ui_choice_input_spec", "ui_component_location",
	"ui_hidden_input_spec", "ui_input_spec", "ui_text_input_spec",
}

type v1alpha1 struct{ l *loader }

func (*v1alpha1) String() string        { return "v1alpha1" }
func (*v1alpha1) Type() string          { return "module" }
func (*v1alpha1) Freeze()               {}
func (*v1alpha1) Truth() starlark.Bool  { return true }
func (*v1alpha1) Hash() (uint32, error) { return 0, errors.New("unhashable: module") }
func (*v1alpha1) AttrNames() []string {
	names := append([]string(nil), v1alpha1Specs...)
	for n := range v1alpha1Objects {
		names = append(names, n)
	}
	names = append(names, "extension", "extension_repo")
	sort.Strings(names)
	return names
}

func (v *v1alpha1) Attr(name string) (starlark.Value, error) {
	why, isObject := v1alpha1Objects[name]
	if reg, ok := map[string]func(*starlark.Thread, *starlark.Builtin, []starlark.Tuple) (starlark.Value, error){
		"extension_repo": v.l.extensionRepo, "extension": v.l.extensionReg,
	}[name]; ok {
		return starlark.NewBuiltin("v1alpha1."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(args) > 0 {
				return nil, errorf(b, "takes keyword arguments only (got %d positional)", len(args))
			}
			return reg(thread, b, kwargs)
		}), nil
	}
	if !isObject && !slices.Contains(v1alpha1Specs, name) {
		return nil, nil // "v1alpha1 has no .name field or method", as in Tilt
	}
	return starlark.NewBuiltin("v1alpha1."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 {
			return nil, errorf(b, "takes keyword arguments only (got %d positional)", len(args))
		}
		if isObject {
			v.l.warn(pos(thread), fmt.Sprintf("%s() is ignored: %s", b.Name(), why))
		}
		return starlarkstruct.FromKeywords(starlark.String("v1alpha1."+name), kwargs), nil
	}), nil
}

// Extension repositories and the store, laid out as Tilt lays them out: a
// repository fetched from URL https://HOST/OWNER/REPO lives in
// <store>/HOST/OWNER/REPO, where <store> is a folder named tilt_modules
// (Tilt's is $XDG_DATA_HOME/tilt-dev/tilt_modules), and extension NAME of it
// is <repo>/<git_subpath>/<repo_path>/Tiltfile. Extensions that look for
// their data folder walk up from their own folder to the one holding
// tilt_modules (helm_remote, git_resource, ...): with this layout they find it.

// defaultExtensionRepo is the repository ext://NAME comes from unless
// v1alpha1.extension() or a load_host says otherwise, as in Tilt.
const (
	defaultExtensionRepo = "default"
	defaultExtensionURL  = "https://github.com/tilt-dev/tilt-extensions"
	tiltModules          = "tilt_modules"
)

// extRepo is a v1alpha1.extension_repo() registration.
type extRepo struct {
	name, url, ref, loadHost, gitSubpath string
	pos                                  model.Position
}

// extension is a v1alpha1.extension() registration.
type extension struct {
	name, repoName, repoPath string
	pos                      model.Position
}

// extState is what a load registered: repositories and extensions by name.
type extState struct {
	repos map[string]*extRepo
	exts  map[string]*extension
}

func (l *loader) extensionRepo(thread *starlark.Thread, b *starlark.Builtin, kwargs []starlark.Tuple) (starlark.Value, error) {
	r := &extRepo{pos: pos(thread)}
	var labels, annotations starlark.Value
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs, "name", &r.name, "labels?", &labels, "annotations?", &annotations,
		"url?", &r.url, "ref?", &r.ref, "load_host?", &r.loadHost, "git_subpath?", &r.gitSubpath); err != nil {
		return nil, err
	}
	if r.name == "" || r.url == "" {
		return nil, errorf(b, "name and url must not be empty")
	}
	if l.ext.repos == nil {
		l.ext.repos = map[string]*extRepo{}
	}
	l.ext.repos[r.name] = r
	return starlarkstruct.FromKeywords(starlark.String(b.Name()), kwargs), nil
}

func (l *loader) extensionReg(thread *starlark.Thread, b *starlark.Builtin, kwargs []starlark.Tuple) (starlark.Value, error) {
	e := &extension{pos: pos(thread)}
	var labels, annotations starlark.Value
	var args stringList
	if err := starlark.UnpackArgs(b.Name(), nil, kwargs, "name", &e.name, "labels?", &labels, "annotations?", &annotations,
		"repo_name?", &e.repoName, "repo_path?", &e.repoPath, "args?", &args); err != nil {
		return nil, err
	}
	if e.name == "" {
		return nil, errorf(b, "name must not be empty")
	}
	if len(args.vals) > 0 {
		l.warn(e.pos, fmt.Sprintf("%s(%q): args are ignored: Tilt runs an extension with args as a Tiltfile of its own, loop only resolves load('ext://%s') to it",
			b.Name(), e.name, e.name))
	}
	if l.ext.exts == nil {
		l.ext.exts = map[string]*extension{}
	}
	l.ext.exts[e.name] = e
	return starlarkstruct.FromKeywords(starlark.String(b.Name()), kwargs), nil
}

// sanitizeExtName is Tilt's object name of ext://MODULE: '/' and '%' become '_'.
func sanitizeExtName(module string) string {
	return strings.NewReplacer("/", "_", "%", "_").Replace(module)
}

// resolveExtension finds the Tiltfile of ext://module as Tilt does: a
// registered extension of that name, else a repository whose load_host is
// the module's first path element, else the default repository. The
// repository must be a file:// directory or already be in a store: a load
// uses no network, and `loop fetch` clones what is missing (*Missing).
func (l *loader) resolveExtension(module string) (string, error) {
	module = strings.Trim(module, "/")
	if module == "" || slices.Contains(strings.Split(module, "/"), "..") {
		return "", fmt.Errorf("invalid extension name %q", module)
	}
	ext, ok := l.ext.exts[sanitizeExtName(module)]
	if !ok {
		ext = &extension{name: sanitizeExtName(module), repoName: defaultExtensionRepo, repoPath: module}
		if host, rest, found := strings.Cut(module, "/"); found {
			for _, r := range l.ext.repos {
				if r.loadHost != "" && r.loadHost == host {
					ext.repoName, ext.repoPath = r.name, rest
					break
				}
			}
		}
	}
	repo, ok := l.ext.repos[ext.repoName]
	if !ok {
		if ext.repoName != defaultExtensionRepo {
			return "", fmt.Errorf("extension %q: extension repo %q is not registered (v1alpha1.extension_repo)", ext.name, ext.repoName)
		}
		repo = &extRepo{name: defaultExtensionRepo, url: defaultExtensionURL}
	}
	dir, err := l.repoDir(repo)
	var missing *Missing
	if errors.As(err, &missing) {
		dir = missing.Dest
	} else if err != nil {
		return "", err
	}
	path := filepath.Join(dir, filepath.FromSlash(repo.gitSubpath), filepath.FromSlash(ext.repoPath), "Tiltfile")
	if !pathrule.Within(dir, path) {
		return "", fmt.Errorf("extension %q: invalid repo path %q", ext.name, ext.repoPath)
	}
	if missing == nil && repo.url == defaultExtensionURL && repo.ref == "" && l.missingDefaultRepo(dir) {
		if vendored := l.vendoredExtension(module); vendored != "" {
			return vendored, nil
		}
		missing = &Missing{Kind: MissingRepo, Name: repo.name, URL: repo.url, Dest: dir}
	}
	if missing != nil {
		// Watched, so that a running loop up loads again once loop fetch
		// has put it there.
		l.record(path)
		return "", fmt.Errorf("extension %q: %w", module, missing)
	}
	l.record(path)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if repo.name == defaultExtensionRepo && repo.url == defaultExtensionURL {
		if vendored := l.vendoredExtension(module); vendored != "" {
			return vendored, nil
		}
	}
	return "", fmt.Errorf("extension %q not found: no %s in extension repo %q (%s); "+
		"if it is newer than that copy, update it (git -C %s pull), or point --extensions-dir or LOOP_EXTENSIONS_DIR at a checkout that has it",
		module, filepath.Join(filepath.FromSlash(ext.repoPath), "Tiltfile"), repo.name, dir, dir)
}

// repoDir is where repository r is on disk.
func (l *loader) repoDir(r *extRepo) (string, error) {
	if p, ok := strings.CutPrefix(r.url, "file://"); ok {
		if r.ref != "" {
			return "", fmt.Errorf("extension repo %q: ref is not supported for file:// repos (%s:%d)", r.name, r.pos.File, r.pos.Line)
		}
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("extension repo %q: file:// URL must be an absolute path: %s", r.name, r.url)
		}
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			return "", fmt.Errorf("extension repo %q: %s is not a directory", r.name, p)
		}
		return filepath.Clean(p), nil
	}
	if r.url == defaultExtensionURL && r.ref == "" {
		return l.defaultRepoDir(), nil
	}
	return l.storedRepoDir(r)
}

// storedRepoDir is where remote repository r is in a store, or a *Missing
// naming where `loop fetch` puts it.
func (l *loader) storedRepoDir(r *extRepo) (string, error) {
	u, err := url.Parse(r.url)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("extension repo %q: URL must start with https:// or file://: %s", r.name, r.url)
	}
	rel := filepath.Join(u.Host, filepath.FromSlash(strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")))
	for _, store := range l.stores() {
		dir := filepath.Join(store, rel)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			return dir, nil
		}
	}
	return "", &Missing{Kind: MissingRepo, Name: r.name, URL: r.url, Ref: r.ref, Dest: filepath.Join(l.stores()[0], rel)}
}

// vendoredExtension is the Tiltfile of module in the project's own
// tilt_modules, where a project an older Tilt ran keeps its extensions
// (<project>/tilt_modules/NAME/Tiltfile, with extensions.json), or "".
func (l *loader) vendoredExtension(module string) string {
	vendored := filepath.Join(l.mainDir, tiltModules, filepath.FromSlash(module), "Tiltfile")
	l.record(vendored)
	if _, err := os.Stat(vendored); err == nil {
		return vendored
	}
	return ""
}

// missingDefaultRepo says whether dir, the default repository's place in a
// store, does not exist: `loop fetch` clones it there. A directory the user
// named (--extensions-dir as a checkout) is theirs to fill.
func (l *loader) missingDefaultRepo(dir string) bool {
	if !isStore(l.extDir) {
		return false
	}
	_, err := os.Stat(dir)
	return errors.Is(err, fs.ErrNotExist)
}

// defaultRepoDir is the default repository's directory: the extensions
// directory itself when it is a checkout of it (its NAME/Tiltfile are the
// extensions, loop's older layout), else <store>/github.com/tilt-dev/tilt-extensions
// in the first store that has it.
func (l *loader) defaultRepoDir() string {
	if !isStore(l.extDir) {
		return l.extDir
	}
	rel := filepath.Join("github.com", "tilt-dev", "tilt-extensions")
	for _, store := range l.stores() {
		if fi, err := os.Stat(filepath.Join(store, rel)); err == nil && fi.IsDir() {
			return filepath.Join(store, rel)
		}
	}
	return filepath.Join(l.stores()[0], rel)
}

// isStore says whether dir is an extension store (a tilt_modules folder, or
// one holding github.com/...) rather than a checkout of the default repository.
func isStore(dir string) bool {
	if filepath.Base(dir) == tiltModules {
		return true
	}
	fi, err := os.Stat(filepath.Join(dir, "github.com"))
	return err == nil && fi.IsDir()
}

// stores are the extension stores looked in, in order: the extensions
// directory when it is a store (else loop's default one), then Tilt's own
// ($XDG_DATA_HOME/tilt-dev/tilt_modules), so that what Tilt fetched is used.
func (l *loader) stores() []string {
	first := l.extDir
	if !isStore(first) {
		first = storeDir("loop")
	}
	out := []string{first}
	if tilt := storeDir("tilt-dev"); tilt != first {
		out = append(out, tilt)
	}
	return out
}

// storeDir is app's extension store: $XDG_DATA_HOME/APP/tilt_modules, else
// ~/.local/share/APP/tilt_modules (Tilt's is APP tilt-dev).
func storeDir(app string) string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, app, tiltModules)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), app, tiltModules)
	}
	return filepath.Join(home, ".local", "share", app, tiltModules)
}
