package tiltfile

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltinRestartProcess(t *testing.T) {
	r := loadSrc(t, `
load('ext://restart_process', 'docker_build_with_restart', 'custom_build_with_restart')
docker_build_with_restart('example/a', 'app', ['/app/main'], [sync('app', '/app')], build_args={'X': '1'}, dockerfile='Dockerfile')
docker_build_with_restart('example/b', 'app', entrypoint='./main --port 80', live_update=[sync('app', '/app')],
    trigger=['app/main.go'], base_suffix='-base', restart_file='/tmp/r')
custom_build_with_restart('example/c', 'docker build -t $EXPECTED_REF app', ['app'], ['/c'], [sync('app', '/app'), run('make')],
    container_args=['--v'], exit_policy='continue')
`, Options{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.cfg.Images) != 3 {
		t.Fatalf("images %d, want 3 (one each: loop needs no wrapper image)", len(r.cfg.Images))
	}
	a, b, c := r.cfg.Images[0], r.cfg.Images[1], r.cfg.Images[2]
	eq(t, "a: context, entrypoint, kwargs, restart", []any{a.Context, a.Entrypoint, a.BuildArgs["X"], a.LiveUpdate.Restart},
		[]any{filepath.Join(r.dir, "app"), []string{"/app/main"}, "1", true})
	eq(t, "b: sh -c entrypoint, restart only on trigger", []any{b.Entrypoint, b.LiveUpdate.Restart, b.LiveUpdate.RestartOn},
		[]any{[]string{"sh", "-c", "./main --port 80"}, false, []string{filepath.Join(r.dir, "app/main.go")}})
	eq(t, "c: custom build, run kept before the restart", []any{c.Custom != nil, c.Entrypoint, c.ContainerArgs, len(c.LiveUpdate.Runs), c.LiveUpdate.Restart},
		[]any{true, []string{"/c"}, []string{"--v"}, 1, true})
	eq(t, "exit_policy: a restart, c continue", []any{a.LiveUpdate.KeepOnExit, c.LiveUpdate.KeepOnExit}, []any{false, true})
	if len(r.cfg.Warnings) != 0 {
		t.Errorf("warnings %q, want none", r.cfg.Warnings)
	}
	if a.LiveUpdate.Pos.Line != 3 || a.LiveUpdate.Syncs[0].Pos.Line != 3 {
		t.Errorf("positions %+v, want the user's call (line 3)", a.LiveUpdate.Pos)
	}
}

func TestBuiltinRestartProcessErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`docker_build_with_restart('a', '.', 'x', [])`, "`docker_build_with_restart` requires at least one live_update step"},
		{`docker_build_with_restart('a', '.', 'x', [sync('app', '/app'), restart_container()])`, "not compatible with live_update step: `restart_container()`"},
		{`docker_build_with_restart('a', '.', 3, [sync('app', '/app')])`, "`entrypoint` must be a string or list of strings: got int"},
		{`docker_build_with_restart('a', '.', 'x', [sync('app', '/app')], exit_policy='never')`, "exit_policy must be 'restart' or 'continue'"},
		{`custom_build_with_restart('a', 'make', ['app'], 'x', [sync('app', '/app')], tag='t')`, "not compatible with `tag`"},
		{`custom_build_with_restart('a', 'make', ['app'], 'x', [sync('app', '/app')], skips_local_docker=True)`, "not compatible with `skips_local_docker`"},
		{`docker_build_with_restart('a', '.', 'x', [sync('app', '/app')], no_such_arg=1)`, "unexpected keyword argument \"no_such_arg\""},
	} {
		r := loadSrc(t, "load('ext://restart_process', 'docker_build_with_restart', 'custom_build_with_restart')\n"+tc.src+"\n", Options{})
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) || !strings.Contains(r.err.Error(), "Tiltfile:2:") {
			t.Errorf("%s: error %v, want %q at Tiltfile:2", tc.src, r.err, tc.want)
		}
	}
}

func TestNoBuiltinExtensionsLoadsTheStarlarkOne(t *testing.T) {
	src := "load('ext://restart_process', 'docker_build_with_restart')\nprint(str(docker_build_with_restart))\n"
	ext := map[string]string{"ext/restart_process/Tiltfile": "def docker_build_with_restart(ref, context, entrypoint, live_update, **kwargs):\n    pass\n"}
	r := loadSrc(t, src, Options{NoBuiltinExtensions: true}, ext)
	if r.err != nil || !strings.Contains(r.out, "<function docker_build_with_restart>") {
		t.Errorf("with NoBuiltinExtensions: err %v, output %q, want the extension directory's function", r.err, r.out)
	}
	r = loadSrc(t, src, Options{}, ext)
	if r.err != nil || !strings.Contains(r.out, "<built-in function docker_build_with_restart>") {
		t.Errorf("by default: err %v, output %q, want loop's built-in", r.err, r.out)
	}
	r = loadSrc(t, "print(str(load_dynamic('ext://restart_process')['custom_build_with_restart']))\n", Options{})
	if r.err != nil || !strings.Contains(r.out, "<built-in function custom_build_with_restart>") {
		t.Errorf("load_dynamic: err %v, output %q, want loop's built-in", r.err, r.out)
	}
}
