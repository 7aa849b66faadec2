package daemon_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestCustomBuildOnCompose: a custom_build's command (the docker CLI, given
// $EXPECTED_REF and its env=) makes the image a Compose service runs
// (dc_resource image=); a synced file is live-updated into the container;
// a change to another file under its deps runs the command again and
// replaces the container with the new image.
func TestCustomBuildOnCompose(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"app/Dockerfile": "FROM loop-test/busybox:latest\nARG MSG\nRUN echo \"$MSG\" > /msg\nCOPY version /version\nCOPY site /www\nCMD [\"sleep\", \"3600\"]\n",
		"app/version":    "v1\n",
		"app/site/a.txt": "a1\n",
		"compose.yaml":   "services:\n  app:\n    image: looptest/declared\n",
		"Tiltfile": fmt.Sprintf(`
custom_build('looptest/custom', 'docker build -q --label %s=1 --build-arg MSG="$MSG" -t $EXPECTED_REF app', ['app'],
    env={'MSG': 'made by custom_build'}, live_update=[sync('app/site', '/www')],
    entrypoint='echo started > /tmp/ep; exec sleep 3600')
docker_compose('compose.yaml', project_name='%s')
dc_resource('app', image='looptest/custom')
`, testenv.TestLabel, projectName(t)),
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("app", 1, 3*time.Minute)
	if got, _ := containerFile(t, st.ContainerID, "/msg"); got != "made by custom_build\n" {
		t.Fatalf("/msg = %q: the service does not run the custom_build's image", got)
	}
	if got, _ := containerFile(t, st.ContainerID, "/tmp/ep"); got != "started\n" {
		t.Fatalf("/tmp/ep = %q: entrypoint= did not replace the image's command", got)
	}
	first := st.ContainerID

	writeFiles(t, dir, map[string]string{"app/site/a.txt": "a2\n"})
	st = h.waitUpdates("app", 2, time.Minute)
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateLive || st.ContainerID != first {
		t.Fatalf("after a synced change: update %+v in %s, want a live update of %s", st.LastUpdate, st.ContainerID, first)
	}
	if got, _ := containerFile(t, first, "/www/a.txt"); got != "a2\n" {
		t.Fatalf("/www/a.txt = %q after the sync", got)
	}

	writeFiles(t, dir, map[string]string{"app/version": "v2\n"})
	waitRebuilt(t, h, "app", 3, first, "/version", "v2\n")
}

// waitRebuilt waits for the n-th update of the Compose service name and
// checks that it replaced the container first with one whose file path
// holds want.
func waitRebuilt(t *testing.T, h *harness, name string, n int, first, path, want string) api.ResourceStatus {
	t.Helper()
	st := h.waitUpdates(name, n, 3*time.Minute)
	if st.ContainerID == first {
		t.Fatalf("update %d of %s kept the container %s: not rebuilt", n, name, first)
	}
	if got, _ := containerFile(t, st.ContainerID, path); got != want {
		t.Fatalf("%s = %q after the rebuild, want %q", path, got, want)
	}
	return st
}

// TestBaseImageBuiltFirst: a service's image is built FROM another image
// the Tiltfile builds (declared after it, and deployed by nothing): the base
// is built first and the service's image gets the base's built ref; a
// change to the base's context rebuilds the service's image.
func TestBaseImageBuiltFirst(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"base/Dockerfile": "FROM loop-test/busybox:latest\nCOPY greeting /greeting\n",
		"base/greeting":   "hello v1\n",
		"app/Dockerfile":  "FROM looptest/tiltbuild-base\nCMD [\"sleep\", \"3600\"]\n",
		"compose.yaml":    "services:\n  app:\n    image: looptest/tiltbuild-app\n",
		"Tiltfile": fmt.Sprintf(`
docker_build('looptest/tiltbuild-app', 'app', container_args=['sleep', '3601'])
docker_build('looptest/tiltbuild-base', 'base')
docker_compose('compose.yaml', project_name='%s')
`, projectName(t)),
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("app", 1, 3*time.Minute)
	if got, _ := containerFile(t, st.ContainerID, "/greeting"); got != "hello v1\n" {
		t.Fatalf("/greeting = %q, want the base image's file", got)
	}
	first := st.ContainerID
	writeFiles(t, dir, map[string]string{"base/greeting": "hello v2\n"})
	st = waitRebuilt(t, h, "app", 2, first, "/greeting", "hello v2\n")
	if !strings.HasPrefix(st.Image, "looptest/tiltbuild-app:loop-") {
		t.Errorf("image %s", st.Image)
	}
	insp, err := testenv.Docker(t).ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(insp.Config.Cmd, " "); got != "sleep 3601" {
		t.Errorf("command %q, want container_args= in place of the image's CMD", got)
	}
}

// TestDockerBuildWithRestartOnCompose: a Tiltfile loading
// ext://restart_process (no extensions directory: loop's built-in version)
// builds one image from the local busybox image (nothing is pulled) whose
// entrypoint runs under loop's agent supervisor; a synced change restarts the
// process in the same container, and the new process sees the change.
func TestDockerBuildWithRestartOnCompose(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":   "FROM loop-test/busybox:latest\nCOPY app /app\n",
		"app/msg":      "v1",
		"compose.yaml": "services:\n  svc:\n    image: looptest/restart-process\n",
		"Tiltfile": fmt.Sprintf(`
load('ext://restart_process', 'docker_build_with_restart')
docker_build_with_restart('looptest/restart-process', '.',
    entrypoint='echo "serving $(cat /app/msg)"; exec httpd -f -p 8080 -h /app',
    live_update=[sync('app', '/app')])
docker_compose('compose.yaml', project_name='%s')
`, projectName(t)),
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("svc", 1, 3*time.Minute)
	cli := testenv.Docker(t)
	before, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	pid1 := strings.TrimSpace(testenv.Exec(t, st.ContainerID, "pidof", "httpd"))
	logged := func(text string) func() bool { return h.logged("svc", text) }
	h.waitFor("the entrypoint's output", 30*time.Second, logged("serving v1"))

	writeFiles(t, dir, map[string]string{"app/msg": "v2"})
	st = h.waitUpdates("svc", 2, time.Minute)
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateLive || !hasSpan(u, "restart") {
		t.Fatalf("last update = %+v, want a live update with a restart", st.LastUpdate)
	}
	after, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID || after.State.StartedAt != before.State.StartedAt {
		t.Fatalf("the container was recreated or restarted, want only its process restarted")
	}
	if pid2 := strings.TrimSpace(testenv.Exec(t, st.ContainerID, "pidof", "httpd")); pid2 == "" || pid2 == pid1 {
		t.Errorf("httpd pid %q after the update, was %q: not restarted", pid2, pid1)
	}
	h.waitFor("the restarted process's output", 30*time.Second, logged("serving v2"))
}

// TestDockerBuildWithRestartExitContinue: exit_policy='continue' on Compose:
// the process exits on its own (a one-shot job), the container keeps
// running, and the next live update runs it again with the synced files.
func TestDockerBuildWithRestartExitContinue(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":   "FROM loop-test/busybox:latest\nCOPY app /app\n",
		"app/msg":      "v1",
		"compose.yaml": "services:\n  job:\n    image: looptest/restart-continue\n",
		"Tiltfile": fmt.Sprintf(`
load('ext://restart_process', 'docker_build_with_restart')
docker_build_with_restart('looptest/restart-continue', '.',
    entrypoint='echo "ran $(cat /app/msg)"; exit 3',
    live_update=[sync('app', '/app')], exit_policy='continue')
docker_compose('compose.yaml', project_name='%s')
`, projectName(t)),
	})
	h := startUp(t, dir, "up")
	logged := func(text string) func() bool { return h.logged("job", text) }
	h.waitFor("the first run's output and exit", time.Minute, func() bool { return logged("ran v1")() && logged("exited with code 3")() })
	st := h.waitUpdates("job", 1, time.Minute)
	cli := testenv.Docker(t)
	before, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if !before.State.Running {
		t.Fatalf("the container stopped with its process: %+v", before.State)
	}
	writeFiles(t, dir, map[string]string{"app/msg": "v2"})
	h.waitFor("the second run's output", time.Minute, logged("ran v2"))
	after, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID || after.State.StartedAt != before.State.StartedAt || !after.State.Running {
		t.Errorf("the container was recreated, restarted or stopped; want it kept, its process run again")
	}
}

// TestCustomBuildWithRestartTrigger: the built-in custom_build_with_restart
// with trigger=: a synced change that matches no trigger path is synced
// without a restart; one that matches restarts the process in place.
func TestCustomBuildWithRestartTrigger(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":      "FROM loop-test/busybox:latest\nCOPY app /app\n",
		"app/msg":         "v1",
		"app/restart.txt": "1",
		"compose.yaml":    "services:\n  svc:\n    image: looptest/custom-restart\n",
		"Tiltfile": fmt.Sprintf(`
load('ext://restart_process', 'custom_build_with_restart')
custom_build_with_restart('looptest/custom-restart', 'docker build -q --label %s=1 -t $EXPECTED_REF .', ['.'],
    entrypoint=['httpd', '-f', '-p', '8080', '-h', '/app'],
    live_update=[sync('app', '/app')], trigger=['app/restart.txt'])
docker_compose('compose.yaml', project_name='%s')
`, testenv.TestLabel, projectName(t)),
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("svc", 1, 3*time.Minute)
	id := st.ContainerID
	pid := func() string { return strings.TrimSpace(testenv.Exec(t, id, "pidof", "httpd")) }
	pid1 := pid()

	writeFiles(t, dir, map[string]string{"app/msg": "v2"})
	st = h.waitUpdates("svc", 2, time.Minute)
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateLive || hasSpan(u, "restart") || st.ContainerID != id {
		t.Fatalf("after a change outside trigger=: %+v, want a live update without a restart", st.LastUpdate)
	}
	if got, _ := containerFile(t, id, "/app/msg"); got != "v2" || pid() != pid1 {
		t.Fatalf("/app/msg = %q, httpd pid %s (was %s): want synced, same process", got, pid(), pid1)
	}

	writeFiles(t, dir, map[string]string{"app/restart.txt": "2"})
	st = h.waitUpdates("svc", 3, time.Minute)
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateLive || !hasSpan(u, "restart") || st.ContainerID != id {
		t.Fatalf("after a change to the trigger: %+v, want a live update with a restart", st.LastUpdate)
	}
	if p := pid(); p == "" || p == pid1 {
		t.Errorf("httpd pid %q after the trigger changed, was %q: not restarted", p, pid1)
	}
}
