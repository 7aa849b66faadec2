package tiltfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"

	"github.com/loop-dev/loop/starlark/codec"
)

// settingKind is the type of a config.define_* setting.
type settingKind string

const (
	settingString     settingKind = "string"
	settingStringList settingKind = "string_list"
	settingBool       settingKind = "bool"
	settingObject     settingKind = "object"
)

type setting struct {
	name  string
	kind  settingKind
	args  bool // takes the positional arguments
	usage string
}

// configState is the config module's part of a load.
type configState struct {
	settings []*setting
	parsed   *starlark.Dict // non-nil after config.parse()
}

func (c *configState) lookup(name string) *setting {
	for _, s := range c.settings {
		if s.name == name {
			return s
		}
	}
	return nil
}

// configModule is Tilt's config module: user settings from the arguments
// after `--` and tilt_config.json, and the enabled resources.
func (l *loader) configModule() *starlarkstruct.Module {
	members := builtins(map[string]builtinFn{
		"define_string":           l.define(settingString),
		"define_string_list":      l.define(settingStringList),
		"define_bool":             l.define(settingBool),
		"define_object":           l.define(settingObject),
		"parse":                   l.configParse,
		"set_enabled_resources":   l.setEnabledResources,
		"clear_enabled_resources": l.clearEnabledResources,
	})
	members["tilt_subcommand"] = starlark.String(l.opts.Subcommand)
	members["main_path"] = starlark.String(l.mainPath)
	members["main_dir"] = starlark.String(l.mainDir)
	return &starlarkstruct.Module{Name: "config", Members: members}
}

func (l *loader) define(kind settingKind) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		s := &setting{kind: kind}
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "name", &s.name, "args?", &s.args, "usage?", &s.usage); err != nil {
			return nil, err
		}
		if s.name == "" {
			return nil, errorf(b, "name must not be empty")
		}
		if l.config.parsed != nil {
			return nil, errorf(b, "%q defined after config.parse() was called", s.name)
		}
		if l.config.lookup(s.name) != nil {
			return nil, errorf(b, "%q defined more than once", s.name)
		}
		if s.args {
			for _, o := range l.config.settings {
				if o.args {
					return nil, errorf(b, "%q and %q both take the positional arguments; only one setting may", o.name, s.name)
				}
			}
		}
		l.config.settings = append(l.config.settings, s)
		return starlark.None, nil
	}
}

// configParse returns a dict of the settings that were given, in
// definition order: tilt_config.json first, then the arguments after `--`.
func (l *loader) configParse(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	if l.config.parsed != nil {
		return l.config.parsed, nil
	}
	values := map[string]starlark.Value{}
	jsonPath := filepath.Join(l.mainDir, "tilt_config.json")
	l.record(jsonPath)
	if data, err := os.ReadFile(jsonPath); err == nil {
		if err := l.configFromJSON(thread, data, values); err != nil {
			return nil, errorf(b, "%s: %v", jsonPath, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, errorf(b, "%v", err)
	}
	if err := l.configFromArgs(thread, l.opts.Args, values); err != nil {
		return nil, errorf(b, "%v\n%s", err, l.configUsage())
	}
	d := starlark.NewDict(len(values))
	for _, s := range l.config.settings {
		if v, ok := values[s.name]; ok {
			_ = d.SetKey(starlark.String(s.name), v)
		}
	}
	l.config.parsed = d
	return d, nil
}

func (l *loader) configUsage() string {
	var b strings.Builder
	b.WriteString("settings defined by the Tiltfile:")
	for _, s := range l.config.settings {
		fmt.Fprintf(&b, "\n  --%s (%s)", s.name, s.kind)
		if s.args {
			b.WriteString(" [positional arguments]")
		}
		if s.usage != "" {
			b.WriteString(": " + s.usage)
		}
	}
	return b.String()
}

func (l *loader) configFromJSON(thread *starlark.Thread, data []byte, values map[string]starlark.Value) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	for name, msg := range raw {
		s := l.config.lookup(name)
		if s == nil {
			return fmt.Errorf("%q is not a defined setting", name)
		}
		v, err := codec.DecodeJSON(thread, string(msg))
		if err != nil {
			return err
		}
		if err := checkSettingValue(s, v); err != nil {
			return err
		}
		values[name] = v
	}
	return nil
}

func checkSettingValue(s *setting, v starlark.Value) error {
	ok := true
	switch s.kind {
	case settingString:
		_, ok = v.(starlark.String)
	case settingBool:
		_, ok = v.(starlark.Bool)
	case settingStringList:
		_, err := toStringList(v)
		_, isList := v.(*starlark.List)
		ok = err == nil && isList
	}
	if !ok {
		return fmt.Errorf("setting %q: got %s, want %s", s.name, v.Type(), s.kind)
	}
	return nil
}

// configFromArgs parses --name value, --name=value, --flag and positional
// arguments. Repeated string_list flags accumulate.
func (l *loader) configFromArgs(thread *starlark.Thread, args []string, values map[string]starlark.Value) error {
	var target *setting // takes the positional arguments
	for _, s := range l.config.settings {
		if s.args {
			target = s
		}
	}
	var positional []string
	lists := map[string][]starlark.Value{}
	addPositional := func(a string) {
		// A string_list keeps flags and positional values in command-line order.
		if target != nil && target.kind == settingStringList {
			lists[target.name] = append(lists[target.name], starlark.String(a))
			values[target.name] = starlark.NewList(lists[target.name])
		}
		positional = append(positional, a)
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			for _, p := range args[i+1:] {
				addPositional(p)
			}
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			addPositional(a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		s := l.config.lookup(name)
		if s == nil {
			return fmt.Errorf("unknown flag: --%s", name)
		}
		if s.kind == settingBool {
			b := true
			if hasVal {
				var err error
				if b, err = strconv.ParseBool(val); err != nil {
					return fmt.Errorf("flag --%s: invalid bool %q", name, val)
				}
			}
			values[name] = starlark.Bool(b)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		v, err := l.settingFromString(thread, s, val)
		if err != nil {
			return err
		}
		if s.kind == settingStringList {
			lists[name] = append(lists[name], v)
			values[name] = starlark.NewList(lists[name])
			continue
		}
		values[name] = v
	}
	if len(positional) == 0 {
		return nil
	}
	if target == nil {
		return fmt.Errorf("positional arguments %q given, but no setting takes them (define one with args=True)", positional)
	}
	if target.kind == settingStringList {
		return nil
	}
	if len(positional) != 1 {
		return fmt.Errorf("setting %q takes one positional argument, got %d", target.name, len(positional))
	}
	v, err := l.settingFromString(thread, target, positional[0])
	if err != nil {
		return err
	}
	values[target.name] = v
	return nil
}

func (l *loader) settingFromString(thread *starlark.Thread, s *setting, val string) (starlark.Value, error) {
	switch s.kind {
	case settingObject:
		v, err := codec.DecodeJSON(thread, val)
		if err != nil {
			return nil, fmt.Errorf("flag --%s: %w", s.name, err)
		}
		return v, nil
	case settingBool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return nil, fmt.Errorf("flag --%s: invalid bool %q", s.name, val)
		}
		return starlark.Bool(b), nil
	}
	return starlark.String(val), nil
}

func (l *loader) setEnabledResources(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var resources stringList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "resources", &resources); err != nil {
		return nil, err
	}
	l.cfg.Settings.EnabledResources = append([]string{}, resources.vals...)
	return starlark.None, nil
}

func (l *loader) clearEnabledResources(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	// Tilt's clear_enabled_resources disables everything.
	l.cfg.Settings.EnabledResources = []string{}
	return starlark.None, nil
}
