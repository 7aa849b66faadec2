package argosync

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	jsonpatch "github.com/evanphx/json-patch"
	"github.com/gobwas/glob"
	"github.com/itchyny/gojq"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"

	"github.com/loop-dev/loop/daemon/model"
)

// policy is an app's model.ArgoSync made ready to use: its sync options by name and
// its ignoreDifferences compiled.
type policy struct {
	app    map[model.SyncOption]string
	ignore []ignoreRule
	src    model.ArgoSync
	// key fingerprints the ignore rules, for Compare's cache.
	key [32]byte
}

// compilePolicy checks and compiles p.
func compilePolicy(p model.ArgoSync) (*policy, error) {
	pol := &policy{app: map[model.SyncOption]string{}, src: p}
	for _, s := range p.Options {
		opt, v, err := model.ParseSyncOption(s, true)
		if err != nil {
			return nil, fmt.Errorf("spec.syncPolicy.syncOptions: %w", err)
		}
		pol.app[opt] = v
	}
	for i, d := range p.IgnoreDifferences {
		r, err := compileIgnore(d)
		if err != nil {
			return nil, fmt.Errorf("spec.ignoreDifferences[%d]: %w", i, err)
		}
		pol.ignore = append(pol.ignore, r)
	}
	b, _ := json.Marshal(p.IgnoreDifferences)
	pol.key = sha256.Sum256(b)
	return pol, nil
}

// opt is the value of a sync option for obj: its argocd.argoproj.io/sync-options
// annotation wins over the Application's syncOptions; "" when neither sets it.
func (p *policy) opt(obj *unstructured.Unstructured, name model.SyncOption) string {
	if obj != nil {
		for _, s := range splitList(obj.GetAnnotations()[annSyncOptions]) {
			if opt, v, err := model.ParseSyncOption(s, false); err == nil && opt == name {
				return v
			}
		}
	}
	return p.app[name]
}

// is says whether a sync option of obj (nil: the app's) has value v.
func (p *policy) is(obj *unstructured.Unstructured, name model.SyncOption, v string) bool {
	return p.opt(obj, name) == v
}

// ignoreRule is one compiled spec.ignoreDifferences entry.
type ignoreRule struct {
	group, kind     glob.Glob
	name, namespace string
	pointers        []jsonpatch.Patch
	jq              []*gojq.Code
	managers        []string
}

// jqTimeout bounds one jq expression's run, as Argo CD's default does.
const jqTimeout = time.Second

func compileIgnore(d model.IgnoreDifference) (ignoreRule, error) {
	r := ignoreRule{name: d.Name, namespace: d.Namespace, managers: d.ManagedFieldsManagers}
	var err error
	if r.group, err = glob.Compile(d.Group); err != nil {
		return r, fmt.Errorf("group %q: %w", d.Group, err)
	}
	if r.kind, err = glob.Compile(d.Kind); err != nil {
		return r, fmt.Errorf("kind %q: %w", d.Kind, err)
	}
	for _, p := range d.JSONPointers {
		data, err := json.Marshal([]map[string]string{{"op": "remove", "path": p}})
		if err != nil {
			return r, err
		}
		patch, err := jsonpatch.DecodePatch(data)
		if err != nil {
			return r, fmt.Errorf("jsonPointers %q: %w", p, err)
		}
		r.pointers = append(r.pointers, patch)
	}
	for _, e := range d.JQPathExpressions {
		q, err := gojq.Parse("del(" + e + ")")
		if err != nil {
			return r, fmt.Errorf("jqPathExpressions %q: %w", e, err)
		}
		code, err := gojq.Compile(q)
		if err != nil {
			return r, fmt.Errorf("jqPathExpressions %q: %w", e, err)
		}
		r.jq = append(r.jq, code)
	}
	return r, nil
}

func (r ignoreRule) matches(o *unstructured.Unstructured) bool {
	gk := o.GroupVersionKind().GroupKind()
	return r.group.Match(gk.Group) && r.kind.Match(gk.Kind) &&
		(r.name == "" || r.name == o.GetName()) && (r.namespace == "" || r.namespace == o.GetNamespace())
}

// ignored removes from live and desired (either may be nil) the fields that
// spec.ignoreDifferences leaves out of the comparison: JSON pointers and jq paths from
// both, and the fields the named managers own in live, from both where they differ (as
// Argo CD, with a schema deduced from the objects: a list counts as one field). A
// pointer or path that does not resolve is skipped. The results are copies.
func (p *policy) ignored(live, desired *unstructured.Unstructured) (*unstructured.Unstructured, *unstructured.Unstructured, error) {
	ref := desired
	if ref == nil {
		ref = live
	}
	var rules []ignoreRule
	for _, r := range p.ignore {
		if ref != nil && r.matches(ref) {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return live, desired, nil
	}
	var managers []string
	for _, r := range rules {
		managers = append(managers, r.managers...)
	}
	if live != nil && desired != nil && len(managers) > 0 {
		var err error
		if live, desired, err = dropManaged(live, desired, managers); err != nil {
			return nil, nil, err
		}
	}
	out := make([]*unstructured.Unstructured, 2)
	for i, o := range []*unstructured.Unstructured{live, desired} {
		if o == nil {
			continue
		}
		n, err := applyIgnore(o, rules)
		if err != nil {
			return nil, nil, err
		}
		out[i] = n
	}
	return out[0], out[1], nil
}

// applyIgnore removes the rules' pointers and jq paths from a copy of o.
func applyIgnore(o *unstructured.Unstructured, rules []ignoreRule) (*unstructured.Unstructured, error) {
	doc, err := json.Marshal(o.Object)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", Key(o), err)
	}
	for _, r := range rules {
		for _, patch := range r.pointers {
			if next, err := patch.Apply(doc); err == nil {
				doc = next
			}
		}
		for _, code := range r.jq {
			if next, err := runJQ(code, doc); err == nil {
				doc = next
			}
		}
	}
	m := map[string]any{}
	// apimachinery's json keeps whole numbers int64, as unstructured objects need.
	if err := utiljson.Unmarshal(doc, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", Key(o), err)
	}
	// A list or map emptied by a removal is as good as absent (the other side often
	// never had it).
	dropEmpty(m)
	return &unstructured.Unstructured{Object: m}, nil
}

// dropEmpty removes empty lists and maps from m, depth first.
func dropEmpty(m map[string]any) {
	for k, v := range m {
		switch x := v.(type) {
		case map[string]any:
			dropEmpty(x)
			if len(x) == 0 {
				delete(m, k)
			}
		case []any:
			for _, e := range x {
				if em, ok := e.(map[string]any); ok {
					dropEmpty(em)
				}
			}
			if len(x) == 0 {
				delete(m, k)
			}
		}
	}
}

func runJQ(code *gojq.Code, doc []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), jqTimeout)
	defer cancel()
	iter := code.RunWithContext(ctx, v)
	first, ok := iter.Next()
	if !ok {
		return nil, fmt.Errorf("jq returned nothing")
	}
	if err, isErr := first.(error); isErr {
		return nil, err
	}
	if _, more := iter.Next(); more {
		return nil, fmt.Errorf("jq returned more than one value")
	}
	return json.Marshal(first)
}

// dropManaged removes, from both objects, the fields where they differ that the
// managers own in live.
func dropManaged(live, desired *unstructured.Unstructured, managers []string) (*unstructured.Unstructured, *unstructured.Unstructured, error) {
	pt := &typed.DeducedParseableType
	tl, err := pt.FromUnstructured(live.Object)
	if err != nil {
		return live, desired, nil //nolint:nilerr // an object the deduced schema cannot read is compared whole
	}
	td, err := pt.FromUnstructured(desired.Object)
	if err != nil {
		return live, desired, nil //nolint:nilerr // as above
	}
	cmp, err := tl.Compare(td)
	if err != nil {
		return live, desired, nil //nolint:nilerr // as above
	}
	changed := false
	for _, mf := range live.GetManagedFields() {
		if !slices.Contains(managers, mf.Manager) || mf.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(mf.FieldsV1.GetRawReader()); err != nil {
			return nil, nil, fmt.Errorf("read the managed fields of %s: %w", Key(live), err)
		}
		both := set.Intersection(cmp.Modified.Union(cmp.Added).Union(cmp.Removed))
		if both.Empty() {
			continue
		}
		tl, td, changed = tl.RemoveItems(both), td.RemoveItems(both), true
	}
	if !changed {
		return live, desired, nil
	}
	l, ok1 := tl.AsValue().Unstructured().(map[string]any)
	d, ok2 := td.AsValue().Unstructured().(map[string]any)
	if !ok1 || !ok2 {
		return nil, nil, fmt.Errorf("compare %s: not an object", Key(live))
	}
	return &unstructured.Unstructured{Object: l}, &unstructured.Unstructured{Object: d}, nil
}

// respectIgnored is RespectIgnoreDifferences=true: desired with the ignored fields
// taken from live (status aside), so that a sync leaves them as they are. A JSON merge
// patch carries them: an ignored list element brings its whole list from live.
func (p *policy) respectIgnored(desired, live *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	live = live.DeepCopy()
	delete(live.Object, "status")
	normLive, normDesired, err := p.ignored(live, desired)
	if err != nil || normLive == live {
		return desired, err
	}
	// Only the ignored fields are to come from live, never the server's bookkeeping.
	normLive, live = withoutBookkeeping(normLive), withoutBookkeeping(live)
	a, err := json.Marshal(normLive.Object)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(live.Object)
	if err != nil {
		return nil, err
	}
	patch, err := jsonpatch.CreateMergePatch(a, b)
	if err != nil {
		return nil, fmt.Errorf("keep the ignored fields of %s: %w", Key(desired), err)
	}
	t, err := json.Marshal(normDesired.Object)
	if err != nil {
		return nil, err
	}
	merged, err := jsonpatch.MergePatch(t, patch)
	if err != nil {
		return nil, fmt.Errorf("keep the ignored fields of %s: %w", Key(desired), err)
	}
	m := map[string]any{}
	if err := utiljson.Unmarshal(merged, &m); err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// withoutBookkeeping is a copy of o without what the server keeps in its metadata.
func withoutBookkeeping(o *unstructured.Unstructured) *unstructured.Unstructured {
	o = o.DeepCopy()
	for _, f := range []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"} {
		unstructured.RemoveNestedField(o.Object, "metadata", f)
	}
	return o
}
