package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var loopBin string

// TestMain builds the loop binary once; the tests drive it as a user would.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "loop-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The binary under test reads the agent from $LOOP_AGENT_DIR, built from
	// the sources in the tree (the committed ones lag behind until `make agent`).
	if os.Getenv("LOOP_AGENT_DIR") == "" {
		agentDir := filepath.Join(dir, "agent")
		gen := exec.Command("go", "run", "./daemon/internal/agent/agentbuild/gen", "-o", agentDir)
		gen.Dir = filepath.Join("..", "..")
		if out, err := gen.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build sync agent: %v\n%s", err, out)
			os.Exit(1)
		}
		os.Setenv("LOOP_AGENT_DIR", agentDir)
	}
	if os.Getenv("LOOP_STATE_DIR") == "" {
		// Keep the state of the daemons under test out of the home dir.
		os.Setenv("LOOP_STATE_DIR", filepath.Join(dir, "state"))
	}
	loopBin = filepath.Join(dir, "loop")
	if out, err := exec.Command("go", "build", "-o", loopBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build loop: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runLoop(t testing.TB, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runBin(t, loopBin, dir, args...)
}

// runBin runs the loop binary bin in dir.
func runBin(t testing.TB, bin, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run loop %v: %v", args, err)
	}
	return o.String(), e.String(), 0
}

func TestHelpListsOnlyWorkingCommands(t *testing.T) {
	out, _, code := runLoop(t, ".", "--help")
	if code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, c := range []string{"up", "ci", "down", "dump", "version", "daemon", "ui", "status", "logs", "trigger", "metrics", "devcontainer", "wait", "changes", "mcp", "fetch"} {
		if !regexp.MustCompile(`(?m)^  ` + c + `\s`).MatchString(out) {
			t.Errorf("--help does not list %s:\n%s", c, out)
		}
	}
}

// The completion scripts README.md tells users to install exist.
func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{"bash": "bash completion V2 for loop", "zsh": "#compdef loop", "fish": "fish completion for loop"} {
		out, errOut, code := runLoop(t, ".", "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("loop completion %s: exit %d, output without %q: %.200s%s", shell, code, want, out, errOut)
		}
	}
}

func TestDumpConfigExamples(t *testing.T) {
	for _, ex := range []string{"hello", "compose", "local"} {
		t.Run(ex, func(t *testing.T) {
			dir := filepath.Join("..", "..", "examples", ex)
			out, errOut, code := runLoop(t, dir, "dump", "config", "--output", "json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var cfg map[string]any
			if err := json.Unmarshal([]byte(out), &cfg); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if !strings.HasSuffix(cfg["tiltfile"].(string), filepath.Join("examples", ex, "Tiltfile")) {
				t.Fatalf("tiltfile = %v", cfg["tiltfile"])
			}
			yout, _, code := runLoop(t, dir, "dump", "config", "-o", "yaml")
			if code != 0 || !strings.Contains(yout, "tiltfile: ") {
				t.Fatalf("yaml output (exit %d): %s", code, yout)
			}
		})
	}
}

// TestDumpResources: `loop dump resources` prints the assembled resources of a
// project with local, Compose and Kubernetes resources (daemon/testdata/assembly),
// as JSON or YAML, with no Docker engine or cluster needed.
func TestDumpResources(t *testing.T) {
	dir := filepath.Join("..", "..", "daemon", "testdata", "assembly")
	out, errOut, code := runLoop(t, dir, "dump", "resources", "--extensions-dir", "extensions", "-o", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Resources []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Objects []struct{ Kind, Name string }
		} `json:"resources"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var names []string
	for _, r := range got.Resources {
		n := r.Name + ":" + r.Type
		for _, o := range r.Objects {
			n += " " + o.Kind + "/" + o.Name
		}
		names = append(names, n)
	}
	want := "gen:local|cache:compose|api:compose|web:k8s Deployment/web Service/web ConfigMap/web-config|worker:k8s Deployment/worker|uncategorized:k8s Secret/token"
	if strings.Join(names, "|") != want {
		t.Errorf("resources = %s\nwant %s", strings.Join(names, "|"), want)
	}
	// The extensions directory's restart_process builds the worker FROM a
	// base image; loop's built-in one builds one image and restarts its process.
	yout, errOut, code := runLoop(t, dir, "dump", "resources", "--extensions-dir", "extensions", "--no-builtin-extensions", "-o", "yaml")
	if code != 0 || !strings.Contains(yout, "resources:\n- ") || !strings.Contains(yout, "built_from:\n    - example/worker-base") {
		t.Fatalf("yaml output (exit %d, %s):\n%s", code, errOut, yout)
	}
	yout, errOut, code = runLoop(t, dir, "dump", "resources", "--extensions-dir", "extensions", "-o", "yaml")
	if code != 0 || strings.Contains(yout, "built_from:") || !strings.Contains(yout, "restart: true") {
		t.Fatalf("yaml output with the built-in restart_process (exit %d, %s):\n%s", code, errOut, yout)
	}
	if _, _, code := runLoop(t, dir, "dump", "resources", "-o", "xml"); code != 2 {
		t.Errorf("bad --output exit %d, want 2", code)
	}

	// A deployed image's sync outside every path it watches: exit 1, the sync() line.
	bad := t.TempDir()
	for name, data := range map[string]string{
		"Tiltfile":     "docker_build('example/app', 'app',\n  live_update=[sync('src', '/src')])\ndocker_compose('compose.yaml')\n",
		"compose.yaml": "services:\n  app:\n    image: example/app\n",
	} {
		if err := os.WriteFile(filepath.Join(bad, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, errOut, code = runLoop(t, bad, "dump", "resources")
	if code != 1 || !regexp.MustCompile(`Tiltfile:2:20: check the live_update of example/app: sync source `).MatchString(errOut) {
		t.Fatalf("exit %d, stderr %s; want 1 and the sync() call's path:line:col", code, errOut)
	}
}

// TestBrokenTiltfiles: each kind of broken Tiltfile exits 1 with path:line:col.
func TestBrokenTiltfiles(t *testing.T) {
	cases := map[string]map[string]string{
		"syntax":         {"Tiltfile": "x = (\n"},
		"unknown":        {"Tiltfile": "\nno_such_builtin()\n"},
		"wrong type":     {"Tiltfile": "docker_build(1, '.')\n"},
		"missing load":   {"Tiltfile": "load('./nope.star', 'x')\n"},
		"load cycle":     {"Tiltfile": "load('./a.star', 'a')\n", "a.star": "load('./b.star', 'b')\na = 1\n", "b.star": "load('./a.star', 'a')\nb = 1\n"},
		"fail() builtin": {"Tiltfile": "fail('stop here')\n"},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for f, data := range files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, errOut, code := runLoop(t, dir, "dump", "config")
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr: %s", code, errOut)
			}
			if !regexp.MustCompile(`(Tiltfile|\.star):\d+:\d+: `).MatchString(errOut) {
				t.Fatalf("stderr lacks path:line:col: %s", errOut)
			}
		})
	}
}

func TestUsageErrorExit2(t *testing.T) {
	_, _, code := runLoop(t, ".", "dump", "config", "--output", "xml")
	if code != 2 {
		t.Fatalf("bad --output exit %d, want 2", code)
	}
	_, _, code = runLoop(t, ".", "up", "--no-such-flag")
	if code != 2 {
		t.Fatalf("unknown flag exit %d, want 2", code)
	}
}

// TestCIExitCodes: loop ci exits 0 on the local example and 1 naming the
// failed resource otherwise.
func TestCIExitCodes(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte("print('from' + ' the Tiltfile')\nlocal_resource('ok', cmd='echo fine')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runLoop(t, dir, "ci", "--timeout", "1m")
	if code != 0 {
		t.Fatalf("ci exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "ok") || !strings.Contains(out, "fine") {
		t.Fatalf("ci output lacks the resource's log: %s", out)
	}
	// As tilt ci: the Tiltfile's print() is part of the output
	// (tilt-extensions' local_output test greps it).
	if !strings.Contains(out, "from the Tiltfile") {
		t.Fatalf("ci output lacks the Tiltfile's print: %s", out)
	}
	if err := os.WriteFile(filepath.Join(dir, "Tiltfile"), []byte("local_resource('bad', cmd='exit 4')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runLoop(t, dir, "ci", "--timeout", "1m")
	if code != 1 || !strings.Contains(errOut, "bad") {
		t.Fatalf("failing ci exit %d, stderr %q: want 1 naming the resource", code, errOut)
	}
}
