// Package gitops owns loop's GitOps view of a project: how a cluster differs from the
// apps its config renders (loop diff). Rendering is render's (Argo CD's repo server),
// applying, pruning and drift are argosync's (Argo CD's sync); this package puts the two
// together the way a sync would see them.
package gitops

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/gitops/argosync"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/internal/build"
	"github.com/loop-dev/loop/daemon/internal/kube"
	"github.com/loop-dev/loop/daemon/model"
)

// Object states in a Report.
const (
	InSync  = "in-sync"
	Changed = "changed" // live differs from desired
	Missing = "missing" // desired, not in the cluster
	Extra   = "extra"   // applied for the app earlier, no longer rendered: a pruning sync deletes it
)

// ObjectDiff is one object's comparison.
type ObjectDiff struct {
	App string `json:"app"`
	// Key names the object as GROUP/KIND/NAMESPACE/NAME, leaving out what is empty.
	Key   string `json:"key"`
	State string `json:"state"`
	// Diff is a unified diff from the live to the desired object as YAML, without what
	// the server sets on its own; empty when they are the same.
	Diff string `json:"diff,omitempty"`
}

// Report is a whole comparison.
type Report struct {
	// Context is the kube context compared with; empty when there was nothing to compare.
	Context string       `json:"context"`
	Differ  int          `json:"differ"` // objects not in sync
	Objects []ObjectDiff `json:"objects"`
	// Apps counts the apps rendered; 0 means the config declares no Kubernetes objects
	// and no cluster was asked.
	Apps int `json:"-"`
}

// DiffOptions tune Diff.
type DiffOptions struct {
	// Images pins built images: image name as the config declares it → ref. A built
	// image not pinned is taken to be the one running: when the live object runs a ref
	// loop built for it (NAME:loop-..., or pushed to a registry,
	// REGISTRY/ESCAPED_NAME:loop-...), that ref is desired.
	Images render.Images
}

// Diff renders conf's Kubernetes objects (its own and every Argo CD app's), connects to
// the current kube context (one that is not a local cluster is refused unless
// allow_k8s_contexts names it) and compares each object with what a server-side apply
// of it would make the live one (a dry run). Objects applied for an app earlier and no
// longer rendered are reported Extra when a pruning sync would delete them.
func Diff(ctx context.Context, conf *model.Config, opts DiffOptions) (*Report, error) {
	apps, err := render.Apps(ctx, conf, opts.Images)
	if err != nil {
		return nil, err
	}
	if len(apps) == 0 {
		return &Report{}, nil
	}
	cluster, err := argosync.Connect("", conf.Settings.AllowedK8sContexts)
	if err != nil {
		return nil, err
	}
	syncer, err := argosync.NewSyncer(cluster)
	if err != nil {
		return nil, err
	}
	d := &differ{s: syncer, adopt: adoptable(conf, opts.Images), kinds: kube.KindPaths(conf.K8sKinds)}
	rep, err := d.run(ctx, apps)
	if err != nil {
		return nil, err
	}
	rep.Context = cluster.Context
	rep.Apps = len(apps)
	return rep, nil
}

// differ compares rendered apps with one cluster.
type differ struct {
	s *argosync.Syncer
	// adopt are the normalised names of built images whose live loop-built ref is desired.
	adopt map[string]bool
	kinds map[string][]render.ImagePath
}

func (d *differ) run(ctx context.Context, apps []*render.App) (*Report, error) {
	rep := &Report{}
	desired := map[string]bool{}
	var owners []string // apps whose earlier applies may have left objects behind
	policies := map[string]model.ArgoSync{}
	for _, a := range apps {
		if a.Tool != render.ToolTiltfile {
			owners = append(owners, a.Name)
			policies[a.Name] = a.Sync
		}
		for _, obj := range a.Objects {
			st, err := d.compare(ctx, a, obj)
			if err != nil {
				return nil, err
			}
			if st == nil {
				continue // a hook: it runs during a sync, it is never compared
			}
			shown := st.Desired
			if shown == nil {
				shown = st.Live
			}
			desired[argosync.Key(shown)] = true
			od := ObjectDiff{App: a.Name, Key: displayKey(shown)}
			if st.Live != nil {
				// The Tiltfile's objects are synced per resource: the live label says which app.
				if app := st.Live.GetLabels()[argosync.LabelApp]; app != "" {
					od.App = app
					owners = append(owners, app)
				}
			}
			od.State, od.Diff, err = diffObjects(od.Key, st.Live, st.Desired)
			if err != nil {
				return nil, err
			}
			rep.add(od)
		}
	}
	slices.Sort(owners)
	for _, app := range slices.Compact(owners) {
		live, err := d.s.Tracked(ctx, app)
		if err != nil {
			return nil, fmt.Errorf("list the objects of app %s: %w", app, err)
		}
		for _, l := range live {
			if desired[argosync.Key(l)] || !argosync.Prunable(l, policies[app]) {
				continue
			}
			desired[argosync.Key(l)] = true
			_, text, err := diffObjects(displayKey(l), l, nil)
			if err != nil {
				return nil, err
			}
			rep.add(ObjectDiff{App: app, Key: displayKey(l), State: Extra, Diff: text})
		}
	}
	return rep, nil
}

func (r *Report) add(od ObjectDiff) {
	if od.State != InSync {
		r.Differ++
	}
	r.Objects = append(r.Objects, od)
}

// compare asks the cluster about one object; nil means it is a hook. When the live
// object runs loop-built refs of images the config builds, those refs are desired.
func (d *differ) compare(ctx context.Context, a *render.App, obj *unstructured.Unstructured) (*argosync.ObjectStatus, error) {
	o := argosync.Options{App: a.Name, Namespace: a.Namespace, Policy: a.Sync}
	sts, err := d.s.Compare(ctx, []*unstructured.Unstructured{obj}, o)
	if err != nil || len(sts) == 0 {
		return nil, err
	}
	if sts[0].Live == nil {
		return &sts[0], nil
	}
	refs := liveBuiltRefs(obj, sts[0].Live, d.adopt)
	if len(refs) == 0 {
		return &sts[0], nil
	}
	cp := obj.DeepCopy()
	render.SubstituteImages([]*unstructured.Unstructured{cp}, refs, d.kinds)
	sts, err = d.s.Compare(ctx, []*unstructured.Unstructured{cp}, o)
	if err != nil || len(sts) == 0 {
		return nil, err
	}
	return &sts[0], nil
}

// adoptable are the images the config builds and DiffOptions.Images does not pin.
func adoptable(conf *model.Config, pinned render.Images) map[string]bool {
	out := map[string]bool{}
	for _, img := range conf.Images {
		if _, ok := pinned[img.Ref]; !ok {
			out[render.NormalizedName(img.Ref)] = true
		}
	}
	return out
}

// liveBuiltRefs maps each adoptable image that desired uses to the loop-built ref of it
// that live runs.
func liveBuiltRefs(desired, live *unstructured.Unstructured, adopt map[string]bool) render.Images {
	want := map[string]string{} // a name live may run the image under → the image
	for _, ref := range containerImages(desired.Object) {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil || !adopt[named.Name()] {
			continue
		}
		want[named.Name()] = named.Name()
		// Pushed to a registry (default_registry, the cluster's local one), it
		// runs as <registry>/<escaped name>.
		want["/"+render.RegistryRepo(named)] = named.Name()
	}
	refs := render.Images{}
	for _, ref := range containerImages(live.Object) {
		named, err := reference.ParseNormalizedNamed(ref)
		if err != nil {
			continue
		}
		img, ok := want[named.Name()]
		if !ok {
			img, ok = want["/"+reference.Path(named)]
		}
		if t, tagged := named.(reference.Tagged); ok && tagged && strings.HasPrefix(t.Tag(), build.TagPrefix) {
			refs[img] = ref
		}
	}
	return refs
}

// containerImages finds the image of every container, init container and ephemeral
// container anywhere in an object.
func containerImages(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if list, ok := e.([]any); ok && (k == "containers" || k == "initContainers" || k == "ephemeralContainers") {
				for _, c := range list {
					if cm, ok := c.(map[string]any); ok {
						if img, ok := cm["image"].(string); ok {
							out = append(out, img)
						}
					}
				}
				continue
			}
			out = append(out, containerImages(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, containerImages(e)...)
		}
	}
	return out
}

// diffObjects compares normalised live and desired YAML (either may be nil) and returns
// the state and a unified diff, empty when they are the same.
func diffObjects(key string, live, desired *unstructured.Unstructured) (string, string, error) {
	a, err := normalisedYAML(live)
	if err != nil {
		return "", "", err
	}
	b, err := normalisedYAML(desired)
	if err != nil {
		return "", "", err
	}
	state := Changed
	switch {
	case a == b:
		return InSync, "", nil
	case live == nil:
		state = Missing
	case desired == nil:
		state = Extra
	}
	text, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: lines(a), B: lines(b), FromFile: "live/" + key, ToFile: "desired/" + key, Context: 3,
	})
	return state, text, err
}

// lines splits text after each newline; "" has no lines.
func lines(s string) []string {
	l := strings.SplitAfter(s, "\n")
	if l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// displayKey names an object as GROUP/KIND/NAMESPACE/NAME, leaving out what is empty.
func displayKey(o *unstructured.Unstructured) string {
	var parts []string
	for _, p := range []string{o.GroupVersionKind().Group, o.GetKind(), o.GetNamespace(), o.GetName()} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}

// normalisedYAML drops what the server sets on its own and loop's tracking, so that only
// what the config decides is compared.
func normalisedYAML(o *unstructured.Unstructured) (string, error) {
	if o == nil {
		return "", nil
	}
	o = o.DeepCopy()
	delete(o.Object, "status")
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	for _, a := range []string{argosync.AnnTrackingID, "deployment.kubernetes.io/revision", "kubectl.kubernetes.io/last-applied-configuration"} {
		unstructured.RemoveNestedField(o.Object, "metadata", "annotations", a)
	}
	unstructured.RemoveNestedField(o.Object, "metadata", "labels", argosync.LabelApp)
	for _, f := range []string{"annotations", "labels"} {
		if m, _, _ := unstructured.NestedMap(o.Object, "metadata", f); len(m) == 0 {
			unstructured.RemoveNestedField(o.Object, "metadata", f)
		}
	}
	b, err := yaml.Marshal(o.Object)
	if err != nil {
		return "", fmt.Errorf("encode %s: %w", argosync.Key(o), err)
	}
	return string(b), nil
}
