// Package codec converts between Starlark values and YAML or JSON text, the
// way the Tiltfile helpers (decode_yaml, encode_json, read_yaml, ...) need it:
// mapping key order is kept in both directions, YAML streams are lists of
// documents, and integers stay integers.
package codec

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"

	"go.starlark.net/lib/json"
	"go.starlark.net/starlark"
	"go.yaml.in/yaml/v3"
)

// DecodeYAML parses one YAML document into Starlark values. An empty
// document is None.
func DecodeYAML(text string) (starlark.Value, error) {
	docs, err := decodeYAMLDocs(text, true)
	if err != nil {
		return nil, err
	}
	switch len(docs) {
	case 0:
		return starlark.None, nil
	case 1:
		return docs[0], nil
	}
	return nil, fmt.Errorf("expected one YAML document, found %d (use decode_yaml_stream)", len(docs))
}

// DecodeYAMLStream parses every document of a YAML stream. Empty documents
// (a stray "---") are dropped, as Tilt does.
func DecodeYAMLStream(text string) (*starlark.List, error) {
	docs, err := decodeYAMLDocs(text, false)
	if err != nil {
		return nil, err
	}
	return starlark.NewList(docs), nil
}

func decodeYAMLDocs(text string, keepNull bool) ([]starlark.Value, error) {
	dec := yaml.NewDecoder(strings.NewReader(text))
	var docs []starlark.Value
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode yaml: %w", err)
		}
		v, err := fromNode(&n, 0)
		if err != nil {
			return nil, fmt.Errorf("decode yaml: %w", err)
		}
		if v == starlark.None && !keepNull {
			continue
		}
		docs = append(docs, v)
	}
}

// maxDepth bounds alias expansion so a "billion laughs" document fails
// instead of exhausting memory.
const maxDepth = 1000

func fromNode(n *yaml.Node, depth int) (starlark.Value, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("line %d: document nested too deeply", n.Line)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return starlark.None, nil
		}
		return fromNode(n.Content[0], depth+1)
	case yaml.AliasNode:
		return fromNode(n.Alias, depth+1)
	case yaml.SequenceNode:
		elems := make([]starlark.Value, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := fromNode(c, depth+1)
			if err != nil {
				return nil, err
			}
			elems = append(elems, v)
		}
		return starlark.NewList(elems), nil
	case yaml.MappingNode:
		d := starlark.NewDict(len(n.Content) / 2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Tag == "!!merge" {
				if err := mergeInto(d, v, depth+1); err != nil {
					return nil, err
				}
				continue
			}
			kv, err := fromNode(k, depth+1)
			if err != nil {
				return nil, err
			}
			vv, err := fromNode(v, depth+1)
			if err != nil {
				return nil, err
			}
			if err := d.SetKey(kv, vv); err != nil {
				return nil, fmt.Errorf("line %d: %w", k.Line, err)
			}
		}
		return d, nil
	case yaml.ScalarNode:
		return fromScalar(n)
	}
	return nil, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

// mergeInto applies a "<<" merge key: keys already present win.
func mergeInto(d *starlark.Dict, v *yaml.Node, depth int) error {
	src, err := fromNode(v, depth)
	if err != nil {
		return err
	}
	var maps []*starlark.Dict
	switch s := src.(type) {
	case *starlark.Dict:
		maps = append(maps, s)
	case *starlark.List:
		for i := 0; i < s.Len(); i++ {
			m, ok := s.Index(i).(*starlark.Dict)
			if !ok {
				return fmt.Errorf("line %d: merge key needs mappings", v.Line)
			}
			maps = append(maps, m)
		}
	default:
		return fmt.Errorf("line %d: merge key needs a mapping", v.Line)
	}
	for _, m := range maps {
		for _, kv := range m.Items() {
			if _, found, _ := d.Get(kv[0]); !found {
				if err := d.SetKey(kv[0], kv[1]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func fromScalar(n *yaml.Node) (starlark.Value, error) {
	switch n.ShortTag() {
	case "!!null":
		return starlark.None, nil
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			return nil, err
		}
		return starlark.Bool(b), nil
	case "!!int":
		var i big.Int
		s := strings.ReplaceAll(n.Value, "_", "")
		base := 0
		if strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "-0o") || strings.HasPrefix(s, "+0o") {
			s = strings.Replace(s, "0o", "", 1)
			base = 8
		}
		if _, ok := i.SetString(strings.TrimPrefix(s, "+"), base); ok {
			return starlark.MakeBigInt(&i), nil
		}
		var v int64
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		return starlark.MakeInt64(v), nil
	case "!!float":
		// yaml resolves integers beyond int64 as floats; keep them exact.
		var i big.Int
		if _, ok := i.SetString(strings.TrimPrefix(n.Value, "+"), 10); ok {
			return starlark.MakeBigInt(&i), nil
		}
		var f float64
		if err := n.Decode(&f); err != nil {
			return nil, err
		}
		return starlark.Float(f), nil
	}
	// !!str, !!binary, !!timestamp and custom tags stay text.
	return starlark.String(n.Value), nil
}

// EncodeYAML renders v as one YAML document.
func EncodeYAML(v starlark.Value) (string, error) {
	return EncodeYAMLStream([]starlark.Value{v})
}

// EncodeYAMLStream renders each value as a document of one stream,
// separated by "---".
func EncodeYAMLStream(vs []starlark.Value) (string, error) {
	var buf bytes.Buffer
	for i, v := range vs {
		n, err := toNode(v, 0)
		if err != nil {
			return "", fmt.Errorf("encode yaml: %w", err)
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode(n); err != nil {
			return "", fmt.Errorf("encode yaml: %w", err)
		}
		if err := enc.Close(); err != nil {
			return "", fmt.Errorf("encode yaml: %w", err)
		}
	}
	return buf.String(), nil
}

func toNode(v starlark.Value, depth int) (*yaml.Node, error) {
	if depth > maxDepth {
		return nil, errors.New("value nested too deeply (cycle?)")
	}
	scalar := func(tag, val string) *yaml.Node {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: val}
	}
	switch x := v.(type) {
	case starlark.NoneType:
		return scalar("!!null", "null"), nil
	case starlark.Bool:
		return scalar("!!bool", strconv.FormatBool(bool(x))), nil
	case starlark.Int:
		return scalar("!!int", x.String()), nil
	case starlark.Float:
		f := float64(x)
		switch {
		case math.IsInf(f, 1):
			return scalar("!!float", ".inf"), nil
		case math.IsInf(f, -1):
			return scalar("!!float", "-.inf"), nil
		case math.IsNaN(f):
			return scalar("!!float", ".nan"), nil
		}
		return scalar("!!float", strconv.FormatFloat(f, 'g', -1, 64)), nil
	case starlark.String:
		return scalar("!!str", string(x)), nil
	case *starlark.Dict:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, kv := range x.Items() {
			k, err := toNode(kv[0], depth+1)
			if err != nil {
				return nil, err
			}
			val, err := toNode(kv[1], depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, k, val)
		}
		return n, nil
	case starlark.Indexable: // list, tuple
		n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for i := 0; i < x.Len(); i++ {
			c, err := toNode(x.Index(i), depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, c)
		}
		return n, nil
	case starlark.HasAttrs:
		// Structs encode as mappings of their fields, in name order.
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for _, name := range x.AttrNames() {
			fv, err := x.Attr(name)
			if err != nil || fv == nil {
				continue
			}
			if _, isFn := fv.(starlark.Callable); isFn {
				continue
			}
			c, err := toNode(fv, depth+1)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, scalar("!!str", name), c)
		}
		return n, nil
	}
	if s, ok := v.(interface{ Text() string }); ok { // blobs
		return scalar("!!str", s.Text()), nil
	}
	return nil, fmt.Errorf("cannot encode %s as YAML", v.Type())
}

// DecodeJSON parses JSON text into Starlark values, keeping key order.
func DecodeJSON(thread *starlark.Thread, text string) (starlark.Value, error) {
	dec := json.Module.Members["decode"]
	v, err := starlark.Call(thread, dec, starlark.Tuple{starlark.String(text)}, nil)
	if err != nil {
		return nil, fmt.Errorf("decode json: %w", err)
	}
	return v, nil
}

// EncodeJSON renders v as JSON indented by two spaces with a trailing
// newline, as Tilt's encode_json does; like Tilt (Go maps), object keys come
// out sorted.
func EncodeJSON(thread *starlark.Thread, v starlark.Value) (string, error) {
	enc := json.Module.Members["encode"]
	out, err := starlark.Call(thread, enc, starlark.Tuple{v}, nil)
	if err != nil {
		return "", fmt.Errorf("encode json: %w", err)
	}
	var buf bytes.Buffer
	if err := stdjson.Indent(&buf, []byte(string(out.(starlark.String))), "", "  "); err != nil {
		return "", fmt.Errorf("encode json: %w", err)
	}
	buf.WriteByte('\n')
	return buf.String(), nil
}
