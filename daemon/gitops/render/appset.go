package render

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// ArgoAppSets reads the ApplicationSet manifests in path (a file or a directory of them),
// expands each one's generators over the working tree at repoRoot (ExpandAppSet) and
// renders every generated Application like ArgoApps does.
func ArgoAppSets(ctx context.Context, path, repoRoot string) ([]*App, error) {
	docs, err := readArgoManifests(path)
	if err != nil {
		return nil, fmt.Errorf("argocd_appset %s: %w", path, err)
	}
	var apps []*App
	sets := 0
	for _, d := range docs {
		if !isArgoKind(d.obj, "ApplicationSet") {
			continue
		}
		sets++
		generated, err := ExpandAppSet(d.obj, repoRoot)
		if err != nil {
			return nil, fmt.Errorf("argocd_appset %s: %w", d.file, err)
		}
		for _, g := range generated {
			app, err := RenderApplication(ctx, g, repoRoot)
			if err != nil {
				return nil, fmt.Errorf("argocd_appset %s: applicationset %s: application %s: %w", d.file, d.obj.GetName(), g.GetName(), err)
			}
			app.Manifest, app.AppSet = d.file, d.obj.GetName()
			apps = append(apps, app)
		}
	}
	if sets == 0 {
		return nil, fmt.Errorf("argocd_appset %s: no ApplicationSet manifests", path)
	}
	return apps, nil
}

// ExpandAppSet returns the Applications an ApplicationSet generates, in generator order,
// with the list generator and the git directories generator run over the working tree
// at repoRoot (the generator's repoURL and revision are taken to be this tree). Templates
// are rendered as the ApplicationSet controller does: by default every "{{param}}" in a
// string or a map key is replaced when param is known and left as is otherwise; with
// spec.goTemplate they are Go templates with sprig's functions (and goTemplateOptions)
// over the generator's structured parameters. A generator's own template fills in over
// spec.template.
func ExpandAppSet(set *unstructured.Unstructured, repoRoot string) ([]*unstructured.Unstructured, error) {
	name := set.GetName()
	if name == "" {
		return nil, errors.New("applicationset has no metadata.name")
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("applicationset %s: %s", name, fmt.Sprintf(format, args...))
	}
	var r renderer
	r.goTmpl, _, _ = unstructured.NestedBool(set.Object, "spec", "goTemplate")
	r.opts, _, _ = unstructured.NestedStringSlice(set.Object, "spec", "goTemplateOptions")
	for _, o := range r.opts {
		if !validTemplateOption(o) {
			return nil, fail("goTemplateOptions: %q is not a text/template option (missingkey=default|invalid|zero|error)", o)
		}
	}
	if _, ok, _ := unstructured.NestedFieldNoCopy(set.Object, "spec", "templatePatch"); ok {
		return nil, fail("spec.templatePatch is not supported")
	}
	tmpl, found, err := unstructured.NestedMap(set.Object, "spec", "template")
	if err != nil || !found {
		return nil, fail("no spec.template")
	}
	gens, _, err := unstructured.NestedSlice(set.Object, "spec", "generators")
	if err != nil || len(gens) == 0 {
		return nil, fail("no spec.generators")
	}
	var out []*unstructured.Unstructured
	seen := map[string]bool{}
	for i, g := range gens {
		gm, ok := g.(map[string]any)
		if !ok {
			return nil, fail("generator %d is not a mapping", i)
		}
		kind, params, genTmpl, err := generate(gm, repoRoot, r)
		if err != nil {
			return nil, fmt.Errorf("applicationset %s: generator %d (%s): %w", name, i, kind, err)
		}
		t := tmpl
		if genTmpl != nil {
			t = runtime.DeepCopyJSONValue(genTmpl).(map[string]any)
			fillFrom(t, tmpl)
		}
		for _, p := range params {
			rendered, err := r.render(runtime.DeepCopyJSONValue(t), p)
			if err != nil {
				return nil, fmt.Errorf("applicationset %s: generator %d (%s): %w", name, i, kind, err)
			}
			rm, _ := rendered.(map[string]any)
			app := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
				"metadata": rm["metadata"], "spec": rm["spec"],
			}}
			if _, ok := app.Object["metadata"].(map[string]any); !ok {
				app.Object["metadata"] = map[string]any{}
			}
			if ns := set.GetNamespace(); ns != "" {
				app.SetNamespace(ns)
			}
			n := app.GetName()
			if n == "" {
				return nil, fail("generator %d (%s) made an Application with no name", i, kind)
			}
			if seen[n] {
				return nil, fail("generates two Applications named %q", n)
			}
			seen[n] = true
			out = append(out, app)
		}
	}
	return out, nil
}

// generatorKinds are the ApplicationSet generators, to name the ones loop cannot run.
var generatorKinds = []string{"list", "git", "clusters", "matrix", "merge", "scmProvider", "pullRequest",
	"clusterDecisionResource", "plugin"}

// generate runs one generator: its kind, its parameter sets and its own template.
func generate(g map[string]any, repoRoot string, r renderer) (string, []map[string]any, map[string]any, error) {
	kind := ""
	for _, k := range generatorKinds {
		if _, ok := g[k]; ok {
			kind = k
			break
		}
	}
	if _, ok := g["selector"]; ok {
		return kind, nil, nil, errors.New("generator selectors are not supported")
	}
	body, _ := g[kind].(map[string]any)
	tmpl, _ := body["template"].(map[string]any)
	switch kind {
	case "list":
		params, err := listParams(body, r.goTmpl)
		return kind, params, tmpl, err
	case "git":
		if _, ok := body["files"]; ok {
			return kind, nil, nil, errors.New("the git files generator is not supported; use directories")
		}
		params, err := gitDirectoryParams(body, repoRoot, r)
		return kind, params, tmpl, err
	case "":
		return kind, nil, nil, errors.New("no known generator")
	default:
		return kind, nil, nil, errors.New("only the list and git directories generators run locally")
	}
}

// listParams are the list generator's elements: with Go templates the elements as they
// are; else string values by key and the entries of a "values" map as values.KEY.
func listParams(body map[string]any, goTmpl bool) ([]map[string]any, error) {
	elems, _ := body["elements"].([]any)
	var out []map[string]any
	for i, e := range elems {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("element %d is not a mapping", i)
		}
		if goTmpl {
			out = append(out, m)
			continue
		}
		p := map[string]any{}
		for k, v := range m {
			if k == "values" {
				vals, ok := v.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("element %d: values is not a mapping", i)
				}
				for vk, vv := range vals {
					s, ok := vv.(string)
					if !ok {
						return nil, fmt.Errorf("element %d: values.%s is not a string", i, vk)
					}
					p["values."+vk] = s
				}
				continue
			}
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("element %d: %s is not a string (quote it)", i, k)
			}
			p[k] = s
		}
		out = append(out, p)
	}
	if ey, _ := body["elementsYaml"].(string); strings.TrimSpace(ey) != "" {
		var more []map[string]any
		if err := yaml.Unmarshal([]byte(ey), &more); err != nil {
			return nil, fmt.Errorf("elementsYaml: %w", err)
		}
		out = append(out, more...)
	}
	return out, nil
}

// gitDirectoryParams lists the directories of the tree (hidden ones and the root left
// out, as the repo server does), keeps those some non-exclude pattern matches and no
// exclude pattern does (path.Match: "*" stays within one segment), and makes their
// path parameters.
func gitDirectoryParams(body map[string]any, repoRoot string, r renderer) ([]map[string]any, error) {
	type item struct {
		pattern string
		exclude bool
	}
	var items []item
	dirs, _ := body["directories"].([]any)
	for i, d := range dirs {
		m, _ := d.(map[string]any)
		p, _ := m["path"].(string)
		if p == "" {
			return nil, fmt.Errorf("directories[%d] has no path", i)
		}
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("directories[%d] path %q: %w", i, p, err)
		}
		ex, _ := m["exclude"].(bool)
		items = append(items, item{p, ex})
	}
	if len(items) == 0 {
		return nil, errors.New("no directories")
	}
	var all []string
	err := filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != repoRoot && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		if rel, _ := filepath.Rel(repoRoot, p); rel != "." {
			all = append(all, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list directories of %s: %w", repoRoot, err)
	}
	prefix, _ := body["pathParamPrefix"].(string)
	values, _ := body["values"].(map[string]any)
	var out []map[string]any
	for _, dir := range all {
		include, exclude := false, false
		for _, it := range items {
			if ok, _ := path.Match(it.pattern, dir); ok {
				if it.exclude {
					exclude = true
				} else {
					include = true
				}
			}
		}
		if !include || exclude {
			continue
		}
		p := pathParams(dir, prefix, r.goTmpl)
		// values may use the path parameters, not each other.
		rendered := map[string]any{}
		for k, v := range values {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("values.%s is not a string", k)
			}
			res, err := r.replace(s, p)
			if err != nil {
				return nil, fmt.Errorf("values.%s: %w", k, err)
			}
			rendered[k] = res
		}
		if r.goTmpl {
			if len(rendered) > 0 {
				p["values"] = rendered
			}
		} else {
			for k, v := range rendered {
				p["values."+k] = v
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// pathParams are the git directories generator's parameters of one directory: flat
// (path, path.basename, path.basenameNormalized, path[N]) or, for Go templates, a path
// object with path, basename, basenameNormalized and segments; pathParamPrefix nests them.
func pathParams(dir, prefix string, goTmpl bool) map[string]any {
	base := path.Base(dir)
	segments := strings.Split(dir, "/")
	if goTmpl {
		fields := map[string]any{"path": dir, "basename": base, "basenameNormalized": SanitizeName(base), "segments": segments}
		if prefix != "" {
			return map[string]any{prefix: map[string]any{"path": fields}}
		}
		return map[string]any{"path": fields}
	}
	name := "path"
	if prefix != "" {
		name = prefix + ".path"
	}
	p := map[string]any{name: dir, name + ".basename": base, name + ".basenameNormalized": SanitizeName(base)}
	for i, seg := range segments {
		if seg != "" {
			p[name+"["+strconv.Itoa(i)+"]"] = seg
		}
	}
	return p
}

// renderer renders ApplicationSet templates, with Go templates or without.
type renderer struct {
	goTmpl bool
	opts   []string
}

// render replaces parameters in every string and map key of v.
func (r renderer) render(v any, params map[string]any) (any, error) {
	switch x := v.(type) {
	case string:
		return r.replace(x, params)
	case []any:
		for i := range x {
			res, err := r.render(x[i], params)
			if err != nil {
				return nil, err
			}
			x[i] = res
		}
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			res, err := r.render(x[k], params)
			if err != nil {
				return nil, err
			}
			nk, err := r.replace(k, params)
			if err != nil {
				return nil, err
			}
			out[nk] = res
		}
		return out, nil
	}
	return v, nil
}

func (r renderer) replace(s string, params map[string]any) (string, error) {
	if !r.goTmpl {
		return replaceParams(s, params)
	}
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	t, err := template.New("").Funcs(goTemplateFuncs).Parse(s)
	if err != nil {
		return "", fmt.Errorf("template %q: %w", s, err)
	}
	for _, o := range r.opts {
		t = t.Option(o)
	}
	var b strings.Builder
	if err := t.Execute(&b, params); err != nil {
		return "", fmt.Errorf("template %q: %w", s, err)
	}
	return b.String(), nil
}

// goTemplateFuncs are the controller's: sprig's text functions without env, expandenv
// and getHostByName, plus normalize, toYaml, fromYaml and fromYamlArray.
var goTemplateFuncs = func() template.FuncMap {
	f := sprig.TxtFuncMap()
	for _, n := range []string{"env", "expandenv", "getHostByName"} {
		delete(f, n)
	}
	f["normalize"] = SanitizeName
	f["toYaml"] = func(v any) (string, error) {
		b, err := yaml.Marshal(v)
		return strings.TrimSuffix(string(b), "\n"), err
	}
	f["fromYaml"] = func(s string) (map[string]any, error) {
		var m map[string]any
		err := yaml.Unmarshal([]byte(s), &m)
		return m, err
	}
	f["fromYamlArray"] = func(s string) ([]any, error) {
		var l []any
		err := yaml.Unmarshal([]byte(s), &l)
		return l, err
	}
	return f
}()

func validTemplateOption(o string) bool {
	switch o {
	case "missingkey=default", "missingkey=invalid", "missingkey=zero", "missingkey=error":
		return true
	}
	return false
}

// replaceParams is the controller's fasttemplate replacement: "{{ name }}" becomes the
// parameter's value; an unknown name or an empty tag is kept as written.
func replaceParams(s string, params map[string]any) (string, error) {
	if !strings.Contains(s, "{{") {
		return s, nil
	}
	var b strings.Builder
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			b.WriteString(rest)
			return b.String(), nil
		}
		b.WriteString(rest[:i])
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return "", fmt.Errorf("template %q: no closing }}", s)
		}
		tag := rest[:j]
		rest = rest[j+2:]
		if v, ok := params[strings.TrimSpace(tag)].(string); ok && strings.TrimSpace(tag) != "" {
			b.WriteString(v)
		} else {
			b.WriteString("{{" + tag + "}}")
		}
	}
}

// fillFrom fills what dst leaves empty from src, recursing into maps (the controller
// merges spec.template under a generator's template this way).
func fillFrom(dst, src map[string]any) {
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok || emptyValue(dv) {
			dst[k] = runtime.DeepCopyJSONValue(sv)
			continue
		}
		dm, dok := dv.(map[string]any)
		sm, sok := sv.(map[string]any)
		if dok && sok {
			fillFrom(dm, sm)
		}
	}
}

var invalidDNSNameChars = regexp.MustCompile(`[^-a-z0-9.]`)

// SanitizeName makes a name DNS-1123-like the way the ApplicationSet controller does for
// path.basenameNormalized: lower case, other characters to "-", at most 253 long,
// trimmed of "-" and "." at both ends.
func SanitizeName(name string) string {
	name = invalidDNSNameChars.ReplaceAllString(strings.ToLower(name), "-")
	if len(name) > 253 {
		name = name[:253]
	}
	return strings.Trim(name, "-.")
}
