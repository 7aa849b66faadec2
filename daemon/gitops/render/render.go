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
	"regexp"
	"strconv"
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

// parseStream is Parse that also returns the objects read before an error. A YAML
// stream is read one document at a time so that an error names the line in the whole
// stream, not in its document.
func parseStream(data []byte) ([]*unstructured.Unstructured, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return decodeAll(data, 0)
	}
	var out []*unstructured.Unstructured
	for _, d := range splitDocuments(data) {
		objs, err := decodeAll(d.text, d.line)
		out = append(out, objs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

type document struct {
	text []byte
	line int // the line of the stream its text starts on, from 1
}

// splitDocuments splits a YAML stream at "---" lines (what follows on the line may
// only be space or a comment), as apimachinery's YAML reader does.
func splitDocuments(data []byte) []document {
	var docs []document
	docStart, docLine := 0, 1
	for pos, line := 0, 1; pos < len(data); line++ {
		next := len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			next = pos + i + 1
		}
		if rest, ok := bytes.CutPrefix(data[pos:next], []byte("---")); ok {
			if r := bytes.TrimSpace(rest); len(r) == 0 || r[0] == '#' {
				docs = append(docs, document{text: data[docStart:pos], line: docLine})
				docStart, docLine = next, line+1
			}
		}
		pos = next
	}
	return append(docs, document{text: data[docStart:], line: docLine})
}

// lineOf finds "line N" in a YAML error.
var lineOf = regexp.MustCompile(`\bline (\d+)\b`)

// atLine places a document's error in the stream: its "line N" becomes the stream's
// line, or the document's first line is named.
func atLine(err error, first int) error {
	if first == 0 {
		return err
	}
	msg := err.Error()
	if m := lineOf.FindStringSubmatchIndex(msg); m != nil {
		n, _ := strconv.Atoi(msg[m[2]:m[3]])
		return errors.New(msg[:m[2]] + strconv.Itoa(n+first-1) + msg[m[3]:])
	}
	return fmt.Errorf("line %d: %w", first, err)
}

// decodeAll decodes the objects of a stream; first is the stream line data starts on
// (0: unknown, errors are not placed).
func decodeAll(data []byte, first int) (out []*unstructured.Unstructured, err error) {
	defer func() {
		if err != nil {
			err = atLine(err, first)
		}
	}()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
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
