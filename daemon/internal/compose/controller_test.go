package compose

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// testProject writes compose.yaml (with ${BUSYBOX} available for
// interpolation) and extra files into a temp dir, loads it under a unique
// project name, and removes everything of that project when the test ends.
type testProject struct {
	t    *testing.T
	dir  string
	name string
	ctl  *Controller
	env  []string
	decl *model.ComposeProject
}

func newTestProject(t *testing.T, compose string, files map[string]string) *testProject {
	t.Helper()
	cli := testenv.Docker(t)
	busybox := testenv.Busybox(t)
	if files == nil {
		files = map[string]string{}
	}
	files["compose.yaml"] = compose
	tp := &testProject{
		t:    t,
		dir:  writeFiles(t, files),
		name: fmt.Sprintf("looptest-%s-%d", loaderName(t.Name()), rand.IntN(1e6)),
		ctl:  New(cli),
		env:  []string{"BUSYBOX=" + busybox},
	}
	tp.ctl.PollInterval = 20 * time.Millisecond
	tp.decl = &model.ComposeProject{Paths: []string{filepath.Join(tp.dir, "compose.yaml")}, ProjectName: tp.name}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := tp.ctl.Down(ctx, tp.name, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return tp
}

func (tp *testProject) load(extraEnv ...string) *Project {
	tp.t.Helper()
	p, err := Load(context.Background(), tp.decl, append(append([]string{}, tp.env...), extraEnv...))
	if err != nil {
		tp.t.Fatal(err)
	}
	return p
}

func (tp *testProject) up(ctx context.Context, p *Project, service string) string {
	tp.t.Helper()
	id, err := tp.ctl.Up(ctx, p, service, "", nil)
	if err != nil {
		tp.t.Fatal(err)
	}
	return id
}

func inspect(t *testing.T, id string) container.InspectResponse {
	t.Helper()
	insp, err := testenv.Docker(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return insp
}

func parseTime(t *testing.T, s string) time.Time {
	t.Helper()
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return ts
}

// upAsync runs Up in a goroutine; the returned function waits for it.
func upAsync(ctx context.Context, c *Controller, p *Project, service string) func() (string, error) {
	var (
		wg  sync.WaitGroup
		id  string
		err error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		id, err = c.Up(ctx, p, service, "", nil)
	}()
	return func() (string, error) { wg.Wait(); return id, err }
}

func TestUpWaitsForHealthyDependency(t *testing.T) {
	t.Parallel()
	tp := newTestProject(t, `
services:
  db:
    image: ${BUSYBOX}
    init: true
    stop_grace_period: 1s
    labels: {dev.loop.test: "1"}
    command: ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 100ms
      timeout: 1s
      retries: 100
  web:
    image: ${BUSYBOX}
    init: true
    stop_grace_period: 1s
    labels: {dev.loop.test: "1"}
    command: ["sleep", "3600"]
    depends_on:
      db: {condition: service_healthy}
`, nil)
	p := tp.load()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// web is asked for first: its Up must wait for db to exist and be healthy.
	webDone := upAsync(ctx, tp.ctl, p, "web")
	dbID := tp.up(ctx, p, "db")
	webID, err := webDone()
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.ctl.WaitReady(ctx, dbID); err != nil {
		t.Fatal(err)
	}

	db, web := inspect(t, dbID), inspect(t, webID)
	if db.State.Health == nil || db.State.Health.Status != container.Healthy {
		t.Fatalf("db health = %+v", db.State.Health)
	}
	dbStarted := parseTime(t, db.State.StartedAt)
	webCreated := parseTime(t, web.Created)
	// db cannot be healthy before its `sleep 1` is over.
	if !webCreated.After(dbStarted.Add(time.Second)) {
		t.Errorf("web created at %v, before db (started %v) could be healthy", webCreated, dbStarted)
	}
}

func TestUpWaitsForCompletedDependency(t *testing.T) {
	t.Parallel()
	tp := newTestProject(t, `
services:
  migrate:
    image: ${BUSYBOX}
    labels: {dev.loop.test: "1"}
    command: ["sh", "-c", "sleep 0.5; echo migrated"]
  app:
    image: ${BUSYBOX}
    init: true
    stop_grace_period: 1s
    labels: {dev.loop.test: "1"}
    command: ["sleep", "3600"]
    depends_on:
      migrate: {condition: service_completed_successfully}
  broken:
    image: ${BUSYBOX}
    labels: {dev.loop.test: "1"}
    command: ["sh", "-c", "exit 3"]
  app2:
    image: ${BUSYBOX}
    labels: {dev.loop.test: "1"}
    command: ["true"]
    depends_on:
      broken: {condition: service_completed_successfully}
`, nil)
	p := tp.load()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	appDone := upAsync(ctx, tp.ctl, p, "app")
	migrateID := tp.up(ctx, p, "migrate")
	appID, err := appDone()
	if err != nil {
		t.Fatal(err)
	}
	migrate, app := inspect(t, migrateID), inspect(t, appID)
	if migrate.State.Status != container.StateExited || migrate.State.ExitCode != 0 {
		t.Fatalf("migrate state = %+v", migrate.State)
	}
	if finished, created := parseTime(t, migrate.State.FinishedAt), parseTime(t, app.Created); created.Before(finished) {
		t.Errorf("app created at %v, before migrate finished at %v", created, finished)
	}
	// A one-shot service that completed is ready.
	if err := tp.ctl.WaitReady(ctx, migrateID); err != nil {
		t.Errorf("WaitReady(completed one-shot) = %v", err)
	}

	tp.up(ctx, p, "broken")
	_, err = tp.ctl.Up(ctx, p, "app2", "", nil)
	if err == nil || !strings.Contains(err.Error(), "exited with code 3") {
		t.Errorf("Up(app2) after its dependency failed = %v, want an error with the exit code", err)
	}
	if list, _ := tp.ctl.serviceContainers(ctx, tp.name, "app2"); len(list) != 0 {
		t.Errorf("app2 container created although its dependency failed")
	}
}

func TestUpLabelsReuseRecreateAndNetworking(t *testing.T) {
	t.Parallel()
	tp := newTestProject(t, `
services:
  web:
    image: ${BUSYBOX}
    init: true
    stop_grace_period: 2s
    stop_signal: SIGINT
    restart: unless-stopped
    hostname: webhost
    working_dir: /www
    user: "65534"
    labels:
      dev.loop.test: "1"
      custom.label: hello
    environment:
      GREETING: ${GREETING}
    env_file: [web.env]
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
      - "127.0.0.1::8080"
    volumes:
      - ./html:/www:ro
      - data:/data
      - type: tmpfs
        target: /scratch
    tmpfs: [/run/tmp]
  client:
    image: ${BUSYBOX}
    init: true
    stop_grace_period: 1s
    labels: {dev.loop.test: "1"}
    entrypoint: ["sh", "-c"]
    command: ["sleep 3600"]
    networks:
      default: {}
      back:
        aliases: [clientalias]
volumes:
  data: {}
networks:
  back: {}
`, map[string]string{
		"html/index.html": "hello from the bind mount\n",
		"web.env":         "FROM_ENV_FILE=yes\n",
		".env":            "GREETING=hi\n",
	})
	p := tp.load()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := testenv.Docker(t)

	id := tp.up(ctx, p, "web")
	if err := tp.ctl.WaitReady(ctx, id); err != nil {
		t.Fatal(err)
	}
	insp := inspect(t, id)
	if got, want := insp.Name, "/"+tp.name+"-web-1"; got != want {
		t.Errorf("container name = %q, want %q", got, want)
	}
	labels := insp.Config.Labels
	wantLabels := map[string]string{
		LabelProject:         tp.name,
		LabelService:         "web",
		LabelContainerNumber: "1",
		LabelOneoff:          "False",
		LabelWorkingDir:      tp.dir,
		LabelConfigFiles:     filepath.Join(tp.dir, "compose.yaml"),
		LabelEnvFile:         filepath.Join(tp.dir, ".env"),
		LabelVersion:         ComposeVersion,
		LabelDependsOn:       "",
		LabelManaged:         "true",
		"custom.label":       "hello",
		testenv.TestLabel:    "1",
	}
	img, err := cli.ImageInspect(ctx, testenv.BusyboxRef)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels[LabelImage] = img.ID
	for k, v := range wantLabels {
		if labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if len(labels[LabelConfigHash]) != 64 {
		t.Errorf("config hash label = %q", labels[LabelConfigHash])
	}
	if extra := len(labels) - len(wantLabels) - 1; extra != 0 {
		t.Errorf("%d unexpected labels in %v", extra, labels)
	}

	// Container settings from the compose file.
	if insp.Config.Hostname != "webhost" || insp.Config.User != "65534" || insp.Config.WorkingDir != "/www" || insp.Config.StopSignal != "SIGINT" ||
		insp.Config.StopTimeout == nil || *insp.Config.StopTimeout != 2 || insp.HostConfig.RestartPolicy.Name != container.RestartPolicyUnlessStopped ||
		insp.HostConfig.Init == nil || !*insp.HostConfig.Init {
		t.Errorf("config not honoured: config %+v host restart %+v init %v", insp.Config, insp.HostConfig.RestartPolicy, insp.HostConfig.Init)
	}
	env := strings.Join(insp.Config.Env, "\n")
	for _, kv := range []string{"GREETING=hi", "FROM_ENV_FILE=yes"} {
		if !strings.Contains(env, kv) {
			t.Errorf("env lacks %s: %v", kv, insp.Config.Env)
		}
	}
	mounts := testenv.Exec(t, id, "cat", "/proc/mounts")
	for _, m := range []string{" /scratch tmpfs", " /run/tmp tmpfs", " /data "} {
		if !strings.Contains(mounts, m) {
			t.Errorf("mount %q missing:\n%s", m, mounts)
		}
	}
	vol := false
	for _, m := range insp.Mounts {
		if m.Type == "volume" && m.Name == tp.name+"_data" && m.Destination == "/data" {
			vol = true
		}
	}
	if !vol {
		t.Errorf("named volume %s_data not mounted at /data: %+v", tp.name, insp.Mounts)
	}

	// Published port on 127.0.0.1 serving the bind-mounted directory.
	bindings := insp.NetworkSettings.Ports["8080/tcp"]
	if len(bindings) == 0 || bindings[0].HostIP != "127.0.0.1" || bindings[0].HostPort == "" {
		t.Fatalf("port bindings = %+v", insp.NetworkSettings.Ports)
	}
	body := httpGet(t, "http://127.0.0.1:"+bindings[0].HostPort+"/index.html")
	if body != "hello from the bind mount\n" {
		t.Errorf("GET index.html = %q", body)
	}

	// Services resolve each other by name on the project network; the
	// extra network carries the declared alias.
	clientID := tp.up(ctx, p, "client")
	if out := testenv.Exec(t, clientID, "wget", "-q", "-O-", "http://web:8080/index.html"); out != "hello from the bind mount\n" {
		t.Errorf("client GET http://web:8080 = %q", out)
	}
	client := inspect(t, clientID)
	back, ok := client.NetworkSettings.Networks[tp.name+"_back"]
	if !ok || !slices.Contains(back.Aliases, "clientalias") || !slices.Contains(back.Aliases, "client") {
		t.Errorf("client networks = %+v", client.NetworkSettings.Networks)
	}
	nets, err := cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelProject+"="+tp.name))})
	if err != nil {
		t.Fatal(err)
	}
	netLabels := map[string]string{}
	for _, n := range nets {
		netLabels[n.Name] = n.Labels[LabelNetwork]
	}
	if netLabels[tp.name+"_default"] != "default" || netLabels[tp.name+"_back"] != "back" {
		t.Errorf("project networks and their %s labels = %v", LabelNetwork, netLabels)
	}

	// Unchanged: the same container stays.
	var called bool
	again, err := tp.ctl.Up(ctx, tp.load(), "web", "", func(context.Context, string) error { called = true; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if again != id || called {
		t.Errorf("Up without a change: id %s (was %s), beforeStart called %v", again, id, called)
	}

	// A changed environment value recreates it.
	var beforeStartID string
	changed, err := tp.ctl.Up(ctx, tp.load("GREETING=changed"), "web", "", func(_ context.Context, cid string) error {
		beforeStartID = cid
		if st := inspect(t, cid).State; st.Running {
			t.Errorf("beforeStart called on a running container")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if changed == id {
		t.Fatal("changed environment did not recreate the container")
	}
	if beforeStartID != changed {
		t.Errorf("beforeStart got %q, want the new container %q", beforeStartID, changed)
	}
	if _, err := cli.ContainerInspect(ctx, id); !cerrdefs.IsNotFound(err) {
		t.Errorf("old container still exists: %v", err)
	}
	if !strings.Contains(strings.Join(inspect(t, changed).Config.Env, "\n"), "GREETING=changed") {
		t.Error("new container lacks the changed value")
	}

	infos, err := tp.ctl.Containers(ctx, tp.name)
	if err != nil {
		t.Fatal(err)
	}
	services := map[string]string{}
	for _, ci := range infos {
		services[ci.Service] = ci.ID
		if !ci.Managed || ci.State != "running" {
			t.Errorf("container info %+v", ci)
		}
	}
	if services["web"] != changed || services["client"] != clientID || len(services) != 2 {
		t.Errorf("Containers = %+v", infos)
	}

	checkComposeCLI(t, tp.name, []string{"web", "client"})
}

// checkComposeCLI asks the compose CLI to list the project, when the docker
// CLI has the compose plugin.
func checkComposeCLI(t *testing.T, project string, services []string) {
	t.Helper()
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		t.Logf("docker CLI has no compose plugin (%v): not cross-checking with `docker compose ps`", err)
		return
	}
	out, err := exec.Command("docker", "compose", "-p", project, "ps", "--format", "json").Output()
	if err != nil {
		t.Fatalf("docker compose ps: %v", err)
	}
	for _, s := range services {
		if !bytes.Contains(out, []byte(`"Service":"`+s+`"`)) {
			t.Errorf("docker compose ps does not list service %s:\n%s", s, out)
		}
	}
}

func TestDownKeepsVolumesUnlessAsked(t *testing.T) {
	t.Parallel()
	tp := newTestProject(t, `
services:
  store:
    image: ${BUSYBOX}
    init: true
    stop_grace_period: 1s
    labels: {dev.loop.test: "1"}
    command: ["sh", "-c", "test -f /data/first || date > /data/first; exec sleep 3600"]
    volumes: [data:/data]
volumes:
  data:
`, nil)
	p := tp.load()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := testenv.Docker(t)
	volName := tp.name + "_data"

	id := tp.up(ctx, p, "store")
	if err := tp.ctl.WaitReady(ctx, id); err != nil {
		t.Fatal(err)
	}
	first := waitFile(t, id, "/data/first")

	if err := tp.ctl.Down(ctx, tp.name, false); err != nil {
		t.Fatal(err)
	}
	if infos, _ := tp.ctl.Containers(ctx, tp.name); len(infos) != 0 {
		t.Errorf("containers after Down: %+v", infos)
	}
	if _, err := cli.NetworkInspect(ctx, tp.name+"_default", network.InspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("network after Down: %v", err)
	}
	v, err := cli.VolumeInspect(ctx, volName)
	if err != nil {
		t.Fatalf("volume removed by Down without volumes: %v", err)
	}
	if v.Labels[LabelVolume] != "data" || v.Labels[LabelProject] != tp.name {
		t.Errorf("volume labels = %v", v.Labels)
	}

	id = tp.up(ctx, p, "store")
	if err := tp.ctl.WaitReady(ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := waitFile(t, id, "/data/first"); got != first {
		t.Errorf("volume content after Down/Up = %q, want %q", got, first)
	}

	if err := tp.ctl.Down(ctx, tp.name, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.VolumeInspect(ctx, volName); !cerrdefs.IsNotFound(err) {
		t.Errorf("volume after Down with volumes: %v", err)
	}
}

func TestUpHonoursProfilesAndMissingImage(t *testing.T) {
	t.Parallel()
	tp := newTestProject(t, `
services:
  a:
    image: ${BUSYBOX}
    profiles: [extra]
    labels: {dev.loop.test: "1"}
    command: ["true"]
  b:
    image: loop-test/does-not-exist:never
    labels: {dev.loop.test: "1"}
`, nil)
	p := tp.load()
	ctx := context.Background()
	if _, err := tp.ctl.Up(ctx, p, "a", "", nil); err == nil || !strings.Contains(err.Error(), "no enabled service") {
		t.Errorf("Up of a service whose profile is inactive = %v", err)
	}
	if _, err := tp.ctl.Up(ctx, p, "b", "", nil); err == nil || !strings.Contains(err.Error(), "loop-test/does-not-exist:never") {
		t.Errorf("Up with a missing image = %v", err)
	}
	tp.decl.Profiles = []string{"extra"}
	// image override: b runs busybox instead of its missing image.
	id, err := tp.ctl.Up(ctx, tp.load(), "b", testenv.BusyboxRef, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := inspect(t, id).Config.Image; got != testenv.BusyboxRef {
		t.Errorf("image = %q, want the override", got)
	}
	if _, err := tp.ctl.Up(ctx, tp.load(), "a", "", nil); err != nil {
		t.Errorf("Up(a) with its profile active: %v", err)
	}
}

// TestLogsFollowsUntilStop checks that a follow keeps every line a
// container writes just before it exits: the engine ends a follow when it
// closes the container's log, which can be before the last lines reached the
// follower. The container waits until the follow has shown "ready", so the
// lines after it go through the follow, not a read of a stopped container.
func TestLogsFollowsUntilStop(t *testing.T) {
	t.Parallel()
	tp := newTestProject(t, `
x-talker: &talker
  image: ${BUSYBOX}
  labels: {dev.loop.test: "1"}
  # three is written in two parts; four, the last, has no newline.
  command: ["sh", "-c", "echo ready; until [ -e /tmp/go ]; do sleep 0.01; done; echo one; echo two >&2; printf thr; sleep 0.1; printf 'ee\\n'; printf four"]
services:
  plain: *talker
  tty:
    <<: *talker
    tty: true
`, nil)
	p := tp.load()
	for _, svc := range []string{"plain", "tty"} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		id := tp.up(ctx, p, svc)
		w := &lineRecorder{ready: make(chan struct{})}
		done := make(chan error, 1)
		go func() { done <- tp.ctl.Logs(ctx, id, time.Time{}, w) }()
		select {
		case <-w.ready:
		case err := <-done:
			t.Fatalf("%s: Logs ended before ready: %v (logs %q)", svc, err, w.all())
		}
		testenv.Exec(t, id, "touch", "/tmp/go")
		if err := <-done; err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		writes := w.all()
		// stdout and stderr lines arrive in either order; a terminal ends
		// lines with \r\n.
		lines := strings.Split(strings.TrimSuffix(strings.ReplaceAll(strings.Join(writes, ""), "\r", ""), "\n"), "\n")
		slices.Sort(lines)
		if want := []string{"four", "one", "ready", "three", "two"}; !slices.Equal(lines, want) {
			t.Errorf("%s: logs = %q, want the lines %q once each", svc, writes, want)
		}
		for _, wr := range writes {
			if !strings.HasSuffix(wr, "\n") {
				t.Errorf("%s: partial line written: %q", svc, wr)
			}
		}
	}
}

// lineRecorder records writes and closes ready once "ready" was written.
type lineRecorder struct {
	mu     sync.Mutex
	writes []string
	ready  chan struct{}
	seen   bool
}

func (r *lineRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, string(p))
	if !r.seen && strings.Contains(strings.Join(r.writes, ""), "ready") {
		r.seen = true
		close(r.ready)
	}
	return len(p), nil
}

func (r *lineRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

type recordingWriter struct{ writes []string }

func (r *recordingWriter) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func waitFile(t *testing.T, id, path string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code := testenv.ExecCode(t, id, "cat", path)
		if code == 0 {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared: %s", path, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	var lastErr error
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			lastErr = fmt.Errorf("status %d, read: %w", resp.StatusCode, err)
		} else {
			lastErr = err
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, lastErr)
	return ""
}

func TestLineWriter(t *testing.T) {
	var rec recordingWriter
	lw := &lineWriter{w: &rec}
	for _, chunk := range []string{"a\nb", "c", "\nd\ne\nf"} {
		if n, err := lw.Write([]byte(chunk)); n != len(chunk) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", chunk, n, err)
		}
	}
	if err := lw.flush(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a\n", "bc\nd\ne\n", "f\n"}; !slices.Equal(rec.writes, want) {
		t.Errorf("writes = %q, want %q", rec.writes, want)
	}
}

// BenchmarkUpUnchanged measures Up when nothing changed: the path every
// reload of the project takes for every service.
func BenchmarkUpUnchanged(b *testing.B) {
	cli := testenv.Docker(b)
	busybox := testenv.Busybox(b)
	dir := b.TempDir()
	compose := "services:\n  s:\n    image: " + busybox + "\n    init: true\n    stop_grace_period: 1s\n    labels: {dev.loop.test: \"1\"}\n    command: [sleep, \"3600\"]\n    volumes: [data:/data]\nvolumes:\n  data:\n"
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("loopbench-%d", rand.IntN(1e6))
	ctx := context.Background()
	p, err := Load(ctx, &model.ComposeProject{Paths: []string{filepath.Join(dir, "compose.yaml")}, ProjectName: name}, []string{})
	if err != nil {
		b.Fatal(err)
	}
	ctl := New(cli)
	b.Cleanup(func() {
		if err := ctl.Down(context.Background(), name, true); err != nil {
			b.Error(err)
		}
	})
	first, err := ctl.Up(ctx, p, "s", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		id, err := ctl.Up(ctx, p, "s", "", nil)
		if err != nil || id != first {
			b.Fatalf("Up = %s, %v; want %s", id, err, first)
		}
	}
}
