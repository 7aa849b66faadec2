package kube

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// The facts below are Tilt's (internal/k8s: entity.go, extract.go, image.go,
// label.go, names.go, object_selector.go), read from the unstructured objects
// loop renders instead of Tilt's typed ones.

// defaultNamespace is what Tilt takes an object without a namespace to be in.
const defaultNamespace = "default"

// podKinds are the built-in kinds Tilt decodes into typed objects that carry
// pods, with their API groups and where their pod template is (nil: a Pod,
// whose spec is the pod spec and which has no template). Tilt finds containers
// and pod templates by walking the typed object, so an object of any other kind
// (a custom resource) has neither.
var podKinds = map[string]struct {
	groups   []string
	template []string
}{
	"Pod":                   {groups: []string{""}},
	"PodTemplate":           {groups: []string{""}, template: []string{"template"}},
	"ReplicationController": {groups: []string{""}, template: []string{"spec", "template"}},
	"Deployment":            {groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	"ReplicaSet":            {groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	"DaemonSet":             {groups: []string{"apps", "extensions"}, template: []string{"spec", "template"}},
	"StatefulSet":           {groups: []string{"apps"}, template: []string{"spec", "template"}},
	"Job":                   {groups: []string{"batch"}, template: []string{"spec", "template"}},
	"CronJob":               {groups: []string{"batch"}, template: []string{"spec", "jobTemplate", "spec", "template"}},
}

func group(o *unstructured.Unstructured) string {
	gv, err := schema.ParseGroupVersion(o.GetAPIVersion())
	if err != nil {
		return ""
	}
	return gv.Group
}

// podKind reports whether o is one of the built-in kinds that carry pods.
func podKind(o *unstructured.Unstructured) bool {
	pk, ok := podKinds[o.GetKind()]
	if !ok {
		return false
	}
	g := group(o)
	for _, want := range pk.groups {
		if g == want {
			return true
		}
	}
	return false
}

// podTemplate returns o's pod template, if it is a built-in kind with one.
func podTemplate(o *unstructured.Unstructured) (map[string]any, bool) {
	if !podKind(o) {
		return nil, false
	}
	path := podKinds[o.GetKind()].template
	if path == nil {
		return nil, false
	}
	t, ok, _ := unstructured.NestedMap(o.Object, path...)
	return t, ok
}

// podSpec returns the pod spec of a built-in pod-carrying object.
func podSpec(o *unstructured.Unstructured) (map[string]any, bool) {
	if !podKind(o) {
		return nil, false
	}
	if o.GetKind() == "Pod" {
		s, ok, _ := unstructured.NestedMap(o.Object, "spec")
		return s, ok
	}
	t, ok := podTemplate(o)
	if !ok {
		return nil, false
	}
	s, ok, _ := unstructured.NestedMap(t, "spec")
	return s, ok
}

// containerImages are the images o's containers, init containers and image
// volumes run (as Tilt's FindImages reads them from a typed object).
func containerImages(o *unstructured.Unstructured) []string {
	spec, ok := podSpec(o)
	if !ok {
		return nil
	}
	var out []string
	for _, field := range []string{"initContainers", "containers"} {
		cs, _, _ := unstructured.NestedSlice(spec, field)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				if img, _ := m["image"].(string); img != "" {
					out = append(out, img)
				}
			}
		}
	}
	vols, _, _ := unstructured.NestedSlice(spec, "volumes")
	for _, v := range vols {
		if m, ok := v.(map[string]any); ok {
			if ref, _, _ := unstructured.NestedString(m, "image", "reference"); ref != "" {
				out = append(out, ref)
			}
		}
	}
	return out
}

// namespace is o's namespace as Tilt sees it: "default" when it has none.
func namespace(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns
	}
	return defaultNamespace
}

// selectsTemplateOf reports whether o is a Service whose selector matches the
// labels of w's pod template, in w's namespace (or with no namespace, or the
// default one, which Tilt lets match a workload in any namespace).
func selectsTemplateOf(o, w *unstructured.Unstructured) bool {
	if o.GetKind() != "Service" || group(o) != "" {
		return false
	}
	t, ok := podTemplate(w)
	if !ok {
		return false
	}
	sel, _, _ := unstructured.NestedStringMap(o.Object, "spec", "selector")
	if len(sel) == 0 {
		return false
	}
	labels, _, _ := unstructured.NestedStringMap(t, "metadata", "labels")
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	ns := namespace(o)
	return ns == defaultNamespace || ns == namespace(w)
}

// kindSelector is a k8s_kind or k8s_image_json_path declaration: case-insensitive
// regular expressions matched anywhere in the kind, the group/version, the name and
// the namespace ("default" for none), as Tilt's NewPartialMatchObjectSelector makes
// them, and the image paths of the objects it matches.
type kindSelector struct {
	kind, apiVersion, name, namespace *regexp.Regexp
	paths                             []render.ImagePath
	object                            *model.ImageObject
	objectPath                        render.ImagePath
}

func kindSelectors(kinds []*model.K8sKind) ([]kindSelector, error) {
	var out []kindSelector
	for _, k := range kinds {
		var s kindSelector
		for _, f := range []struct {
			re   **regexp.Regexp
			expr string
			what string
		}{{&s.kind, k.Kind, "kind"}, {&s.apiVersion, k.APIVersion, "api_version"}, {&s.name, k.Name, "name"}, {&s.namespace, k.Namespace, "namespace"}} {
			re, err := regexp.Compile("(?i)" + f.expr)
			if err != nil {
				return nil, fmt.Errorf("compile k8s_kind(%q) %s %q: %w", k.Kind, f.what, f.expr, err)
			}
			*f.re = re
		}
		for _, jp := range k.ImageJSONPath {
			s.paths = append(s.paths, render.ParseImagePath(jp))
		}
		if k.ImageObject != nil {
			s.object, s.objectPath = k.ImageObject, render.ParseImagePath(k.ImageObject.JSONPath)
		}
		out = append(out, s)
	}
	return out, nil
}

func (s kindSelector) matches(o *unstructured.Unstructured) bool {
	return s.kind.MatchString(o.GetKind()) && s.apiVersion.MatchString(o.GetAPIVersion()) &&
		s.name.MatchString(o.GetName()) && s.namespace.MatchString(namespace(o))
}

// substituteImages is render.SubstituteImages with each object's image paths those
// of the declarations that match it (kind, api_version, name, namespace).
func substituteImages(objs []*unstructured.Unstructured, images render.Images, kinds []kindSelector) map[string]bool {
	used := map[string]bool{}
	for _, o := range objs {
		var paths []render.ImagePath
		for _, k := range kinds {
			if k.matches(o) {
				paths = append(paths, k.paths...)
			}
		}
		for n := range render.SubstituteImages([]*unstructured.Unstructured{o}, images, map[string][]render.ImagePath{o.GetKind(): paths}) {
			used[n] = true
		}
		for _, k := range kinds {
			if k.object != nil && k.matches(o) {
				substituteImageObjects(o.Object, k.objectPath, k.object, images, used)
			}
		}
	}
	return used
}

// substituteImageObjects replaces, in each map at path under node, an image split
// into a repository and a tag field (k8s_kind image_object) that names a built image
// with the built ref's repository and tag.
func substituteImageObjects(node any, path render.ImagePath, io *model.ImageObject, images render.Images, used map[string]bool) {
	if len(path) > 0 {
		switch n := node.(type) {
		case map[string]any:
			substituteImageObjects(n[path[0]], path[1:], io, images, used)
		case []any:
			if path[0] == "*" {
				for _, e := range n {
					substituteImageObjects(e, path[1:], io, images, used)
				}
			}
		}
		return
	}
	m, ok := node.(map[string]any)
	if !ok {
		return
	}
	repo, _ := m[io.RepoField].(string)
	if repo == "" {
		return
	}
	want := render.NormalizedName(repo)
	for name, built := range images {
		if render.NormalizedName(name) != want {
			continue
		}
		r, tag := built, ""
		if i := strings.LastIndex(built, ":"); i > strings.LastIndex(built, "/") {
			r, tag = built[:i], built[i+1:]
		}
		m[io.RepoField] = r
		if tag != "" {
			m[io.TagField] = tag
		}
		used[want] = true
		return
	}
}

// objectNames are the names an object can be called by, shortest first:
// name, name:kind, name:kind:namespace, name:kind:namespace:group (lower case,
// "default" for no namespace, "core" for the core group, ":" and "\" escaped).
func objectNames(o *unstructured.Unstructured) []string {
	g := group(o)
	if g == "" {
		g = "core"
	}
	parts := []string{o.GetName(), o.GetKind(), namespace(o), g}
	out := make([]string, len(parts))
	for i := range parts {
		out[i] = strings.ToLower(joinEscaped(parts[:i+1]))
	}
	return out
}

// fullName is name:kind:namespace, as Tilt lists objects in its errors.
func fullName(o *unstructured.Unstructured) string {
	return joinEscaped([]string{o.GetName(), o.GetKind(), namespace(o)})
}

func joinEscaped(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		p = strings.ReplaceAll(p, `\`, `\\`)
		q[i] = strings.ReplaceAll(p, ":", `\:`)
	}
	return strings.Join(q, ":")
}

// splitEscaped splits a selector on ":" with "\" escaping ":" and "\".
func splitEscaped(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	esc := false
	for _, r := range s {
		switch {
		case esc:
			if r != ':' && r != '\\' {
				return nil, fmt.Errorf("invalid escape sequence '\\%c' in %q", r, s)
			}
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			esc = true
		case r == ':':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, cur.String()), nil
}

// uniqueNames names workloads as Tilt does: each takes the shortest of its
// objectNames that no other workload could take; two objects alike in name,
// kind, namespace and group get the longest one and their index.
func uniqueNames(ws []*unstructured.Unstructured) []string {
	counts := map[string]int{}
	all := make([][]string, len(ws))
	for i, w := range ws {
		all[i] = objectNames(w)
		for _, n := range all[i] {
			counts[n]++
		}
	}
	out := make([]string, len(ws))
	for i, names := range all {
		for _, n := range names {
			if counts[n] == 1 {
				out[i] = n
				break
			}
		}
		if out[i] == "" {
			out[i] = fmt.Sprintf("%s:%d", names[len(names)-1], i)
		}
	}
	return out
}

// objectSelector is a k8s_resource objects= entry: "name[:kind[:namespace]]",
// each part matched whole and case-insensitively; an empty part matches all.
type objectSelector struct {
	text  string
	parts []string // name, kind, namespace
}

func parseObjectSelector(s string) (objectSelector, error) {
	if s == "" {
		return objectSelector{}, fmt.Errorf("parse objects= entry: it is empty")
	}
	parts, err := splitEscaped(s)
	if err != nil {
		return objectSelector{}, fmt.Errorf("parse objects= entry %q: %w", s, err)
	}
	if len(parts) > 3 {
		return objectSelector{}, fmt.Errorf("parse objects= entry %q: %d parts, want name[:kind[:namespace]]", s, len(parts))
	}
	return objectSelector{text: s, parts: parts}, nil
}

func (s objectSelector) matches(o *unstructured.Unstructured) bool {
	fields := []string{o.GetName(), o.GetKind(), namespace(o)}
	for i, p := range s.parts {
		if p != "" && !strings.EqualFold(p, fields[i]) {
			return false
		}
	}
	return true
}
