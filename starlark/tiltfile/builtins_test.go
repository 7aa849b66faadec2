package tiltfile

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// Happy paths. Values builtins return are asserted inside the Tiltfile with
// fail(), which fails the load; declarations are asserted on the Config.
func TestBuiltinsHappy(t *testing.T) {
	cases := []struct {
		name  string
		src   string
		check func(t *testing.T, r loadResult)
	}{
		{"docker_build", `
docker_build('example/app', '.', dockerfile='Dockerfile', build_args={'A': 'x', 'N': 1},
    target='dev', only=['app'], ignore='*.tmp', entrypoint='/app/run', container_args=['-v'],
    network='host', platform='linux/amd64', extra_tag='example/app:dev', cache_from=['c'],
    pull=True, match_in_env_vars=True)
docker_build('example/inline', 'app', dockerfile_contents=blob('FROM scratch'), entrypoint=['/bin/x', 'y'])
`, func(t *testing.T, r loadResult) {
			eq(t, "images", len(r.cfg.Images), 2)
			img := r.cfg.Images[0]
			eq(t, "ref", img.Ref, "example/app")
			eq(t, "context", img.Context, r.dir)
			eq(t, "dockerfile", img.Dockerfile, filepath.Join(r.dir, "Dockerfile"))
			eq(t, "build_args", img.BuildArgs, map[string]string{"A": "x", "N": "1"})
			eq(t, "only", img.Only, []string{"app"})
			eq(t, "ignore", img.Ignore, []string{"*.tmp"})
			eq(t, "entrypoint", img.Entrypoint, []string{"sh", "-c", "/app/run"})
			eq(t, "extra_tag", img.ExtraTag, []string{"example/app:dev"})
			eq(t, "misc", []any{img.Target, img.Network, img.Platform, img.PullParent, img.MatchInEnv, img.ContainerArgs, img.CacheFrom},
				[]any{"dev", "host", "linux/amd64", true, true, []string{"-v"}, []string{"c"}})
			eq(t, "pos", img.Pos, model.Position{File: filepath.Join(r.dir, "Tiltfile"), Line: 2, Col: 13})
			in := r.cfg.Images[1]
			eq(t, "inline dockerfile", [2]string{in.Dockerfile, in.DockerfileContents}, [2]string{"", "FROM scratch"})
			eq(t, "inline context", in.Context, filepath.Join(r.dir, "app"))
			eq(t, "inline entrypoint", in.Entrypoint, []string{"/bin/x", "y"})
		}},
		{"live_update steps", `
docker_build('example/app', '.', live_update=[
    fall_back_on(['go.mod', 'go.sum']),
    initial_sync(),
    sync('app', '/src/app'),
    sync('./Dockerfile', '/src/Dockerfile/'),
    run('make', trigger='app/main.go'),
    run(['go', 'build'], echo_off=True),
    restart_container(),
])`, func(t *testing.T, r loadResult) {
			lu := r.cfg.Images[0].LiveUpdate
			if lu == nil {
				t.Fatal("no live update")
			}
			eq(t, "fall_back_on", lu.FallBackOn, []string{filepath.Join(r.dir, "go.mod"), filepath.Join(r.dir, "go.sum")})
			eq(t, "initial_sync", lu.InitialSync, true)
			eq(t, "syncs", lu.Syncs, []model.Sync{
				{LocalPath: filepath.Join(r.dir, "app"), ContainerPath: "/src/app", Pos: model.Position{File: filepath.Join(r.dir, "Tiltfile"), Line: 5, Col: 9}},
				{LocalPath: filepath.Join(r.dir, "Dockerfile"), ContainerPath: "/src/Dockerfile", Pos: model.Position{File: filepath.Join(r.dir, "Tiltfile"), Line: 6, Col: 9}},
			})
			eq(t, "runs", lu.Runs, []model.Run{
				{Cmd: model.Cmd{Argv: []string{"sh", "-c", "make"}, Shell: true}, Triggers: []string{filepath.Join(r.dir, "app/main.go")}, Echo: true},
				{Cmd: model.Cmd{Argv: []string{"go", "build"}}},
			})
			eq(t, "restart", lu.Restart, true)
		}},
		{"custom_build", `
custom_build('example/custom', 'make image EXPECTED_REF=$EXPECTED_REF', ['app'], tag='dev',
    disable_push=True, skips_local_docker=True, env={'X': '1'}, dir='app',
    live_update=[sync('app', '/app')], entrypoint=['/x'])`, func(t *testing.T, r loadResult) {
			img := r.cfg.Images[0]
			if img.Custom == nil {
				t.Fatal("Custom not set")
			}
			eq(t, "command", img.Custom.Command.Argv, []string{"sh", "-c", "make image EXPECTED_REF=$EXPECTED_REF"})
			eq(t, "deps", img.Custom.Deps, []string{filepath.Join(r.dir, "app")})
			eq(t, "flags", []any{img.Custom.Tag, img.Custom.DisablePush, img.Custom.SkipsLocalDocker, img.Custom.Env, img.Custom.Dir},
				[]any{"dev", true, true, map[string]string{"X": "1"}, filepath.Join(r.dir, "app")})
			eq(t, "syncs", len(img.LiveUpdate.Syncs), 1)
		}},
		{"k8s_yaml", `
k8s_yaml('k8s.yaml')
k8s_yaml(['k8s.yaml', blob('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n')], allow_duplicates=True)
k8s_yaml(helm('chart', name='demo', namespace='ns', values=['chart/values-dev.yaml'], set=['a=b'], kube_version='1.30', skip_crds=True))
k8s_yaml(kustomize('kust', flags=['--load-restrictor', 'LoadRestrictionsNone']))
h = helm('chart')  # not passed to k8s_yaml: its inputs are still watched
`, func(t *testing.T, r loadResult) {
			s := r.cfg.K8sSources
			eq(t, "sources", len(s), 6)
			eq(t, "paths", s[0].Paths, []string{filepath.Join(r.dir, "k8s.yaml")})
			eq(t, "blob", [2]any{s[1].YAML, s[1].AllowDuplicates}, [2]any{"apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n", true})
			eq(t, "list paths", [2]any{s[2].Paths, s[2].AllowDuplicates}, [2]any{[]string{filepath.Join(r.dir, "k8s.yaml")}, true})
			eq(t, "helm", *s[3].Helm, model.HelmArgs{Chart: filepath.Join(r.dir, "chart"), Name: "demo", Namespace: "ns",
				Values: []string{filepath.Join(r.dir, "chart/values-dev.yaml")}, Set: []string{"a=b"}, KubeVersion: "1.30", SkipCRDs: true})
			eq(t, "helm kind", s[3].Kind, model.K8sYAML)
			if !strings.Contains(s[3].YAML, "name: demo-cfg") {
				t.Errorf("helm source YAML = %q, want the rendered chart", s[3].YAML)
			}
			eq(t, "kustomize", *s[4].Kustomize, model.KustomizeArgs{Dir: filepath.Join(r.dir, "kust"), Flags: []string{"--load-restrictor", "LoadRestrictionsNone"}})
			eq(t, "kustomize pos line", s[4].Pos.Line, 5)
			eq(t, "unused helm: watch only", [3]any{s[5].Kind, s[5].YAML, s[5].Helm.Chart}, [3]any{model.K8sYAML, "", filepath.Join(r.dir, "chart")})
			eq(t, "unused helm pos line", s[5].Pos.Line, 6)
		}},
		{"k8s_resource", `
k8s_resource('web', new_name='frontend', port_forwards=[8000, '9000:90', 'localhost:7000:70', port_forward(6000, 60, name='ui', link_path='/x', host='0.0.0.0')],
    resource_deps=['db'], labels='team', trigger_mode=TRIGGER_MODE_MANUAL, auto_init=False,
    links=['http://a', link('http://b', 'B')], pod_readiness='wait', extra_pod_selectors=[{'app': 'web'}], discovery_strategy='selectors-only')
k8s_resource(new_name='config', objects=['demo:namespace'])`, func(t *testing.T, r loadResult) {
			k := r.cfg.K8sResources[0]
			eq(t, "names", [2]string{k.Workload, k.NewName}, [2]string{"web", "frontend"})
			eq(t, "port forwards", k.PortForwards, []model.PortForward{
				{LocalPort: 8000}, {LocalPort: 9000, ContainerPort: 90}, {LocalPort: 7000, ContainerPort: 70, Host: "localhost"},
				{LocalPort: 6000, ContainerPort: 60, Name: "ui", LinkPath: "/x", Host: "0.0.0.0"}})
			eq(t, "deps", k.ResourceDeps, []string{"db"})
			eq(t, "labels", k.Labels, []string{"team"})
			eq(t, "trigger", k.TriggerMode, model.TriggerManual)
			if k.AutoInit == nil || *k.AutoInit {
				t.Errorf("auto_init = %v, want false", k.AutoInit)
			}
			eq(t, "links", k.Links, []model.Link{{URL: "http://a"}, {URL: "http://b", Name: "B"}})
			eq(t, "extra selectors", k.ExtraPodSelectors, []map[string]string{{"app": "web"}})
			eq(t, "selectors only", k.SelectorsOnly, true)
			eq(t, "objects", r.cfg.K8sResources[1].Objects, []string{"demo:namespace"})
			eq(t, "unset auto_init", r.cfg.K8sResources[1].AutoInit, (*bool)(nil))
		}},
		{"k8s_kind", `k8s_kind('Rollout', api_version='argoproj.io/v1alpha1', image_json_path='{.spec.template.spec.containers[*].image}', pod_readiness='ignore')`,
			func(t *testing.T, r loadResult) {
				eq(t, "kind", *r.cfg.K8sKinds[0], model.K8sKind{Kind: "Rollout", APIVersion: "argoproj.io/v1alpha1",
					ImageJSONPath: []string{"{.spec.template.spec.containers[*].image}"}, PodReadiness: "ignore"})
			}},
		{"k8s_custom_deploy", `
os.putenv('FROM_TILTFILE', '1')
k8s_custom_deploy('chart', apply_cmd='helm upgrade', delete_cmd=['helm', 'delete'], deps=['chart'],
    apply_env={'A': '1'}, delete_dir='app', image_deps=['example/img'], image_selector='example/img',
    live_update=[sync('app', '/app')])`,
			func(t *testing.T, r loadResult) {
				eq(t, "warnings", len(r.cfg.Warnings), 0)
				cd := r.cfg.CustomDeploys[0]
				eq(t, "custom deploy", []any{cd.Name, cd.ApplyCmd, cd.ApplyDir, cd.ApplyEnv, cd.DeleteCmd, cd.DeleteDir, cd.DeleteEnv, cd.Deps, cd.ImageDeps, cd.ImageSelector, len(cd.LiveUpdate.Syncs)},
					[]any{"chart", model.Cmd{Argv: []string{"sh", "-c", "helm upgrade"}, Shell: true}, r.dir, map[string]string{"A": "1", "FROM_TILTFILE": "1"},
						model.Cmd{Argv: []string{"helm", "delete"}}, filepath.Join(r.dir, "app"), map[string]string{"FROM_TILTFILE": "1"},
						[]string{filepath.Join(r.dir, "chart")}, []string{"example/img"}, "example/img", 1})
			}},
		{"allow_k8s_contexts", "allow_k8s_contexts('prod')\nallow_k8s_contexts(['a', 'b'])", func(t *testing.T, r loadResult) {
			eq(t, "contexts", r.cfg.Settings.AllowedK8sContexts, []string{"prod", "a", "b"})
		}},
		{"local_resource", `
local_resource('build', 'go build ./...', deps=['app'], ignore=['app/sub'], resource_deps=['gen'],
    trigger_mode=TRIGGER_MODE_MANUAL, allow_parallel=True, env={'CGO_ENABLED': '0'}, dir='lr_dir', labels=['be'], links='http://x')
local_resource('serve', serve_cmd=['./server', '-p', '80'], serve_env={'P': '80'}, serve_dir='app', auto_init=False,
    readiness_probe=probe(period_secs=0.5, timeout_secs=2, initial_delay_secs=1, success_threshold=2, failure_threshold=5, tcp_socket=tcp_socket_action(80, host='localhost')))
local_resource('probes', serve_cmd='x', readiness_probe=probe(exec=exec_action(['true'])))
local_resource('http', serve_cmd='x', readiness_probe=probe(http_get=http_get_action(8080, host='h', scheme='https', path='/ready')))
`, func(t *testing.T, r loadResult) {
			b := r.cfg.LocalResources[0]
			eq(t, "cmd", b.Cmd, model.Cmd{Argv: []string{"sh", "-c", "go build ./..."}, Shell: true})
			eq(t, "deps", b.Deps, []string{filepath.Join(r.dir, "app")})
			eq(t, "dir", b.Dir, filepath.Join(r.dir, "lr_dir"))
			eq(t, "misc", []any{b.Ignore, b.ResourceDeps, b.TriggerMode, b.AllowParallel, b.Env, b.Labels, b.AutoInit, b.Links},
				[]any{[]string{"app/sub"}, []string{"gen"}, model.TriggerManual, true, map[string]string{"CGO_ENABLED": "0"}, []string{"be"}, true, []model.Link{{URL: "http://x"}}})
			s := r.cfg.LocalResources[1]
			eq(t, "serve", []any{s.ServeCmd, s.ServeEnv, s.ServeDir, s.AutoInit, s.Dir},
				[]any{model.Cmd{Argv: []string{"./server", "-p", "80"}}, map[string]string{"P": "80"}, filepath.Join(r.dir, "app"), false, r.dir})
			eq(t, "probe", *s.ReadinessProbe, model.Probe{InitialDelay: time.Second, Timeout: 2 * time.Second, Period: 500 * time.Millisecond,
				SuccessThreshold: 2, FailureThreshold: 5, TCPSocket: &model.TCPSocketAction{Port: 80, Host: "localhost"}})
			eq(t, "exec probe", *r.cfg.LocalResources[2].ReadinessProbe, model.Probe{Timeout: time.Second, Period: 10 * time.Second,
				SuccessThreshold: 1, FailureThreshold: 3, Exec: &model.ExecAction{Command: []string{"true"}}})
			eq(t, "http probe", *r.cfg.LocalResources[3].ReadinessProbe.HTTPGet, model.HTTPGetAction{Port: 8080, Host: "h", Scheme: "https", Path: "/ready"})
		}},
		{"local", `
out = local('echo hi', quiet=True, env={'X': '1'}, dir='app', stdin='in')
if str(out) != 'ran echo hi\n': fail('got %r' % str(out))
if out.strip() != 'ran echo hi': fail('strip')
argv = local(['ls', '-l'], echo_off=True)
if type(argv) != 'blob': fail(type(argv))
`, func(t *testing.T, r loadResult) {
			if !strings.Contains(r.out, "local: echo hi") || strings.Contains(r.out, "local: ls") {
				t.Errorf("output = %q, want the echo of the first command only", r.out)
			}
		}},
		{"docker_compose and dc_resource", `
docker_compose('compose.yaml', env_file='dev.env', project_name='demo', profiles=['debug'], wait=True)
docker_compose([blob('services: {}')])
dc_resource('web', trigger_mode=TRIGGER_MODE_MANUAL, resource_deps=['db'], links=['http://localhost:80'],
    labels=['fe'], auto_init=False, project_name='demo', new_name='frontend', infer_links=False)`, func(t *testing.T, r loadResult) {
			c := r.cfg.Compose[0]
			eq(t, "compose", []any{c.Paths, c.EnvFile, c.ProjectName, c.Profiles, c.Wait},
				[]any{[]string{filepath.Join(r.dir, "compose.yaml")}, filepath.Join(r.dir, "dev.env"), "demo", []string{"debug"}, true})
			eq(t, "inline", r.cfg.Compose[1].Inline, "services: {}")
			d := r.cfg.DCResources[0]
			eq(t, "dc", []any{d.Name, d.NewName, d.TriggerMode, d.ResourceDeps, d.Labels, *d.AutoInit, *d.InferLinks, d.Links},
				[]any{"web", "frontend", model.TriggerManual, []string{"db"}, []string{"fe"}, false, false, []model.Link{{URL: "http://localhost:80"}}})
		}},
		{"settings", `
default_registry('localhost:5000', host_from_cluster='registry:5000', single_name='one')
update_settings(max_parallel_updates=5, k8s_upsert_timeout_secs=60, suppress_unused_image_warnings=['x'])
watch_settings(ignore=['*.log'])
trigger_mode(TRIGGER_MODE_MANUAL)
version_settings(check_updates=False, constraint='>=0.30')
ci_settings(k8s_grace_period='10s', timeout='5m')
secret_settings(disable_scrub=True)
analytics_settings(False)
disable_snapshots()
set_team('t')
`, func(t *testing.T, r loadResult) {
			s := r.cfg.Settings
			eq(t, "registry", *s.DefaultRegistry, model.Registry{Host: "localhost:5000", HostFromCluster: "registry:5000", SingleName: "one"})
			eq(t, "update", []any{s.MaxParallelUpdates, s.K8sUpsertTimeout, s.SuppressUnusedImageWarnings}, []any{5, time.Minute, []string{"x"}})
			eq(t, "watch", s.WatchIgnore, []string{"*.log"})
			eq(t, "trigger", s.TriggerMode, model.TriggerManual)
			eq(t, "version", []any{s.VersionCheck, s.VersionConstraint}, []any{false, ">=0.30"})
			eq(t, "ci", []any{s.K8sGracePeriod, s.CITimeout}, []any{10 * time.Second, 5 * time.Minute})
		}},
		{"defaults", ``, func(t *testing.T, r loadResult) {
			s := r.cfg.Settings
			eq(t, "defaults", []any{s.MaxParallelUpdates, s.K8sUpsertTimeout, s.TriggerMode, s.VersionCheck},
				[]any{3, 30 * time.Second, model.TriggerAuto, true})
			eq(t, "files", r.cfg.Files, []string{filepath.Join(r.dir, "Tiltfile")})
		}},
		{"enable_feature and warn", "enable_feature('snapshots')\nwarn('careful')", func(t *testing.T, r loadResult) {
			eq(t, "warnings", len(r.cfg.Warnings), 2)
			if !strings.HasSuffix(r.cfg.Warnings[1], "Tiltfile:2:5: careful") || !strings.Contains(r.out, "careful") {
				t.Errorf("warnings = %q, output %q", r.cfg.Warnings, r.out)
			}
		}},
		{"print", "print('hello', 1)", func(t *testing.T, r loadResult) {
			eq(t, "output", r.out, "hello 1\n")
		}},
		{"read helpers", `
if str(read_file('secret.txt')) != 's3cret\n': fail('read_file')
if str(read_file('missing.txt', 'dflt')) != 'dflt': fail('read_file default')
y = read_yaml('data.yaml')
if y != {'name': 'demo', 'ports': [80, 443]}: fail('read_yaml %r' % y)
if read_yaml('missing.yaml', default={}) != {}: fail('read_yaml default')
if read_yaml_stream('stream.yaml') != [{'a': 1}, {'b': 2}]: fail('read_yaml_stream')
if read_json('data.json') != {'name': 'demo', 'n': 3}: fail('read_json')
if read_json('missing.json', default=None) != None: fail('read_json default')
watch_file('watched.txt')
files = listdir('app')
if files != [os.path.abspath('app/main.go')]: fail('listdir %r' % files)
if len(listdir('app', recursive=True)) != 2: fail('listdir recursive')
`, func(t *testing.T, r loadResult) {
			want := []string{}
			for _, f := range []string{"Tiltfile", "app", "data.json", "data.yaml", "missing.json", "missing.txt", "missing.yaml", "secret.txt", "stream.yaml", "watched.txt"} {
				want = append(want, filepath.Join(r.dir, f))
			}
			eq(t, "files", r.cfg.Files, want)
		}},
		{"codecs", `
if decode_yaml('a: [1, x, true, null, 1.5]') != {'a': [1, 'x', True, None, 1.5]}: fail('decode_yaml')
if decode_yaml_stream(blob('a: 1\n---\n---\nb: 2')) != [{'a': 1}, {'b': 2}]: fail('decode_yaml_stream')
if decode_json('{"b": [1, 2.5, "s", null]}') != {'b': [1, 2.5, 's', None]}: fail('decode_json')
y = str(encode_yaml({'z': 1, 'a': '007', 'l': [True]}))
if y != 'z: 1\na: "007"\nl:\n  - true\n': fail('encode_yaml %r' % y)
s = str(encode_yaml_stream([{'a': 1}, {'b': 2}]))
if s != 'a: 1\n---\nb: 2\n': fail('encode_yaml_stream %r' % s)
j = str(encode_json({'b': 1, 'a': [blob('x')]}))
if j != '{\n  "a": [\n    "x"\n  ],\n  "b": 1\n}\n': fail('encode_json %r' % j)
if decode_yaml(encode_yaml({'k': ['v']})) != {'k': ['v']}: fail('round trip')
`, nil},
		{"blob and struct and shlex", `
b = blob('a b')
if str(b) != 'a b' or b.split(' ') != ['a', 'b'] or str(b + '!') != 'a b!': fail('blob')
s = struct(a=1, b='x')
if s.a != 1 or s.b != 'x': fail('struct')
if shlex.quote("it's") != "'it'\"'\"'s'" or shlex.quote('safe-1.2') != 'safe-1.2' or shlex.quote('') != "''": fail('shlex')
`, nil},
		{"os", `
if os.getenv('HOME') != '/home/test' or os.getenv('NOPE', 'd') != 'd' or os.getenv('NOPE') != None: fail('getenv')
os.putenv('NEW', 'v')
if os.environ['NEW'] != 'v' or os.environ.get('NOPE', 'd') != 'd' or 'HOME' not in os.environ: fail('environ')
if os.environ()['NEW'] != 'v': fail('environ call')
os.environ['SET'] = 'w'
if os.getenv('SET') != 'w': fail('environ set')
os.unsetenv('NEW')
if os.getenv('NEW') != None: fail('unsetenv')
if os.getcwd() != config.main_dir: fail('getcwd')
if os.name != 'posix': fail('name')
local('env')
`, func(t *testing.T, r loadResult) {
		}},
		{"os.path", `
if os.path.abspath('a/../b') != os.path.join(config.main_dir, 'b'): fail('abspath')
if os.path.basename('/x/y.txt') != 'y.txt' or os.path.dirname('/x/y.txt') != '/x': fail('base/dir')
if not os.path.exists('Dockerfile') or os.path.exists('nope'): fail('exists')
if os.path.join('a', 'b', 'c') != 'a/b/c' or os.path.join('a', '/b') != '/b': fail('join')
if os.path.realpath('app') != os.path.abspath('app'): fail('realpath')
if os.path.relpath('app/main.go') != 'app/main.go' or os.path.relpath('/a/b', '/a') != 'b': fail('relpath')
`, func(t *testing.T, r loadResult) {
			eq(t, "exists recorded", r.cfg.Files, []string{filepath.Join(r.dir, "Dockerfile"), filepath.Join(r.dir, "Tiltfile"), filepath.Join(r.dir, "nope")})
		}},
		{"config.clear_enabled_resources", "config.clear_enabled_resources()", func(t *testing.T, r loadResult) {
			if r.cfg.Settings.EnabledResources == nil || len(r.cfg.Settings.EnabledResources) != 0 {
				t.Errorf("enabled = %#v, want empty non-nil", r.cfg.Settings.EnabledResources)
			}
		}},
		{"load and include", `
load('./lib/helpers.star', 'image', 'COUNT')
load('lib/helpers.star', img2='image')
docker_build(image('one'), '.')
include('lib/declares.star')
include('./lib/declares.star')  # cached: runs once
load('./lib/reldir.star', 'P', 'CWD')
if P != os.path.join(config.main_dir, 'lib', 'x') or CWD != os.path.join(config.main_dir, 'lib'): fail('paths in loaded file: %s %s' % (P, CWD))
`, func(t *testing.T, r loadResult) {
			eq(t, "image", r.cfg.Images[0].Ref, "example/one")
			eq(t, "include ran once", len(r.cfg.LocalResources), 1)
			eq(t, "include pos", r.cfg.LocalResources[0].Pos.File, filepath.Join(r.dir, "lib/declares.star"))
		}},
		{"extensions", `
load('ext://hello', 'hello')
load('ext://hello/sub', 'sub')
load('ext://uses_v1', 'BUTTON')
if hello('x') != 'hello x' or sub() != 'sub' or BUTTON != 'Go': fail('ext')
v1alpha1.cmd(name='c', args=['true'])
`, func(t *testing.T, r loadResult) {
			eq(t, "ext file recorded", r.cfg.Files[1], filepath.Join(r.dir, "ext/hello/Tiltfile"))
		}},
		{"dialect", `
s = set([1, 2])
i = 0
while i < 3:
    i += 1
def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)
if fact(5) != 120: fail('recursion')
for x in [1]:
    pass
i = 10
`, nil},
	}
	opts := Options{Args: []string{"a", "--to-run", "b", "--debug", "--extra={\"k\": 1}", "c"}, Subcommand: "ci"}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := loadSrc(t, c.src, opts)
			if r.err != nil {
				t.Fatalf("load: %v", r.err)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

func TestConfigParse(t *testing.T) {
	src := `
config.define_string('env')
config.define_string_list('to-run', args=True)
config.define_bool('debug')
config.define_object('extra')
cfg = config.parse()
if cfg != {'env': 'from-json', 'to-run': ['a', 'b', 'c'], 'debug': True, 'extra': {'k': 1}}: fail('parse %r' % cfg)
if config.parse() != cfg: fail('second parse')
config.set_enabled_resources(cfg['to-run'])
if config.tilt_subcommand != 'ci' or config.main_path != os.path.join(config.main_dir, 'Tiltfile'): fail('config attrs')
`
	opts := Options{Args: []string{"a", "--to-run", "b", "--debug", "--extra={\"k\": 1}", "c"}, Subcommand: "ci"}
	r := loadSrc(t, src, opts, map[string]string{"tilt_config.json": `{"env": "from-json", "debug": false}`})
	if r.err != nil {
		t.Fatal(r.err)
	}
	eq(t, "enabled", r.cfg.Settings.EnabledResources, []string{"a", "b", "c"})
	eq(t, "args", r.cfg.Args, opts.Args)
	if !contains(r.cfg.Files, filepath.Join(r.dir, "tilt_config.json")) {
		t.Errorf("Files = %q, want tilt_config.json", r.cfg.Files)
	}

	for _, c := range []struct {
		args []string
		json string
		want string
	}{
		{[]string{"--nope"}, "", "unknown flag: --nope"},
		{[]string{"--debug=maybe"}, "", "invalid bool"},
		{[]string{"--env"}, "", "flag --env needs a value"},
		{nil, `{"other": 1}`, "\"other\" is not a defined setting"},
		{nil, `{"env": 1}`, "setting \"env\": got int, want string"},
	} {
		extra := map[string]string{}
		if c.json != "" {
			extra["tilt_config.json"] = c.json
		}
		r := loadSrc(t, "config.define_string('env')\nconfig.define_bool('debug')\nconfig.parse()", Options{Args: c.args}, extra)
		assertErrAt(t, r, "Tiltfile", 3, c.want)
	}
}

// docker_build(ssh=, secret=) reach the image in `docker build` form, a
// secret's src made absolute from the Tiltfile's folder; a malformed one is
// an error at its call.
func TestDockerBuildSSHAndSecrets(t *testing.T) {
	r := loadSrc(t, "docker_build('img', '.', ssh=['default', 'gh=keys/id_ed25519'], secret=['id=npm,src=.npmrc', 'id=token,env=TOKEN', 'id=PLAIN'])\n", Options{})
	if r.err != nil {
		t.Fatalf("load: %v", r.err)
	}
	img := r.cfg.Images[0]
	eq(t, "ssh", img.SSH, []string{"default", "gh=keys/id_ed25519"})
	eq(t, "secrets", img.BuildSecrets, []string{"id=npm,src=" + filepath.Join(r.dir, ".npmrc"), "id=token,env=TOKEN", "id=PLAIN,env=PLAIN"})
	if len(r.cfg.Warnings) != 0 {
		t.Errorf("warnings %q, want none", r.cfg.Warnings)
	}
	for src, want := range map[string]string{
		"docker_build('img', '.', secret=['src=x'])":              `secret: "src=x": no id`,
		"docker_build('img', '.', secret=['id=a,color=red'])":     `unknown key "color"`,
		"docker_build('img', '.', ssh=['a=b', 'a'])":              `ssh id "a" given twice`,
		"docker_build('img', '.', secret=['id=a', 'id=a,env=B'])": `secret id "a" given twice`,
	} {
		r := loadSrc(t, src+"\n", Options{})
		if r.err == nil || !strings.Contains(r.err.Error(), want) || !strings.Contains(r.err.Error(), "Tiltfile:1:") {
			t.Errorf("%s: err = %v, want %q at line 1", src, r.err, want)
		}
	}
}
