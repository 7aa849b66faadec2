package tiltfile

import (
	"errors"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// extensionBuiltins are what the popular tilt-extensions call beyond the
// essential builtins: the v1alpha1 API object constructors. loop has no API
// server of Tilt's objects, so each v1alpha1.* function accepts any keyword
// arguments and returns them as a struct; nothing is recorded.
func (l *loader) extensionBuiltins() starlark.StringDict {
	return starlark.StringDict{"v1alpha1": v1alpha1{}}
}

// v1alpha1Known are the functions extensions are known to call; any other
// name works too, these are only what dir(v1alpha1) lists.
var v1alpha1Known = []string{
	"cmd", "config_map", "extension", "extension_repo", "file_watch",
	"kubernetes_apply", "kubernetes_discovery", "ui_bool_input_spec",
	"ui_button", "ui_choice_input_spec", "ui_component_location",
	"ui_hidden_input_spec", "ui_input_spec", "ui_text_input_spec",
}

type v1alpha1 struct{}

func (v1alpha1) String() string        { return "v1alpha1" }
func (v1alpha1) Type() string          { return "module" }
func (v1alpha1) Freeze()               {}
func (v1alpha1) Truth() starlark.Bool  { return true }
func (v1alpha1) Hash() (uint32, error) { return 0, errors.New("unhashable: module") }
func (v1alpha1) AttrNames() []string {
	names := append([]string(nil), v1alpha1Known...)
	sort.Strings(names)
	return names
}

func (v1alpha1) Attr(name string) (starlark.Value, error) {
	return starlark.NewBuiltin("v1alpha1."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 {
			return nil, errorf(b, "takes keyword arguments only (got %d positional)", len(args))
		}
		return starlarkstruct.FromKeywords(starlark.String("v1alpha1."+name), kwargs), nil
	}), nil
}
