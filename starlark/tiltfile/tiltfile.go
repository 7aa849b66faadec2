// Package tiltfile loads a Tiltfile (Starlark) into a model.Config.
//
// It owns the Starlark dialect, the builtins Tilt users rely on (one file per
// domain: docker.go, k8s.go, local.go, compose.go, settings.go, config.go,
// helpers.go, extensions.go) and the per-load state they write into. Nothing
// here is global: each Load builds a fresh loader whose builtins are closures
// over it, so concurrent loads are independent.
//
// Loading runs user code (local() executes commands) but talks to no Docker
// engine or cluster: helm() and kustomize() render in process (as Tilt's run
// `helm template` and `kustomize build`); k8s_yaml() records what a later
// stage applies.
package tiltfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.starlark.net/resolve"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// Options tune one Load.
type Options struct {
	// Args are the arguments after `--`, parsed by config.parse().
	Args []string
	// ExtensionsDir is the extension store (a tilt_modules folder: the
	// default repository is <dir>/github.com/tilt-dev/tilt-extensions), or a
	// checkout of the default repository (ext://NAME is <dir>/NAME/Tiltfile).
	// Empty means DefaultExtensionsDir().
	ExtensionsDir string
	// NoBuiltinExtensions makes load('ext://NAME') read the extensions
	// directory for the extensions loop has built-in versions of
	// (restart_process, helm_resource, helm_remote) too.
	NoBuiltinExtensions bool
	// Subcommand is what config.tilt_subcommand returns ("up", "ci", ...).
	Subcommand string
	// Env is the environment of local() and os.getenv; nil means os.Environ().
	Env []string
	// Local runs local() commands; nil runs them for real. Benchmarks and
	// tests set it to stub commands out.
	Local func(ctx context.Context, cmd model.Cmd, dir string, env []string, stdin string) ([]byte, error)
	// Output receives print(), warn() and the echo of local(); nil means
	// os.Stderr.
	Output io.Writer
	// Argv is sys.argv; nil means os.Args (loop's command line, as Tilt's
	// sys.argv is Tilt's).
	Argv []string
}

// Error is a load error with the position it was found at.
type Error struct {
	Pos model.Position
	Msg string
	// Backtrace is the Starlark call stack when the error was raised, or
	// empty for syntax and resolve errors.
	Backtrace string
	// cause is the builtin's own error, kept so that errors.As finds a
	// *Missing behind the position.
	cause error
}

// Unwrap is the error a builtin returned, if any.
func (e *Error) Unwrap() error { return e.cause }

// Error returns "path:line:col: msg".
func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return fmt.Sprintf("%s: %s", e.Pos.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.Pos.File, e.Pos.Line, e.Pos.Col, e.Msg)
}

// DefaultExtensionsDir is the extensions directory when
// Options.ExtensionsDir is empty: $LOOP_EXTENSIONS_DIR if set, else loop's
// store $XDG_DATA_HOME/loop/tilt_modules (~/.local/share/loop/tilt_modules).
func DefaultExtensionsDir() string {
	if d := os.Getenv("LOOP_EXTENSIONS_DIR"); d != "" {
		return d
	}
	return storeDir("loop")
}

// fileOptions is the dialect Tilt enables.
var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
	Recursion:       true,
}

// Load executes the Tiltfile at path and returns what it declared.
//
// On error it returns both the error and a non-nil Config whose Files lists
// every file read so far, so a caller can watch them and retry once the user
// fixes the file. The error is an *Error wherever a position is known.
func Load(ctx context.Context, path string, opts Options) (*model.Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return &model.Config{Tiltfile: path}, fmt.Errorf("load %s: %w", path, err)
	}
	l := newLoader(ctx, abs, opts)
	_, err = l.exec(abs)
	if errors.Is(err, errExit) {
		err = nil // exit() ends the load; what was declared stays
	}
	if err != nil {
		// Only Files are watched after a failed load: record the files of
		// every chart and kustomization rendered so far, so that fixing one
		// re-runs the Tiltfile.
		for _, r := range l.rendered {
			if r.src.Helm != nil {
				l.recordTree(r.src.Helm.Chart)
			}
			if r.src.Kustomize != nil {
				l.recordTree(r.src.Kustomize.Dir)
			}
		}
	}
	return l.finish(), err
}

// loader is the state of one Load. Builtins are methods on it.
type loader struct {
	ctx      context.Context
	opts     Options
	out      io.Writer
	mainPath string
	mainDir  string
	extDir   string

	cfg   *model.Config
	files map[string]struct{}
	// env is the load's environment: os.putenv and os.environ change it,
	// os.getenv and local() read it; env0 is what it started as.
	env, env0 map[string]string

	predeclared starlark.StringDict
	modules     map[string]*module
	chain       []string // files being executed, outermost first

	images     map[string]bool
	localNames map[string]bool
	config     configState
	// rendered are the helm() and kustomize() calls of this load.
	rendered []*rendered
	// ext holds v1alpha1.extension_repo() and extension() registrations.
	ext extState
	// helmRepos are helm_repo() registrations by name (the built-in helm_resource).
	helmRepos map[string]helmRepo
}

// module is a loaded file, cached so each file runs once per Load.
type module struct {
	globals starlark.StringDict
	err     error
	done    bool
}

const localFile = "loop.file" // thread-local: the file this thread executes

func newLoader(ctx context.Context, mainPath string, opts Options) *loader {
	l := &loader{
		ctx:      ctx,
		opts:     opts,
		out:      opts.Output,
		mainPath: mainPath,
		mainDir:  filepath.Dir(mainPath),
		extDir:   opts.ExtensionsDir,
		cfg: &model.Config{
			Tiltfile: mainPath,
			Args:     opts.Args,
			Settings: model.Settings{
				MaxParallelUpdates: model.DefaultMaxParallelUpdates,
				K8sUpsertTimeout:   model.DefaultK8sUpsertTimeout,
				TriggerMode:        model.TriggerAuto,
				VersionCheck:       true,
			},
		},
		files:      map[string]struct{}{},
		env:        map[string]string{},
		modules:    map[string]*module{},
		images:     map[string]bool{},
		localNames: map[string]bool{},
	}
	if l.out == nil {
		l.out = os.Stderr
	}
	if l.extDir == "" {
		l.extDir = DefaultExtensionsDir()
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			l.env[k] = v
		}
	}
	l.env0 = maps.Clone(l.env)
	l.predeclared = starlark.StringDict{}
	for _, domain := range []starlark.StringDict{
		l.dockerBuiltins(),
		l.k8sBuiltins(),
		l.localBuiltins(),
		l.composeBuiltins(),
		l.settingsBuiltins(),
		l.helperBuiltins(),
		l.extensionBuiltins(),
		{"config": l.configModule()},
	} {
		for name, v := range domain {
			l.predeclared[name] = v
		}
	}
	return l
}

// finish returns the config with Files sorted, and a source for each
// helm()/kustomize() render no k8s_yaml took, so its inputs stay watched.
func (l *loader) finish() *model.Config {
	for _, r := range l.rendered {
		if !r.attached {
			l.cfg.K8sSources = append(l.cfg.K8sSources, r.src)
		}
	}
	l.passEnv()
	l.cfg.Files = l.cfg.Files[:0]
	for f := range l.files {
		l.cfg.Files = append(l.cfg.Files, f)
	}
	sort.Strings(l.cfg.Files)
	return l.cfg
}

// passEnv gives the variables the Tiltfile set (os.putenv, os.environ) to
// the commands loop runs for it later: local_resource cmd and serve_cmd,
// custom_build and k8s_custom_deploy commands, and to the interpolation of
// docker_compose files. In Tilt they change Tilt's own environment, which
// those commands inherit; here their env= still wins.
func (l *loader) passEnv() {
	set := map[string]string{}
	for k, v := range l.env {
		if old, ok := l.env0[k]; !ok || old != v {
			set[k] = v
		}
	}
	if len(set) == 0 {
		return
	}
	with := func(own map[string]string) map[string]string {
		out := maps.Clone(set)
		maps.Copy(out, own)
		return out
	}
	for _, lr := range l.cfg.LocalResources {
		if !lr.Cmd.Empty() {
			lr.Env = with(lr.Env)
		}
		if !lr.ServeCmd.Empty() {
			lr.ServeEnv = with(lr.ServeEnv)
		}
	}
	for _, img := range l.cfg.Images {
		if img.Custom != nil {
			img.Custom.Env = with(img.Custom.Env)
		}
	}
	for _, cd := range l.cfg.CustomDeploys {
		cd.ApplyEnv, cd.DeleteEnv = with(cd.ApplyEnv), with(cd.DeleteEnv)
	}
	for _, cp := range l.cfg.Compose {
		cp.Env = with(nil)
	}
}

// record notes that the load read (or looked for) path.
func (l *loader) record(path string) {
	l.files[filepath.Clean(path)] = struct{}{}
}

// exec runs one file and returns its globals, using the cache.
func (l *loader) exec(path string) (starlark.StringDict, error) {
	if m, ok := l.modules[path]; ok {
		if !m.done {
			return nil, fmt.Errorf("load cycle: %s", l.cycle(path))
		}
		return m.globals, m.err
	}
	m := &module{}
	l.modules[path] = m
	l.chain = append(l.chain, path)
	defer func() { l.chain = l.chain[:len(l.chain)-1] }()

	l.record(path)
	src, err := os.ReadFile(path)
	if err != nil {
		m.done, m.err = true, &Error{Pos: model.Position{File: path}, Msg: readErrMsg(err)}
		if len(l.chain) > 1 {
			// The loader reports a missing loaded file at its load().
			m.err = errors.New(readErrMsg(err))
		}
		return nil, m.err
	}

	thread := &starlark.Thread{
		Name:  path,
		Load:  l.load,
		Print: func(_ *starlark.Thread, msg string) { fmt.Fprintln(l.out, msg) },
	}
	thread.SetLocal(localFile, path)
	stop := context.AfterFunc(l.ctx, func() { thread.Cancel(l.ctx.Err().Error()) })
	defer stop()

	// __file__ and __name__ are per file, as in Tilt.
	predeclared := make(starlark.StringDict, len(l.predeclared)+2)
	for k, v := range l.predeclared {
		predeclared[k] = v
	}
	predeclared["__file__"] = starlark.String(path)
	predeclared["__name__"] = starlark.String(filepath.Base(path))
	if path == l.mainPath {
		predeclared["__name__"] = starlark.String("__main__")
	}
	globals, err := starlark.ExecFileOptions(fileOptions, thread, path, src, predeclared)
	m.done, m.globals = true, globals
	switch {
	case errors.Is(err, errExit):
		m.err = errExit // not an error: every file up the load chain stops
	case err != nil:
		m.err = toError(err)
	}
	return globals, m.err
}

func readErrMsg(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Sprintf("file not found: %s", pe.Path)
		}
	}
	return err.Error()
}

// cycle renders the load chain that leads back to path.
func (l *loader) cycle(path string) string {
	start := 0
	for i, p := range l.chain {
		if p == path {
			start = i
		}
	}
	parts := make([]string, 0, len(l.chain)-start+1)
	for _, p := range l.chain[start:] {
		parts = append(parts, l.display(p))
	}
	return strings.Join(append(parts, l.display(path)), " -> ")
}

// display shortens a path relative to the main Tiltfile's directory.
func (l *loader) display(p string) string {
	if rel, ok := pathrule.Rel(l.mainDir, p); ok {
		return rel
	}
	return p
}

// load implements the load statement: relative to the loading file, or
// ext://NAME from the extensions directory.
func (l *loader) load(thread *starlark.Thread, name string) (starlark.StringDict, error) {
	if mod, ok := l.builtinExtension(name); ok {
		return mod, nil
	}
	path, err := l.resolveLoad(thread, name)
	if err != nil {
		return nil, err
	}
	return l.exec(path)
}

func (l *loader) resolveLoad(thread *starlark.Thread, name string) (string, error) {
	if ext, ok := strings.CutPrefix(name, "ext://"); ok {
		return l.resolveExtension(ext)
	}
	if strings.Contains(name, "://") {
		return "", fmt.Errorf("cannot load %q: only relative paths and ext:// are supported (loop loads nothing from the network)", name)
	}
	return l.abs(thread, name), nil
}

// curFile is the file the thread executes.
func curFile(thread *starlark.Thread) string {
	f, _ := thread.Local(localFile).(string)
	return f
}

// abs makes p absolute relative to the directory of the executing file, as
// Tilt resolves every path argument.
func (l *loader) abs(thread *starlark.Thread, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	dir := l.mainDir
	if f := curFile(thread); f != "" {
		dir = filepath.Dir(f)
	}
	return filepath.Join(dir, p)
}

func (l *loader) absAll(thread *starlark.Thread, ps []string) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = l.abs(thread, p)
	}
	return out
}

// pos is the position of the Starlark call of the running builtin.
func pos(thread *starlark.Thread) model.Position {
	if thread.CallStackDepth() < 2 {
		return model.Position{File: curFile(thread)}
	}
	p := thread.CallFrame(1).Pos
	return model.Position{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

// warn records a non-fatal problem and shows it.
func (l *loader) warn(p model.Position, msg string) {
	w := msg
	if p.Line > 0 {
		w = fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, msg)
	}
	l.cfg.Warnings = append(l.cfg.Warnings, w)
	fmt.Fprintf(l.out, "WARNING: %s\n", w)
}

// toError converts Starlark's errors into *Error with the best position.
func toError(err error) error {
	var inner *Error
	var evalErr *starlark.EvalError
	if errors.As(err, &evalErr) {
		if errors.As(evalErr.Unwrap(), &inner) {
			// An error inside a loaded file: report it where it happened,
			// and say which load led there.
			out := *inner
			p := framePos(evalErr.CallStack)
			out.Backtrace = strings.TrimRight(out.Backtrace, "\n") +
				fmt.Sprintf("\n  loaded from %s:%d:%d", p.File, p.Line, p.Col)
			return &out
		}
		return &Error{Pos: framePos(evalErr.CallStack), Msg: evalErr.Msg, Backtrace: evalErr.Backtrace(), cause: evalErr.Unwrap()}
	}
	var synErr syntax.Error
	if errors.As(err, &synErr) {
		return &Error{Pos: syntaxPos(synErr.Pos), Msg: synErr.Msg}
	}
	var resErrs resolve.ErrorList
	if errors.As(err, &resErrs) && len(resErrs) > 0 {
		msg := resErrs[0].Msg
		if len(resErrs) > 1 {
			var more []string
			for _, e := range resErrs[1:] {
				more = append(more, fmt.Sprintf("%s: %s", e.Pos, e.Msg))
			}
			msg += " (and: " + strings.Join(more, "; ") + ")"
		}
		return &Error{Pos: syntaxPos(resErrs[0].Pos), Msg: msg}
	}
	if errors.As(err, &inner) {
		return inner
	}
	return err
}

func syntaxPos(p syntax.Position) model.Position {
	return model.Position{File: p.Filename(), Line: int(p.Line), Col: int(p.Col)}
}

// framePos is the innermost frame with a source position: the Starlark line
// that called the failing builtin.
func framePos(stack starlark.CallStack) model.Position {
	for i := len(stack) - 1; i >= 0; i-- {
		if stack[i].Pos.Line > 0 {
			return syntaxPos(stack[i].Pos)
		}
	}
	return model.Position{}
}

// builtin wraps a Go function as a named Starlark builtin.
type builtinFn = func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error)

func builtins(fns map[string]builtinFn) starlark.StringDict {
	d := make(starlark.StringDict, len(fns))
	for name, fn := range fns {
		d[name] = starlark.NewBuiltin(name, fn)
	}
	return d
}

// errorf formats an error of builtin b.
func errorf(b *starlark.Builtin, format string, args ...any) error {
	return fmt.Errorf("%s: %s", b.Name(), fmt.Sprintf(format, args...))
}
