package tiltfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.starlark.net/starlark"
	"go.yaml.in/yaml/v3"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// argocdApp is argocd_app(path, repo_root=None): every Argo CD Application in path (a
// manifest file, or the .yaml/.yml/.json files directly in a directory) becomes an app
// whose source a later stage renders from the working tree. It returns the app names.
func (l *loader) argocdApp(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	docs, abs, root, err := l.argoArgs(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	p := pos(thread)
	var apps []*model.ArgoApp
	for _, d := range docs {
		if d.kind != "Application" {
			continue
		}
		app, err := argoApplication(d, root)
		if err != nil {
			return nil, errorf(b, "%s", l.docErr(d, err))
		}
		app.Manifest, app.RepoRoot, app.Pos = d.file, root, p
		for _, note := range argoNotes(d) {
			l.warn(p, note)
		}
		if prev := l.argoAppNamed(app.Name, apps); prev != nil {
			return nil, errorf(b, "%s: an Application named %q is already declared (%s)", l.docPos(d, d.root), app.Name, l.display(prev.Manifest))
		}
		apps = append(apps, app)
	}
	if len(apps) == 0 {
		return nil, errorf(b, "no Argo CD Application (apiVersion argoproj.io/v1alpha1, kind Application) in %s", l.display(abs))
	}
	l.cfg.ArgoApps = append(l.cfg.ArgoApps, apps...)
	names := make([]starlark.Value, len(apps))
	for i, a := range apps {
		names[i] = starlark.String(a.Name)
	}
	return starlark.NewList(names), nil
}

// argocdAppSet is argocd_appset(path, repo_root=None): every ApplicationSet in path is
// recorded; a later stage expands its generators over the working tree.
func (l *loader) argocdAppSet(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	docs, abs, root, err := l.argoArgs(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	p := pos(thread)
	var sets []*model.ArgoAppSet
	for _, d := range docs {
		if d.kind != "ApplicationSet" {
			continue
		}
		name, err := checkAppSet(d)
		if err != nil {
			return nil, errorf(b, "%s", l.docErr(d, err))
		}
		for _, s := range append(slices.Clone(l.cfg.ArgoAppSets), sets...) {
			if s.Name == name {
				return nil, errorf(b, "%s: an ApplicationSet named %q is already declared (%s)", l.docPos(d, d.root), name, l.display(s.Manifest))
			}
		}
		sets = append(sets, &model.ArgoAppSet{Name: name, Manifest: d.file, RepoRoot: root, Pos: p})
	}
	if len(sets) == 0 {
		return nil, errorf(b, "no Argo CD ApplicationSet (apiVersion argoproj.io/v1alpha1, kind ApplicationSet) in %s", l.display(abs))
	}
	l.cfg.ArgoAppSets = append(l.cfg.ArgoAppSets, sets...)
	return starlark.None, nil
}

func (l *loader) argoAppNamed(name string, pending []*model.ArgoApp) *model.ArgoApp {
	for _, a := range append(slices.Clone(l.cfg.ArgoApps), pending...) {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// argoDoc is one YAML document of an Argo CD manifest.
type argoDoc struct {
	file string
	kind string
	root *yaml.Node
}

// argoArgs reads the manifests named by the call and finds the repository root.
func (l *loader) argoArgs(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (docs []argoDoc, abs, root string, err error) {
	var path string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &path, "repo_root?", &root); err != nil {
		return nil, "", "", err
	}
	if path == "" {
		return nil, "", "", errorf(b, "path must not be empty")
	}
	abs = l.abs(thread, path)
	l.record(abs)
	st, err := os.Stat(abs)
	if err != nil {
		return nil, "", "", errorf(b, "%s", readErrMsg(err))
	}
	files := []string{abs}
	if st.IsDir() {
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, "", "", errorf(b, "%v", err)
		}
		files = files[:0]
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
				if !e.IsDir() {
					files = append(files, filepath.Join(abs, e.Name()))
				}
			}
		}
	}
	for _, f := range files {
		l.record(f)
		ds, err := readArgoDocs(f)
		if err != nil {
			return nil, "", "", errorf(b, "%s", err)
		}
		docs = append(docs, ds...)
	}
	if root != "" {
		root = l.abs(thread, root)
		if st, err := os.Stat(root); err != nil || !st.IsDir() {
			return nil, "", "", errorf(b, "repo_root %s is not a directory", root)
		}
	} else {
		root = repoRootOf(abs, l.dirOf(thread))
	}
	return docs, abs, root, nil
}

// dirOf is the directory of the file the thread executes.
func (l *loader) dirOf(thread *starlark.Thread) string {
	if f := curFile(thread); f != "" {
		return filepath.Dir(f)
	}
	return l.mainDir
}

// repoRootOf is the Git work tree holding path (a directory with .git, a file in a
// worktree), or fallback when path is in none.
func repoRootOf(path, fallback string) string {
	dir := path
	if st, err := os.Stat(path); err == nil && !st.IsDir() {
		dir = filepath.Dir(path)
	}
	for {
		if _, err := os.Lstat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return fallback
		}
		dir = parent
	}
}

// readArgoDocs parses a manifest file into its Argo CD documents (others are skipped).
func readArgoDocs(file string) ([]argoDoc, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, errors.New(readErrMsg(err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []argoDoc
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, fmt.Errorf("parse %s: %w", file, err)
		}
		if len(n.Content) == 0 {
			continue
		}
		root := deref(n.Content[0])
		if root.Kind != yaml.MappingNode {
			continue
		}
		apiVersion, _ := scalar(child(root, "apiVersion"))
		kind, _ := scalar(child(root, "kind"))
		if !strings.HasPrefix(apiVersion, "argoproj.io/") || (kind != "Application" && kind != "ApplicationSet") {
			continue
		}
		docs = append(docs, argoDoc{file: file, kind: kind, root: root})
	}
}

// docErr places an error of a manifest document at its file:line.
func (l *loader) docErr(d argoDoc, err error) string {
	var ne nodeError
	if errors.As(err, &ne) {
		return fmt.Sprintf("%s: %s %s", l.docPos(d, ne.node), d.kind, ne.msg)
	}
	return fmt.Sprintf("%s: %s %v", l.docPos(d, d.root), d.kind, err)
}

func (l *loader) docPos(d argoDoc, n *yaml.Node) string {
	return fmt.Sprintf("%s:%d", l.display(d.file), n.Line)
}

// nodeError is a problem found at a YAML node.
type nodeError struct {
	node *yaml.Node
	msg  string
}

func (e nodeError) Error() string { return e.msg }

func errAt(n *yaml.Node, format string, args ...any) error {
	return nodeError{node: n, msg: fmt.Sprintf(format, args...)}
}

// argoApplication reads what the model keeps of an Application and checks what can be
// checked without rendering.
func argoApplication(d argoDoc, root string) (*model.ArgoApp, error) {
	name, err := metadataName(d.root)
	if err != nil {
		return nil, err
	}
	app := &model.ArgoApp{Name: name}
	specKey, spec := childKV(d.root, "spec")
	if spec == nil || spec.Kind != yaml.MappingNode {
		return nil, errAt(d.root, "%q has no spec", name)
	}
	sources := []*yaml.Node{}
	field := "spec.source"
	if k, list := childKV(spec, "sources"); k != nil && list != nil && list.Kind == yaml.SequenceNode && len(list.Content) > 0 {
		// spec.sources wins over spec.source, as in Argo CD.
		for _, n := range list.Content {
			sources = append(sources, deref(n))
		}
		field = "spec.sources[%d]"
	} else {
		srcKey, src := childKV(spec, "source")
		if src == nil {
			return nil, errAt(specKey, "%q has no spec.source (nor spec.sources)", name)
		}
		if src.Kind != yaml.MappingNode {
			return nil, errAt(srcKey, "%q: spec.source is not a mapping", name)
		}
		sources = append(sources, src)
	}
	for i, src := range sources {
		f := field
		if strings.Contains(f, "%d") {
			f = fmt.Sprintf(field, i)
		}
		if src.Kind != yaml.MappingNode {
			return nil, errAt(src, "%q: %s is not a mapping", name, f)
		}
		if chart, _ := scalar(child(src, "chart")); chart != "" {
			return nil, errAt(child(src, "chart"), "%q: %s.chart %q comes from a Helm repository; loop renders %s.path from the working tree", name, f, chart, f)
		}
		if vf := nodePath(src, "helm", "valueFiles"); vf != nil && vf.Kind == yaml.SequenceNode && f != "spec.source" {
			for _, v := range vf.Content {
				// $ref/file: a file from the root of another source (the work tree).
				if s, _ := scalar(deref(v)); strings.HasPrefix(s, "$") && strings.Contains(s, "/") {
					_, rel, _ := strings.Cut(s, "/")
					app.Sources = append(app.Sources, filepath.ToSlash(filepath.Dir(filepath.FromSlash(rel))))
				}
			}
		}
		n := child(src, "path")
		if n == nil {
			continue // a multi-source app's source of value files only
		}
		p, ok := scalar(n)
		if !ok {
			return nil, errAt(n, "%q: %s.path is not a string", name, f)
		}
		if !pathrule.Within(root, filepath.Join(root, filepath.FromSlash(p))) {
			return nil, errAt(n, "%q: %s.path %q leaves the repository root %s", name, f, p, root)
		}
		if app.Path == "" && len(app.Sources) == 0 {
			app.Path = p
		}
		if f != "spec.source" {
			app.Sources = append(app.Sources, p)
		}
	}
	if err := checkSyncPolicy(spec, name); err != nil {
		return nil, err
	}
	if n := nodePath(spec, "destination", "namespace"); n != nil {
		ns, ok := scalar(n)
		if !ok {
			return nil, errAt(n, "%q: spec.destination.namespace is not a string", name)
		}
		app.Namespace = ns
	}
	if auto := nodePath(spec, "syncPolicy", "automated"); auto != nil && auto.Kind == yaml.MappingNode {
		enabled := true
		for key, dst := range map[string]*bool{"prune": &app.Prune, "selfHeal": &app.SelfHeal, "enabled": &enabled} {
			if n := child(auto, key); n != nil {
				if err := n.Decode(dst); err != nil {
					return nil, errAt(n, "%q: syncPolicy.automated.%s is not a bool", name, key)
				}
			}
		}
		if !enabled {
			app.Prune, app.SelfHeal = false, false
		}
	}
	return app, nil
}

// checkSyncPolicy checks spec.syncPolicy.syncOptions, retry and spec.ignoreDifferences
// at their lines.
func checkSyncPolicy(spec *yaml.Node, name string) error {
	if opts := nodePath(spec, "syncPolicy", "syncOptions"); opts != nil {
		if opts.Kind != yaml.SequenceNode {
			return errAt(opts, "%q: syncPolicy.syncOptions is not a list", name)
		}
		for _, n := range opts.Content {
			v, _ := scalar(deref(n))
			if _, _, err := model.ParseSyncOption(v, true); err != nil {
				return errAt(n, "%q: syncPolicy.syncOptions: %v", name, err)
			}
		}
	}
	if r := nodePath(spec, "syncPolicy", "retry"); r != nil && r.Kind != yaml.MappingNode {
		return errAt(r, "%q: syncPolicy.retry is not a mapping", name)
	}
	if ig := child(spec, "ignoreDifferences"); ig != nil {
		if ig.Kind != yaml.SequenceNode {
			return errAt(ig, "%q: spec.ignoreDifferences is not a list", name)
		}
		for i, n := range ig.Content {
			var raw any
			var d model.IgnoreDifference
			err := deref(n).Decode(&raw)
			if err == nil {
				var b []byte
				if b, err = json.Marshal(raw); err == nil {
					err = json.Unmarshal(b, &d)
				}
			}
			if err != nil {
				return errAt(n, "%q: spec.ignoreDifferences[%d]: %v", name, i, err)
			}
			if err := render.CheckIgnoreDifference(d); err != nil {
				return errAt(n, "%q: spec.ignoreDifferences[%d]: %v", name, i, err)
			}
		}
	}
	return nil
}

// argoNotes are one-line notes on the sync options of an Application that loop
// accepts but cannot follow as Argo CD does on a local cluster.
func argoNotes(d argoDoc) []string {
	var out []string
	name, _ := metadataName(d.root)
	opts := nodePath(d.root, "spec", "syncPolicy", "syncOptions")
	if opts == nil || opts.Kind != yaml.SequenceNode {
		return nil
	}
	for _, n := range opts.Content {
		v, _ := scalar(deref(n))
		opt, val, err := model.ParseSyncOption(v, true)
		if err != nil {
			continue
		}
		if note := model.SyncOptionNote(opt, val); note != "" {
			out = append(out, fmt.Sprintf("Application %q: %s: %s", name, v, note))
		}
	}
	return out
}

// checkAppSet checks an ApplicationSet's shape: a name, a template and generators that
// can run on the working tree (list, git directories).
func checkAppSet(d argoDoc) (string, error) {
	name, err := metadataName(d.root)
	if err != nil {
		return "", err
	}
	specKey, spec := childKV(d.root, "spec")
	if spec == nil || spec.Kind != yaml.MappingNode {
		return "", errAt(d.root, "%q has no spec", name)
	}
	if k, _ := childKV(spec, "templatePatch"); k != nil {
		return "", errAt(k, "%q: spec.templatePatch is not supported", name)
	}
	if t := child(spec, "template"); t == nil || t.Kind != yaml.MappingNode {
		return "", errAt(specKey, "%q has no spec.template", name)
	}
	gensKey, gens := childKV(spec, "generators")
	if gens == nil || gens.Kind != yaml.SequenceNode || len(gens.Content) == 0 {
		if gensKey == nil {
			gensKey = specKey
		}
		return "", errAt(gensKey, "%q has no spec.generators", name)
	}
	for i, g := range gens.Content {
		g = deref(g)
		if g.Kind != yaml.MappingNode || len(g.Content) == 0 {
			return "", errAt(g, "%q: generator %d is not a mapping", name, i)
		}
		if n := child(g, "selector"); n != nil {
			return "", errAt(n, "%q: generator %d: selectors are not supported", name, i)
		}
		switch {
		case child(g, "list") != nil:
			if elems := child(child(g, "list"), "elements"); elems != nil && elems.Kind != yaml.SequenceNode {
				return "", errAt(elems, "%q: generator %d: list.elements is not a list", name, i)
			}
		case child(g, "git") != nil:
			gitKey, git := childKV(g, "git")
			if k, _ := childKV(git, "files"); k != nil {
				return "", errAt(k, "%q: generator %d: the git files generator is not supported; use directories", name, i)
			}
			dirs := child(git, "directories")
			if dirs == nil || dirs.Kind != yaml.SequenceNode || len(dirs.Content) == 0 {
				return "", errAt(gitKey, "%q: generator %d: git needs directories", name, i)
			}
		default:
			return "", errAt(g, "%q: generator %d (%s): only the list and git directories generators run locally", name, i, g.Content[0].Value)
		}
	}
	return name, nil
}

func metadataName(root *yaml.Node) (string, error) {
	n := nodePath(root, "metadata", "name")
	name, ok := scalar(n)
	if !ok || name == "" {
		return "", errAt(root, "has no metadata.name")
	}
	return name, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// child is the value of key in a mapping node, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	_, v := childKV(n, key)
	return v
}

// childKV is the key and value nodes of key in a mapping node (the key's line is where
// a block value is declared).
func childKV(n *yaml.Node, key string) (*yaml.Node, *yaml.Node) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i], deref(n.Content[i+1])
		}
	}
	return nil, nil
}

func nodePath(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = child(n, k)
	}
	return n
}

// scalar is a non-null scalar's text.
func scalar(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}
