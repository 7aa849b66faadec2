// Package render owns turning Kubernetes sources into objects the way Argo CD's repo
// server does: plain directories of YAML/JSON, Kustomize (in process, krusty) and Helm
// templates (in process, the Helm SDK), plus the substitution of built image refs into
// pod templates. It never talks to a cluster.
package render

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/model"
)

// Source renders one k8s_yaml/kustomize/helm input of a Tiltfile.
func Source(ctx context.Context, src *model.K8sSource) ([]*unstructured.Unstructured, error) {
	switch src.Kind {
	case model.K8sYAML:
		var out []*unstructured.Unstructured
		if src.YAML != "" {
			objs, err := Parse([]byte(src.YAML))
			if err != nil {
				return nil, fmt.Errorf("parse inline yaml: %w", err)
			}
			out = append(out, objs...)
		}
		for _, p := range src.Paths {
			st, err := os.Stat(p)
			if err != nil {
				return nil, fmt.Errorf("render %s: %w", p, err)
			}
			var objs []*unstructured.Unstructured
			if st.IsDir() {
				objs, err = Directory(p, DirectoryOptions{})
			} else {
				objs, err = parseFile(p)
			}
			if err != nil {
				return nil, err
			}
			out = append(out, objs...)
		}
		return out, nil
	case model.K8sKustomize:
		if src.Kustomize == nil {
			return nil, errors.New("render kustomize: no arguments")
		}
		opts, err := KustomizeFlags(src.Kustomize.Flags)
		if err != nil {
			return nil, err
		}
		return Kustomize(src.Kustomize.Dir, opts)
	case model.K8sHelm:
		if src.Helm == nil {
			return nil, errors.New("render helm: no arguments")
		}
		h := src.Helm
		return Helm(ctx, HelmOptions{Chart: h.Chart, ReleaseName: h.Name, Namespace: h.Namespace,
			ValueFiles: h.Values, Set: h.Set, KubeVersion: h.KubeVersion, SkipCRDs: h.SkipCRDs})
	default:
		return nil, fmt.Errorf("render: unknown source kind %q", src.Kind)
	}
}

// Parse splits a multi-document YAML (or JSON) stream into objects. Empty documents
// are dropped and `kind: List` objects are flattened into their items, as Argo CD does.
func Parse(data []byte) ([]*unstructured.Unstructured, error) {
	objs, err := parseStream(data)
	if err != nil {
		return nil, err
	}
	return objs, nil
}

// parseStream is Parse that also returns the objects read before an error.
func parseStream(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		if t := bytes.TrimSpace(raw); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		// apimachinery's json keeps whole numbers int64, as unstructured objects need.
		var m map[string]any
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return out, err
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return out, err
			}
			for i := range l.Items {
				out = append(out, &l.Items[i])
			}
			continue
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return out, fmt.Errorf("object %q has no kind or apiVersion", u.GetName())
		}
		out = append(out, u)
	}
}

func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

func parseFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	objs, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return objs, nil
}

// Encode writes objects as one YAML stream, documents separated by "---".
func Encode(objs []*unstructured.Unstructured) ([]byte, error) {
	var b bytes.Buffer
	for i, o := range objs {
		y, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", Key(o), err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	return b.Bytes(), nil
}

// Key names an object as group/kind/namespace/name, for messages and file names.
func Key(o *unstructured.Unstructured) string {
	gvk := o.GroupVersionKind()
	parts := []string{gvk.Group, gvk.Kind, o.GetNamespace(), o.GetName()}
	if o.GetName() == "" {
		parts[3] = o.GetGenerateName()
	}
	return strings.Join(parts, "/")
}
