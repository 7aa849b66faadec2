package devcontainer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/tailscale/hujson"
)

// Error is a problem in a devcontainer.json (or a Feature's
// devcontainer-feature.json) at a position. Its text is
// "path:line:col: message", and the message says what to change.
type Error struct {
	Path string
	Line int
	Col  int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Path, e.Line, e.Col, e.Msg)
}

// document is a parsed JSONC file: the tree (for positions and member
// order) and the same bytes as standard JSON (comments and trailing commas
// blanked out, so offsets are unchanged) for encoding/json.
type document struct {
	path string
	src  []byte
	tree hujson.Value
	std  []byte
}

var hujsonPos = regexp.MustCompile(`^hujson: line (\d+), column (\d+): (.*)$`)

// parseJSONC parses src (from path) as JSON with comments and trailing
// commas.
func parseJSONC(path string, src []byte) (*document, error) {
	tree, err := hujson.Parse(src)
	if err != nil {
		e := &Error{Path: path, Msg: err.Error()}
		if m := hujsonPos.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Col, _ = strconv.Atoi(m[2])
			e.Msg = m[3]
		}
		e.Msg = "invalid JSON: " + e.Msg + " (devcontainer.json is JSON with comments: check for a missing comma, quote or bracket here or just before)"
		return nil, e
	}
	std := tree.Clone()
	std.Standardize()
	return &document{path: path, src: src, tree: tree, std: std.Pack()}, nil
}

// pos converts a byte offset of the source into line and column (1-based,
// columns in bytes).
func (d *document) pos(off int) (line, col int) {
	if off > len(d.src) {
		off = len(d.src)
	}
	line = 1 + bytes.Count(d.src[:off], []byte("\n"))
	col = 1 + off - (bytes.LastIndexByte(d.src[:off], '\n') + 1)
	return line, col
}

// errorAt is an Error at the value found by the JSON pointer ptr (or at the
// start of the file when ptr finds nothing).
func (d *document) errorAt(ptr, format string, args ...any) *Error {
	e := &Error{Path: d.path, Msg: fmt.Sprintf(format, args...)}
	off := 0
	if v := d.tree.Find(ptr); v != nil {
		off = v.StartOffset
	}
	e.Line, e.Col = d.pos(off)
	return e
}

// pointer turns a JSON member path (a.b.c, as encoding/json reports it)
// into a JSON pointer (/a/b/c).
func pointer(field string) string {
	if field == "" {
		return ""
	}
	parts := strings.Split(field, ".")
	for i, p := range parts {
		parts[i] = strings.NewReplacer("~", "~0", "/", "~1").Replace(p)
	}
	return "/" + strings.Join(parts, "/")
}

// decode unmarshals the document into v, turning a type mismatch into an
// Error at the offending value.
func (d *document) decode(v any) error {
	err := json.Unmarshal(d.std, v)
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		ptr := pointer(te.Field)
		e := d.errorAt(ptr, "%s must be %s, not %s", quoteField(te.Field), jsonKind(te.Type.Kind().String()), te.Value)
		if v := d.tree.Find(ptr); v != nil && (v.Value.Kind() == '{' || v.Value.Kind() == '[') {
			// encoding/json names the map or array, not the element.
			e.Msg = fmt.Sprintf("%s must hold %ss, not %s", quoteField(te.Field), strings.TrimPrefix(strings.TrimPrefix(jsonKind(te.Type.Kind().String()), "an "), "a "), te.Value)
		}
		if te.Field == "" {
			e.Line, e.Col = d.pos(int(te.Offset))
			e.Msg = fmt.Sprintf("the file must hold a JSON object, not %s", te.Value)
		}
		return e
	}
	if err != nil {
		return &Error{Path: d.path, Msg: err.Error()}
	}
	return nil
}

// decodeAt unmarshals raw (the value at ptr) into v, turning a type mismatch
// into an Error at ptr; want names the expected type for the message.
func (d *document) decodeAt(ptr string, raw json.RawMessage, v any, want string) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return d.errorAt(ptr, "%s must be %s, not %s", quoteField(strings.ReplaceAll(strings.TrimPrefix(ptr, "/"), "/", ".")), want, kindOf(raw))
	}
	return nil
}

func quoteField(f string) string { return "\"" + f + "\"" }

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "int", "int64", "float64", "uint16", "int32":
		return "a number"
	}
	return "a " + goKind
}

// kindOf names the JSON type of raw for messages.
func kindOf(raw json.RawMessage) string {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}
