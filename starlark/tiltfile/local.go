package tiltfile

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"sort"
	"strings"

	"go.starlark.net/starlark"

	"github.com/loop-dev/loop/daemon/model"
)

// localBuiltins are local_resource, local() and the readiness probes.
func (l *loader) localBuiltins() starlark.StringDict {
	return builtins(map[string]builtinFn{
		"local_resource":    l.localResource,
		"test":              l.localResource, // Tilt's deprecated fork of local_resource
		"local":             l.local,
		"probe":             l.probe,
		"exec_action":       l.execAction,
		"http_get_action":   l.httpGetAction,
		"tcp_socket_action": l.tcpSocketAction,
	})
}

func (l *loader) localResource(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		name, dir, serveDir, readyLog            string
		cmd, serveCmd, cmdBat, serveCmdBat       cmdArg
		deps, resourceDeps, ignore, tags, labels stringList
		trigger                                  triggerModeArg
		autoInit                                 = true
		allowParallel                            bool
		links                                    linksArg
		env, serveEnv                            strDict
		readiness                                probeArg
	)
	// Tilt's parameter order; tags (an older name of labels) and ready_log
	// are loop's.
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"name", &name, "cmd?", &cmd, "deps?", &deps, "trigger_mode?", &trigger,
		"resource_deps?", &resourceDeps, "ignore?", &ignore, "auto_init?", &autoInit,
		"serve_cmd?", &serveCmd, "cmd_bat?", &cmdBat, "serve_cmd_bat?", &serveCmdBat,
		"allow_parallel?", &allowParallel, "links?", &links, "labels?", &labels,
		"env?", &env, "serve_env?", &serveEnv, "readiness_probe?", &readiness,
		"dir?", &dir, "serve_dir?", &serveDir, "tags?", &tags, "ready_log?", &readyLog,
	); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errorf(b, "name must not be empty")
	}
	if l.localNames[name] {
		return nil, errorf(b, "a local_resource named %q already exists", name)
	}
	if cmd.cmd.Empty() && serveCmd.cmd.Empty() {
		return nil, errorf(b, "local_resource %q needs a cmd and/or a serve_cmd", name)
	}
	if readiness.probe != nil && serveCmd.cmd.Empty() {
		return nil, errorf(b, "readiness_probe needs a serve_cmd")
	}
	if readyLog != "" && serveCmd.cmd.Empty() {
		return nil, errorf(b, "ready_log needs a serve_cmd")
	}
	if _, err := regexp.Compile(readyLog); err != nil {
		return nil, errorf(b, "ready_log is not a regular expression: %v", err)
	}
	l.localNames[name] = true
	workDir := l.abs(thread, ".")
	if dir != "" {
		workDir = l.abs(thread, dir)
	}
	serveWorkDir := l.abs(thread, ".")
	if serveDir != "" {
		serveWorkDir = l.abs(thread, serveDir)
	}
	lr := &model.LocalResource{
		Name:           name,
		Cmd:            cmd.cmd,
		Env:            env.m,
		Dir:            workDir,
		ServeCmd:       serveCmd.cmd,
		ServeEnv:       serveEnv.m,
		Deps:           l.absAll(thread, deps.vals),
		Ignore:         ignore.vals,
		ResourceDeps:   resourceDeps.vals,
		TriggerMode:    trigger.mode,
		AutoInit:       autoInit,
		AllowParallel:  allowParallel,
		Labels:         append(labels.vals, tags.vals...),
		Links:          links.links,
		ReadinessProbe: readiness.probe,
		ReadyLog:       readyLog,
		Pos:            pos(thread),
	}
	if !lr.ServeCmd.Empty() {
		lr.ServeDir = serveWorkDir
	}
	l.cfg.LocalResources = append(l.cfg.LocalResources, lr)
	return starlark.None, nil
}

// local runs a command while loading and returns its stdout as a blob.
func (l *loader) local(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		command, commandBat cmdArg
		quiet, echoOff      bool
		env                 strDict
		dir                 string
		stdin               text
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"command", &command, "quiet?", &quiet, "command_bat?", &commandBat,
		"echo_off?", &echoOff, "env?", &env, "dir?", &dir, "stdin?", &stdin,
	); err != nil {
		return nil, err
	}
	if command.cmd.Empty() {
		return nil, errorf(b, "command must not be empty")
	}
	workDir := l.abs(thread, ".")
	if dir != "" {
		workDir = l.abs(thread, dir)
	}
	environ := l.environ(env.m)
	if !echoOff {
		fmt.Fprintf(l.out, "local: %s\n", displayCmd(command.cmd))
	}
	run := l.opts.Local
	if run == nil {
		var echo io.Writer
		if !quiet {
			echo = l.out
		}
		run = func(ctx context.Context, cmd model.Cmd, dir string, env []string, stdin string) ([]byte, error) {
			return runLocal(ctx, cmd, dir, env, stdin, echo)
		}
	}
	out, err := run(l.ctx, command.cmd, workDir, environ, stdin.s)
	if err != nil {
		return nil, errorf(b, "command %s failed: %v", displayCmd(command.cmd), err)
	}
	return NewBlob(string(out)), nil
}

// runLocal executes cmd; stdout is returned, stderr is echoed (when echo is
// non-nil) and included in the error on a non-zero exit.
func runLocal(ctx context.Context, cmd model.Cmd, dir string, env []string, stdin string, echo io.Writer) ([]byte, error) {
	c := exec.CommandContext(ctx, cmd.Argv[0], cmd.Argv[1:]...)
	c.Dir, c.Env = dir, env
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	c.Stdout = &stdout
	c.Stderr = &stderr
	if echo != nil {
		c.Stdout = io.MultiWriter(&stdout, echo)
		c.Stderr = io.MultiWriter(&stderr, echo)
	}
	if err := c.Run(); err != nil {
		return nil, fmt.Errorf("%w\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

func displayCmd(c model.Cmd) string {
	if c.Shell && len(c.Argv) == 3 {
		return c.Argv[2]
	}
	return strings.Join(c.Argv, " ")
}

// environ is the load's environment (after os.putenv) plus extra, sorted.
func (l *loader) environ(extra map[string]string) []string {
	merged := make(map[string]string, len(l.env)+len(extra))
	for k, v := range l.env {
		merged[k] = v
	}
	for k, v := range extra {
		merged[k] = v
	}
	out := make([]string, 0, len(merged))
	for k, v := range merged {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (l *loader) probe(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		initialDelay, timeout, period                     = seconds{}, seconds{}, seconds{}
		successThreshold, failureThreshold                = 1, 3
		execV, httpV, tcpV                 starlark.Value = starlark.None, starlark.None, starlark.None
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs,
		"initial_delay_secs?", &initialDelay, "timeout_secs?", &timeout, "period_secs?", &period,
		"success_threshold?", &successThreshold, "failure_threshold?", &failureThreshold,
		"exec?", &execV, "http_get?", &httpV, "tcp_socket?", &tcpV,
	); err != nil {
		return nil, err
	}
	p := &model.Probe{
		InitialDelay:     initialDelay.d,
		Timeout:          timeout.d,
		Period:           period.d,
		SuccessThreshold: successThreshold,
		FailureThreshold: failureThreshold,
	}
	// Kubernetes defaults, which Tilt's probe() uses too.
	if !timeout.set {
		p.Timeout = 1e9
	}
	if !period.set {
		p.Period = 10e9
	}
	if successThreshold < 1 || failureThreshold < 1 {
		return nil, errorf(b, "success_threshold and failure_threshold must be >= 1")
	}
	handlers := 0
	for _, h := range []struct {
		name, want string
		v          starlark.Value
	}{{"exec", "exec_action", execV}, {"http_get", "http_get_action", httpV}, {"tcp_socket", "tcp_socket_action", tcpV}} {
		if h.v == starlark.None {
			continue
		}
		a, ok := h.v.(actionValue)
		if !ok || a.Type() != h.want {
			return nil, fmt.Errorf("%s: for parameter %q: got %s, want %s", b.Name(), h.name, h.v.Type(), h.want)
		}
		handlers++
		p.Exec, p.HTTPGet, p.TCPSocket = firstNonNil(p.Exec, a.exec), firstNonNil(p.HTTPGet, a.http), firstNonNil(p.TCPSocket, a.tcp)
	}
	if handlers != 1 {
		return nil, errorf(b, "exactly one of exec, http_get or tcp_socket must be given")
	}
	return probeValue{p}, nil
}

func firstNonNil[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

func (l *loader) execAction(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var command stringList
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "command", &command); err != nil {
		return nil, err
	}
	if len(command.vals) == 0 {
		return nil, errorf(b, "command must not be empty")
	}
	return actionValue{exec: &model.ExecAction{Command: command.vals}}, nil
}

func (l *loader) httpGetAction(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		port               int
		host, scheme, path string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "port", &port, "host?", &host, "scheme?", &scheme, "path?", &path); err != nil {
		return nil, err
	}
	if port < 1 || port > 65535 {
		return nil, errorf(b, "port %d out of range 1-65535", port)
	}
	switch strings.ToLower(scheme) {
	case "", "http", "https":
	default:
		return nil, errorf(b, "scheme must be 'http' or 'https', got %q", scheme)
	}
	return actionValue{http: &model.HTTPGetAction{Port: port, Host: host, Scheme: strings.ToLower(scheme), Path: path}}, nil
}

func (l *loader) tcpSocketAction(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
	var (
		port int
		host string
	)
	if err := starlark.UnpackArgs(b.Name(), args, kwargs, "port", &port, "host?", &host); err != nil {
		return nil, err
	}
	if port < 1 || port > 65535 {
		return nil, errorf(b, "port %d out of range 1-65535", port)
	}
	return actionValue{tcp: &model.TCPSocketAction{Port: port, Host: host}}, nil
}
