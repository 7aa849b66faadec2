package devcontainer

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"
)

// workspace writes files (path → content) under a new workspace folder.
func workspace(t *testing.T, files map[string]string) string {
	t.Helper()
	ws := t.TempDir()
	for p, c := range files {
		full := filepath.Join(ws, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return ws
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoadJSONCAndVariables(t *testing.T) {
	ws := workspace(t, map[string]string{".devcontainer/devcontainer.json": `{
	// a comment
	"name": "app", /* another */
	"image": "img:${localEnv:TAG:latest}",
	"workspaceFolder": "/src/${localWorkspaceFolderBasename}",
	"containerEnv": {"WS": "${containerWorkspaceFolder}", "HOME_ON_HOST": "${localEnv:HOMEDIR}"},
	"remoteEnv": {"PATH": "${containerEnv:PATH}:/extra", "GONE": null},
	"mounts": [
		"type=bind,source=${localWorkspaceFolder}/data,target=/data,readonly",
		{"type": "volume", "source": "cache", "target": "/cache"},
	],
	"forwardPorts": [8080, "localhost:9090", "db:5432"],
	"appPort": ["3000", 4000],
	"runArgs": ["--cap-add=SYS_PTRACE", "-e", "A=1", "--init"],
	"postCreateCommand": {"one": "echo 1", "two": ["echo", "2"]},
	"postStartCommand": ["echo", "started"],
	"onCreateCommand": "make setup",
}`})
	c, err := Load(LoadOptions{WorkspaceFolder: ws, LookupEnv: env(map[string]string{"HOMEDIR": "/home/me"})})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(ws)
	checks := []struct {
		name      string
		got, want any
	}{
		{"image", c.Image, "img:latest"},
		{"workspaceFolder", c.WorkspaceFolder, "/src/" + base},
		{"containerEnv", c.ContainerEnv, map[string]string{"WS": "/src/" + base, "HOME_ON_HOST": "/home/me"}},
		{"remoteEnv", c.RemoteEnv, map[string]string{"PATH": "${containerEnv:PATH}:/extra"}},
		{"workspaceMount", *c.WorkspaceMount, mount.Mount{Type: mount.TypeBind, Source: ws, Target: "/src/" + base}},
		{"mounts", c.Mounts, []mount.Mount{
			{Type: mount.TypeBind, Source: ws + "/data", Target: "/data", ReadOnly: true},
			{Type: mount.TypeVolume, Source: "cache", Target: "/cache"},
		}},
		{"forwardPorts", c.ForwardPorts, []int{8080, 9090}},
		{"appPort", c.AppPorts, []string{"3000:3000", "4000:4000"}},
		{"runArgs capAdd", c.RunArgs.CapAdd, []string{"SYS_PTRACE"}},
		{"runArgs env", c.RunArgs.Env, []string{"A=1"}},
		{"runArgs init", c.RunArgs.Init, true},
		{"overrideCommand", c.OverrideCommand, true},
		{"postCreateCommand", c.PostCreateCommand.Steps, []Step{{Name: "one", Shell: "echo 1"}, {Name: "two", Args: []string{"echo", "2"}}}},
		{"postStartCommand", c.PostStartCommand.Steps, []Step{{Args: []string{"echo", "started"}}}},
		{"onCreateCommand", c.OnCreateCommand.Steps, []Step{{Shell: "make setup"}}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s: got %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
}

func TestRemoteEnvContainerEnv(t *testing.T) {
	v := &vars{localEnv: env(nil), containerEnv: map[string]string{"PATH": "/bin"}}
	for in, want := range map[string]string{
		"${containerEnv:PATH}:/x":   "/bin:/x",
		"${containerEnv:NOPE:dflt}": "dflt",
		"${containerEnv:NOPE}":      "",
		"${unknown} stays":          "${unknown} stays",
		"unterminated ${localEnv:X": "unterminated ${localEnv:X",
	} {
		if got := v.expand(in); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFindConfig(t *testing.T) {
	ws := workspace(t, map[string]string{".devcontainer/a/devcontainer.json": `{"image":"x"}`})
	got, err := FindConfig(ws)
	if err != nil || got != filepath.Join(ws, ".devcontainer/a/devcontainer.json") {
		t.Fatalf("FindConfig = %q, %v", got, err)
	}
	workspace(t, nil)
	if err := os.WriteFile(filepath.Join(ws, ".devcontainer.json"), []byte(`{"image":"y"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := FindConfig(ws); got != filepath.Join(ws, ".devcontainer.json") {
		t.Fatalf("FindConfig prefers .devcontainer.json over named configs; got %q", got)
	}
	if _, err := FindConfig(t.TempDir()); !errors.Is(err, ErrNoConfig) {
		t.Fatalf("FindConfig in an empty folder: got %v, want ErrNoConfig", err)
	}
}

// TestErrors checks that mistakes name file:line:col and what to fix.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, json string
		files      map[string]string
		line, col  int
		msg        string
	}{
		{"syntax", "{\n  \"image\": \"x\"\n  \"name\": \"y\"\n}", nil, 3, 3, "missing comma"},
		{"property type", "{\n  \"image\": \"x\",\n  \"forwardPorts\": \"8080\"\n}", nil, 3, 19, `"forwardPorts" must be an array, not string`},
		{"nested type", "{\n  \"image\": \"x\",\n  \"build\": {\"args\": {\"A\": 1}}\n}", nil, 3, 21, `"build.args" must hold strings, not number`},
		{"missing Dockerfile", "{\n  \"build\": {\n    \"dockerfile\": \"Nope.Dockerfile\"\n  }\n}", nil, 3, 19, "Dockerfile "},
		{"no image", "{\n  \"name\": \"x\"\n}", nil, 1, 1, `set "image"`},
		{"registry feature", "{\n  \"image\": \"x\",\n  \"features\": {\n    \"ghcr.io/devcontainers/features/go:1\": {}\n  }\n}", nil, 4, 44, "needs a registry"},
		{"runArgs", "{\"image\": \"x\", \"runArgs\": [\"--init\", \"--gpus=all\"]}", nil, 1, 38, `does not support "--gpus=all"`},
		{"bad command", "{\"image\": \"x\", \"postCreateCommand\": 3}", nil, 1, 37, "postCreateCommand must be a string"},
		{"bad mount", "{\"image\": \"x\", \"mounts\": [\"type=bind,source=rel,target=/x\"]}", nil, 1, 27, "absolute path"},
		{"feature option", "{\"image\": \"x\", \"features\": {\"./f\": {\"nope\": 1}}}", map[string]string{
			".devcontainer/f/devcontainer-feature.json": `{"id": "f", "options": {"greeting": {"type": "string", "default": "hi"}}}`,
			".devcontainer/f/install.sh":                "#!/bin/sh\n",
		}, 1, 45, `has no option "nope" (it has: greeting)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{".devcontainer/devcontainer.json": tc.json}
			for k, v := range tc.files {
				files[k] = v
			}
			ws := workspace(t, files)
			_, err := Load(LoadOptions{WorkspaceFolder: ws})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load: got %v, want an *Error", err)
			}
			want := filepath.Join(ws, ".devcontainer/devcontainer.json")
			if e.Path != want || e.Line != tc.line || e.Col != tc.col {
				t.Errorf("position: got %s:%d:%d, want %s:%d:%d (%v)", e.Path, e.Line, e.Col, want, tc.line, tc.col, err)
			}
			if !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("message %q does not contain %q", e.Msg, tc.msg)
			}
			if !strings.HasPrefix(err.Error(), want+":") {
				t.Errorf("text %q does not start with the path", err.Error())
			}
		})
	}
}

func TestFeatureOptions(t *testing.T) {
	ws := workspace(t, map[string]string{
		".devcontainer/devcontainer.json": `{"image": "x", "features": {"./tools": {"greeting": "hello", "with-extra": true}, "./b": "1.2"}}`,
		".devcontainer/tools/devcontainer-feature.json": `{"id": "tools", "options": {
			"greeting": {"type": "string", "default": "hi"}, "with-extra": {"type": "boolean", "default": false},
			"level": {"type": "string", "default": "3"}}, "containerEnv": {"TOOLS": "1"}}`,
		".devcontainer/tools/install.sh":            "#!/bin/sh\n",
		".devcontainer/b/devcontainer-feature.json": `{"id": "b", "options": {"version": {"type": "string", "default": "latest"}}}`,
		".devcontainer/b/install.sh":                "#!/bin/sh\n",
	})
	c, err := Load(LoadOptions{WorkspaceFolder: ws})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Features) != 2 || c.Features[0].ID != "tools" || c.Features[1].ID != "b" {
		t.Fatalf("features (in written order): got %+v", c.Features)
	}
	if got, want := c.Features[0].Env, map[string]string{"GREETING": "hello", "WITH_EXTRA": "true", "LEVEL": "3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("tools env: got %v, want %v", got, want)
	}
	if got := c.Features[1].Env["VERSION"]; got != "1.2" {
		t.Errorf("short form sets VERSION: got %q", got)
	}
}

// TestRepositoryConfigs loads loop's own dev container and the example's:
// they must stay valid as the parser grows stricter.
func TestRepositoryConfigs(t *testing.T) {
	own, err := Load(LoadOptions{WorkspaceFolder: ".."})
	if err != nil {
		t.Fatalf("loop's .devcontainer: %v", err)
	}
	if own.Build == nil || filepath.Base(own.Build.Dockerfile) != "Dockerfile" || describeSteps(own.PostCreateCommand) != "make setup" {
		t.Errorf("loop's .devcontainer: build %+v, postCreateCommand %+v", own.Build, own.PostCreateCommand)
	}
	if !hasTarget(own.Mounts, "/var/run/docker.sock") || own.RemoteEnv["LOCAL_WORKSPACE_FOLDER"] != own.LocalWorkspaceFolder {
		t.Errorf("loop's .devcontainer must mount the Docker socket and set LOCAL_WORKSPACE_FOLDER: %+v %v", own.Mounts, own.RemoteEnv)
	}
	ex, err := Load(LoadOptions{WorkspaceFolder: "../examples/devcontainer"})
	if err != nil {
		t.Fatalf("examples/devcontainer: %v", err)
	}
	if ex.WorkspaceFolder != "/workspaces/example" || !hasTarget(ex.Mounts, "/var/run/docker.sock") {
		t.Errorf("examples/devcontainer: folder %q mounts %+v", ex.WorkspaceFolder, ex.Mounts)
	}
}

func describeSteps(c Command) string {
	if len(c.Steps) != 1 {
		return ""
	}
	return c.Steps[0].Shell
}

func hasTarget(ms []mount.Mount, target string) bool {
	for _, m := range ms {
		if m.Target == target {
			return true
		}
	}
	return false
}
