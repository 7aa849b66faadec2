package kube

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

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

// kindSelector is a k8s_kind declaration: case-insensitive regular expressions
// matched anywhere in the kind and the group/version, as Tilt's
// NewPartialMatchObjectSelector makes them.
type kindSelector struct {
	kind, apiVersion *regexp.Regexp
}

func kindSelectors(kinds []*model.K8sKind) ([]kindSelector, error) {
	var out []kindSelector
	for _, k := range kinds {
		kre, err := regexp.Compile("(?i)" + k.Kind)
		if err != nil {
			return nil, fmt.Errorf("compile k8s_kind(%q): %w", k.Kind, err)
		}
		are, err := regexp.Compile("(?i)" + k.APIVersion)
		if err != nil {
			return nil, fmt.Errorf("compile k8s_kind(%q, api_version=%q): %w", k.Kind, k.APIVersion, err)
		}
		out = append(out, kindSelector{kind: kre, apiVersion: are})
	}
	return out, nil
}

func (s kindSelector) matches(o *unstructured.Unstructured) bool {
	return s.kind.MatchString(o.GetKind()) && s.apiVersion.MatchString(o.GetAPIVersion())
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
