// Package kube owns loop's Kubernetes deploys for the engine: grouping rendered objects
// into resources the way Tilt does, connecting to the current kube context (refusing a
// non-local one), getting built images into kind nodes without a registry, and syncing a
// resource's objects the Argo CD way (daemon/gitops/argosync).
package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	Name     string
	Objects  []*unstructured.Unstructured
	Workload bool
	// Spec is the k8s_resource that configured the group; nil when none did.
	Spec *model.K8sResource
	// App is the Argo CD app the group mirrors; nil for the Tiltfile's own objects.
	App *render.App
}

// workloadKinds are the kinds Tilt treats as workloads: they run pods.
var workloadKinds = map[string]bool{
	"Pod": true, "Deployment": true, "StatefulSet": true, "DaemonSet": true, "ReplicaSet": true,
	"ReplicationController": true, "Job": true, "CronJob": true,
}

// Assemble groups rendered objects into resources as Tilt does: each workload is a
// resource named after it (name, then name:kind, then name:kind:namespace when names
// clash); k8s_resource renames a workload, attaches objects to it (objects=, selectors
// "name[:kind[:namespace]]") or makes a resource of objects alone (new_name + objects);
// what is left goes to "uncategorized". Objects keep their render order in each group.
func Assemble(objs []*unstructured.Unstructured, cfg *model.Config) ([]*Group, error) {
	custom := map[string]bool{}
	for _, k := range cfg.K8sKinds {
		if len(k.ImageJSONPath) > 0 || k.PodReadiness == "wait" {
			custom[k.Kind] = true
		}
	}
	var groups []*Group
	byName := map[string]*Group{}
	claimed := make([]bool, len(objs))
	var workloads []int
	for i, o := range objs {
		if workloadKinds[o.GetKind()] || custom[o.GetKind()] {
			workloads = append(workloads, i)
		}
	}
	names := workloadNames(objs, workloads)
	for _, i := range workloads {
		g := &Group{Name: names[i], Objects: []*unstructured.Unstructured{objs[i]}, Workload: true}
		claimed[i] = true
		groups = append(groups, g)
		byName[g.Name] = g
	}
	for _, kr := range cfg.K8sResources {
		var g *Group
		switch {
		case kr.Workload != "" && byName[kr.Workload] != nil:
			g = byName[kr.Workload]
		case kr.Workload != "" && len(kr.Objects) == 0:
			return nil, posErr(kr.Pos, fmt.Errorf("k8s_resource(%q): no workload of that name; workloads: %s", kr.Workload, known(groups)))
		default:
			name := kr.NewName
			if name == "" {
				name = kr.Workload
			}
			if name == "" {
				return nil, posErr(kr.Pos, fmt.Errorf("k8s_resource: objects without a workload need new_name"))
			}
			if byName[name] != nil {
				return nil, posErr(kr.Pos, fmt.Errorf("k8s_resource(%q): a resource of that name exists already", name))
			}
			g = &Group{Name: name}
			groups = append(groups, g)
			byName[name] = g
		}
		if g.Spec != nil {
			return nil, posErr(kr.Pos, fmt.Errorf("k8s_resource(%q) is configured twice", g.Name))
		}
		g.Spec = kr
		for _, sel := range kr.Objects {
			n := 0
			for i, o := range objs {
				if claimed[i] || !matches(sel, o) {
					continue
				}
				claimed[i] = true
				g.Objects = append(g.Objects, o)
				n++
			}
			if n == 0 {
				return nil, posErr(kr.Pos, fmt.Errorf("k8s_resource(%q): objects=%q matches no unclaimed object (name[:kind[:namespace]])", g.Name, sel))
			}
		}
	}
	for _, g := range groups {
		if g.Spec != nil && g.Spec.NewName != "" && g.Name != g.Spec.NewName {
			if byName[g.Spec.NewName] != nil && byName[g.Spec.NewName] != g {
				return nil, posErr(g.Spec.Pos, fmt.Errorf("k8s_resource(%q): new_name %q is taken", g.Name, g.Spec.NewName))
			}
			delete(byName, g.Name)
			g.Name = g.Spec.NewName
			byName[g.Name] = g
		}
	}
	var rest []*unstructured.Unstructured
	for i, o := range objs {
		if !claimed[i] {
			rest = append(rest, o)
		}
	}
	if len(rest) > 0 {
		if byName[Uncategorized] != nil {
			byName[Uncategorized].Objects = append(byName[Uncategorized].Objects, rest...)
		} else {
			groups = append(groups, &Group{Name: Uncategorized, Objects: rest})
		}
	}
	return groups, nil
}

// Render renders the config's Kubernetes sources and Argo CD apps. The Tiltfile's own
// objects (k8s_yaml, kustomize, helm) are grouped into resources (Assemble); each Argo CD
// app (argocd_app, argocd_appset) is one resource of its own. A source that fails names
// the Tiltfile line.
func Render(ctx context.Context, cfg *model.Config) ([]*Group, error) {
	if len(cfg.K8sSources) == 0 && len(cfg.ArgoApps) == 0 && len(cfg.ArgoAppSets) == 0 {
		return nil, nil
	}
	apps, err := render.Apps(ctx, cfg, nil)
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
	groups, err := Assemble(own, cfg)
	if err != nil {
		return nil, err
	}
	return append(groups, out...), nil
}

// workloadNames names each workload by its name, adding kind and then namespace where
// names clash, as Tilt does.
func workloadNames(objs []*unstructured.Unstructured, idx []int) map[int]string {
	levels := []func(o *unstructured.Unstructured) string{
		func(o *unstructured.Unstructured) string { return strings.ToLower(o.GetName()) },
		func(o *unstructured.Unstructured) string {
			return strings.ToLower(o.GetName() + ":" + o.GetKind())
		},
		func(o *unstructured.Unstructured) string {
			return strings.ToLower(o.GetName() + ":" + o.GetKind() + ":" + o.GetNamespace())
		},
	}
	out := map[int]string{}
	for _, i := range idx {
		for l, name := range levels {
			n := 0
			for _, j := range idx {
				if name(objs[j]) == name(objs[i]) {
					n++
				}
			}
			if n == 1 || l == len(levels)-1 {
				out[i] = name(objs[i])
				break
			}
		}
	}
	return out
}

// matches reports whether a k8s_resource objects= selector "name[:kind[:namespace]]"
// names o (case-insensitive).
func matches(sel string, o *unstructured.Unstructured) bool {
	parts := strings.Split(sel, ":")
	fields := []string{o.GetName(), o.GetKind(), o.GetNamespace()}
	if len(parts) > len(fields) {
		return false
	}
	for i, p := range parts {
		if !strings.EqualFold(p, fields[i]) {
			return false
		}
	}
	return true
}

func known(groups []*Group) string {
	var names []string
	for _, g := range groups {
		if g.Workload {
			names = append(names, g.Name)
		}
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
	return fmt.Errorf("%s:%d: %w", p.File, p.Line, err)
}

// Images returns the images of imgs that the objects use (pod templates and k8s_kind
// image paths), in the order of imgs: the images a resource must build before it deploys.
func Images(objs []*unstructured.Unstructured, imgs []*model.Image, kinds []*model.K8sKind) []*model.Image {
	if len(imgs) == 0 {
		return nil
	}
	paths := KindPaths(kinds)
	var out []*model.Image
	for _, img := range imgs {
		copies := make([]*unstructured.Unstructured, len(objs))
		for i, o := range objs {
			copies[i] = o.DeepCopy()
		}
		if len(render.SubstituteImages(copies, render.Images{img.Ref: img.Ref}, paths)) > 0 {
			out = append(out, img)
		}
	}
	return out
}

// KindPaths turns k8s_kind declarations into the image paths SubstituteImages reads.
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
		out = append(out, kustomizeDirs(filepath.Join(a.RepoRoot, a.Path), map[string]bool{})...)
	}
	return out
}
