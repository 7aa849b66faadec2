package tiltfile

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
)

// extensionBuiltins are what the popular tilt-extensions call beyond the
// essential builtins: the v1alpha1 API object constructors. loop has no API
// server of Tilt's objects: each v1alpha1.* function accepts its keyword
// arguments and returns them as a struct. The constructors of objects Tilt
// would run or show (v1alpha1Objects) warn that loop does not; the spec
// helpers they take are quiet.
func (l *loader) extensionBuiltins() starlark.StringDict {
	return starlark.StringDict{"v1alpha1": &v1alpha1{l: l}}
}

// v1alpha1Objects are Tilt's v1alpha1 object constructors and why loop
// ignores each.
var v1alpha1Objects = map[string]string{
	"cmd":                  "loop runs no Tilt API Cmd objects (use local_resource)",
	"config_map":           "loop has no Tilt API server to hold ConfigMaps",
	"extension":            "ext:// loads resolve from loop's extensions directory",
	"extension_repo":       "ext:// loads resolve from loop's extensions directory",
	"file_watch":           "loop runs no Tilt API FileWatch objects",
	"kubernetes_apply":     "loop runs no Tilt API KubernetesApply objects (use k8s_yaml)",
	"kubernetes_discovery": "loop runs no Tilt API KubernetesDiscovery objects",
	"ui_button":            "buttons are part of Tilt's web UI, which loop does not have",
}

// v1alpha1Specs are the constructors of the values the objects take.
var v1alpha1Specs = []string{
	"config_map_disable_source", "disable_source", "exec_action", "forward",
	"handler", "http_get_action", "http_header", "ignore_def",
	"kubernetes_apply_cmd", "kubernetes_discovery_template_spec",
	"kubernetes_image_locator", "kubernetes_image_object_descriptor",
	"kubernetes_watch_ref", "label_selector", "label_selector_requirement",
	"object_selector", "pod_log_stream_template_spec", "port_forward_template_spec",
	"probe", "restart_on_spec", "start_on_spec", "tcp_socket_action",
	"ui_bool_input_spec", "ui_choice_input_spec", "ui_component_location",
	"ui_hidden_input_spec", "ui_input_spec", "ui_text_input_spec",
}

type v1alpha1 struct{ l *loader }

func (*v1alpha1) String() string        { return "v1alpha1" }
func (*v1alpha1) Type() string          { return "module" }
func (*v1alpha1) Freeze()               {}
func (*v1alpha1) Truth() starlark.Bool  { return true }
func (*v1alpha1) Hash() (uint32, error) { return 0, errors.New("unhashable: module") }
func (*v1alpha1) AttrNames() []string {
	names := append([]string(nil), v1alpha1Specs...)
	for n := range v1alpha1Objects {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (v *v1alpha1) Attr(name string) (starlark.Value, error) {
	why, isObject := v1alpha1Objects[name]
	if !isObject && !slices.Contains(v1alpha1Specs, name) {
		return nil, nil // "v1alpha1 has no .name field or method", as in Tilt
	}
	return starlark.NewBuiltin("v1alpha1."+name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		if len(args) > 0 {
			return nil, errorf(b, "takes keyword arguments only (got %d positional)", len(args))
		}
		if isObject {
			v.l.warn(pos(thread), fmt.Sprintf("%s() is ignored: %s", b.Name(), why))
		}
		return starlarkstruct.FromKeywords(starlark.String("v1alpha1."+name), kwargs), nil
	}), nil
}
