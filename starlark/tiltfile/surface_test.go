package tiltfile

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

// Tilt's builtins beyond the essential ones, each asserted inside the
// Tiltfile (fail() fails the load) and on the resulting Config.
func TestTiltSurface(t *testing.T) {
	extra := map[string]string{
		"lib/file.star":     "HERE = __file__\nNAME = __name__\n",
		"lib/exits.star":    "X = 1\nlocal_resource('before-exit', 'true')\nexit('bye from lib')\nlocal_resource('after-exit', 'true')\n",
		"lib/dyn.star":      "A = 1\ndef f():\n    return 'f'\n",
		"lib/dyn_fail.star": "\nfail('inside dyn')\n",
		".git/HEAD":         "ref: refs/heads/main\n",
	}
	cases := []struct {
		name  string
		src   string
		opts  Options
		check func(t *testing.T, r loadResult)
	}{
		{"__file__ and __name__", `
load('lib/file.star', 'HERE', 'NAME')
if __file__ != os.path.join(config.main_dir, 'Tiltfile'): fail('main __file__ %s' % __file__)
if __name__ != '__main__': fail('main __name__ %s' % __name__)
if HERE != os.path.join(config.main_dir, 'lib', 'file.star') or NAME != 'file.star': fail('loaded %s %s' % (HERE, NAME))
`, Options{}, nil},
		{"exit ends the load, declarations stay", `
local_resource('kept', 'true')
exit()
local_resource('never', 'true')
fail('not reached')
`, Options{}, func(t *testing.T, r loadResult) {
			eq(t, "resources", len(r.cfg.LocalResources), 1)
			eq(t, "kept", r.cfg.LocalResources[0].Name, "kept")
		}},
		{"exit in a loaded file stops every file", `
local_resource('main-first', 'true')
load('lib/exits.star', 'X')
fail('not reached')
`, Options{}, func(t *testing.T, r loadResult) {
			var names []string
			for _, lr := range r.cfg.LocalResources {
				names = append(names, lr.Name)
			}
			eq(t, "resources", names, []string{"main-first", "before-exit"})
			if !strings.Contains(r.out, "bye from lib\n") {
				t.Errorf("output %q does not print exit's code", r.out)
			}
		}},
		{"exit in include and with an int code", "include('lib/exits.star')\nfail('not reached')", Options{}, nil},
		{"exit(1)", "exit(1)\nfail('not reached')", Options{}, func(t *testing.T, r loadResult) {
			eq(t, "output", r.out, "1\n")
		}},
		{"load_dynamic", `
d = load_dynamic('lib/dyn.star')
if type(d) != 'dict' or d['A'] != 1 or d['f']() != 'f': fail('load_dynamic %r' % d)
if sorted(d.keys()) != ['A', 'f']: fail('keys %r' % d.keys())
if load_dynamic(blob('./lib/dyn.star'))['A'] != 1: fail('cached, blob path')
`, Options{}, nil},
		{"sys", `
if sys.argv != ['loop', 'up', '--', 'x']: fail('argv %r' % sys.argv)
if type(sys.executable) != 'string' or not sys.executable: fail('executable %r' % sys.executable)
`, Options{Argv: []string{"loop", "up", "--", "x"}}, nil},
		{"os.environ writes change the environment", `
os.environ.update({'A': '1'}, B='2')
os.environ.update([('C', '3')])
if os.getenv('A') != '1' or os.getenv('B') != '2' or os.environ['C'] != '3': fail('update')
if os.environ.setdefault('A', 'x') != '1' or os.environ.setdefault('D', '4') != '4' or os.getenv('D') != '4': fail('setdefault')
if os.environ.pop('A') != '1' or os.getenv('A') != None or 'A' in os.environ: fail('pop')
if os.environ.pop('A', 'dflt') != 'dflt': fail('pop default')
os.putenv('BLOB', local('echo blob').strip())
os.putenv(blob('BLOB2'), blob('v'))
if os.getenv('BLOB') != 'ran echo blob' or os.getenv(blob('BLOB2')) != 'v': fail('putenv blob')
os.environ['E'] = blob('5')
if os.environ.get('E') != '5' or os.environ.get('NOPE') != None: fail('get')
if len(os.environ) != len(os.environ.keys()) or ('E', '5') not in os.environ.items() or '5' not in os.environ.values(): fail('reads')
out = local('env', env={'B': 'own'})
`, Options{Local: func(_ context.Context, cmd model.Cmd, dir string, env []string, stdin string) ([]byte, error) {
			if strings.Join(cmd.Argv, " ") == "sh -c env" {
				want := []string{"B=own", "BLOB2=v", "BLOB=ran echo blob", "C=3", "D=4", "E=5", "HOME=/home/test", "LOOP_TEST=1"}
				if !slices.Equal(env, want) {
					return nil, fmt.Errorf("local env %q, want %q", env, want)
				}
			}
			return []byte("ran " + displayCmd(cmd) + "\n"), nil
		}}, nil},
		{"os.environ.clear and popitem", `
k, v = os.environ.popitem()
if k != 'HOME' or v != '/home/test' or 'HOME' in os.environ: fail('popitem %s=%s' % (k, v))
os.environ.clear()
if len(os.environ) != 0 or os.getenv('LOOP_TEST') != None: fail('clear')
`, Options{}, nil},
		{"environment changes reach local_resource and custom_build", `
os.putenv('KUBECONFIG', '/tmp/kc')
os.environ['HOME'] = '/elsewhere'
local_resource('cmd', 'kubectl get pods', env={'HOME': 'own'})
local_resource('serve', serve_cmd='server')
custom_build('example/c', 'build.sh', deps=['app'])
`, Options{}, func(t *testing.T, r loadResult) {
			eq(t, "cmd env", r.cfg.LocalResources[0].Env, map[string]string{"KUBECONFIG": "/tmp/kc", "HOME": "own"})
			eq(t, "serve env", [2]any{r.cfg.LocalResources[1].Env, r.cfg.LocalResources[1].ServeEnv},
				[2]any{map[string]string(nil), map[string]string{"KUBECONFIG": "/tmp/kc", "HOME": "/elsewhere"}})
			eq(t, "custom_build env", r.cfg.Images[0].Custom.Env, map[string]string{"KUBECONFIG": "/tmp/kc", "HOME": "/elsewhere"})
		}},
		{"listdir of a missing directory", `
for f in listdir('tilt.d'):
    load_dynamic(f)
if listdir('tilt.d', recursive=True) != [] or listdir('Dockerfile') != []: fail('listdir')
if listdir(dir='app') != [os.path.abspath('app/main.go')]: fail('listdir(dir=)')
`, Options{}, func(t *testing.T, r loadResult) {
			if !contains(r.cfg.Files, filepath.Join(r.dir, "tilt.d")) {
				t.Errorf("files %q: the missing directory is not recorded (creating it must reload)", r.cfg.Files)
			}
		}},
		{"keyword spellings of Tilt's source and docs", `
if str(read_file(paths='secret.txt')) != 's3cret\n' or str(read_file(file_path='secret.txt')) != 's3cret\n': fail('read_file')
if read_json(path='data.json')['n'] != 3 or read_yaml(paths='data.yaml')['name'] != 'demo': fail('read_json/read_yaml')
watch_file(paths='watched.txt')
watch_file('app')
if str(blob(input='x')) != 'x' or shlex.quote(name='a b') != "'a b'": fail('blob/shlex')
docker_build('example/a', '.', live_update=[fall_back_on(paths=['go.mod'])])
`, Options{}, func(t *testing.T, r loadResult) {
			for _, f := range []string{"app", "app/main.go", "app/sub/x.txt"} {
				if !contains(r.cfg.Files, filepath.Join(r.dir, f)) {
					t.Errorf("watch_file of a directory: %s not recorded", f)
				}
			}
		}},
		{"filter_yaml selectors", `
y = blob('\n---\n'.join([
    'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-api, labels: {app: web, tier: back}}',
    'apiVersion: v1\nkind: Service\nmetadata: {name: web-api, namespace: prod, labels: {app: web}}',
    'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}',
]))
def names(b):
    return ['%s/%s' % (o['kind'], o['metadata']['name']) for o in decode_yaml_stream(b)]
m, r = filter_yaml(y, kind='deploy')
if names(m) != ['Deployment/web-api'] or names(r) != ['Service/web-api', 'ConfigMap/other']: fail('kind regex %r %r' % (names(m), names(r)))
m, r = filter_yaml(y, name='^WEB', namespace='default')
if names(m) != ['Deployment/web-api']: fail('name and default namespace %r' % names(m))
m, r = filter_yaml([y, 'k8s.yaml'], api_version='^v1$', labels={'app': 'web'})
if names(m) != ['Service/web-api'] or names(r) != ['Deployment/web-api', 'ConfigMap/other', 'Namespace/demo']: fail('labels, list %r %r' % (names(m), names(r)))
m, r = filter_yaml('k8s.yaml', kind='nothing')
if str(m) != '' or names(r) != ['Namespace/demo']: fail('no match %r' % str(m))
`, Options{}, func(t *testing.T, r loadResult) {
			if !contains(r.cfg.Files, filepath.Join(r.dir, "k8s.yaml")) {
				t.Errorf("files %q: filter_yaml's file is not recorded", r.cfg.Files)
			}
		}},
		{"k8s_image_json_path and k8s_kind", `
k8s_image_json_path('{.spec.runtime.image}', kind='UselessMachine', name='^um-', namespace='default')
k8s_image_json_path(['{.spec.a}', '{.spec.b}'], name='only-name')
k8s_kind('Environment', image_object={'json_path': '{.spec.runtime}', 'repo_field': 'repo', 'tag_field': 'tag'})
`, Options{}, func(t *testing.T, r loadResult) {
			eq(t, "kinds", []model.K8sKind{*r.cfg.K8sKinds[0], *r.cfg.K8sKinds[1], *r.cfg.K8sKinds[2]}, []model.K8sKind{
				{Kind: "UselessMachine", ImageJSONPath: []string{"{.spec.runtime.image}"}, Name: "^um-", Namespace: "default", ByPath: true},
				{ImageJSONPath: []string{"{.spec.a}", "{.spec.b}"}, Name: "only-name", ByPath: true},
				{Kind: "Environment", ImageObject: &model.ImageObject{JSONPath: "{.spec.runtime}", RepoField: "repo", TagField: "tag"}},
			})
			eq(t, "warnings", len(r.cfg.Warnings), 0)
		}},
		{"workload_to_resource_function", `
def name_of(id):
    if id.kind == 'Job':
        return 1
    if id.name == 'boom':
        fail('boom')
    return '%s-%s-%s-%s' % (id.name, id.kind.lower(), id.namespace, id.group or 'core')
workload_to_resource_function(name_of)
`, Options{}, func(t *testing.T, r loadResult) {
			w := r.cfg.WorkloadToResource
			if w == nil {
				t.Fatal("not recorded")
			}
			eq(t, "pos", w.Pos.Line, 2)
			eq(t, "warnings", len(r.cfg.Warnings), 0)
			got, err := w.Name(model.ObjectID{Name: "web", Kind: "Deployment", Namespace: "shop", Group: "apps"})
			eq(t, "name", [2]any{got, err}, [2]any{"web-deployment-shop-apps", error(nil)})
			if _, err := w.Name(model.ObjectID{Name: "x", Kind: "Job"}); err == nil || !strings.Contains(err.Error(), "returned int for x:job::, want string") {
				t.Errorf("non-string return: %v", err)
			}
			if _, err := w.Name(model.ObjectID{Name: "boom", Kind: "Pod"}); err == nil || !strings.Contains(err.Error(), "Tiltfile:2:") || !strings.Contains(err.Error(), "boom") {
				t.Errorf("failing function: %v", err)
			}
		}},
		{"local_git_repo", `
repo = local_git_repo('.')
if repo.paths('app/main.go') != os.path.abspath('app/main.go'): fail('paths %s' % repo.paths('app/main.go'))
if type(repo) != 'git.Repo': fail(type(repo))
`, Options{}, nil},
		{"link values", `
l = link('localhost:8080/x', 'X')
if l.url != 'localhost:8080/x' or l.name != 'X': fail('%s %s' % (l.url, l.name))
l2 = link('example.com/app')
if l2.url != 'http://example.com/app' or l2.name != '': fail(l2.url)
local_resource('r', 'true', links=['127.0.0.1/x', l2])
`, Options{}, func(t *testing.T, r loadResult) {
			eq(t, "links", r.cfg.LocalResources[0].Links, []model.Link{{URL: "http://127.0.0.1/x"}, {URL: "http://example.com/app"}})
		}},
		{"settings Tilt has", `
ci_settings(k8s_grace_period='10s', timeout='5m', readiness_timeout='2m')
update_settings(k8s_server_side_apply='auto')
update_settings(k8s_server_side_apply=True)
update_settings(k8s_server_side_apply='false')
docker_prune_settings(disable=True)
docker_prune_settings(max_age_mins=60, num_builds=5, keep_recent=2)
disable_feature('snapshots')
enable_feature(msg='labels')
experimental_telemetry_cmd('./trace.sh', period='1m')
experimental_metrics_settings(enabled=True)
experimental_analytics_report({'team': 'x'})
analytics_settings(enable=False)
analytics_settings(True)
set_team('t')
disable_snapshots()
`, Options{}, func(t *testing.T, r loadResult) {
			s := r.cfg.Settings
			eq(t, "ci", []any{s.K8sGracePeriod, s.CITimeout, s.CIReadinessTimeout}, []any{10 * time.Second, 5 * time.Minute, 2 * time.Minute})
			var got []string
			for _, w := range r.cfg.Warnings {
				_, msg, _ := strings.Cut(strings.TrimPrefix(w, filepath.Join(r.dir, "Tiltfile")+":"), ": ")
				got = append(got, strings.SplitN(w, ":", 3)[1]+" "+strings.Fields(msg)[0])
			}
			eq(t, "one warning per call loop cannot honour", got, []string{"5 update_settings(k8s_server_side_apply='false')",
				"7 docker_prune_settings()", "8 disable_feature(\"snapshots\"):", "9 enable_feature(\"labels\"):", "10 experimental_telemetry_cmd()",
				"11 experimental_metrics_settings()", "12 experimental_analytics_report()", "14 analytics_settings(True)", "15 set_team()"})
		}},
		{"image builds: Tilt's arguments", `
docker_build('example/a', '.', {'A': '1'}, 'Dockerfile', None, True)
c = custom_build('example/c', 'build.sh', ['app'], container_args=['--flag'], command_bat_val='build.bat', image_deps=['example/a'])
if type(c) != 'custom_build' or str(c) != 'custom_build("example/c")': fail('custom_build value %s' % c)
custom_build('example/d', '', ['app'], command_bat='build.bat')
`, Options{}, func(t *testing.T, r loadResult) {
			a := r.cfg.Images[0]
			eq(t, "positional build_args, dockerfile", [2]any{a.BuildArgs, a.Dockerfile}, [2]any{map[string]string{"A": "1"}, filepath.Join(r.dir, "Dockerfile")})
			c := r.cfg.Images[1]
			eq(t, "custom_build", []any{c.ContainerArgs, c.Custom.ImageDeps}, []any{[]string{"--flag"}, []string{"example/a"}})
			eq(t, "command_bat only", r.cfg.Images[2].Custom.Command.Argv, []string{"sh", "-c", "build.bat"})
			var cache, custom, args int
			for _, w := range r.cfg.Warnings {
				switch {
				case strings.Contains(w, "Tiltfile:2:13: docker_build(cache=...) is obsolete"):
					cache++
				case strings.Contains(w, "custom builds yet"):
					custom++
				case strings.Contains(w, "Tiltfile:3:17: custom_build(container_args=...) is recorded, but loop does not apply it"):
					args++
				}
			}
			eq(t, "warnings: cache, none for custom builds and container_args (applied)", [3]int{cache, custom, args}, [3]int{1, 0, 0})
		}},
		{"dc_resource image and Tilt's order", `
docker_compose('compose.yaml')
dc_resource('web', 'example/web', TRIGGER_MODE_MANUAL, ['db'], False)
`, Options{}, func(t *testing.T, r loadResult) {
			d := r.cfg.DCResources[0]
			eq(t, "dc", []any{d.Image, d.TriggerMode, d.ResourceDeps, *d.InferLinks}, []any{"example/web", model.TriggerManual, []string{"db"}, false})
		}},
		{"test, module, labels in Tilt's position", `
test('unit', 'go test ./...')
local_resource('lint', 'golangci-lint run', None, None, None, None, True, None, None, None, False, None, ['checks'])
m = module('helpers', x=1)
if m.x != 1 or type(m) != 'module': fail('module')
`, Options{}, func(t *testing.T, r loadResult) {
			eq(t, "test is local_resource", r.cfg.LocalResources[0].Name, "unit")
			eq(t, "labels", r.cfg.LocalResources[1].Labels, []string{"checks"})
		}},
		{"v1alpha1", `
v1alpha1.ui_button(name='b', text='Go', location=v1alpha1.ui_component_location(component_id='x', component_type='Resource'))
v1alpha1.extension_repo(name='default', url='file:///x')
v1alpha1.cmd(name='c', args=['true'], readiness_probe=v1alpha1.probe(handler=v1alpha1.handler(exec=v1alpha1.exec_action(command=['true']))))
if 'ui_text_input_spec' not in dir(v1alpha1) or 'kubernetes_apply' not in dir(v1alpha1): fail('dir')
`, Options{}, func(t *testing.T, r loadResult) {
			eq(t, "warnings (objects only)", len(r.cfg.Warnings), 2)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := loadSrc(t, c.src, c.opts, extra)
			if r.err != nil {
				t.Fatalf("load: %v\n%s", r.err, r.out)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

func TestTiltSurfaceErrors(t *testing.T) {
	extra := map[string]string{"lib/dyn_fail.star": "\nfail('inside dyn')\n"}
	for _, c := range []struct {
		src, file string
		line      int
		want      string
	}{
		{"\nload_dynamic('lib/nope.star')", "Tiltfile", 2, "load_dynamic: file not found: "},
		{"load_dynamic('lib/dyn_fail.star')", "lib/dyn_fail.star", 2, "inside dyn"},
		{"exit(code=1, x=2)", "Tiltfile", 1, "exit: unexpected keyword argument \"x\""},
		{"\nlocal_git_repo('app')", "Tiltfile", 2, "local_git_repo: " + "%DIR%/app is not a git repository"},
		{"k8s_image_json_path('{.a}', api_version='v1')", "Tiltfile", 1, "at least one of kind, name, or namespace must be specified"},
		{"k8s_image_json_path('{.a}', kind='(')", "Tiltfile", 1, "k8s_image_json_path: kind: error parsing regexp"},
		{"k8s_kind('A', '{.a}')", "Tiltfile", 1, "k8s_kind: got 2 positional arguments, want at most 1"},
		{"k8s_kind('A', image_object={'json_path': '{.a}'})", "Tiltfile", 1, "image_object needs repo_field"},
		{"workload_to_resource_function(lambda a, b: a)", "Tiltfile", 1, "func must take 1 argument; lambda takes 2"},
		{"workload_to_resource_function('f')", "Tiltfile", 1, "for parameter func: got string, want function"},
		{"filter_yaml(blob('a: ['))", "Tiltfile", 1, "filter_yaml: parse yaml"},
		{"filter_yaml('k8s.yaml', name='(')", "Tiltfile", 1, "filter_yaml: name: error parsing regexp"},
		{"filter_yaml(1)", "Tiltfile", 1, "filter_yaml: for parameter \"yaml\": got int, want blob, string or list of them"},
		{"link('')", "Tiltfile", 1, "link: url must not be empty"},
		{"docker_prune_settings(num_builds=1, interval_hrs=2)", "Tiltfile", 1, "please pass only one of `num_builds` and `interval_hrs`"},
		{"update_settings(k8s_server_side_apply='maybe')", "Tiltfile", 1, "k8s_server_side_apply must be \"true\", \"false\", or \"auto\"; got \"maybe\""},
		{"ci_settings(readiness_timeout=5)", "Tiltfile", 1, "ci_settings: for parameter readiness_timeout: got int, want a duration string"},
		{"docker_compose('compose.yaml')\ndc_resource('web', image=1)", "Tiltfile", 2, "dc_resource: for parameter \"image\": got int, want string"},
		{"docker_compose('compose.yaml')\ndc_resource('web', image='UPPER')", "Tiltfile", 2, "dc_resource: image \"UPPER\" is not an image reference"},
		{"v1alpha1.no_such_thing()", "Tiltfile", 1, "module has no .no_such_thing field or method"},
		{"experimental_telemetry_cmd('')", "Tiltfile", 1, "experimental_telemetry_cmd: cmd cannot be empty"},
	} {
		t.Run(c.src, func(t *testing.T) {
			r := loadSrc(t, c.src, Options{}, extra)
			assertErrAt(t, r, c.file, c.line, strings.ReplaceAll(c.want, "%DIR%", r.dir))
		})
	}
}
