package codec

import (
	"strings"
	"testing"

	"go.starlark.net/starlark"
)

func TestDecodeYAMLStream(t *testing.T) {
	docs, err := DecodeYAMLStream("z: 1\na: [x, 2.5, true, ~]\n---\n---\nbase: &b {k: v}\nuse:\n  <<: *b\n  own: 1\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := docs.String(), `[{"z": 1, "a": ["x", 2.5, True, None]}, {"base": {"k": "v"}, "use": {"k": "v", "own": 1}}]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	big, err := DecodeYAML("n: 123456789012345678901234567890\no: 0o17\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := big.String(), `{"n": 123456789012345678901234567890, "o": 15}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if _, err := DecodeYAML("a: 1\n---\nb: 2\n"); err == nil || !strings.Contains(err.Error(), "found 2") {
		t.Errorf("two documents: err = %v, want a count", err)
	}
	if _, err := DecodeYAML("a: [\n"); err == nil {
		t.Error("invalid YAML decoded")
	}
}

func TestEncodeYAMLQuotesAmbiguousStrings(t *testing.T) {
	d := starlark.NewDict(3)
	_ = d.SetKey(starlark.String("version"), starlark.String("1.10"))
	_ = d.SetKey(starlark.String("enabled"), starlark.String("true"))
	_ = d.SetKey(starlark.String("n"), starlark.MakeInt(3))
	got, err := EncodeYAML(d)
	if err != nil {
		t.Fatal(err)
	}
	if want := "version: \"1.10\"\nenabled: \"true\"\nn: 3\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	back, err := DecodeYAML(got)
	if err != nil {
		t.Fatal(err)
	}
	if eq, _ := starlark.Equal(back, d); !eq {
		t.Errorf("round trip = %s, want %s", back, d)
	}
	l := starlark.NewList(nil)
	_ = l.Append(l) // a cycle must fail, not hang
	if _, err := EncodeYAML(l); err == nil {
		t.Error("cyclic value encoded")
	}
}

func TestJSON(t *testing.T) {
	thread := &starlark.Thread{}
	v, err := DecodeJSON(thread, `{"b": [1, 2.5, null, "s"], "a": true}`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := EncodeJSON(thread, v)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"a\": true,\n  \"b\": [\n    1,\n    2.5,\n    null,\n    \"s\"\n  ]\n}\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
	if _, err := DecodeJSON(thread, "{"); err == nil {
		t.Error("invalid JSON decoded")
	}
}
