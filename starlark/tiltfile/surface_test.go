package tiltfile

import (
	"strings"
	"testing"
)

// Tilt's builtins beyond the essential ones, each asserted inside the
// Tiltfile (fail() fails the load) and on the resulting Config.
func TestTiltSurface(t *testing.T) {
	extra := map[string]string{
		"lib/file.star":     "HERE = __file__\nNAME = __name__\n",
		"lib/exits.star":    "X = 1\nlocal_resource('before-exit', 'true')\nexit('bye from lib')\nlocal_resource('after-exit', 'true')\n",
		"lib/dyn.star":      "A = 1\ndef f():\n    return 'f'\n",
		"lib/dyn_fail.star": "\nfail('inside dyn')\n",
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
	} {
		t.Run(c.src, func(t *testing.T) {
			r := loadSrc(t, c.src, Options{}, extra)
			assertErrAt(t, r, c.file, c.line, c.want)
		})
	}
}
