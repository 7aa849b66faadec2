package tiltfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"

	"github.com/loop-dev/loop/starlark/codec"
)

// helperBuiltins are the general helpers: os, file reading, YAML/JSON,
// blobs, warn, struct, shlex and include.
func (l *loader) helperBuiltins() starlark.StringDict {
	d := builtins(map[string]builtinFn{
		"read_file":          l.readFile,
		"read_yaml":          l.readYAML,
		"read_yaml_stream":   l.readYAMLStream,
		"read_json":          l.readJSON,
		"decode_yaml":        decodeYAML,
		"decode_yaml_stream": decodeYAMLStream,
		"decode_json":        decodeJSON,
		"encode_yaml":        encodeYAML,
		"encode_yaml_stream": encodeYAMLStream,
		"encode_json":        encodeJSON,
		"listdir":            l.listdir,
		"watch_file":         l.watchFile,
		"blob":               blobFn,
		"warn":               l.warnFn,
		"include":            l.include,
		"load_dynamic":       l.loadDynamic,
		"exit":               l.exit,
		"local_git_repo":     l.localGitRepo,
	})
	d["struct"] = starlark.NewBuiltin("struct", starlarkstruct.Make)
	d["module"] = starlark.NewBuiltin("module", starlarkstruct.MakeModule)
	d["os"] = l.osModule()
	d["shlex"] = &starlarkstruct.Module{Name: "shlex", Members: builtins(map[string]builtinFn{"quote": shlexQuote})}
	d["sys"] = l.sysModule()
	return d
}

// sysModule is Tilt's subset of Python's sys: argv (loop's command line) and
// executable (the loop binary).
func (l *loader) sysModule() *starlarkstruct.Module {
	args := l.opts.Argv
	if args == nil {
		args = os.Args
	}
	argv := make([]starlark.Value, len(args))
	for i, a := range args {
		argv[i] = starlark.String(a)
	}
	list := starlark.NewList(argv)
	list.Freeze()
	var exe starlark.Value = starlark.None
	if e, err := os.Executable(); err == nil {
		exe = starlark.String(e)
	}
	return &starlarkstruct.Module{Name: "sys", Members: starlark.StringDict{"argv": list, "executable": exe}}
}

// errExit is what exit() raises: it stops the load (every file up the load
// chain), and Load reports success with what was declared so far.
var errExit = errors.New("exit() called")

// exit is Tilt's exit(code): it ends the load without an error; code, when
// given, is printed.
func (l *loader) exit(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var code starlark.Value = starlark.None
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "code?", &code); err != nil {
		return nil, err
	}
	if code != starlark.None {
		msg := code.String()
		if s, ok := code.(starlark.String); ok {
			msg = string(s)
		} else if bl, ok := code.(*Blob); ok {
			msg = bl.text
		}
		if msg != "" {
			fmt.Fprintln(l.out, msg)
		}
	}
	return nil, errExit
}

// loadDynamic is load_dynamic(path): it loads a file as load() does (cached,
// relative to the executing file, or ext://) and returns its globals as a
// frozen dict, binding no names.
func (l *loader) loadDynamic(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p text
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	globals, ok := l.builtinExtension(p.s)
	if !ok {
		path, err := l.resolveLoad(thread, p.s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Name(), err)
		}
		if globals, err = l.exec(path); err != nil {
			return nil, l.execErr(b, err)
		}
	}
	keys := make([]string, 0, len(globals))
	for k := range globals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	d := starlark.NewDict(len(keys))
	for _, k := range keys {
		_ = d.SetKey(starlark.String(k), globals[k])
	}
	d.Freeze()
	return d, nil
}

// execErr is the error of builtin b when a file it executed failed: exit()
// goes on stopping the load, an error inside the file is reported where it
// happened (as load() does), anything else at b's call.
func (l *loader) execErr(b *starlark.Builtin, err error) error {
	if errors.Is(err, errExit) {
		return errExit
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return fmt.Errorf("%s: %w", b.Name(), err)
}

func (l *loader) osModule() *starlarkstruct.Module {
	name := "posix"
	if runtime.GOOS == "windows" {
		name = "nt"
	}
	members := builtins(map[string]builtinFn{
		"getenv":   l.getenv,
		"putenv":   l.putenv,
		"unsetenv": l.unsetenv,
		"getcwd":   l.getcwd,
	})
	members["environ"] = &environ{l: l}
	members["name"] = starlark.String(name)
	members["path"] = &starlarkstruct.Module{Name: "os.path", Members: builtins(map[string]builtinFn{
		"abspath":  l.abspath,
		"basename": pathFn(filepath.Base),
		"dirname":  pathFn(filepath.Dir),
		"exists":   l.exists,
		"join":     pathJoin,
		"realpath": l.realpath,
		"relpath":  l.relpath,
	})}
	return &starlarkstruct.Module{Name: "os", Members: members}
}

func (l *loader) getenv(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		key text
		def starlark.Value = starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "default?", &def); err != nil {
		return nil, err
	}
	if v, ok := l.env[key.s]; ok {
		return starlark.String(v), nil
	}
	return def, nil
}

// putenv sets a variable of the load's environment (key and value may be
// blobs, as in Tilt).
func (l *loader) putenv(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key, value text
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key, "value", &value); err != nil {
		return nil, err
	}
	if err := l.setenv(key.s, value.s); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.None, nil
}

func (l *loader) setenv(key, value string) error {
	if key == "" || strings.ContainsAny(key, "=\x00") {
		return fmt.Errorf("invalid environment variable name %q", key)
	}
	l.env[key] = value
	return nil
}

func (l *loader) unsetenv(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var key text
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "key", &key); err != nil {
		return nil, err
	}
	delete(l.env, key.s)
	return starlark.None, nil
}

// getcwd is the directory of the executing Tiltfile, as in Tilt.
func (l *loader) getcwd(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs(b.Name(), args, kwargs); err != nil {
		return nil, err
	}
	return starlark.String(l.abs(thread, ".")), nil
}

// environ is os.environ: the load's environment as a mapping. Like Tilt's, it
// has the dict methods, and those that write (assignment, update, setdefault,
// pop, popitem, clear) change the environment that later os.getenv and
// local() calls see. Calling it returns a copy as a dict.
type environ struct{ l *loader }

var (
	_ starlark.IterableMapping = (*environ)(nil)
	_ starlark.HasSetKey       = (*environ)(nil)
	_ starlark.Sequence        = (*environ)(nil)
	_ starlark.Callable        = (*environ)(nil)
	_ starlark.Comparable      = (*environ)(nil)
)

func (e *environ) String() string        { return e.dict().String() }
func (e *environ) Type() string          { return "environ" }
func (e *environ) Freeze()               {}
func (e *environ) Truth() starlark.Bool  { return len(e.l.env) > 0 }
func (e *environ) Hash() (uint32, error) { return 0, errors.New("unhashable: environ") }
func (e *environ) Name() string          { return "environ" }
func (e *environ) Len() int              { return len(e.l.env) }

func (e *environ) Get(k starlark.Value) (starlark.Value, bool, error) {
	s, ok := asText(k)
	if !ok {
		return starlark.None, false, nil
	}
	v, found := e.l.env[s]
	return starlark.String(v), found, nil
}

func (e *environ) SetKey(k, v starlark.Value) error {
	ks, ok := asText(k)
	if !ok {
		return fmt.Errorf("os.environ: got %s key, want string", k.Type())
	}
	vs, ok := asText(v)
	if !ok {
		return fmt.Errorf("os.environ: got %s value for %q, want string", v.Type(), ks)
	}
	return e.l.setenv(ks, vs)
}

func (e *environ) keys() []string {
	keys := make([]string, 0, len(e.l.env))
	for k := range e.l.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// dict is a copy of the environment, sorted by name.
func (e *environ) dict() *starlark.Dict {
	keys := e.keys()
	d := starlark.NewDict(len(keys))
	for _, k := range keys {
		_ = d.SetKey(starlark.String(k), starlark.String(e.l.env[k]))
	}
	return d
}

func (e *environ) Items() []starlark.Tuple    { return e.dict().Items() }
func (e *environ) Iterate() starlark.Iterator { return e.dict().Iterate() }

func (e *environ) CompareSameType(op syntax.Token, y starlark.Value, depth int) (bool, error) {
	return e.dict().CompareSameType(op, y.(*environ).dict(), depth)
}

func (e *environ) CallInternal(thread *starlark.Thread, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if err := starlark.UnpackArgs("os.environ", args, kwargs); err != nil {
		return nil, err
	}
	return e.dict(), nil
}

var environMethods = []string{"clear", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"}

func (e *environ) AttrNames() []string { return environMethods }

// Attr returns the dict methods; reads go through a copy, writes through
// SetKey and delete.
func (e *environ) Attr(name string) (starlark.Value, error) {
	var fn builtinFn
	switch name {
	case "get", "items", "keys", "values":
		return e.dict().Attr(name)
	case "clear":
		fn = func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			clear(e.l.env)
			return starlark.None, nil
		}
	case "pop":
		fn = func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var k, def starlark.Value
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &k, &def); err != nil {
				return nil, err
			}
			if s, ok := asText(k); ok {
				if v, found := e.l.env[s]; found {
					delete(e.l.env, s)
					return starlark.String(v), nil
				}
			}
			if def != nil {
				return def, nil
			}
			return nil, fmt.Errorf("%s: missing key %s", b.Name(), k)
		}
	case "popitem":
		fn = func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 0); err != nil {
				return nil, err
			}
			keys := e.keys()
			if len(keys) == 0 {
				return nil, fmt.Errorf("%s: empty environ", b.Name())
			}
			k := keys[0]
			v := e.l.env[k]
			delete(e.l.env, k)
			return starlark.Tuple{starlark.String(k), starlark.String(v)}, nil
		}
	case "setdefault":
		fn = func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			var k starlark.Value
			var def starlark.Value = starlark.None
			if err := starlark.UnpackPositionalArgs(b.Name(), args, kwargs, 1, &k, &def); err != nil {
				return nil, err
			}
			if v, found, _ := e.Get(k); found {
				return v, nil
			}
			if err := e.SetKey(k, def); err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			return def, nil
		}
	case "update":
		fn = func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
			if len(args) > 1 {
				return nil, fmt.Errorf("%s: got %d arguments, want at most 1", b.Name(), len(args))
			}
			// Like dict.update: a mapping or an iterable of pairs, then kwargs;
			// a copy is updated first so a bad value changes nothing.
			tmp := starlark.NewDict(0)
			upd, err := tmp.Attr("update")
			if err != nil {
				return nil, err
			}
			if _, err := starlark.Call(&starlark.Thread{Name: "os.environ.update"}, upd, args, kwargs); err != nil {
				return nil, fmt.Errorf("%s: %w", b.Name(), err)
			}
			for _, kv := range tmp.Items() {
				if _, ok := asText(kv[0]); !ok {
					return nil, fmt.Errorf("%s: got %s key, want string", b.Name(), kv[0].Type())
				}
				if _, ok := asText(kv[1]); !ok {
					return nil, fmt.Errorf("%s: got %s value for %s, want string", b.Name(), kv[1].Type(), kv[0])
				}
			}
			for _, kv := range tmp.Items() {
				if err := e.SetKey(kv[0], kv[1]); err != nil {
					return nil, fmt.Errorf("%s: %w", b.Name(), err)
				}
			}
			return starlark.None, nil
		}
	default:
		return nil, nil
	}
	return starlark.NewBuiltin(name, fn).BindReceiver(e), nil
}

// asText is the text of a string or a blob.
func asText(v starlark.Value) (string, bool) {
	if b, ok := v.(*Blob); ok {
		return b.text, true
	}
	return starlark.AsString(v)
}

func pathFn(f func(string) string) builtinFn {
	return func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var p string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
			return nil, err
		}
		return starlark.String(f(p)), nil
	}
}

func (l *loader) abspath(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	return starlark.String(l.abs(thread, p)), nil
}

// exists records the path: a file that appears later changes the result.
func (l *loader) exists(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	abs := l.abs(thread, p)
	l.record(abs)
	_, err := os.Stat(abs)
	return starlark.Bool(err == nil), nil
}

func pathJoin(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	if len(kwargs) > 0 {
		return nil, errorf(b, "unexpected keyword arguments")
	}
	parts := make([]string, 0, len(args))
	for i, a := range args {
		s, ok := starlark.AsString(a)
		if !ok {
			return nil, errorf(b, "for parameter %d: got %s, want string", i+1, a.Type())
		}
		if filepath.IsAbs(s) { // like Python: an absolute part restarts the path
			parts = parts[:0]
		}
		parts = append(parts, s)
	}
	if len(parts) == 0 {
		return nil, errorf(b, "need at least one path")
	}
	return starlark.String(filepath.Join(parts...)), nil
}

func (l *loader) realpath(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	abs := l.abs(thread, p)
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return starlark.String(real), nil
	}
	return starlark.String(abs), nil
}

func (l *loader) relpath(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var targ, base string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "targpath", &targ, "basepath?", &base); err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(l.abs(thread, base), l.abs(thread, targ))
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return starlark.String(rel), nil
}

// readPath reads a file relative to the executing Tiltfile and records it.
// found is false when it does not exist.
func (l *loader) readPath(thread *starlark.Thread, b *starlark.Builtin, p string) (data []byte, found bool, err error) {
	abs := l.abs(thread, p)
	l.record(abs)
	data, err = os.ReadFile(abs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, errorf(b, "%v", err)
	}
	return data, true, nil
}

// readArgs unpacks (file_path, default=None) and reads the file; when it is
// missing, def is returned (or an error if no default was given).
func (l *loader) readArgs(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (data string, def starlark.Value, err error) {
	var p string
	def = nil
	kwargs = alias(kwargs, map[string]string{"paths": "file_path", "path": "file_path"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "file_path", &p, "default?", &def); err != nil {
		return "", nil, err
	}
	raw, found, err := l.readPath(thread, b, p)
	if err != nil {
		return "", nil, err
	}
	if !found {
		if def == nil {
			return "", nil, errorf(b, "file not found: %s", l.abs(thread, p))
		}
		return "", def, nil
	}
	return string(raw), nil, nil
}

func (l *loader) readFile(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	data, def, err := l.readArgs(thread, b, args, kwargs)
	if err != nil {
		return nil, err
	}
	if def != nil {
		if s, ok := starlark.AsString(def); ok {
			return NewBlob(s), nil
		}
		return def, nil
	}
	return NewBlob(data), nil
}

func (l *loader) readYAML(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	data, def, err := l.readArgs(thread, b, args, kwargs)
	if err != nil || def != nil {
		return def, err
	}
	v, err := codec.DecodeYAML(data)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return v, nil
}

func (l *loader) readYAMLStream(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	data, def, err := l.readArgs(thread, b, args, kwargs)
	if err != nil || def != nil {
		return def, err
	}
	v, err := codec.DecodeYAMLStream(data)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return v, nil
}

func (l *loader) readJSON(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	data, def, err := l.readArgs(thread, b, args, kwargs)
	if err != nil || def != nil {
		return def, err
	}
	v, err := codec.DecodeJSON(thread, data)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return v, nil
}

func decodeYAML(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t text
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "yaml", &t); err != nil {
		return nil, err
	}
	v, err := codec.DecodeYAML(t.s)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return v, nil
}

func decodeYAMLStream(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t text
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "yaml", &t); err != nil {
		return nil, err
	}
	v, err := codec.DecodeYAMLStream(t.s)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return v, nil
}

func decodeJSON(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var t text
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "json", &t); err != nil {
		return nil, err
	}
	v, err := codec.DecodeJSON(thread, t.s)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return v, nil
}

func encodeYAML(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var obj starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "obj", &obj); err != nil {
		return nil, err
	}
	s, err := codec.EncodeYAML(obj)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return NewBlob(s), nil
}

func encodeYAMLStream(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var objs *starlark.List
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "objs", &objs); err != nil {
		return nil, err
	}
	vs := make([]starlark.Value, objs.Len())
	for i := range vs {
		vs[i] = objs.Index(i)
	}
	s, err := codec.EncodeYAMLStream(vs)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return NewBlob(s), nil
}

func encodeJSON(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var obj starlark.Value
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "obj", &obj); err != nil {
		return nil, err
	}
	s, err := codec.EncodeJSON(thread, obj)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	return NewBlob(s), nil
}

// listdir returns the absolute paths of the files (not directories) under
// directory, sorted; the directory is recorded so new files reload. A missing
// directory lists nothing, as in Tilt.
func (l *loader) listdir(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		dir       string
		recursive bool
	)
	kwargs = alias(kwargs, map[string]string{"dir": "directory"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "directory", &dir, "recursive?", &recursive); err != nil {
		return nil, err
	}
	abs := l.abs(thread, dir)
	l.record(abs)
	files := []starlark.Value{}
	err := filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if p == abs {
			// As in Tilt: a missing directory (the tilt.d convention) or a
			// file lists nothing.
			if err != nil || !d.IsDir() {
				return filepath.SkipAll
			}
			return nil
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			if !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		files = append(files, starlark.String(p))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	return starlark.NewList(files), nil
}

func (l *loader) watchFile(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	kwargs = alias(kwargs, map[string]string{"paths": "file_path"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "file_path", &p); err != nil {
		return nil, err
	}
	abs := l.abs(thread, p)
	l.record(abs)
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		// Tilt watches a directory recursively: record the files in it.
		l.recordTree(abs)
	}
	return starlark.None, nil
}

func blobFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var contents text
	kwargs = alias(kwargs, map[string]string{"input": "contents"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "contents", &contents); err != nil {
		return nil, err
	}
	return NewBlob(contents.s), nil
}

func (l *loader) warnFn(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var msg string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "msg", &msg); err != nil {
		return nil, err
	}
	l.warn(pos(thread), msg)
	return starlark.None, nil
}

// include executes another Tiltfile for its declarations (cached like load).
func (l *loader) include(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "path", &p); err != nil {
		return nil, err
	}
	path, err := l.resolveLoad(thread, p)
	if err != nil {
		return nil, errorf(b, "%v", err)
	}
	if _, err := l.exec(path); err != nil {
		return nil, l.execErr(b, err)
	}
	return starlark.None, nil
}

// shlexQuote quotes s for a POSIX shell, as Python's shlex.quote.
func shlexQuote(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var s string
	kwargs = alias(kwargs, map[string]string{"name": "s"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "s", &s); err != nil {
		return nil, err
	}
	if s == "" {
		return starlark.String("''"), nil
	}
	safe := true
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("@%+=:,./-_", r) {
			safe = false
			break
		}
	}
	if safe {
		return starlark.String(s), nil
	}
	return starlark.String("'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"), nil
}

// localGitRepo is local_git_repo(path): a git.Repo value whose paths(p)
// joins p to the repository's directory. As in Tilt the directory must hold
// a .git directory.
func (l *loader) localGitRepo(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var p string
	kwargs = alias(kwargs, map[string]string{"path": "paths"})
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "paths", &p); err != nil {
		return nil, err
	}
	dir := l.abs(thread, p)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("%s: %w", b.Name(), err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return nil, errorf(b, "%s is not a git repository: it has no .git directory", dir)
	}
	return gitRepo{dir: dir}, nil
}

// gitRepo is the value of local_git_repo().
type gitRepo struct{ dir string }

var _ starlark.HasAttrs = gitRepo{}

func (r gitRepo) String() string        { return fmt.Sprintf("[git.Repo] '%s'", r.dir) }
func (r gitRepo) Type() string          { return "git.Repo" }
func (r gitRepo) Freeze()               {}
func (r gitRepo) Truth() starlark.Bool  { return r.dir != "" }
func (r gitRepo) Hash() (uint32, error) { return 0, errors.New("unhashable: git.Repo") }
func (r gitRepo) AttrNames() []string   { return []string{"paths"} }
func (r gitRepo) Attr(name string) (starlark.Value, error) {
	if name != "paths" {
		return nil, nil
	}
	return starlark.NewBuiltin("paths", func(_ *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		var p string
		if err := starlark.UnpackArgs(b.Name(), args, kwargs, "paths", &p); err != nil {
			return nil, err
		}
		return starlark.String(filepath.Join(r.dir, p)), nil
	}), nil
}
