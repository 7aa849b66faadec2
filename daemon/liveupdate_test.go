package daemon_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

const webDockerfile = `FROM loop-test/busybox:latest
COPY site /www
COPY other.txt /other.txt
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
`

func webProject(t *testing.T, liveUpdate string) string {
	t.Helper()
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":       webDockerfile,
		"site/index.html":  "v1\n",
		"site/old.html":    "old\n",
		"site/a.txt":       "a\n",
		"other.txt":        "other v1\n",
		"fallback.txt":     "fb v1\n",
		"ignored/junk.txt": "junk\n",
		"compose.yaml": `services:
  web:
    image: looptest/web
`,
		"Tiltfile": fmt.Sprintf(`
docker_build('looptest/web', '.', ignore=['ignored/'], live_update=[%s])
docker_compose('compose.yaml', project_name='%s')
`, liveUpdate, projectName(t)),
	})
	return dir
}

// TestLiveUpdateSyncs covers the fast path end to end on the real engine:
// writes, deletes, renames and new directories reach the running container
// without a rebuild; a run step fires only on its trigger; files outside
// every sync and fall_back_on paths rebuild.
func TestLiveUpdateSyncs(t *testing.T) {
	dir := webProject(t, `
    fall_back_on(['fallback.txt']),
    sync('site', '/www'),
    run('echo ran >> /tmp/ran', trigger=['site/trigger.txt']),
`)
	h := startUp(t, dir, "up")
	st := h.waitUpdates("web", 1, 2*time.Minute)
	id := st.ContainerID
	if id == "" {
		t.Fatalf("web has no container after start: %+v", st)
	}
	expectFile := func(path, want string) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			got, ok := containerFile(t, id, path)
			if !ok || got != want {
				return fmt.Errorf("%s in container = %q (exists %v), want %q", path, got, ok, want)
			}
			return nil
		})
	}
	expectGone := func(path string) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			if got, ok := containerFile(t, id, path); ok {
				return fmt.Errorf("%s still in container: %q", path, got)
			}
			return nil
		})
	}

	// Edit.
	writeFiles(t, dir, map[string]string{"site/index.html": "v2\n"})
	expectFile("/www/index.html", "v2\n")
	// Delete.
	if err := os.Remove(filepath.Join(dir, "site/old.html")); err != nil {
		t.Fatal(err)
	}
	expectGone("/www/old.html")
	// Rename.
	if err := os.Rename(filepath.Join(dir, "site/a.txt"), filepath.Join(dir, "site/b.txt")); err != nil {
		t.Fatal(err)
	}
	expectFile("/www/b.txt", "a\n")
	expectGone("/www/a.txt")
	// New directory with files, created faster than a watch could be added.
	writeFiles(t, dir, map[string]string{"site/sub/deeper/one.txt": "1\n", "site/sub/two.txt": "2\n"})
	expectFile("/www/sub/deeper/one.txt", "1\n")
	expectFile("/www/sub/two.txt", "2\n")
	// An ignored path changes nothing.
	writeFiles(t, dir, map[string]string{"ignored/junk.txt": "more junk\n"})

	// Every update so far was live, in the same container.
	h.waitFor("web idle", 10*time.Second, func() bool { return h.status["web"].Phase == api.PhaseReady && h.status["web"].PendingFiles == 0 })
	if got := h.statusOf("web").ContainerID; got != id {
		t.Fatalf("container changed during live updates: %s -> %s", id, got)
	}
	h.mu.Lock()
	for _, u := range h.updates("web")[1:] {
		if u.Kind != api.UpdateLive {
			t.Errorf("update %+v is %s, want live", u, u.Kind)
		}
	}
	h.mu.Unlock()

	// run() fires only when its trigger changes.
	if out, code := testenv.ExecCode(t, id, "cat", "/tmp/ran"); code == 0 {
		t.Fatalf("run step ran without its trigger: %q", out)
	}
	writeFiles(t, dir, map[string]string{"site/trigger.txt": "go\n"})
	eventually(t, 20*time.Second, func() error {
		out, _ := testenv.ExecCode(t, id, "cat", "/tmp/ran")
		if out != "ran\n" {
			return fmt.Errorf("/tmp/ran = %q, want one run", out)
		}
		return nil
	})

	// A file under no sync rebuilds: new image, new container.
	n := len(h.updatesLocked("web"))
	writeFiles(t, dir, map[string]string{"other.txt": "other v2\n"})
	st = h.waitUpdates("web", n+1, 2*time.Minute)
	if st.ContainerID == id {
		t.Fatalf("a change outside every sync did not recreate the container")
	}
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateRebuild {
		t.Fatalf("last update = %+v, want a rebuild", st.LastUpdate)
	}
	if got, _ := containerFile(t, st.ContainerID, "/other.txt"); got != "other v2\n" {
		t.Fatalf("/other.txt after rebuild = %q", got)
	}
	// The rebuilt container still has the live-updated files (they are in the new image).
	if got, _ := containerFile(t, st.ContainerID, "/www/index.html"); got != "v2\n" {
		t.Fatalf("/www/index.html after rebuild = %q", got)
	}

	// fall_back_on rebuilds even though nothing in the image changes.
	id2 := st.ContainerID
	n = len(h.updatesLocked("web"))
	writeFiles(t, dir, map[string]string{"fallback.txt": "fb v2\n"})
	st = h.waitUpdates("web", n+1, 2*time.Minute)
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateRebuild {
		t.Fatalf("fall_back_on change gave %+v, want a rebuild", st.LastUpdate)
	}
	_ = id2
}

func (h *harness) updatesLocked(name string) []api.Update {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.updates(name)
}

// TestLiveUpdateRestartContainer: restart_container() restarts the
// service's process after the sync, not its container (the process runs
// under the sync agent's supervisor); the new process serves the synced
// file, its output still reaches the resource's log, and docker stop still
// stops it with SIGTERM.
func TestLiveUpdateRestartContainer(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": `FROM loop-test/busybox:latest
COPY site /www
CMD ["sh", "-c", "echo \"serving $(cat /www/index.html)\"; exec httpd -f -p 8080 -h /www"]
`,
		"site/index.html": "v1",
		"compose.yaml":    "services:\n  web:\n    image: looptest/web-restart\n",
		"Tiltfile": fmt.Sprintf(`
docker_build('looptest/web-restart', '.', live_update=[sync('site', '/www'), restart_container()])
docker_compose('compose.yaml', project_name='%s')
`, projectName(t)),
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("web", 1, 2*time.Minute)
	cli := testenv.Docker(t)
	before, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	pid1 := strings.TrimSpace(testenv.Exec(t, st.ContainerID, "pidof", "httpd"))
	writeFiles(t, dir, map[string]string{"site/index.html": "restarted"})
	st = h.waitUpdates("web", 2, time.Minute)
	after, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if st.ContainerID != before.ID {
		t.Fatalf("restart_container recreated the container instead of restarting it")
	}
	if after.State.StartedAt != before.State.StartedAt {
		t.Errorf("the container was restarted (StartedAt %s, was %s), want only its process", after.State.StartedAt, before.State.StartedAt)
	}
	if pid2 := strings.TrimSpace(testenv.Exec(t, st.ContainerID, "pidof", "httpd")); pid2 == "" || pid2 == pid1 {
		t.Errorf("httpd pid %q after the update, was %q: not restarted", pid2, pid1)
	}
	if got, _ := containerFile(t, st.ContainerID, "/www/index.html"); got != "restarted" {
		t.Fatalf("/www/index.html = %q", got)
	}
	if u := st.LastUpdate; u == nil || u.Kind != api.UpdateLive || !hasSpan(u, "restart") {
		t.Fatalf("last update = %+v, want live with a restart span", st.LastUpdate)
	}
	// The new process's output streams into the resource's log.
	h.waitFor("the restarted process's output in the log", 20*time.Second, func() bool {
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == "web" && strings.Contains(ev.Text, "serving restarted") {
				return true
			}
		}
		return false
	})
	timeout := 30
	if err := cli.ContainerStop(context.Background(), st.ContainerID, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	if insp, err := cli.ContainerInspect(context.Background(), st.ContainerID); err != nil || insp.State.ExitCode != 128+15 {
		t.Errorf("exit code after docker stop = %d (%v), want 143: httpd ended by the forwarded SIGTERM", insp.State.ExitCode, err)
	}
}

// TestLiveUpdateRestartScratchBinary: a FROM scratch service whose binary
// is synced and restart_container()'d runs the new binary in a new process
// of the same container.
func TestLiveUpdateRestartScratchBinary(t *testing.T) {
	bin, err := os.ReadFile(testenv.StaticBinary(t, filepath.Join("internal", "liveupdate", "testdata", "whoami")))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":   "FROM scratch\nCOPY bin/whoami /app/whoami\nENTRYPOINT [\"/app/whoami\"]\n",
		"compose.yaml": "services:\n  who:\n    image: looptest/whoami\n",
		"Tiltfile": fmt.Sprintf(`
docker_build('looptest/whoami', '.', live_update=[sync('bin/whoami', '/app/whoami'), restart_container()])
docker_compose('compose.yaml', project_name='%s')
`, projectName(t)),
	})
	writeExecutable(t, filepath.Join(dir, "bin", "whoami"), bin)
	h := startUp(t, dir, "up")
	st := h.waitUpdates("who", 1, 2*time.Minute)
	cli := testenv.Docker(t)
	before, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addrOf(t, st.ContainerID) + ":8080/"
	first := httpBody(t, url)
	bin2 := append(append([]byte{}, bin...), "v2"...)
	writeExecutable(t, filepath.Join(dir, "bin", "whoami"), bin2)
	want := fmt.Sprintf("exe %x\n", sha256.Sum256(bin2))
	eventually(t, time.Minute, func() error {
		if got := httpBody(t, url); !strings.HasSuffix(got, want) {
			return fmt.Errorf("whoami says %q, want %q", got, want)
		}
		return nil
	})
	if second := httpBody(t, url); strings.Fields(second)[1] == strings.Fields(first)[1] {
		t.Errorf("same pid before and after: %q, %q", first, second)
	}
	after, err := cli.ContainerInspect(context.Background(), st.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if after.ID != before.ID || after.State.StartedAt != before.State.StartedAt {
		t.Errorf("the container was recreated or restarted")
	}
}

// writeExecutable replaces p atomically with an executable file, as a
// compiler's output lands.
func writeExecutable(t *testing.T, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// httpBody GETs url; "" while the server does not answer.
func httpBody(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
}

func hasSpan(u *api.Update, name api.SpanName) bool {
	for _, s := range u.Spans {
		if s.Name == name {
			return true
		}
	}
	return false
}

// TestBurstOfWrites: 1,000 files written at once produce one or two
// updates, and the container's tree equals the host's.
func TestBurstOfWrites(t *testing.T) {
	dir := webProject(t, `sync('site', '/www')`)
	h := startUp(t, dir, "up")
	h.waitUpdates("web", 1, 2*time.Minute)
	st := h.statusOf("web")
	files := map[string]string{}
	for i := 0; i < 1000; i++ {
		files[fmt.Sprintf("site/burst/d%02d/f%04d.txt", i%10, i)] = fmt.Sprintf("content %d\n", i)
	}
	writeFiles(t, dir, files)
	eventually(t, time.Minute, func() error {
		out, _ := testenv.ExecCode(t, st.ContainerID, "sh", "-c", "find /www/burst -type f | wc -l")
		if strings.TrimSpace(out) != "1000" {
			return fmt.Errorf("container has %s burst files, want 1000", strings.TrimSpace(out))
		}
		return nil
	})
	h.waitFor("web idle", 10*time.Second, func() bool { return h.status["web"].Phase == api.PhaseReady && h.status["web"].PendingFiles == 0 })
	ups := h.updatesLocked("web")[1:]
	if len(ups) < 1 || len(ups) > 2 {
		t.Fatalf("1,000 writes gave %d updates, want 1 or 2", len(ups))
	}
	// Compare content: the container's checksums equal the host's.
	out := testenv.Exec(t, st.ContainerID, "sh", "-c", "cd /www/burst && find . -type f | sort | xargs md5sum")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1000 {
		t.Fatalf("md5sum listed %d files", len(lines))
	}
	for _, l := range lines {
		f := strings.Fields(l)
		rel := strings.TrimPrefix(f[1], "./")
		want := files["site/burst/"+rel]
		if md5hex(want) != f[0] {
			t.Fatalf("%s differs in the container", rel)
		}
	}
}

// TestNewRunStartsFromSources: a container left by an earlier `loop up` may
// hold live-updated files the sources no longer have; the next run must not
// reuse it as is.
func TestNewRunStartsFromSources(t *testing.T) {
	dir := webProject(t, `sync('site', '/www')`)
	h := startUp(t, dir, "up")
	st := h.waitUpdates("web", 1, 2*time.Minute)
	writeFiles(t, dir, map[string]string{"site/index.html": "live edit\n"})
	eventually(t, 20*time.Second, func() error {
		if got, _ := containerFile(t, st.ContainerID, "/www/index.html"); got != "live edit\n" {
			return fmt.Errorf("/www/index.html = %q", got)
		}
		return nil
	})
	h.stop()
	// While loop is stopped the file goes back to what the image was built from.
	writeFiles(t, dir, map[string]string{"site/index.html": "v1\n"})
	h2 := startUp(t, dir, "up")
	st2 := h2.waitUpdates("web", 1, 2*time.Minute)
	if got, _ := containerFile(t, st2.ContainerID, "/www/index.html"); got != "v1\n" {
		t.Fatalf("second run serves %q, want the sources' %q", got, "v1\n")
	}
}
