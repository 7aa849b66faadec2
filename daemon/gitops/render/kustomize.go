package render

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// KustomizeOptions are `kustomize build` flags plus the edits Argo CD applies to the
// kustomization before building (spec.source.kustomize).
type KustomizeOptions struct {
	// LoadRestrictionsNone is --load-restrictor LoadRestrictionsNone.
	LoadRestrictionsNone bool
	// EnableHelm is --enable-helm: helmCharts are inflated (in process).
	EnableHelm bool
	NamePrefix string
	NameSuffix string
	// Images are `kustomize edit set image` arguments: "name=new:tag", "name:tag", "name@sha256:...".
	Images       []string
	CommonLabels map[string]string
	// CommonAnnotations and Namespace are Argo CD's commonAnnotations and namespace.
	CommonAnnotations map[string]string
	Namespace         string
	// ForceCommonLabels/ForceCommonAnnotations let those replace keys the kustomization
	// already sets (`kustomize edit add label --force`); without them that is an error.
	ForceCommonLabels      bool
	ForceCommonAnnotations bool
	// LabelWithoutSelector adds CommonLabels as `labels` that leave selectors alone.
	LabelWithoutSelector bool
	// Replicas are `kustomize edit set replicas NAME=COUNT`.
	Replicas []KustomizeReplica
	// Patches are appended to the kustomization's patches; Components are added to its
	// components (Argo CD's patches and components).
	Patches    []any
	Components []string
}

// KustomizeReplica is one replicas override.
type KustomizeReplica struct {
	Name  string
	Count int64
}

// KustomizeFlags parses the flags of the Tiltfile's kustomize(dir, flags).
func KustomizeFlags(flags []string) (KustomizeOptions, error) {
	var o KustomizeOptions
	for i := 0; i < len(flags); i++ {
		f := flags[i]
		name, val, hasVal := strings.Cut(f, "=")
		if name == "--enable-helm" || name == "--enable_helm" {
			o.EnableHelm = !hasVal || val == "true"
			continue
		}
		if !hasVal && i+1 < len(flags) && !strings.HasPrefix(flags[i+1], "-") {
			val = flags[i+1]
			i++
		}
		switch name {
		case "--load-restrictor", "--load_restrictor":
			o.LoadRestrictionsNone = val == types.LoadRestrictionsNone.String()
		case "--reorder":
			// legacy is what we do already; none is not worth diverging from Argo CD for.
		default:
			return o, fmt.Errorf("kustomize: unsupported flag %q (supported: --load-restrictor, --enable-helm)", f)
		}
	}
	return o, nil
}

// Kustomize builds dir in process like `kustomize build` (krusty, with the CLI's legacy
// reorder unless the kustomization sets sortOptions).
func Kustomize(dir string, opts KustomizeOptions) ([]*unstructured.Unstructured, error) {
	data, err := KustomizeBuild(dir, opts)
	if err != nil {
		return nil, err
	}
	objs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return objs, nil
}

// KustomizeBuild builds dir in process and returns what `kustomize build` prints.
func KustomizeBuild(dir string, opts KustomizeOptions) ([]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	fs := filesys.MakeFsOnDisk()
	if opts.EnableHelm {
		fs = newHelmChartsFS(context.Background(), fs)
	}
	if opts.edits() {
		ofs, err := editedKustomization(fs, abs, opts)
		if err != nil {
			return nil, err
		}
		fs = ofs
	}
	ko := krusty.MakeDefaultOptions()
	ko.Reorder = krusty.ReorderOptionUnspecified
	if opts.LoadRestrictionsNone {
		ko.LoadRestrictions = types.LoadRestrictionsNone
	}
	rm, err := krusty.MakeKustomizer(ko).Run(fs, abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	data, err := rm.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return data, nil
}

func (o KustomizeOptions) edits() bool {
	return o.NamePrefix != "" || o.NameSuffix != "" || len(o.Images) > 0 || len(o.CommonLabels) > 0 ||
		len(o.CommonAnnotations) > 0 || o.Namespace != "" || len(o.Replicas) > 0 || len(o.Patches) > 0 ||
		len(o.Components) > 0
}

// overlayFS serves one edited kustomization file in place of the one on disk, so the
// tree is never copied or written (Argo CD edits a scratch checkout instead).
type overlayFS struct {
	filesys.FileSystem
	path string
	data []byte
}

func (o overlayFS) ReadFile(path string) ([]byte, error) {
	if filepath.Clean(path) == o.path {
		return o.data, nil
	}
	return o.FileSystem.ReadFile(path)
}

func editedKustomization(fs filesys.FileSystem, dir string, opts KustomizeOptions) (filesys.FileSystem, error) {
	var path string
	for _, n := range konfig.RecognizedKustomizationFileNames() {
		if p := filepath.Join(dir, n); fs.Exists(p) {
			path = p
			break
		}
	}
	if path == "" {
		return nil, fmt.Errorf("kustomize %s: no kustomization file", dir)
	}
	data, err := fs.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("kustomize %s: parse %s: %w", dir, path, err)
	}
	if k == nil {
		k = map[string]any{}
	}
	if opts.NamePrefix != "" {
		k["namePrefix"] = opts.NamePrefix
	}
	if opts.NameSuffix != "" {
		k["nameSuffix"] = opts.NameSuffix
	}
	if opts.Namespace != "" {
		k["namespace"] = opts.Namespace
	}
	if opts.LabelWithoutSelector && len(opts.CommonLabels) > 0 {
		labels, _ := k["labels"].([]any)
		pairs := map[string]any{}
		for key, v := range opts.CommonLabels {
			pairs[key] = v
		}
		k["labels"] = append(labels, map[string]any{"pairs": pairs, "includeSelectors": false})
	} else if err := mergeMap(k, "commonLabels", "label", opts.CommonLabels, opts.ForceCommonLabels); err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	if err := mergeMap(k, "commonAnnotations", "annotation", opts.CommonAnnotations, opts.ForceCommonAnnotations); err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	if len(opts.Replicas) > 0 {
		reps, _ := k["replicas"].([]any)
		for _, r := range opts.Replicas {
			entry := map[string]any{"name": r.Name, "count": r.Count}
			replaced := false
			for i, cur := range reps {
				if m, ok := cur.(map[string]any); ok && m["name"] == r.Name {
					reps[i], replaced = entry, true
				}
			}
			if !replaced {
				reps = append(reps, entry)
			}
		}
		k["replicas"] = reps
	}
	if len(opts.Patches) > 0 {
		patches, _ := k["patches"].([]any)
		k["patches"] = append(patches, opts.Patches...)
	}
	if len(opts.Components) > 0 {
		comps, _ := k["components"].([]any)
		for _, c := range opts.Components {
			if !slices.Contains(comps, any(c)) {
				comps = append(comps, c)
			}
		}
		k["components"] = comps
	}
	if len(opts.Images) > 0 {
		imgs, _ := k["images"].([]any)
		for _, s := range opts.Images {
			img := parseKustomizeImage(s)
			replaced := false
			for i, cur := range imgs {
				if m, ok := cur.(map[string]any); ok && m["name"] == img["name"] {
					imgs[i], replaced = img, true
				}
			}
			if !replaced {
				imgs = append(imgs, img)
			}
		}
		k["images"] = imgs
	}
	out, err := yaml.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	return overlayFS{FileSystem: fs, path: path, data: out}, nil
}

// mergeMap adds keys to a map field like `kustomize edit add label|annotation`, which
// refuses to replace an existing key unless forced.
func mergeMap(k map[string]any, field, what string, add map[string]string, force bool) error {
	if len(add) == 0 {
		return nil
	}
	m, _ := k[field].(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	for _, key := range slices.Sorted(maps.Keys(add)) {
		if _, ok := m[key]; ok && !force {
			return fmt.Errorf("%s %s already in kustomization file (Argo CD's force%s would replace it)",
				what, key, map[string]string{"label": "CommonLabels", "annotation": "CommonAnnotations"}[what])
		}
		m[key] = add[key]
	}
	k[field] = m
	return nil
}

// parseKustomizeImage reads a `kustomize edit set image` argument.
func parseKustomizeImage(s string) map[string]any {
	name, target, renamed := strings.Cut(s, "=")
	if !renamed {
		target = s
	}
	img := map[string]any{}
	ref := target
	if n, digest, ok := strings.Cut(target, "@"); ok {
		ref = n
		img["digest"] = digest
	} else if i := strings.LastIndex(target, ":"); i > strings.LastIndex(target, "/") {
		ref = target[:i]
		img["newTag"] = target[i+1:]
	}
	if renamed {
		img["name"] = name
		img["newName"] = ref
	} else {
		img["name"] = ref
	}
	return img
}
