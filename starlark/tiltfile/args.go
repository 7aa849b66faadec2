package tiltfile

import (
	"fmt"
	"time"

	"go.starlark.net/starlark"

	"github.com/loop-dev/loop/daemon/model"
)

// The types below implement starlark.Unpacker so that starlark.UnpackArgs
// reports a wrong type as "builtin: for parameter name: ...".

// stringList accepts None, a string, or a list/tuple of strings (Tilt's
// "str or list of str" parameters).
type stringList struct {
	vals []string
	set  bool
}

func (s *stringList) Unpack(v starlark.Value) error {
	s.set = v != starlark.None
	vals, err := toStringList(v)
	if err != nil {
		return err
	}
	s.vals = vals
	return nil
}

func toStringList(v starlark.Value) ([]string, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, nil
	case starlark.String:
		return []string{string(x)}, nil
	case *Blob:
		return []string{x.text}, nil
	case starlark.Indexable:
		if _, ok := x.(starlark.String); ok {
			break
		}
		out := make([]string, 0, x.Len())
		for i := 0; i < x.Len(); i++ {
			switch e := x.Index(i).(type) {
			case starlark.String:
				out = append(out, string(e))
			case *Blob:
				out = append(out, e.text)
			default:
				return nil, fmt.Errorf("got %s at index %d, want string", e.Type(), i)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("got %s, want string or list of strings", v.Type())
}

// text accepts a string or a blob.
type text struct {
	s   string
	set bool
}

func (t *text) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.String:
		t.s, t.set = string(x), true
	case *Blob:
		t.s, t.set = x.text, true
	default:
		return fmt.Errorf("got %s, want string or blob", v.Type())
	}
	return nil
}

// cmdArg accepts a command: a string (run by sh -c) or a list of strings
// (argv as is).
type cmdArg struct{ cmd model.Cmd }

func (c *cmdArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case starlark.String, *Blob:
		s, _ := starlark.AsString(x)
		if b, ok := x.(*Blob); ok {
			s = b.text
		}
		if s == "" {
			return nil
		}
		c.cmd = model.Cmd{Argv: []string{"sh", "-c", s}, Shell: true}
		return nil
	case starlark.Indexable:
		argv, err := toStringList(x)
		if err != nil {
			return err
		}
		c.cmd = model.Cmd{Argv: argv}
		return nil
	}
	return fmt.Errorf("got %s, want string or list of strings", v.Type())
}

// strDict accepts a dict of string to string (None is empty).
type strDict struct{ m map[string]string }

func (d *strDict) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	dict, ok := v.(*starlark.Dict)
	if !ok {
		return fmt.Errorf("got %s, want dict", v.Type())
	}
	d.m = make(map[string]string, dict.Len())
	for _, kv := range dict.Items() {
		k, ok := starlark.AsString(kv[0])
		if !ok {
			return fmt.Errorf("got %s key, want string", kv[0].Type())
		}
		switch val := kv[1].(type) {
		case starlark.String:
			d.m[k] = string(val)
		case *Blob:
			d.m[k] = val.text
		case starlark.Int, starlark.Bool, starlark.Float:
			// Tilt accepts build_args={"N": 1}; Docker sees text anyway.
			d.m[k] = val.String()
		default:
			return fmt.Errorf("got %s for key %q, want string", kv[1].Type(), k)
		}
	}
	return nil
}

// optBool records whether a bool parameter was given.
type optBool struct {
	v   bool
	set bool
}

func (b *optBool) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	x, ok := v.(starlark.Bool)
	if !ok {
		return fmt.Errorf("got %s, want bool", v.Type())
	}
	b.v, b.set = bool(x), true
	return nil
}

func (b optBool) ptr() *bool {
	if !b.set {
		return nil
	}
	v := b.v
	return &v
}

// triggerModeArg accepts TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL.
type triggerModeArg struct{ mode model.TriggerMode }

func (t *triggerModeArg) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	m, ok := v.(triggerModeValue)
	if !ok {
		return fmt.Errorf("got %s, want TRIGGER_MODE_AUTO or TRIGGER_MODE_MANUAL", v.Type())
	}
	t.mode = model.TriggerMode(m)
	return nil
}

// seconds accepts an int or float number of seconds.
type seconds struct {
	d   time.Duration
	set bool
}

func (s *seconds) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	f, ok := starlark.AsFloat(v)
	if !ok {
		return fmt.Errorf("got %s, want int or float", v.Type())
	}
	if f < 0 {
		return fmt.Errorf("got %v, want a number of seconds >= 0", f)
	}
	s.d, s.set = time.Duration(f*float64(time.Second)), true
	return nil
}

// duration accepts a Go duration string ("90s", "5m").
type duration struct {
	d   time.Duration
	set bool
}

func (s *duration) Unpack(v starlark.Value) error {
	if v == starlark.None {
		return nil
	}
	str, ok := starlark.AsString(v)
	if !ok {
		return fmt.Errorf("got %s, want a duration string like \"5m\"", v.Type())
	}
	if str == "" {
		return nil
	}
	d, err := time.ParseDuration(str)
	if err != nil {
		return fmt.Errorf("got %q, want a duration like \"30s\" or \"5m\"", str)
	}
	s.d, s.set = d, true
	return nil
}

// linksArg accepts a URL string, a link(), or a list of them.
type linksArg struct{ links []model.Link }

func (l *linksArg) Unpack(v starlark.Value) error {
	one := func(v starlark.Value) error {
		switch x := v.(type) {
		case starlark.String:
			u, err := linkURL(string(x))
			if err != nil {
				return err
			}
			l.links = append(l.links, model.Link{URL: u})
		case linkValue:
			l.links = append(l.links, x.link)
		default:
			return fmt.Errorf("got %s, want string or link", v.Type())
		}
		return nil
	}
	return oneOrMany(v, one)
}

// probeArg accepts probe() or None.
type probeArg struct{ probe *model.Probe }

func (p *probeArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case probeValue:
		p.probe = x.probe
		return nil
	}
	return fmt.Errorf("got %s, want probe", v.Type())
}

// stepsArg accepts a list of live update steps.
type stepsArg struct{ steps []*liveUpdateStep }

func (s *stepsArg) Unpack(v starlark.Value) error {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case *liveUpdateStep:
		s.steps = []*liveUpdateStep{x}
		return nil
	case *starlark.List, starlark.Tuple:
		seq := x.(starlark.Indexable)
		for i := 0; i < seq.Len(); i++ {
			step, ok := seq.Index(i).(*liveUpdateStep)
			if !ok {
				return fmt.Errorf("got %s at index %d, want a live update step (sync, run, restart_container, fall_back_on, initial_sync)", seq.Index(i).Type(), i)
			}
			s.steps = append(s.steps, step)
		}
		return nil
	}
	return fmt.Errorf("got %s, want list of live update steps", v.Type())
}

// oneOrMany calls one for v, or for each element when v is a list or tuple;
// None means no value.
func oneOrMany(v starlark.Value, one func(starlark.Value) error) error {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil
	case *starlark.List, starlark.Tuple:
		seq := x.(starlark.Indexable)
		for i := 0; i < seq.Len(); i++ {
			if err := one(seq.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
	return one(v)
}

// alias renames the keyword arguments that Tilt's source spells differently
// from its documentation (read_file(paths=) vs file_path=, listdir(dir=) vs
// directory=, ...), so that both spellings work: aliases maps each other
// spelling to the name the builtin unpacks. Starlark reports a name given
// twice.
func alias(kwargs []starlark.Tuple, aliases map[string]string) []starlark.Tuple {
	var out []starlark.Tuple
	for i, kv := range kwargs {
		name, _ := starlark.AsString(kv[0])
		to, ok := aliases[name]
		if !ok {
			continue
		}
		if out == nil {
			out = append([]starlark.Tuple(nil), kwargs...)
		}
		out[i] = starlark.Tuple{starlark.String(to), kv[1]}
	}
	if out == nil {
		return kwargs
	}
	return out
}
