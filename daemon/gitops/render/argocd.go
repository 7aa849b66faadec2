package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// App is an Argo CD Application mirrored locally: its source rendered from the working tree.
type App struct {
	Name      string
	Namespace string // spec.destination.namespace
	// Tool is how the source was rendered: "Helm", "Kustomize" or "Directory" ("Tiltfile"
	// for the Tiltfile's own k8s_yaml/kustomize/helm objects, see Apps).
	Tool     string
	Prune    bool // spec.syncPolicy.automated.prune
	SelfHeal bool // spec.syncPolicy.automated.selfHeal
	// Path is spec.source.path, relative to the repository root (a multi-source app's:
	// its first rendered source's).
	Path string
	// Sync is what spec.syncPolicy (beyond automated) and spec.ignoreDifferences say.
	Sync model.ArgoSync
	// Manifest is the file that declares the Application, or the ApplicationSet that
	// generated it.
	Manifest string
	// AppSet names the ApplicationSet that generated the app, if one did.
	AppSet  string
	Objects []*unstructured.Unstructured
}

// The files in an app's source directory whose contents are merged into spec.source
// before rendering (what `argocd app set` writes for write-back).
const (
	argoSourceFile    = ".argocd-source.yaml"
	argoAppSourceFile = ".argocd-source-%s.yaml"
)

// appSource is the part of an Argo CD ApplicationSource that local rendering reads.
type appSource struct {
	RepoURL        string           `json:"repoURL,omitempty"`
	Path           string           `json:"path,omitempty"`
	TargetRevision string           `json:"targetRevision,omitempty"`
	Chart          string           `json:"chart,omitempty"`
	Helm           *sourceHelm      `json:"helm,omitempty"`
	Kustomize      *sourceKustomize `json:"kustomize,omitempty"`
	Directory      *sourceDirectory `json:"directory,omitempty"`
	Plugin         json.RawMessage  `json:"plugin,omitempty"`
}

type sourceHelm struct {
	ReleaseName             string         `json:"releaseName"`
	Namespace               string         `json:"namespace"`
	ValueFiles              []string       `json:"valueFiles"`
	IgnoreMissingValueFiles bool           `json:"ignoreMissingValueFiles"`
	Values                  string         `json:"values"`
	ValuesObject            map[string]any `json:"valuesObject"`
	Parameters              []struct {
		Name        string `json:"name"`
		Value       string `json:"value"`
		ForceString bool   `json:"forceString"`
	} `json:"parameters"`
	FileParameters []struct {
		Name string `json:"name"`
		Path string `json:"path"`
	} `json:"fileParameters"`
	SkipCrds    bool     `json:"skipCrds"`
	SkipTests   bool     `json:"skipTests"`
	KubeVersion string   `json:"kubeVersion"`
	APIVersions []string `json:"apiVersions"`
}

type sourceKustomize struct {
	NamePrefix                string            `json:"namePrefix"`
	NameSuffix                string            `json:"nameSuffix"`
	Images                    []string          `json:"images"`
	CommonLabels              map[string]string `json:"commonLabels"`
	CommonAnnotations         map[string]string `json:"commonAnnotations"`
	CommonAnnotationsEnvsubst bool              `json:"commonAnnotationsEnvsubst"`
	ForceCommonLabels         bool              `json:"forceCommonLabels"`
	ForceCommonAnnotations    bool              `json:"forceCommonAnnotations"`
	LabelWithoutSelector      bool              `json:"labelWithoutSelector"`
	Namespace                 string            `json:"namespace"`
	Replicas                  []struct {
		Name  string          `json:"name"`
		Count json.RawMessage `json:"count"`
	} `json:"replicas"`
	Patches    []any    `json:"patches"`
	Components []string `json:"components"`
}

type sourceDirectory struct {
	Recurse bool   `json:"recurse"`
	Include string `json:"include"`
	Exclude string `json:"exclude"`
}

// ArgoApps reads the Application manifests in path (a file or a directory of them) and
// renders each app's spec.source, whose path is relative to repoRoot, as the repo server
// would (see RenderApplication).
func ArgoApps(ctx context.Context, path, repoRoot string) ([]*App, error) {
	docs, err := readArgoManifests(path)
	if err != nil {
		return nil, fmt.Errorf("argocd_app %s: %w", path, err)
	}
	var apps []*App
	for _, d := range docs {
		if !isArgoKind(d.obj, "Application") {
			continue
		}
		app, err := RenderApplication(ctx, d.obj, repoRoot)
		if err != nil {
			return nil, fmt.Errorf("argocd_app %s: application %s: %w", d.file, d.obj.GetName(), err)
		}
		app.Manifest = d.file
		apps = append(apps, app)
	}
	if len(apps) == 0 {
		return nil, fmt.Errorf("argocd_app %s: no Application manifests", path)
	}
	return apps, nil
}

// RenderApplication renders one Application's spec.source from the working tree at
// repoRoot like Argo CD's repo server: .argocd-source.yaml and then
// .argocd-source-<app>.yaml in the source directory are JSON-merge-patched into
// spec.source (path, repoURL, chart and targetRevision stay); the tool is the explicit
// helm/kustomize/directory block, else discovery (a file named *Chart.yaml → Helm, a
// kustomization file → Kustomize, Kustomize winning when both exist, else Directory).
func RenderApplication(ctx context.Context, u *unstructured.Unstructured, repoRoot string) (*App, error) {
	name := u.GetName()
	if name == "" {
		return nil, errors.New("application has no metadata.name")
	}
	repoRoot, err := filepath.Abs(repoRoot)
	if err != nil {
		return nil, err
	}
	app := &App{Name: name}
	app.Namespace, _, _ = unstructured.NestedString(u.Object, "spec", "destination", "namespace")
	if auto, ok, _ := unstructured.NestedMap(u.Object, "spec", "syncPolicy", "automated"); ok {
		// Argo CD 3 can switch automation off while keeping its settings.
		if enabled, set := auto["enabled"].(bool); !set || enabled {
			app.Prune, _ = auto["prune"].(bool)
			app.SelfHeal, _ = auto["selfHeal"].(bool)
		}
	}
	if app.Sync, err = applicationSync(u); err != nil {
		return nil, err
	}
	if sources, multi, _ := unstructured.NestedSlice(u.Object, "spec", "sources"); multi && len(sources) > 0 {
		// spec.sources wins over spec.source, as in Argo CD.
		if err := renderSources(ctx, app, sources, repoRoot); err != nil {
			return nil, err
		}
		return app, nil
	}
	raw, found, err := unstructured.NestedMap(u.Object, "spec", "source")
	if err != nil {
		return nil, fmt.Errorf("spec.source: %w", err)
	}
	if !found {
		return nil, errors.New("application has no spec.source (nor spec.sources)")
	}
	app.Path, _ = raw["path"].(string)
	app.Tool, app.Objects, err = renderSource(ctx, app, raw, "spec.source", repoRoot, nil)
	if err != nil {
		return nil, err
	}
	return app, nil
}

// renderSource renders one ApplicationSource (at field, for messages) from the working
// tree. refs maps the ref names of a multi-source app's sources to their roots, for
// Helm value files that start with $name.
func renderSource(ctx context.Context, app *App, raw map[string]any, field, repoRoot string, refs map[string]string) (string, []*unstructured.Unstructured, error) {
	if chart, _ := raw["chart"].(string); chart != "" {
		return "", nil, fmt.Errorf("%s.chart %q is a chart from a Helm repository; loop renders sources from the working tree only (%s.path)", field, chart, field)
	}
	path, _ := raw["path"].(string)
	dir, err := inRepo(repoRoot, path)
	if err != nil {
		return "", nil, fmt.Errorf("%s.path: %w", field, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return "", nil, fmt.Errorf("%s.path %q: no directory %s", field, path, dir)
	}
	src, err := mergeSourceOverrides(raw, dir, app.Name)
	if err != nil {
		return "", nil, err
	}
	env := argoEnv{
		"ARGOCD_APP_NAME":                   app.Name,
		"ARGOCD_APP_NAMESPACE":              app.Namespace,
		"ARGOCD_APP_SOURCE_REPO_URL":        src.RepoURL,
		"ARGOCD_APP_SOURCE_PATH":            src.Path,
		"ARGOCD_APP_SOURCE_TARGET_REVISION": src.TargetRevision,
	}
	tool, err := sourceTool(src, dir)
	if err != nil {
		return "", nil, err
	}
	var objs []*unstructured.Unstructured
	switch tool {
	case "Helm":
		o, err := helmOptions(src.Helm, app, dir, repoRoot, env, refs)
		if err != nil {
			return "", nil, err
		}
		objs, err = Helm(ctx, o)
		return tool, objs, err
	case "Kustomize":
		o, err := kustomizeOptions(src.Kustomize, env)
		if err != nil {
			return "", nil, err
		}
		objs, err = Kustomize(dir, o)
		return tool, objs, err
	case "Plugin":
		return "", nil, fmt.Errorf("%s.plugin: config management plugins do not run in loop", field)
	default:
		var o DirectoryOptions
		if d := src.Directory; d != nil {
			o = DirectoryOptions{Recurse: d.Recurse, Include: d.Include, Exclude: d.Exclude}
		}
		objs, err = Directory(dir, o)
		return tool, objs, err
	}
}

// mergeSourceOverrides applies the .argocd-source files of dir to spec.source and
// decodes the result. Empty tool blocks are dropped first, as Argo CD's API server
// normalises them away when the Application is stored.
func mergeSourceOverrides(raw map[string]any, dir, appName string) (*appSource, error) {
	raw = dropEmptyToolBlocks(raw)
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("spec.source: %w", err)
	}
	for _, f := range []string{argoSourceFile, fmt.Sprintf(argoAppSourceFile, appName)} {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) || err == nil && st.IsDir() {
			continue
		}
		if err != nil {
			return nil, err
		}
		patch, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		patch, err = yaml.YAMLToJSON(patch)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if t := bytes.TrimSpace(patch); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		if patch[0] != '{' {
			return nil, fmt.Errorf("%s: want a mapping of spec.source fields", p)
		}
		if data, err = jsonpatch.MergePatch(data, patch); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	var src appSource
	if err := json.Unmarshal(data, &src); err != nil {
		return nil, fmt.Errorf("spec.source: %w", err)
	}
	// The override files may not move the source.
	src.Path, _ = raw["path"].(string)
	src.RepoURL, _ = raw["repoURL"].(string)
	src.TargetRevision, _ = raw["targetRevision"].(string)
	src.Chart = ""
	return &src, nil
}

func dropEmptyToolBlocks(raw map[string]any) map[string]any {
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		switch k {
		case "helm", "kustomize", "directory", "plugin":
			if emptyValue(v) {
				continue
			}
		}
		out[k] = v
	}
	return out
}

func emptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case int64:
		return x == 0
	case float64:
		return x == 0
	case []any:
		return len(x) == 0
	case map[string]any:
		for _, e := range x {
			if !emptyValue(e) {
				return false
			}
		}
		return true
	}
	return false
}

// sourceTool picks the tool like the repo server: one explicit block wins (two are an
// error), else discovery over the files directly in dir, in lexical order, the last
// match deciding.
func sourceTool(src *appSource, dir string) (string, error) {
	var explicit []string
	if src.Kustomize != nil {
		explicit = append(explicit, "Kustomize")
	}
	if src.Helm != nil {
		explicit = append(explicit, "Helm")
	}
	if src.Directory != nil {
		explicit = append(explicit, "Directory")
	}
	if len(src.Plugin) > 0 {
		explicit = append(explicit, "Plugin")
	}
	switch len(explicit) {
	case 0:
	case 1:
		return explicit[0], nil
	default:
		return "", fmt.Errorf("multiple application sources defined: %s", strings.Join(explicit, ","))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("discover source type: %w", err)
	}
	tool := "Directory"
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		switch n := e.Name(); {
		case strings.HasSuffix(n, "Chart.yaml"):
			tool = "Helm"
		case n == "kustomization.yaml" || n == "kustomization.yml" || n == "Kustomization":
			tool = "Kustomize"
		}
	}
	return tool, nil
}

// argoEnv is the build environment the repo server substitutes into parameters,
// value file paths and images ($ARGOCD_APP_NAME, ...). Unknown names expand to "",
// "$$" to "$", as with os.Expand there.
type argoEnv map[string]string

func (e argoEnv) subst(s string) string {
	return os.Expand(s, func(k string) string {
		if k == "$" {
			return "$"
		}
		return e[k]
	})
}

func helmOptions(h *sourceHelm, app *App, dir, repoRoot string, env argoEnv, refs map[string]string) (HelmOptions, error) {
	o := HelmOptions{Chart: dir, ReleaseName: app.Name, Namespace: app.Namespace}
	if h == nil {
		return o, nil
	}
	if h.ReleaseName != "" {
		o.ReleaseName = h.ReleaseName
	}
	if h.Namespace != "" {
		o.Namespace = h.Namespace
	}
	for _, f := range h.ValueFiles {
		p, err := resolveValueFile(dir, repoRoot, f, env, refs)
		if err != nil {
			return o, fmt.Errorf("helm value file: %w", err)
		}
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && h.IgnoreMissingValueFiles {
			continue
		}
		o.ValueFiles = append(o.ValueFiles, p)
	}
	// valuesObject wins over values; either is passed after the value files.
	if len(h.ValuesObject) > 0 {
		o.ValuesObject = h.ValuesObject
	} else if strings.TrimSpace(h.Values) != "" {
		if err := yaml.Unmarshal([]byte(h.Values), &o.ValuesObject); err != nil {
			return o, fmt.Errorf("helm values: %w", err)
		}
	}
	// Argo CD keeps parameters in maps: a repeated name counts once, with its last value.
	set, setString := &orderedParams{}, &orderedParams{}
	for _, p := range h.Parameters {
		target := set
		if p.ForceString {
			target = setString
		}
		target.put(p.Name, cleanSetParameter(env.subst(p.Value)))
	}
	o.Set, o.SetString = set.list(), setString.list()
	setFile := &orderedParams{}
	for _, p := range h.FileParameters {
		path, err := resolveValueFile(dir, repoRoot, p.Path, env, refs)
		if err != nil {
			return o, fmt.Errorf("helm file parameter %s: %w", p.Name, err)
		}
		setFile.put(p.Name, cleanSetParameter(path))
	}
	o.SetFile = setFile.list()
	o.SkipCRDs, o.SkipTests = h.SkipCrds, h.SkipTests
	o.KubeVersion, o.APIVersions = h.KubeVersion, h.APIVersions
	return o, nil
}

type orderedParams struct {
	names []string
	vals  map[string]string
}

func (p *orderedParams) put(name, val string) {
	if p.vals == nil {
		p.vals = map[string]string{}
	}
	if _, ok := p.vals[name]; !ok {
		p.names = append(p.names, name)
	}
	p.vals[name] = val
}

func (p *orderedParams) list() []string {
	var out []string
	for _, n := range p.names {
		out = append(out, n+"="+p.vals[n])
	}
	return out
}

// cleanSetParameter escapes commas so a value is one --set value, except a "{a,b}" list.
func cleanSetParameter(v string) string {
	if strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == ',' && (i == 0 || v[i-1] != '\\') {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// resolveValueFile resolves a value file like the repo server: relative to the app's
// directory, or to the repository root when it starts with "/", never outside it.
func resolveValueFile(appDir, repoRoot, f string, env argoEnv, refs map[string]string) (string, error) {
	if rest, ok := strings.CutPrefix(f, "$"); ok {
		// $ref/path: path from the root of the source whose ref is ref (before any
		// substitution of the build environment, as the repo server does).
		name, rel, _ := strings.Cut(rest, "/")
		if root, ok := refs[name]; ok {
			p := filepath.Join(root, filepath.FromSlash(rel))
			if !pathrule.Within(root, p) {
				return "", fmt.Errorf("%s resolves outside the repository root %s", f, root)
			}
			return p, nil
		}
		if _, isEnv := env[name]; !isEnv && !strings.HasPrefix(rest, "{") {
			if refs == nil {
				return "", fmt.Errorf("%s refers to another source, which only spec.sources has", f)
			}
			return "", fmt.Errorf("%s: no source of spec.sources has ref %q", f, name)
		}
	}
	f = env.subst(f)
	if u, err := url.Parse(f); err == nil && u.Scheme != "" {
		return "", fmt.Errorf("%s is remote; loop renders offline from the working tree", f)
	}
	p := filepath.Join(appDir, f)
	if filepath.IsAbs(f) {
		p = filepath.Join(repoRoot, f)
	}
	if !pathrule.Within(repoRoot, p) {
		return "", fmt.Errorf("%s resolves outside the repository root %s", f, repoRoot)
	}
	return p, nil
}

func kustomizeOptions(k *sourceKustomize, env argoEnv) (KustomizeOptions, error) {
	if k == nil {
		return KustomizeOptions{}, nil
	}
	o := KustomizeOptions{NamePrefix: k.NamePrefix, NameSuffix: k.NameSuffix, Namespace: k.Namespace,
		CommonAnnotations: k.CommonAnnotations, ForceCommonLabels: k.ForceCommonLabels,
		ForceCommonAnnotations: k.ForceCommonAnnotations, LabelWithoutSelector: k.LabelWithoutSelector,
		Patches: k.Patches, Components: k.Components}
	for _, img := range k.Images {
		o.Images = append(o.Images, env.subst(img))
	}
	if len(k.CommonLabels) > 0 {
		o.CommonLabels = map[string]string{}
		for n, v := range k.CommonLabels {
			o.CommonLabels[n] = env.subst(v)
		}
	}
	if k.CommonAnnotationsEnvsubst && len(k.CommonAnnotations) > 0 {
		o.CommonAnnotations = map[string]string{}
		for n, v := range k.CommonAnnotations {
			o.CommonAnnotations[n] = env.subst(v)
		}
	}
	for _, r := range k.Replicas {
		n, err := intOrString(r.Count)
		if err != nil {
			return o, fmt.Errorf("kustomize replicas %s: %w", r.Name, err)
		}
		o.Replicas = append(o.Replicas, KustomizeReplica{Name: r.Name, Count: n})
	}
	return o, nil
}

func intOrString(raw json.RawMessage) (int64, error) {
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("count %s is not a number", raw)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("count %q is not a number", s)
	}
	return n, nil
}

// inRepo joins a slash path to repoRoot, refusing one that leaves it.
func inRepo(repoRoot, p string) (string, error) {
	dir := filepath.Join(repoRoot, filepath.FromSlash(p))
	if !pathrule.Within(repoRoot, dir) {
		return "", fmt.Errorf("%q leaves the repository root %s", p, repoRoot)
	}
	return dir, nil
}

type argoDoc struct {
	file string
	obj  *unstructured.Unstructured
}

// readArgoManifests reads a manifest file, or the .yaml/.yml/.json files directly in a
// directory (in lexical order; files that are not manifests, such as a kustomization
// beside the Applications, are skipped).
func readArgoManifests(path string) ([]argoDoc, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !e.IsDir() && manifestFile.MatchString(e.Name()) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	var docs []argoDoc
	for _, f := range files {
		var objs []*unstructured.Unstructured
		if st.IsDir() {
			objs, err = parseManifestFile(f)
		} else {
			objs, err = parseFile(f)
		}
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			docs = append(docs, argoDoc{file: f, obj: o})
		}
	}
	return docs, nil
}

func isArgoKind(o *unstructured.Unstructured, kind string) bool {
	return o.GetKind() == kind && o.GroupVersionKind().Group == "argoproj.io"
}
