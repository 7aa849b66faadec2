package tiltfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

// fixtures are files every test project has, beside its Tiltfile.
var fixtures = map[string]string{
	"Dockerfile":                   "FROM scratch\n",
	"app/main.go":                  "package main\n",
	"app/sub/x.txt":                "x\n",
	"k8s.yaml":                     "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
	"chart/Chart.yaml":             "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
	"chart/values.yaml":            "replicas: 1\ngreeting: hello\n",
	"chart/values-dev.yaml":        "replicas: 2\n",
	"chart/templates/cm.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\ndata:\n  replicas: {{ .Values.replicas | quote }}\n  greeting: {{ .Values.greeting | quote }}\n  namespace: {{ .Release.Namespace }}\n",
	"chart/templates/role.yaml":    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {{ .Release.Name }}-reader\nrules: []\n",
	"chart/templates/tests/t.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers: [{name: t, image: busybox}]\n",
	"kust/kustomization.yaml":      "namePrefix: dev-\nresources: [web.yaml]\n",
	"kust/web.yaml":                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: example/web}]\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {app: web, tier: front}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: other\ndata: {a: b}\n",
	"compose.yaml":                 "services:\n  web:\n    image: busybox\n",
	"dev.env":                      "A=1\n",
	"data.yaml":                    "name: demo\nports: [80, 443]\n",
	"stream.yaml":                  "a: 1\n---\nb: 2\n",
	"data.json":                    `{"name": "demo", "n": 3}`,
	"ext/hello/Tiltfile":           "def hello(name):\n    return 'hello ' + name\n",
	"ext/hello/sub/Tiltfile":       "def sub():\n    return 'sub'\n",
	"ext/uses_v1/Tiltfile":         "v1alpha1.extension_repo(name='default', url='file:///x')\nb = v1alpha1.ui_button(name='b', text='Go', location=v1alpha1.ui_component_location(component_id='x', component_type='Resource'))\nBUTTON = b.text\n",
	"ext/broken/Tiltfile":          "x = 1\nundefined_thing()\n",
	"lib/helpers.star":             "def image(n):\n    return 'example/' + n\nCOUNT = 1\n",
	"lib/broken.star":              "def f(:\n",
	"lib/calls_missing.star":       "load('./nope.star', 'x')\n",
	"lib/cycle_a.star":             "load('./cycle_b.star', 'b')\na = 1\n",
	"lib/cycle_b.star":             "load('./cycle_a.star', 'a')\nb = 1\n",
	"lib/declares.star":            "local_resource('from-include', 'true')\n",
	"lib/reldir.star":              "P = os.path.abspath('x')\nCWD = os.getcwd()\n",
	"lib/wrong_type_inner.star":    "\n\ndocker_build(1, '.')\n",
	"lr_dir/placeholder":           "",
	"secret.txt":                   "s3cret\n",
}

var paramQuotes = regexp.MustCompile(`(for parameter )"(\w+)"`)

type loadResult struct {
	cfg *model.Config
	err error
	out string
	dir string
}

// loadSrc writes src as the Tiltfile of a fresh project with the fixtures
// and loads it; local() is stubbed to echo its command line.
func loadSrc(t *testing.T, src string, opts Options, extra ...map[string]string) loadResult {
	t.Helper()
	dir := t.TempDir()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, m := range append([]map[string]string{fixtures}, extra...) {
		for name, content := range m {
			files[name] = content
		}
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if opts.Output == nil {
		opts.Output = &out
	}
	if opts.ExtensionsDir == "" {
		opts.ExtensionsDir = filepath.Join(dir, "ext")
	}
	if opts.Env == nil {
		opts.Env = []string{"HOME=/home/test", "LOOP_TEST=1"}
	}
	if opts.Local == nil {
		opts.Local = func(_ context.Context, cmd model.Cmd, dir string, env []string, stdin string) ([]byte, error) {
			if strings.Contains(strings.Join(cmd.Argv, " "), "exit 1") {
				return nil, errors.New("exit status 1")
			}
			return []byte("ran " + displayCmd(cmd) + "\n"), nil
		}
	}
	cfg, err := Load(context.Background(), filepath.Join(dir, "Tiltfile"), opts)
	if cfg == nil {
		t.Fatalf("Load returned a nil config (err %v)", err)
	}
	return loadResult{cfg: cfg, err: err, out: out.String(), dir: dir}
}

func assertErrAt(t *testing.T, r loadResult, file string, line int, want string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("load succeeded, want an error containing %q", want)
	}
	var e *Error
	if !errors.As(r.err, &e) {
		t.Fatalf("error %v (%T) is not a *tiltfile.Error", r.err, r.err)
	}
	if got := filepath.Join(r.dir, file); e.Pos.File != got {
		t.Errorf("error file = %q, want %q", e.Pos.File, got)
	}
	if e.Pos.Line != line || e.Pos.Col < 1 {
		t.Errorf("error position = %d:%d, want line %d and a column", e.Pos.Line, e.Pos.Col, line)
	}
	// Starlark quotes a parameter name only when it was passed by keyword.
	if !strings.Contains(paramQuotes.ReplaceAllString(r.err.Error(), "$1$2"), paramQuotes.ReplaceAllString(want, "$1$2")) {
		t.Errorf("error = %q, want it to contain %q", r.err, want)
	}
	prefix := filepath.Join(r.dir, file) + ":"
	if !strings.HasPrefix(r.err.Error(), prefix) {
		t.Errorf("error = %q, want prefix %q", r.err, prefix)
	}
	if len(r.cfg.Files) == 0 {
		t.Errorf("failed load returned no Files")
	}
}

// TestDisplayShortensOnlyInside: a path is shown relative to the main
// Tiltfile's directory only when it lies inside it; a directory whose name
// merely starts with ".." is inside.
func TestDisplayShortensOnlyInside(t *testing.T) {
	l := &loader{mainDir: "/p/app"}
	for p, want := range map[string]string{
		"/p/app/lib/Tiltfile":    "lib/Tiltfile",
		"/p/app/..x/Tiltfile":    "..x/Tiltfile",
		"/p/other/Tiltfile":      "/p/other/Tiltfile",
		"/p/app2/Tiltfile":       "/p/app2/Tiltfile",
		"/p/app/../lib/Tiltfile": "/p/app/../lib/Tiltfile",
	} {
		if got := l.display(p); got != want {
			t.Errorf("display(%q) = %q, want %q", p, got, want)
		}
	}
}

// Extensions read live_update steps back from their text, as Tilt prints
// them (file_sync_only splits str(sync(...)) on quotes), and the compose
// files are interpolated with what os.putenv set (pypiserver names its
// container and port that way).
func TestTiltTextsAndPutenvForCompose(t *testing.T) {
	r := loadSrc(t, `
s = sync('src', '/app')
parts = str(s).split("'")
if type(s) != 'live_update_sync_step' or parts[3] != '/app' or not parts[1].endswith('/src'):
    fail('sync step reads %s' % str(s))
if not str(run('make', trigger=['a.go'])).startswith('run step: "make" (triggers: '):
    fail('run step reads %s' % str(run('make', trigger=['a.go'])))
if str(restart_container()) != 'restart_container step':
    fail('restart step reads %s' % str(restart_container()))
os.putenv('PORT_FOR_COMPOSE', '8123')
docker_compose('compose.yaml')
`, Options{}, map[string]string{"compose.yaml": "services:\n  a:\n    image: x\n    ports: ['${PORT_FOR_COMPOSE}:80']\n"})
	if r.err != nil {
		t.Fatalf("load: %v\n%s", r.err, r.out)
	}
	eq(t, "compose env", r.cfg.Compose[0].Env["PORT_FOR_COMPOSE"], "8123")
}
