package liveupdate

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// runSupervised creates a container whose command runs under the agent's
// supervisor, as compose.Supervise makes it, installs the agent before the
// start (the entrypoint needs it) and starts it.
func runSupervised(t testing.TB, cfg *container.Config) string {
	t.Helper()
	cli := testenv.Docker(t)
	ctx := testCtx(t)
	cfg.Entrypoint = append(agent.Supervisor(), cfg.Entrypoint...)
	cfg.Labels = map[string]string{testenv.TestLabel: "1"}
	created, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := agent.Install(ctx, cli, created.ID); err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

func inspectC(t testing.TB, id string) container.InspectResponse {
	t.Helper()
	c, err := testenv.Docker(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func containerLogs(t testing.TB, id string) string {
	t.Helper()
	rc, err := testenv.Docker(t).ContainerLogs(testCtx(t), id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// stop stops the container with a long timeout and returns its exit code: a
// forwarded SIGTERM ends it with the application's code, a lost one would
// end it with 137 after the timeout.
func stop(t testing.TB, id string) int {
	t.Helper()
	timeout := 30
	if err := testenv.Docker(t).ContainerStop(testCtx(t), id, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	return inspectC(t, id).State.ExitCode
}

// httpdPid waits for httpd to run in container id with a pid other than
// not (the shell that starts it execs it a moment after it starts) and
// returns the pid, "" when none came within 10 s.
func httpdPid(t *testing.T, id, not string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, code := testenv.ExecCode(t, id, "pidof", "httpd")
		if pid := strings.TrimSpace(out); code == 0 && pid != not {
			return pid
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRestartProcessBusybox: restart_container() in a supervised container
// restarts httpd, not the container, over the same agent session; the new
// process sees the synced file; docker stop still stops it with SIGTERM.
func TestRestartProcessBusybox(t *testing.T) {
	t.Parallel()
	id := runSupervised(t, &container.Config{Image: testenv.Busybox(t), Cmd: []string{"sh", "-c",
		`echo "start $$ $(cat /www/msg 2>/dev/null)"; exec httpd -f -p 8080 -h /www`}})
	before := inspectC(t, id)
	pid1 := httpdPid(t, id, "")
	if pid1 == "" {
		t.Fatalf("httpd does not run; logs: %q", containerLogs(t, id))
	}
	s := newSyncer(t, id, &model.LiveUpdate{Restart: true})
	s.write("msg", "v2", 0o644)
	res := s.mustApply("msg")
	sess := s.tgt.sess
	pid2 := httpdPid(t, id, pid1)
	if !res.Restarted || pid2 == "" || pid2 == pid1 {
		t.Fatalf("httpd pid %q before, %q after the update (result %+v)", pid1, pid2, res)
	}
	after := inspectC(t, id)
	if after.State.StartedAt != before.State.StartedAt || !after.State.Running {
		t.Errorf("the container restarted (StartedAt %s, was %s)", after.State.StartedAt, before.State.StartedAt)
	}
	if _, body := get(t, containerIP(t, id), "/msg"); body != "v2" {
		t.Errorf("GET /msg = %q", body)
	}
	if logs := containerLogs(t, id); !strings.Contains(logs, "start "+pid1+" \n") || !strings.Contains(logs, "start "+pid2+" v2\n") {
		t.Errorf("container logs = %q, want both starts", logs)
	}
	// A second restart goes through the same session: it survived.
	s.write("msg", "v3", 0o644)
	s.mustApply("msg")
	if s.tgt.sess != sess || sess == nil {
		t.Errorf("the agent session was replaced by the restart")
	}
	if strings.Contains(s.logs.String(), "restarting the container") {
		t.Errorf("fell back to a container restart: %s", s.logs.String())
	}
	if code := stop(t, id); code != 128+15 {
		t.Errorf("exit code after docker stop = %d, want 143 (httpd killed by the forwarded SIGTERM)", code)
	}
}

// TestRestartProcessScratch: in a FROM scratch image, a synced binary is
// what runs after restart_container(), in the same container.
func TestRestartProcessScratch(t *testing.T) {
	t.Parallel()
	bin, err := os.ReadFile(testenv.StaticBinary(t, filepath.Join("testdata", "whoami")))
	if err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("loop-test/liveupdate-whoami:%d", time.Now().UnixNano())
	testenv.BuildImage(t, ref, map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY whoami /www/whoami\nENTRYPOINT [\"/www/whoami\"]\n"),
		"whoami":     bin,
	})
	id := runSupervised(t, &container.Config{Image: ref, Entrypoint: []string{"/www/whoami"}})
	before := inspectC(t, id)
	ip := containerIP(t, id)
	_, first := get(t, ip, "/")
	if want := fmt.Sprintf("exe %x\n", sha256.Sum256(bin)); !strings.HasSuffix(first, want) {
		t.Fatalf("whoami says %q, want the image's binary", first)
	}
	// A different binary: the same program with bytes appended still runs.
	bin2 := append(append([]byte{}, bin...), "loop v2"...)
	s := newSyncer(t, id, &model.LiveUpdate{Restart: true})
	s.write("whoami", string(bin2), 0o755)
	s.mustApply("whoami")
	_, second := get(t, ip, "/")
	if want := fmt.Sprintf("exe %x\n", sha256.Sum256(bin2)); !strings.HasSuffix(second, want) || second == first {
		t.Errorf("after the update whoami says %q, want a new process running the synced binary (%s)", second, want)
	}
	if after := inspectC(t, id); after.State.StartedAt != before.State.StartedAt {
		t.Errorf("the container restarted")
	}
	if code := stop(t, id); code != 0 {
		t.Errorf("exit code after docker stop = %d, want whoami's 0", code)
	}
	if logs := containerLogs(t, id); strings.Count(logs, "whoami: serving") != 2 || !strings.Contains(logs, "whoami: stopping") {
		t.Errorf("container logs = %q", logs)
	}
}

// TestSupervisedExitCodeIsTheContainers: a command exiting on its own ends
// the container with its code.
func TestSupervisedExitCodeIsTheContainers(t *testing.T) {
	t.Parallel()
	id := runSupervised(t, &container.Config{Image: testenv.Busybox(t), Cmd: []string{"sh", "-c", "echo bye; exit 3"}})
	waitC, errC := testenv.Docker(t).ContainerWait(testCtx(t), id, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 3 {
			t.Errorf("container exited %d, want 3", w.StatusCode)
		}
	case err := <-errC:
		t.Fatal(err)
	}
	if logs := containerLogs(t, id); logs != "bye\n" {
		t.Errorf("logs = %q", logs)
	}
}
