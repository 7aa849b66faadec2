package tiltfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

// Every builtin rejects a wrong argument with its own name, the parameter
// and the Tiltfile position.
func TestBuiltinArgumentErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{"docker_build('example/app', 1)", "docker_build: for parameter \"context\": got int, want string"},
		{"docker_build('Bad Ref!', '.')", "docker_build: invalid image reference"},
		{"docker_build('a', '.')\ndocker_build('a', 'app')", "image for ref \"a\" has already been defined"},
		{"docker_build('a', '.', dockerfile='D', dockerfile_contents='FROM x')", "cannot specify both dockerfile and dockerfile_contents"},
		{"docker_build('a', '.', live_update=[run('x'), sync('.', '/x')])", "sync steps must come before run"},
		{"docker_build('a', '.', live_update=[sync('.', '/x'), fall_back_on('x')])", "fall_back_on must come before"},
		{"docker_build('a', '.', live_update=[restart_container(), run('x')])", "run steps must come before restart_container"},
		{"docker_build('a', '.', live_update=['x'])", "docker_build: for parameter \"live_update\": got string at index 0"},
		{"docker_build('a', '.', build_args={'A': []})", "docker_build: for parameter \"build_args\": got list for key \"A\""},
		{"sync('.', 'relative')", "sync: remote_path \"relative\" must be an absolute path"},
		{"local_resource('x', serve_cmd='y', ready_log='(')", "local_resource: ready_log is not a regular expression"},
		{"local_resource('x', cmd='y', ready_log='ok')", "local_resource: ready_log needs a serve_cmd"},
		{"dc_resource('x', ready_log='[')", "dc_resource: ready_log is not a regular expression"},
		{"sync('.')", "sync: missing argument for remote_path"},
		{"run(1)", "run: for parameter \"cmd\": got int"},
		{"run('x', trigger=1)", "run: for parameter \"trigger\": got int"},
		{"restart_container(1)", "restart_container: got 1 arguments, want at most 0"},
		{"fall_back_on(1)", "fall_back_on: for parameter \"files\": got int"},
		{"initial_sync(x=1)", "initial_sync: unexpected keyword argument"},
		{"custom_build('a', '', ['.'])", "custom_build: command must not be empty"},
		{"custom_build('a', 'x', ['.'], tag='t', outputs_image_ref_to='f')", "cannot specify both tag and outputs_image_ref_to"},
		{"custom_build('a', 'x')", "custom_build: missing argument for deps"},
		{"k8s_yaml(1)", "k8s_yaml: for parameter \"yaml\": got int"},
		{"k8s_yaml('nope.yaml')", "k8s_yaml: file not found"},
		{"k8s_resource()", "k8s_resource: workload or new_name must be given"},
		{"k8s_resource('w', port_forwards='abc')", "k8s_resource: for parameter \"port_forwards\": invalid port \"abc\""},
		{"k8s_resource('w', pod_readiness='sometimes')", "pod_readiness must be 'wait' or 'ignore'"},
		{"k8s_resource('w', extra_pod_selectors='app=web')", "k8s_resource: for parameter \"extra_pod_selectors\": got string, want dict or list of dicts"},
		{"k8s_resource('w', extra_pod_selectors=[{'app': 'web'}, 'x'])", "k8s_resource: for parameter \"extra_pod_selectors\": got a list holding string, want dicts"},
		{"k8s_resource('w', extra_pod_selectors={})", "k8s_resource: for parameter \"extra_pod_selectors\": an empty selector would select every pod"},
		{"k8s_resource('w', trigger_mode='manual')", "k8s_resource: for parameter \"trigger_mode\": got string, want TRIGGER_MODE_AUTO"},
		{"k8s_resource('w', auto_init='yes')", "k8s_resource: for parameter \"auto_init\": got string, want bool"},
		{"k8s_kind('')", "k8s_kind: kind must not be empty"},
		{"k8s_kind('K', image_object=1)", "k8s_kind: for parameter \"image_object\": got int, want dict"},
		{"helm('nochart')", "helm: file not found"},
		{"helm('chart', set=['novalue'])", "helm: set: \"novalue\" is not KEY=VALUE"},
		{"kustomize(1)", "kustomize: for parameter \"paths\": got int, want string"},
		{"k8s_custom_deploy('x', apply_cmd='', delete_cmd='y')", "k8s_custom_deploy: apply_cmd must not be empty"},
		{"k8s_custom_deploy('x', apply_cmd='a', delete_cmd='d', live_update=[sync('app', '/app')])", "k8s_custom_deploy: no Live Update selector specified"},
		{"k8s_custom_deploy('x', apply_cmd='a', delete_cmd='d', image_selector='i', container_selector='c', live_update=[sync('app', '/app')])", "cannot specify more than one Live Update selector"},
		{"k8s_custom_deploy('x', apply_cmd='a', delete_cmd='d')\nk8s_custom_deploy('x', apply_cmd='a', delete_cmd='d')", "k8s_custom_deploy named \"x\" already declared"},
		{"allow_k8s_contexts(1)", "allow_k8s_contexts: for parameter \"contexts\": got int"},
		{"port_forward(70000)", "port_forward: local_port 70000 out of range"},
		{"link()", "link: missing argument for url"},
		{"local_resource('x')", "local_resource \"x\" needs a cmd and/or a serve_cmd"},
		{"local_resource('x', 'a')\nlocal_resource('x', 'b')", "a local_resource named \"x\" already exists"},
		{"local_resource('x', 'a', env={'A': None})", "local_resource: for parameter \"env\": got NoneType for key \"A\""},
		{"local_resource('x', 'a', readiness_probe='p')", "local_resource: for parameter \"readiness_probe\": got string, want probe"},
		{"local_resource('x', 'a', readiness_probe=probe(exec=exec_action(['t'])))", "readiness_probe needs a serve_cmd"},
		{"local('exit 1')", "local: command exit 1 failed: exit status 1"},
		{"local(1)", "local: for parameter \"command\": got int"},
		{"probe()", "probe: exactly one of exec, http_get or tcp_socket must be given"},
		{"probe(exec=http_get_action(80))", "probe: for parameter \"exec\": got http_get_action, want exec_action"},
		{"exec_action([])", "exec_action: command must not be empty"},
		{"http_get_action(80, scheme='ftp')", "http_get_action: scheme must be 'http' or 'https'"},
		{"tcp_socket_action('80')", "tcp_socket_action: for parameter \"port\": got string, want int"},
		{"docker_compose(1)", "docker_compose: for parameter \"configPaths\": got int"},
		{"docker_compose('nope.yaml')", "docker_compose: file not found"},
		{"dc_resource('web', project_name='other')", "dc_resource: no docker_compose call has project_name \"other\""},
		{"dc_resource(1)", "dc_resource: for parameter \"name\": got int, want string"},
		{"default_registry('http://r')", "default_registry: host \"http://r\" must be a registry host"},
		{"update_settings(max_parallel_updates=0)", "update_settings: max_parallel_updates must be >= 1"},
		{"update_settings(k8s_upsert_timeout_secs='x')", "update_settings: for parameter \"k8s_upsert_timeout_secs\": got string"},
		{"watch_settings(ignore=1)", "watch_settings: for parameter \"ignore\": got int"},
		{"trigger_mode('auto')", "trigger_mode: for parameter \"trigger_mode\": got string"},
		{"version_settings(check_updates='no')", "version_settings: for parameter \"check_updates\": got string, want bool"},
		{"ci_settings(timeout='soon')", "ci_settings: for parameter \"timeout\": got \"soon\", want a duration"},
		{"secret_settings(disable_scrub=1)", "secret_settings: for parameter \"disable_scrub\": got int, want bool"},
		{"analytics_settings(enable=1)", "analytics_settings: for parameter \"enable\": got int, want bool"},
		{"enable_feature()", "enable_feature: missing argument for feature_name"},
		{"read_file('missing.txt')", "read_file: file not found"},
		{"read_yaml('data.json', 1, 2)", "read_yaml: got 3 arguments, want at most 2"},
		{"read_yaml('secret.txt', x=1)", "read_yaml: unexpected keyword argument \"x\""},
		{"read_yaml_stream('missing.yaml')", "read_yaml_stream: file not found"},
		{"read_json('secret.txt')", "read_json: decode json"},
		{"decode_yaml('a: [')", "decode_yaml: decode yaml"},
		{"decode_yaml_stream(1)", "decode_yaml_stream: for parameter \"yaml\": got int, want string or blob"},
		{"decode_json('{')", "decode_json: decode json"},
		{"encode_yaml(lambda: 1)", "encode_yaml: encode yaml: cannot encode function"},
		{"encode_yaml_stream({})", "encode_yaml_stream: for parameter \"objs\": got dict, want list"},
		{"encode_json(lambda: 1)", "encode_json: encode json"},
		{"watch_file(1)", "watch_file: for parameter \"file_path\": got int"},
		{"blob(1)", "blob: for parameter \"contents\": got int"},
		{"warn()", "warn: missing argument for msg"},
		{"include('lib/nope.star')", "include: file not found"},
		{"os.getenv()", "getenv: missing argument for key"},
		{"os.putenv('A=B', 'x')", "putenv: invalid environment variable name"},
		{"os.unsetenv(1)", "unsetenv: for parameter \"key\": got int"},
		{"os.getcwd(1)", "getcwd: got 1 arguments, want at most 0"},
		{"os.path.join(1)", "join: for parameter 1: got int"},
		{"os.path.exists()", "exists: missing argument for path"},
		{"os.path.relpath(1)", "relpath: for parameter \"targpath\": got int"},
		{"os.path.basename(1)", "basename: for parameter \"path\": got int"},
		{"shlex.quote(1)", "quote: for parameter \"s\": got int"},
		{"config.define_string('a')\nconfig.define_string('a')", "define_string: \"a\" defined more than once"},
		{"config.define_bool('b', args=True)\nconfig.define_string_list('c', args=True)", "only one setting may"},
		{"config.parse()\nconfig.define_string('late')", "defined after config.parse()"},
		{"config.parse()", "parse: positional arguments [\"pos\"] given, but no setting takes them"},
		{"config.set_enabled_resources(1)", "set_enabled_resources: for parameter \"resources\": got int"},
		{"v1alpha1.ui_button('x')", "v1alpha1.ui_button: takes keyword arguments only"},
		{"fail('custom failure')", "fail: custom failure"},
		{"struct(1)", "struct: unexpected positional arguments"},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			line := strings.Count(c.src, "\n") + 1
			var opts Options
			if strings.Contains(c.want, "positional") {
				opts.Args = []string{"pos"}
			}
			r := loadSrc(t, c.src, opts)
			assertErrAt(t, r, "Tiltfile", line, c.want)
		})
	}
}

// Broken Tiltfiles: every kind of failure carries path:line:col.
func TestBrokenTiltfiles(t *testing.T) {
	cases := []struct {
		name, src, file string
		line            int
		want            string
	}{
		{"syntax error", "x = 1\ndocker_build('a', '.'\n", "Tiltfile", 3, "got end of file"},
		{"unknown builtin", "x = 1\n\ndocker_buld('a', '.')\n", "Tiltfile", 3, "undefined: docker_buld"},
		{"wrong type", "docker_build(\n  'a', context=['.'])\n", "Tiltfile", 1, "docker_build: for parameter \"context\": got list, want string"},
		{"missing loaded file", "\nload('./nope.star', 'x')\n", "Tiltfile", 2, "cannot load ./nope.star: file not found"},
		{"missing file in a loaded file", "load('./lib/calls_missing.star', 'x')\n", "lib/calls_missing.star", 1, "file not found"},
		{"syntax error in a loaded file", "load('./lib/broken.star', 'f')\n", "lib/broken.star", 1, "got ':', want ')'"},
		{"error in a loaded file", "load('./lib/wrong_type_inner.star', 'x')\n", "lib/wrong_type_inner.star", 3, "docker_build: for parameter \"ref\": got int"},
		{"load cycle", "load('./lib/cycle_a.star', 'a')\n", "lib/cycle_b.star", 1, "load cycle: lib/cycle_a.star -> lib/cycle_b.star -> lib/cycle_a.star"},
		{"self cycle", "\nload('./Tiltfile', 'a')\n", "Tiltfile", 2, "load cycle: Tiltfile -> Tiltfile"},
		{"missing symbol", "load('./lib/helpers.star', 'nope')\n", "Tiltfile", 1, "load: name nope not found"},
		{"missing extension", "load('ext://absent', 'x')\n", "Tiltfile", 1, "extension \"absent\" not found"},
		{"error in extension", "load('ext://broken', 'x')\n", "ext/broken/Tiltfile", 2, "undefined: undefined_thing"},
		{"remote load", "load('https://example.com/x', 'x')\n", "Tiltfile", 1, "only relative paths and ext://"},
		{"runtime error in a function", "def f(x):\n    return x + 1\n\nf('s')\n", "Tiltfile", 2, "unknown binary op: string + int"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := loadSrc(t, c.src, Options{})
			assertErrAt(t, r, c.file, c.line, c.want)
			// The Tiltfile and any file read before the failure stay watched.
			if !contains(r.cfg.Files, filepath.Join(r.dir, "Tiltfile")) {
				t.Errorf("Files = %q, want the Tiltfile", r.cfg.Files)
			}
		})
	}
}

func TestErrorDetails(t *testing.T) {
	r := loadSrc(t, "load('./lib/wrong_type_inner.star', 'x')\n", Options{})
	var e *Error
	if !errors.As(r.err, &e) {
		t.Fatalf("err = %v", r.err)
	}
	if !strings.Contains(e.Backtrace, "wrong_type_inner.star:3:") || !strings.Contains(e.Backtrace, "loaded from "+filepath.Join(r.dir, "Tiltfile")+":1:") {
		t.Errorf("backtrace = %q, want the inner frame and the load that led there", e.Backtrace)
	}
	for _, f := range []string{"Tiltfile", "lib/wrong_type_inner.star"} {
		if !contains(r.cfg.Files, filepath.Join(r.dir, f)) {
			t.Errorf("Files = %q, want %s", r.cfg.Files, f)
		}
	}

	r = loadSrc(t, "load('ext://absent', 'x')\n", Options{})
	if !strings.Contains(r.err.Error(), filepath.Join(r.dir, "ext")) || !strings.Contains(r.err.Error(), "LOOP_EXTENSIONS_DIR") {
		t.Errorf("missing extension error = %q, want the directory and how to set it", r.err)
	}
	if !contains(r.cfg.Files, filepath.Join(r.dir, "ext/absent/Tiltfile")) {
		t.Errorf("Files = %q, want the missing extension path watched", r.cfg.Files)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Load(ctx, filepath.Join(r.dir, "Tiltfile"), Options{Output: &strings.Builder{}, ExtensionsDir: filepath.Join(r.dir, "ext")})
	if err == nil {
		t.Error("load with a cancelled context succeeded")
	}

	cfg, err := Load(context.Background(), filepath.Join(t.TempDir(), "Tiltfile"), Options{})
	if err == nil || !strings.Contains(err.Error(), "file not found") || len(cfg.Files) != 1 {
		t.Errorf("missing Tiltfile: cfg.Files %q, err %v", cfg.Files, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestLocalRunsForReal(t *testing.T) {
	var out strings.Builder
	r := loadSrc(t, `
os.putenv('GREETING', 'hi')
v = local('echo $GREETING $EXTRA; echo to-stderr >&2', env={'EXTRA': 'there'}, dir='app')
if str(v) != 'hi there\n': fail('got %r' % str(v))
if str(local(['pwd'], quiet=True)).strip() != os.path.abspath('.'): fail('pwd')
local('echo boom >&2; exit 3')
`, Options{Local: realLocal, Env: []string{"PATH=" + os.Getenv("PATH")}, Output: &out})
	assertErrAt(t, r, "Tiltfile", 6, "exit status 3")
	if !strings.Contains(r.err.Error(), "boom") {
		t.Errorf("error = %q, want the command's stderr", r.err)
	}
	if !strings.Contains(out.String(), "to-stderr") || !strings.Contains(out.String(), "local: echo $GREETING") {
		t.Errorf("output = %q, want the echoed command and its stderr", out.String())
	}
}

// realLocal makes loadSrc use the real runner (nil would be replaced by a stub).
var realLocal = func(ctx context.Context, cmd model.Cmd, dir string, env []string, stdin string) ([]byte, error) {
	return runLocal(ctx, cmd, dir, env, stdin, nil)
}

func TestDefaultExtensionsDir(t *testing.T) {
	t.Setenv("LOOP_EXTENSIONS_DIR", "/opt/ext")
	if got := DefaultExtensionsDir(); got != "/opt/ext" {
		t.Errorf("with LOOP_EXTENSIONS_DIR: %q", got)
	}
	t.Setenv("LOOP_EXTENSIONS_DIR", "")
	t.Setenv("XDG_DATA_HOME", "/data")
	if got := DefaultExtensionsDir(); got != "/data/loop/tilt_modules" {
		t.Errorf("with XDG_DATA_HOME: %q", got)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got := DefaultExtensionsDir(); got != "/home/u/.local/share/loop/tilt_modules" {
		t.Errorf("default: %q", got)
	}
}

// The loader does not check where sync sources and only= point (Tilt checks
// syncs at assembly, for deployed images only, and never only=): an image
// whose context is one folder syncs from another, as docker_build_with_restart
// does. Each sync keeps where it was written, for the check at assembly.
func TestSyncAndOnlyOutsideTheContextLoad(t *testing.T) {
	r := loadSrc(t, "docker_build('a', 'app', only=['../x', 'src'],\n  live_update=[\n    sync('.', '/x')])\n", Options{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	img := r.cfg.Images[0]
	if strings.Join(img.Only, " ") != "../x src" {
		t.Errorf("only = %q", img.Only)
	}
	s := img.LiveUpdate.Syncs[0]
	if s.LocalPath != r.dir || s.Pos.File != filepath.Join(r.dir, "Tiltfile") || s.Pos.Line != 3 || s.Pos.Col < 1 {
		t.Errorf("sync = %+v, want %s from Tiltfile:3", s, r.dir)
	}
}
