// Package kube owns loop's Kubernetes deploys for the engine: grouping rendered objects
// into resources the way Tilt does, connecting to the current kube context (refusing a
// non-local one), getting built images into kind nodes without a registry, and syncing a
// resource's objects the Argo CD way (daemon/gitops/argosync).
package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// Uncategorized names the resource that holds the objects no workload claims, as in Tilt.
const Uncategorized = "uncategorized"

// Group is one Kubernetes resource of the engine: a workload (or a k8s_resource of
// objects) and the objects that go with it.
type Group struct {
	Name    string
	Objects []*unstructured.Unstructured
	// Workload: the group was made for a workload (its first object), not by
	// k8s_resource(new_name=, objects=) or for what nothing claimed.
	Workload bool
	// Spec is what the k8s_resource calls for the group configured, added up
	// as Tilt does; nil when none did.
	Spec *model.K8sResource
	// App is the Argo CD app the group mirrors; nil for the Tiltfile's own objects.
	App *render.App
	// Custom is the k8s_custom_deploy the group runs; its objects are what
	// its apply_cmd prints, known once it ran.
	Custom *model.CustomDeploy
	// Release is the Helm release the group is (helm_resource); nil for others.
	Release *model.HelmRelease
}

// Assemble groups rendered objects into resources by Tilt's rules
// (internal/tiltfile/tiltfile_state.go: assembleK8sByWorkload,
// assembleK8sUnresourced, assembleK8s):
//
//   - an object is a workload when a k8s_kind matches it or its containers run
//     an image (any image, built here or not); each workload is a resource named
//     by uniqueNames (name, then name:kind, name:kind:namespace,
//     name:kind:namespace:group), and the Services whose selector matches its pod
//     template's labels, in its namespace, join it (the first workload to match
//     takes a Service);
//   - an object left with a pod template joins, with its Services, the resource
//     of its name (a new one if there is none);
//   - each k8s_resource call in turn: one without a workload makes a resource of
//     new_name; one with a workload configures the resource of that name (calls
//     add up: port forwards, deps, links, labels, selectors add, trigger mode and
//     auto_init override) and new_name renames it at once, so later calls use
//     the new name; objects= entries each name one object of all (a fragment of
//     name:kind:namespace:group) that must still be unclaimed;
//   - ConfigMaps, Secrets, PersistentVolumeClaims, Namespaces, CRDs, custom
//     resources without k8s_kind and Services that select no workload are
//     claimed by nothing: they go to "uncategorized", in render order.
//
// A workload_to_resource_function names the workloads' resources in place of
// uniqueNames; two workloads it gives one name is an error, as in Tilt.
func Assemble(objs []*unstructured.Unstructured, cfg *model.Config) ([]*Group, error) {
	return assemble(objs, cfg, nil)
}

// assemble is Assemble with resources made before any workload's: those
// whose objects the config names (a k8s_custom_deploy, a helm_resource), so
// that k8s_resource calls configure them.
func assemble(objs []*unstructured.Unstructured, cfg *model.Config, pre []*Group) ([]*Group, error) {
	kinds, err := kindSelectors(cfg.K8sKinds)
	if err != nil {
		return nil, err
	}
	a := &assembly{cfg: cfg, byName: map[string]*Group{}, local: map[string]bool{}}
	for _, lr := range cfg.LocalResources {
		a.local[lr.Name] = true
	}
	for _, g := range pre {
		if err := a.conflict(g.Name); err != nil {
			return nil, fmt.Errorf("make the resource %s: %w", g.Name, err)
		}
		a.groups = append(a.groups, g)
		a.byName[g.Name] = g
	}
	var workloads []*unstructured.Unstructured
	for _, o := range objs {
		if isWorkload(o, kinds) {
			workloads = append(workloads, o)
		} else {
			a.rest = append(a.rest, o)
		}
	}
	names, err := a.workloadNames(workloads)
	if err != nil {
		return nil, err
	}
	for i, name := range names {
		g, err := a.newGroup(name)
		if err != nil {
			return nil, fmt.Errorf("make the resource of workload %s: %w", fullName(workloads[i]), err)
		}
		g.Workload = true
		g.Objects = append(g.Objects, workloads[i])
		g.Objects = append(g.Objects, a.claim(func(o *unstructured.Unstructured) bool { return selectsTemplateOf(o, workloads[i]) })...)
	}
	// Objects with a pod template but no image join the resource of their name.
	var templated []*unstructured.Unstructured
	for _, o := range a.rest {
		if _, ok := podTemplate(o); ok {
			templated = append(templated, o)
		}
	}
	for _, w := range templated {
		a.take(w)
		g := a.byName[w.GetName()]
		if g == nil {
			if g, err = a.newGroup(w.GetName()); err != nil {
				return nil, fmt.Errorf("make the resource of %s: %w", fullName(w), err)
			}
		}
		g.Workload = true
		g.Objects = append(g.Objects, w)
		g.Objects = append(g.Objects, a.claim(func(o *unstructured.Unstructured) bool { return selectsTemplateOf(o, w) })...)
	}
	fragments := map[string][]*unstructured.Unstructured{}
	var all []string
	for _, o := range objs {
		for _, n := range objectNames(o) {
			fragments[n] = append(fragments[n], o)
		}
		all = append(all, fullName(o))
	}
	for _, kr := range cfg.K8sResources {
		if err := a.configure(kr, fragments, all); err != nil {
			return nil, posErr(kr.Pos, err)
		}
	}
	if len(a.rest) > 0 {
		if u := a.byName[Uncategorized]; u != nil {
			u.Objects = append(u.Objects, a.rest...)
		} else {
			a.groups = append(a.groups, &Group{Name: Uncategorized, Objects: a.rest})
		}
	}
	return a.groups, nil
}

// assembly is Assemble's state: the resources so far and the objects none claimed.
type assembly struct {
	cfg    *model.Config
	groups []*Group
	byName map[string]*Group
	local  map[string]bool // local_resource names
	rest   []*unstructured.Unstructured
}

// workloadNames are the names of the workloads' resources: the
// workload_to_resource_function's, else uniqueNames'.
func (a *assembly) workloadNames(ws []*unstructured.Unstructured) ([]string, error) {
	f := a.cfg.WorkloadToResource
	if f == nil || f.Name == nil {
		return uniqueNames(ws), nil
	}
	out := make([]string, len(ws))
	taken := map[string]*unstructured.Unstructured{}
	id := func(o *unstructured.Unstructured) model.ObjectID {
		return model.ObjectID{Name: o.GetName(), Kind: o.GetKind(), Namespace: namespace(o), Group: group(o)}
	}
	for i, w := range ws {
		name, err := f.Name(id(w))
		if err != nil {
			return nil, fmt.Errorf("workload_to_resource_function: resource name of %s: %w", fullName(w), err)
		}
		if other, ok := taken[name]; ok {
			return nil, posErr(f.Pos, fmt.Errorf("workload_to_resource_function: both %s and %s mapped to resource name %q", fullName(other), fullName(w), name))
		}
		taken[name], out[i] = w, name
	}
	return out, nil
}

// newGroup makes a resource, refusing a name a Kubernetes or local resource has.
func (a *assembly) newGroup(name string) (*Group, error) {
	if err := a.conflict(name); err != nil {
		return nil, err
	}
	g := &Group{Name: name}
	a.groups = append(a.groups, g)
	a.byName[name] = g
	return g, nil
}

func (a *assembly) conflict(name string) error {
	if a.byName[name] != nil {
		return fmt.Errorf("a Kubernetes resource named %q exists already", name)
	}
	if a.local[name] {
		return fmt.Errorf("a local_resource named %q exists already", name)
	}
	return nil
}

// claim removes the unclaimed objects that match and returns them.
func (a *assembly) claim(match func(*unstructured.Unstructured) bool) []*unstructured.Unstructured {
	var got, rest []*unstructured.Unstructured
	for _, o := range a.rest {
		if match(o) {
			got = append(got, o)
		} else {
			rest = append(rest, o)
		}
	}
	a.rest = rest
	return got
}

func (a *assembly) take(o *unstructured.Unstructured) {
	a.claim(func(x *unstructured.Unstructured) bool { return x == o })
}

// configure applies one k8s_resource call.
func (a *assembly) configure(kr *model.K8sResource, fragments map[string][]*unstructured.Unstructured, all []string) error {
	name := kr.Workload
	if name == "" {
		if kr.NewName == "" {
			return errors.New("k8s_resource: a workload or a new_name is needed")
		}
		if _, err := a.newGroup(kr.NewName); err != nil {
			return fmt.Errorf("k8s_resource(new_name=%q): %w", kr.NewName, err)
		}
		name = kr.NewName
	}
	g := a.byName[name]
	if g == nil {
		return fmt.Errorf("k8s_resource(%q): no Kubernetes resource of that name; resources: %s", name, known(a.groups))
	}
	g.Spec = merged(g.Spec, kr)
	if kr.NewName != "" && kr.NewName != g.Name {
		if err := a.conflict(kr.NewName); err != nil {
			return fmt.Errorf("k8s_resource(%q): rename to %q: %w", g.Name, kr.NewName, err)
		}
		delete(a.byName, g.Name)
		g.Name = kr.NewName
		a.byName[g.Name] = g
	}
	sels := make([]objectSelector, len(kr.Objects))
	for i, o := range kr.Objects {
		s, err := parseObjectSelector(o)
		if err != nil {
			return fmt.Errorf("k8s_resource(%q): %w", g.Name, err)
		}
		sels[i] = s
	}
	for _, sel := range sels {
		match := fragments[strings.ToLower(sel.text)]
		switch {
		case len(match) == 0:
			return fmt.Errorf("k8s_resource(%q): objects=%q names no object; objects: %s", g.Name, sel.text, quoted(all))
		case len(match) > 1:
			var names []string
			for _, o := range match {
				names = append(names, fullName(o))
			}
			return fmt.Errorf("k8s_resource(%q): objects=%q names more than one object: %s", g.Name, sel.text, quoted(names))
		}
		got := a.claim(sel.matches)
		if len(got) == 0 {
			var left []string
			for _, o := range a.rest {
				left = append(left, fullName(o))
			}
			return fmt.Errorf("k8s_resource(%q): objects=%q names an object another resource has; unclaimed objects: %s", g.Name, sel.text, quoted(left))
		}
		g.Objects = append(g.Objects, got...)
	}
	return nil
}

// merged adds a k8s_resource call to what earlier calls configured, as Tilt
// aggregates them: lists add up, trigger mode and auto_init override.
func merged(prev, kr *model.K8sResource) *model.K8sResource {
	if prev == nil {
		c := *kr
		return &c
	}
	m := *prev
	m.NewName = kr.NewName
	if m.NewName == "" {
		m.NewName = prev.NewName
	}
	m.Objects = append(slices.Clone(prev.Objects), kr.Objects...)
	m.PortForwards = append(slices.Clone(prev.PortForwards), kr.PortForwards...)
	m.ResourceDeps = append(slices.Clone(prev.ResourceDeps), kr.ResourceDeps...)
	m.Links = append(slices.Clone(prev.Links), kr.Links...)
	m.ExtraPodSelectors = append(slices.Clone(prev.ExtraPodSelectors), kr.ExtraPodSelectors...)
	m.Labels = slices.Clone(prev.Labels)
	for _, l := range kr.Labels {
		if !slices.Contains(m.Labels, l) {
			m.Labels = append(m.Labels, l)
		}
	}
	if kr.TriggerMode != "" {
		m.TriggerMode = kr.TriggerMode
	}
	if kr.AutoInit != nil {
		m.AutoInit = kr.AutoInit
	}
	m.SelectorsOnly = prev.SelectorsOnly || kr.SelectorsOnly
	return &m
}

// isWorkload: a k8s_kind matches o, or its containers run an image.
func isWorkload(o *unstructured.Unstructured, kinds []kindSelector) bool {
	for _, k := range kinds {
		if k.matches(o) {
			return true
		}
	}
	return len(containerImages(o)) > 0
}

func quoted(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// Render renders the config's Kubernetes sources and Argo CD apps. The Tiltfile's own
// objects (k8s_yaml, kustomize, helm) are grouped into resources (Assemble); each Argo CD
// app (argocd_app, argocd_appset) is one resource of its own. A source that fails names
// the Tiltfile line.
//
// A source with a Resource (helm_resource) is that resource, and each
// k8s_custom_deploy is a resource whose objects its apply_cmd prints when it runs.
func Render(ctx context.Context, cfg *model.Config) ([]*Group, error) {
	if len(cfg.K8sSources) == 0 && len(cfg.ArgoApps) == 0 && len(cfg.ArgoAppSets) == 0 && len(cfg.CustomDeploys) == 0 {
		return nil, nil
	}
	var pre []*Group
	byName := map[string]*Group{}
	rest := *cfg
	rest.K8sSources = nil
	for _, src := range cfg.K8sSources {
		if src.Resource == "" {
			rest.K8sSources = append(rest.K8sSources, src)
			continue
		}
		objs, err := render.Source(ctx, src)
		if err != nil {
			return nil, posErr(src.Pos, err)
		}
		g := byName[src.Resource]
		if g == nil {
			g = &Group{Name: src.Resource, Workload: true}
			byName[g.Name] = g
			pre = append(pre, g)
		}
		g.Objects = append(g.Objects, objs...)
		if src.Release != nil {
			g.Release = src.Release
		}
	}
	for _, cd := range cfg.CustomDeploys {
		if byName[cd.Name] != nil {
			return nil, posErr(cd.Pos, fmt.Errorf("k8s_custom_deploy: a Kubernetes resource named %q exists already", cd.Name))
		}
		g := &Group{Name: cd.Name, Workload: true, Custom: cd}
		byName[g.Name] = g
		pre = append(pre, g)
	}
	apps, err := render.Apps(ctx, &rest, nil)
	if err != nil {
		return nil, err
	}
	var own []*unstructured.Unstructured
	var out []*Group
	for _, a := range apps {
		if a.Tool == render.ToolTiltfile {
			own = append(own, a.Objects...)
			continue
		}
		render.DefaultNamespace(a.Objects, a.Namespace)
		out = append(out, &Group{Name: a.Name, Objects: a.Objects, App: a})
	}
	groups, err := assemble(own, cfg, pre)
	if err != nil {
		return nil, err
	}
	return append(groups, out...), nil
}

func known(groups []*Group) string {
	var names []string
	for _, g := range groups {
		names = append(names, g.Name)
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func posErr(p model.Position, err error) error {
	if p.File == "" {
		return err
	}
	if p.Col > 0 {
		return fmt.Errorf("%s:%d:%d: %w", p.File, p.Line, p.Col, err)
	}
	return fmt.Errorf("%s:%d: %w", p.File, p.Line, err)
}

// Images returns the images of imgs that the objects use (pod templates and k8s_kind
// image paths), in the order of imgs: the images a resource must build before it deploys.
func Images(objs []*unstructured.Unstructured, imgs []*model.Image, kinds []*model.K8sKind) []*model.Image {
	if len(imgs) == 0 {
		return nil
	}
	sels, _ := kindSelectors(kinds) // Assemble reports a bad expression
	var out []*model.Image
	for _, img := range imgs {
		copies := make([]*unstructured.Unstructured, len(objs))
		for i, o := range objs {
			copies[i] = o.DeepCopy()
		}
		if len(substituteImages(copies, render.Images{img.Ref: img.Ref}, sels)) > 0 {
			out = append(out, img)
		}
	}
	return out
}

// KindPaths turns k8s_kind declarations into the image paths SubstituteImages reads,
// by kind (the GitOps diff's view; a deploy matches each declaration as Tilt does).
func KindPaths(kinds []*model.K8sKind) map[string][]render.ImagePath {
	out := map[string][]render.ImagePath{}
	for _, k := range kinds {
		for _, jp := range k.ImageJSONPath {
			out[k.Kind] = append(out[k.Kind], render.ParseImagePath(jp))
		}
	}
	return out
}

// kustomizeDirs is dir and every local directory its kustomization builds on
// (resources, bases, components), so an edit in a base in a parent directory re-renders.
func kustomizeDirs(dir string, seen map[string]bool) []string {
	dir = filepath.Clean(dir)
	if seen[dir] {
		return nil
	}
	seen[dir] = true
	out := []string{dir}
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		var k struct {
			Resources  []string `json:"resources"`
			Bases      []string `json:"bases"`
			Components []string `json:"components"`
		}
		if yaml.Unmarshal(data, &k) != nil {
			break // the render reports it
		}
		for _, r := range append(append(k.Resources, k.Bases...), k.Components...) {
			p := r
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, r)
			}
			if st, err := os.Stat(p); err == nil && st.IsDir() && !pathrule.Within(dir, p) {
				out = append(out, kustomizeDirs(p, seen)...)
			}
		}
		break
	}
	return out
}

// SourceRoots are the files and directories the Kubernetes sources of cfg are rendered
// from: an edit under one re-renders.
func SourceRoots(cfg *model.Config) []string {
	var out []string
	for _, s := range cfg.K8sSources {
		out = append(out, s.Paths...)
		if s.Kustomize != nil {
			out = append(out, kustomizeDirs(s.Kustomize.Dir, map[string]bool{})...)
		}
		if s.Helm != nil {
			out = append(out, s.Helm.Chart)
			out = append(out, s.Helm.Values...)
		}
	}
	// An Argo CD app renders from its source directory (and, for Kustomize, the bases
	// it builds on); its manifest is a config file already.
	for _, a := range cfg.ArgoApps {
		paths := a.Sources
		if len(paths) == 0 {
			paths = []string{a.Path}
		}
		for _, p := range paths {
			out = append(out, kustomizeDirs(filepath.Join(a.RepoRoot, p), map[string]bool{})...)
		}
	}
	return out
}
