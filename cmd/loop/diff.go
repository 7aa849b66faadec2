package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/distribution/reference"
	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/gitops/argosync"
	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// builtTagPrefix starts the tags of the images loop builds (name:loop-<hash>).
const builtTagPrefix = "loop-"

// Object states of `loop diff`.
const (
	stateInSync  = "in-sync"
	stateChanged = "changed" // live differs from desired
	stateMissing = "missing" // desired, not in the cluster
	stateExtra   = "extra"   // applied for the app earlier, no longer rendered
)

// objectDiff is one object's comparison, as `loop diff -o json` prints it.
type objectDiff struct {
	App   string `json:"app"`
	Key   string `json:"key"`
	State string `json:"state"`
	Diff  string `json:"diff,omitempty"`
}

// diffReport is the whole comparison.
type diffReport struct {
	Context string       `json:"context"`
	Differ  int          `json:"differ"`
	Objects []objectDiff `json:"objects"`
}

// differsError makes `loop diff` exit 1 when something differs, like `kubectl diff`.
type differsError struct {
	n, total int
	context  string
}

func (e differsError) Error() string {
	return fmt.Sprintf("%d of %d objects differ from kube context %s", e.n, e.total, e.context)
}

func newDiffCmd() *cobra.Command {
	var (
		pf     projectFlags
		images []string
		output string
	)
	cmd := &cobra.Command{
		Use:   "diff [-f Tiltfile] [--image NAME=REF]... [-o text|json] [-- ARGS]",
		Short: "Show how the current kube context differs from what the Tiltfile renders (exit 1 when it does)",
		Long: `diff renders the Tiltfile as loop render does (the Tiltfile's own objects and
every Argo CD app), connects to the current kube context (a context that is not a
local cluster is refused unless the Tiltfile's allow_k8s_contexts names it) and, for
each object, compares the live object with what a server-side apply of the desired
one would make it (a dry run). It prints a unified diff of the two as YAML, without
status, managed fields, server-set metadata or loop's own tracking label and
annotation, for every object that differs, is missing, or was applied for an app
earlier and is no longer rendered (it would be pruned).

A docker_build image not given with --image is taken to be the one running: when the
live container runs a ref loop built for it (NAME:loop-..., or pushed to a registry,
REGISTRY/ESCAPED_NAME:loop-...), that ref is desired.

Exit codes: 0 when everything is in sync; 1 when something differs (stderr counts
it) or the comparison failed; 2 wrong flags or arguments.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("diff takes no arguments before --, got %q", pos)}
			}
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			refs, err := imageFlags(images)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			conf, err := pf.load(ctx, "diff", tiltArgs)
			if err != nil {
				return err
			}
			apps, err := render.Apps(ctx, conf, refs)
			if err != nil {
				return err
			}
			if len(apps) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "nothing to compare: the Tiltfile declares no Kubernetes objects")
				return nil
			}
			cluster, err := argosync.Connect("", conf.Settings.AllowedK8sContexts)
			if err != nil {
				return err
			}
			syncer, err := argosync.NewSyncer(cluster)
			if err != nil {
				return err
			}
			d := &differ{s: syncer, adopt: adoptable(conf, refs), kinds: kindPaths(conf)}
			rep, err := d.run(ctx, apps)
			if err != nil {
				return err
			}
			rep.Context = cluster.Context
			if err := printReport(cmd.OutOrStdout(), rep, output); err != nil {
				return err
			}
			if rep.Differ > 0 {
				return differsError{n: rep.Differ, total: len(rep.Objects), context: cluster.Context}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "in sync: %d objects in kube context %s\n", len(rep.Objects), cluster.Context)
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringArrayVar(&images, "image", nil, "NAME=REF: use REF wherever the image NAME is referenced (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text (unified diffs) or json")
	return cmd
}

// differ compares rendered apps with one cluster.
type differ struct {
	s *argosync.Syncer
	// adopt are the normalised names of built images whose live loop-built ref is desired.
	adopt map[string]bool
	kinds map[string][]render.ImagePath
}

func (d *differ) run(ctx context.Context, apps []*render.App) (*diffReport, error) {
	rep := &diffReport{}
	desired := map[string]bool{}
	var owners []string // apps whose earlier applies may have left objects behind
	for _, a := range apps {
		if a.Tool != render.ToolTiltfile {
			owners = append(owners, a.Name)
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
			od := objectDiff{App: a.Name, Key: displayKey(shown)}
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
			return nil, err
		}
		for _, l := range live {
			if desired[argosync.Key(l)] || !prunable(l) {
				continue
			}
			desired[argosync.Key(l)] = true
			_, text, err := diffObjects(displayKey(l), l, nil)
			if err != nil {
				return nil, err
			}
			rep.add(objectDiff{App: app, Key: displayKey(l), State: stateExtra, Diff: text})
		}
	}
	return rep, nil
}

func (r *diffReport) add(od objectDiff) {
	if od.State != stateInSync {
		r.Differ++
	}
	r.Objects = append(r.Objects, od)
}

// prunable says whether a leftover live object would go at the next pruning sync:
// hooks, Prune=false objects and objects already being deleted stay out of the diff.
func prunable(o *unstructured.Unstructured) bool {
	ann := o.GetAnnotations()
	if ann["argocd.argoproj.io/hook"] != "" || ann["helm.sh/hook"] != "" || o.GetDeletionTimestamp() != nil {
		return false
	}
	return !strings.Contains(ann["argocd.argoproj.io/sync-options"], "Prune=false")
}

// compare asks the cluster about one object; nil means it is a hook. When the live
// object runs loop-built refs of images the config builds, those refs are desired.
func (d *differ) compare(ctx context.Context, a *render.App, obj *unstructured.Unstructured) (*argosync.ObjectStatus, error) {
	o := argosync.Options{App: a.Name, Namespace: a.Namespace}
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

// adoptable are the images the Tiltfile builds and --image did not pin.
func adoptable(conf *model.Config, pinned render.Images) map[string]bool {
	out := map[string]bool{}
	for _, img := range conf.Images {
		if _, ok := pinned[img.Ref]; !ok {
			out[imageName(img.Ref)] = true
		}
	}
	return out
}

func kindPaths(conf *model.Config) map[string][]render.ImagePath {
	kinds := map[string][]render.ImagePath{}
	for _, k := range conf.K8sKinds {
		for _, jp := range k.ImageJSONPath {
			kinds[k.Kind] = append(kinds[k.Kind], render.ParseImagePath(jp))
		}
	}
	return kinds
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
		if t, tagged := named.(reference.Tagged); ok && tagged && strings.HasPrefix(t.Tag(), builtTagPrefix) {
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

func imageName(ref string) string {
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		return named.Name()
	}
	return ref
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
	state := stateChanged
	switch {
	case a == b:
		return stateInSync, "", nil
	case live == nil:
		state = stateMissing
	case desired == nil:
		state = stateExtra
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

func printReport(w io.Writer, rep *diffReport, output string) error {
	if output == "json" {
		if rep.Objects == nil {
			rep.Objects = []objectDiff{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	for _, od := range rep.Objects {
		if od.State == stateInSync {
			continue
		}
		if _, err := fmt.Fprintf(w, "# %s (app %s): %s\n%s", od.Key, od.App, od.State, od.Diff); err != nil {
			return err
		}
	}
	return nil
}
