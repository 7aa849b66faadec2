package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/model"
)

// Config renders every Kubernetes source of a loaded Tiltfile, in declaration order, and
// substitutes built image refs in pod templates and at the k8s_kind image paths.
func Config(ctx context.Context, cfg *model.Config, images Images) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, src := range cfg.K8sSources {
		objs, err := Source(ctx, src)
		if err != nil {
			if src.Pos.File != "" {
				return nil, fmt.Errorf("%s:%d: %w", src.Pos.File, src.Pos.Line, err)
			}
			return nil, err
		}
		out = append(out, objs...)
	}
	kinds := map[string][]ImagePath{}
	for _, k := range cfg.K8sKinds {
		for _, jp := range k.ImageJSONPath {
			kinds[k.Kind] = append(kinds[k.Kind], ParseImagePath(jp))
		}
	}
	SubstituteImages(out, images, kinds)
	return out, nil
}

// WriteDir writes one file per object under dir, as a config repository would receive
// them: NAMESPACE/KIND-NAME.yaml, objects that set no namespace under _unnamespaced/. It returns the
// paths written, relative to dir.
func WriteDir(dir string, objs []*unstructured.Unstructured) ([]string, error) {
	var written []string
	seen := map[string]bool{}
	for _, o := range objs {
		ns := o.GetNamespace()
		if ns == "" {
			ns = "_unnamespaced"
		}
		name := o.GetName()
		if name == "" {
			name = strings.TrimSuffix(o.GetGenerateName(), "-")
		}
		rel := filepath.Join(ns, strings.ToLower(o.GetKind())+"-"+name+".yaml")
		for i := 2; seen[rel]; i++ {
			rel = filepath.Join(ns, fmt.Sprintf("%s-%s-%d.yaml", strings.ToLower(o.GetKind()), name, i))
		}
		seen[rel] = true
		data, err := yaml.Marshal(o.Object)
		if err != nil {
			return written, fmt.Errorf("encode %s: %w", Key(o), err)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return written, fmt.Errorf("write %s: %w", p, err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return written, fmt.Errorf("write %s: %w", p, err)
		}
		written = append(written, rel)
	}
	return written, nil
}
