package compose

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/model"
)

// writeFiles writes name -> content under a new temp dir and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func serviceNames(p *Project) []string {
	var names []string
	for _, s := range p.Services {
		names = append(names, s.Name)
	}
	return names
}

func TestLoadDefaultsNameFromDirectory(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "My.App_1")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(f, []byte("services:\n  a:\n    image: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "myapp_1" {
		t.Errorf("name = %q, want %q (normalised directory name)", p.Name, "myapp_1")
	}
	if p.WorkingDir != dir {
		t.Errorf("working dir = %q, want %q", p.WorkingDir, dir)
	}
	if got := p.Services[0].ContainerName; got != "myapp_1-a-1" {
		t.Errorf("container name = %q", got)
	}
}

func TestLoadNamePrecedence(t *testing.T) {
	dir := writeFiles(t, map[string]string{"compose.yaml": "name: fromfile\nservices:\n  a:\n    image: x\n"})
	f := filepath.Join(dir, "compose.yaml")
	p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "fromfile" {
		t.Errorf("name = %q, want the file's name:", p.Name)
	}
	p, err = Load(context.Background(), &model.ComposeProject{Paths: []string{f}, ProjectName: "explicit"}, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "explicit" {
		t.Errorf("name = %q, want the declared one", p.Name)
	}
	if _, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}, ProjectName: "Bad Name"}, []string{}); err == nil {
		t.Error("invalid project name accepted")
	}
}

func TestLoadProfilesAndOrder(t *testing.T) {
	dir := writeFiles(t, map[string]string{"compose.yaml": `
services:
  web:
    image: x
    depends_on:
      api: {condition: service_healthy}
  api:
    image: x
    depends_on: [db]
  db:
    image: x
  debug:
    image: x
    profiles: [debug]
`})
	f := filepath.Join(dir, "compose.yaml")
	p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := serviceNames(p), []string{"db", "api", "web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("services = %v, want %v (dependencies first)", got, want)
	}
	if !reflect.DeepEqual(p.Disabled, []string{"debug"}) {
		t.Errorf("disabled = %v", p.Disabled)
	}
	web, _ := p.Service("web")
	if !reflect.DeepEqual(web.DependsOn, map[string]string{"api": "service_healthy"}) {
		t.Errorf("web depends_on = %v", web.DependsOn)
	}
	api, _ := p.Service("api")
	if !reflect.DeepEqual(api.DependsOn, map[string]string{"db": "service_started"}) {
		t.Errorf("api depends_on = %v", api.DependsOn)
	}

	p, err = Load(context.Background(), &model.ComposeProject{Paths: []string{f}, Profiles: []string{"debug"}}, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(serviceNames(p), "debug") {
		t.Errorf("profile debug active but services = %v", serviceNames(p))
	}
	p, err = Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, []string{"COMPOSE_PROFILES=debug"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(serviceNames(p), "debug") {
		t.Errorf("COMPOSE_PROFILES=debug but services = %v", serviceNames(p))
	}
}

func TestLoadEnvFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"compose.yaml": `
services:
  a:
    image: ${IMG}
    env_file: [svc.env]
    environment:
      FROM_PROJECT: ${FROMFILE}
      OVERRIDDEN: ${OVER}
`,
		".env":       "IMG=default-env\nFROMFILE=dot\nOVER=dot\n",
		"custom.env": "IMG=custom-env\nFROMFILE=custom\nOVER=custom\n",
		"svc.env":    "SVC=1\n",
	})
	f := filepath.Join(dir, "compose.yaml")
	env := []string{"OVER=process"}

	p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, env)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Services[0]
	if a.Image != "default-env" {
		t.Errorf("image = %q, want the .env value", a.Image)
	}
	if got := environment(a.config.Environment); !reflect.DeepEqual(got, []string{"FROM_PROJECT=dot", "OVERRIDDEN=process", "SVC=1"}) {
		t.Errorf("environment = %v", got)
	}
	wantFiles := []string{filepath.Join(dir, ".env"), f, filepath.Join(dir, "svc.env")}
	if !reflect.DeepEqual(p.Files, wantFiles) {
		t.Errorf("files = %v, want %v", p.Files, wantFiles)
	}

	// The Tiltfile's os.putenv (model.ComposeProject.Env) wins over the
	// process environment, as it changes Tilt's own.
	p, err = Load(context.Background(), &model.ComposeProject{Paths: []string{f}, Env: map[string]string{"OVER": "putenv", "IMG": "from-putenv"}}, env)
	if err != nil {
		t.Fatal(err)
	}
	if a := p.Services[0]; a.Image != "from-putenv" || !slices.Contains(environment(a.config.Environment), "OVERRIDDEN=putenv") {
		t.Errorf("with putenv: image %q, environment %v", a.Image, environment(a.config.Environment))
	}

	p, err = Load(context.Background(), &model.ComposeProject{Paths: []string{f}, EnvFile: filepath.Join(dir, "custom.env")}, env)
	if err != nil {
		t.Fatal(err)
	}
	if p.Services[0].Image != "custom-env" {
		t.Errorf("image = %q, want the env_file value", p.Services[0].Image)
	}
	if !reflect.DeepEqual(p.EnvFiles, []string{filepath.Join(dir, "custom.env")}) {
		t.Errorf("env files = %v", p.EnvFiles)
	}
}

func TestLoadBrokenFileNamesIt(t *testing.T) {
	for name, content := range map[string]string{
		"yaml":   "services:\n  a:\n    image: x\n   bad: [\n",
		"schema": "services:\n  a:\n    image: x\n    ports: {not: a list}\n",
		"deps":   "services:\n  a:\n    image: x\n    depends_on: [missing]\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"broken-compose.yaml": content})
			f := filepath.Join(dir, "broken-compose.yaml")
			_, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, []string{})
			if err == nil {
				t.Fatal("broken compose file loaded")
			}
			if !strings.Contains(err.Error(), "broken-compose.yaml") {
				t.Errorf("error does not name the file: %v", err)
			}
			if name == "yaml" && !strings.Contains(err.Error(), "line 3") {
				t.Errorf("YAML error does not give the line: %v", err)
			}
			t.Logf("%s: %v", name, err)
		})
	}
}

func TestLoadBuildAndWatch(t *testing.T) {
	dir := writeFiles(t, map[string]string{"compose.yaml": `
name: proj
services:
  app:
    build:
      context: ./app
      dockerfile: Dockerfile.dev
      target: dev
      args:
        VERSION: "1.2"
        FROM_ENV:
      ssh: [default, "deploy=./keys/deploy"]
      secrets:
        - npmrc
        - source: token
          target: api_token
      extra_hosts: ["db.local:10.0.0.5"]
    develop:
      watch:
        - path: ./app/src
          action: sync
          target: /src
        - path: ./app/go.mod
          action: rebuild
  inline:
    image: custom/inline
    build:
      dockerfile_inline: "FROM scratch\n"
secrets:
  npmrc:
    file: ./secrets/npmrc
  token:
    environment: API_TOKEN
`})
	f := filepath.Join(dir, "compose.yaml")
	p, err := Load(context.Background(), &model.ComposeProject{Paths: []string{f}}, []string{"FROM_ENV=env-value"})
	if err != nil {
		t.Fatal(err)
	}
	app, _ := p.Service("app")
	if app.Image != "proj-app" {
		t.Errorf("image = %q, want Compose's default proj-app", app.Image)
	}
	want := &model.Image{
		Ref:          "proj-app",
		Context:      filepath.Join(dir, "app"),
		Dockerfile:   filepath.Join(dir, "app", "Dockerfile.dev"),
		Target:       "dev",
		BuildArgs:    map[string]string{"VERSION": "1.2", "FROM_ENV": "env-value"},
		SSH:          []string{"default", "deploy=" + filepath.Join(dir, "keys", "deploy")}, // sorted
		BuildSecrets: []string{"id=npmrc,src=" + filepath.Join(dir, "secrets", "npmrc"), "id=api_token,env=API_TOKEN"},
		ExtraHosts:   []string{"db.local:10.0.0.5"},
		LiveUpdate:   app.LiveUpdate,
		Pos:          model.Position{File: f},
	}
	if !reflect.DeepEqual(app.Build, want) {
		t.Errorf("build = %+v\nwant    %+v", app.Build, want)
	}
	if app.LiveUpdate == nil || len(app.LiveUpdate.Syncs) != 1 || app.LiveUpdate.Syncs[0].LocalPath != filepath.Join(dir, "app", "src") ||
		!reflect.DeepEqual(app.LiveUpdate.FallBackOn, []string{filepath.Join(dir, "app", "go.mod")}) {
		t.Errorf("live update = %+v", app.LiveUpdate)
	}
	inline, _ := p.Service("inline")
	if inline.Build == nil || inline.Build.DockerfileContents != "FROM scratch\n" || inline.Build.Ref != "custom/inline" || inline.Build.Context != dir {
		t.Errorf("inline build = %+v", inline.Build)
	}
}

func TestLoadInline(t *testing.T) {
	dir := writeFiles(t, map[string]string{".env": "TAG=fromdotenv\n"})
	decl := &model.ComposeProject{
		Inline: "services:\n  a:\n    image: busybox:${TAG}\n",
		Pos:    model.Position{File: filepath.Join(dir, "Tiltfile"), Line: 3},
	}
	p, err := Load(context.Background(), decl, []string{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != loaderName(filepath.Base(dir)) || p.Services[0].Image != "busybox:fromdotenv" {
		t.Errorf("inline project %q image %q", p.Name, p.Services[0].Image)
	}
	decl.Inline = "services: [\n"
	if _, err := Load(context.Background(), decl, []string{}); err == nil || !strings.Contains(err.Error(), "Tiltfile:3") {
		t.Errorf("broken inline compose error = %v, want it to name the Tiltfile line", err)
	}
}

func loaderName(dir string) string {
	return strings.TrimLeft(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return -1
	}, dir), "_-")
}

// TestLoadExtendsOfANumberIsAnError: compose-go panics on an extends whose file is a
// number; loop reports the file instead of stopping.
func TestLoadExtendsOfANumberIsAnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(path, []byte("services:\n  a:\n    image: x\n    extends:\n      file: 000000000000\n      service: a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(context.Background(), &model.ComposeProject{Paths: []string{path}}, []string{})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("load: %v, want an error naming %s", err, path)
	}
	t.Log(err)
}
