package liveupdate

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/internal/agent/agentbuild"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

func TestMain(m *testing.M) {
	cleanup, err := agentbuild.TestDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func boolPtr(b bool) *bool { return &b }

// runHTTPD runs busybox httpd serving /www; Init forwards SIGTERM so a
// restart does not wait for the kill timeout.
func runHTTPD(t testing.TB) string {
	t.Helper()
	return testenv.RunContainer(t, &container.Config{Image: testenv.Busybox(t), Cmd: []string{"httpd", "-f", "-p", "8080", "-h", "/www"}},
		&container.HostConfig{Init: boolPtr(true)})
}

// runScratch runs a FROM scratch image holding only a static file server.
func runScratch(t testing.TB) string {
	t.Helper()
	bin, err := os.ReadFile(testenv.StaticBinary(t, filepath.Join("testdata", "fileserver")))
	if err != nil {
		t.Fatal(err)
	}
	ref := fmt.Sprintf("loop-test/liveupdate-scratch:%d", time.Now().UnixNano())
	testenv.BuildImage(t, ref, map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY fileserver /fileserver\nENTRYPOINT [\"/fileserver\"]\n"),
		"fileserver": bin,
	})
	return testenv.RunContainer(t, &container.Config{Image: ref}, &container.HostConfig{})
}

func containerIP(t testing.TB, id string) string {
	t.Helper()
	c, err := testenv.Docker(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
	}
	t.Fatalf("container %s has no IP address", id)
	return ""
}

// get fetches http://ip:8080/p, retrying while the server starts.
func get(t testing.TB, ip, p string) (int, string) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var resp *http.Response
		resp, err = http.Get("http://" + ip + ":8080" + p)
		if err != nil {
			continue
		}
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			err = rerr
			continue
		}
		return resp.StatusCode, string(b)
	}
	t.Fatalf("GET %s: %v", p, err)
	return 0, ""
}

// syncer applies host changes in src to a container at /www as the engine
// would: Plan, then Apply through a DockerTarget.
type syncer struct {
	t    *testing.T
	src  string
	lu   *model.LiveUpdate
	tgt  *DockerTarget
	logs bytes.Buffer
}

func newSyncer(t *testing.T, id string, lu *model.LiveUpdate) *syncer {
	src := t.TempDir()
	if lu == nil {
		lu = &model.LiveUpdate{}
	}
	lu.Syncs = append(lu.Syncs, model.Sync{LocalPath: src, ContainerPath: "/www"})
	s := &syncer{t: t, src: src, lu: lu, tgt: NewDockerTarget(testenv.Docker(t), id)}
	t.Cleanup(s.tgt.Close)
	return s
}

func (s *syncer) path(rel string) string { return filepath.Join(s.src, filepath.FromSlash(rel)) }

func (s *syncer) write(rel, content string, mode os.FileMode) {
	s.t.Helper()
	write(s.t, s.path(rel), content, mode)
}

func (s *syncer) remove(rel string) {
	s.t.Helper()
	if err := os.RemoveAll(s.path(rel)); err != nil {
		s.t.Fatal(err)
	}
}

// apply plans and applies changes to the given relative paths.
func (s *syncer) apply(rels ...string) (Result, error) {
	s.t.Helper()
	var cs []Change
	for _, r := range rels {
		cs = append(cs, Change{Path: s.path(r)})
	}
	d, err := Plan(s.lu, cs)
	if err != nil {
		s.t.Fatal(err)
	}
	if d.Update == nil {
		s.t.Fatalf("plan %v: %+v, want an update", rels, d)
	}
	return Apply(testCtx(s.t), s.tgt, *d.Update, &s.logs)
}

func (s *syncer) mustApply(rels ...string) Result {
	s.t.Helper()
	res, err := s.apply(rels...)
	if err != nil {
		s.t.Fatalf("apply %v: %v\nlogs:\n%s", rels, err, s.logs.String())
	}
	return res
}

// assertTree compares the host tree with the container's /www through the
// agent's List: same paths, types, modes, contents and link targets.
func assertTree(t *testing.T, id, src string) {
	t.Helper()
	sess, err := agent.Connect(testCtx(t), testenv.Docker(t), id)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	entries, err := sess.List(testCtx(t), "/www")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		if e.Path != "/www" {
			got[strings.TrimPrefix(e.Path, "/www/")] = fmt.Sprintf("%v %x %s", e.Mode, e.SHA256, e.LinkTarget)
		}
	}
	want := map[string]string{}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var sum [32]byte
		link := ""
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum = sha256.Sum256(b)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		rel, _ := filepath.Rel(src, p)
		want[filepath.ToSlash(rel)] = fmt.Sprintf("%v %x %s", fi.Mode(), sum, link)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("/www/%s in container: %q, host has %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("/www/%s in container, not on host", p)
		}
	}
}

// exercise runs the same edits against any container serving /www on 8080.
func exercise(t *testing.T, id string, s *syncer) {
	ip := containerIP(t, id)
	s.write("page.html", "v1", 0o644)
	s.mustApply("page.html")
	if code, body := get(t, ip, "/page.html"); code != 200 || body != "v1" {
		t.Fatalf("after write: %d %q", code, body)
	}
	s.write("page.html", "v2", 0o644)
	s.mustApply("page.html")
	if _, body := get(t, ip, "/page.html"); body != "v2" {
		t.Fatalf("after rewrite: %q", body)
	}

	// Rename: the old name goes, the new one comes.
	if err := os.Rename(s.path("page.html"), s.path("renamed.html")); err != nil {
		t.Fatal(err)
	}
	s.mustApply("page.html", "renamed.html")
	if code, _ := get(t, ip, "/page.html"); code != 404 {
		t.Errorf("old name after rename: %d, want 404", code)
	}
	if _, body := get(t, ip, "/renamed.html"); body != "v2" {
		t.Errorf("new name after rename: %q", body)
	}

	// A new directory with files, a script with exec bits, an empty dir
	// and a link inside the sync.
	s.write("assets/css/site.css", "body{}", 0o644)
	s.write("assets/js/app.js", "go()", 0o600)
	s.write("bin/run.sh", "#!/bin/sh\necho ran\n", 0o755)
	if err := os.MkdirAll(s.path("assets/empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("renamed.html", s.path("alias.html")); err != nil {
		t.Fatal(err)
	}
	s.mustApply("assets", "bin/run.sh", "alias.html")
	if _, body := get(t, ip, "/assets/css/site.css"); body != "body{}" {
		t.Errorf("new dir file: %q", body)
	}
	if _, body := get(t, ip, "/alias.html"); body != "v2" {
		t.Errorf("through link: %q", body)
	}
	assertTree(t, id, s.src)

	// Deleting a directory deletes it all.
	s.remove("assets")
	s.mustApply("assets")
	if code, _ := get(t, ip, "/assets/css/site.css"); code != 404 {
		t.Errorf("after deleting the directory: %d, want 404", code)
	}
	assertTree(t, id, s.src)
}

func TestBusyboxThroughAgent(t *testing.T) {
	t.Parallel()
	id := runHTTPD(t)
	s := newSyncer(t, id, nil)
	exercise(t, id, s)
	if got := testenv.Exec(t, id, "/www/bin/run.sh"); got != "ran\n" {
		t.Errorf("synced script printed %q", got)
	}
	if strings.Contains(s.logs.String(), "not using the sync agent") {
		t.Errorf("fell back: %s", s.logs.String())
	}
}

func TestScratchImageThroughAgent(t *testing.T) {
	t.Parallel()
	id := runScratch(t)
	s := newSyncer(t, id, nil)
	exercise(t, id, s)
	if strings.Contains(s.logs.String(), "not using the sync agent") {
		t.Errorf("fell back: %s", s.logs.String())
	}
}

func TestFallbackWithoutAgent(t *testing.T) {
	t.Parallel()
	id := runHTTPD(t)
	s := newSyncer(t, id, nil)
	s.tgt.NoAgent = true
	ip := containerIP(t, id)
	s.write("page.html", "v1", 0o644)
	s.write("dir/a.txt", "a", 0o600)
	s.write("dir/run.sh", "#!/bin/sh\necho fallback\n", 0o755)
	s.mustApply("page.html", "dir")
	if _, body := get(t, ip, "/page.html"); body != "v1" {
		t.Errorf("write: %q", body)
	}
	if got := testenv.Exec(t, id, "/www/dir/run.sh"); got != "fallback\n" {
		t.Errorf("script printed %q", got)
	}
	if got := testenv.Exec(t, id, "stat", "-c", "%a", "/www/dir/a.txt"); got != "600\n" {
		t.Errorf("a.txt mode %q, want 600", got)
	}
	s.remove("page.html")
	s.mustApply("page.html")
	if code, _ := get(t, ip, "/page.html"); code != 404 {
		t.Errorf("after delete: %d, want 404", code)
	}
	if n := strings.Count(s.logs.String(), "not using the sync agent"); n != 1 {
		t.Errorf("fallback reported %d times, want once:\n%s", n, s.logs.String())
	}
	if out, code := testenv.ExecCode(t, id, "ls", "/.loop/agent"); code == 0 {
		t.Errorf("agent installed although disabled: %s", out)
	}
}

// TestFallbackWhenNoBinary runs without an agent for the container's
// architecture: the update still lands, and the logs say why.
func TestFallbackWhenNoBinary(t *testing.T) {
	t.Setenv(agent.DirEnv, t.TempDir())
	id := runHTTPD(t)
	s := newSyncer(t, id, nil)
	s.write("a.txt", "a", 0o644)
	s.mustApply("a.txt")
	if got := testenv.Exec(t, id, "cat", "/www/a.txt"); got != "a" {
		t.Errorf("a.txt = %q", got)
	}
	if !strings.Contains(s.logs.String(), "no sync agent binary") {
		t.Errorf("logs do not say why: %q", s.logs.String())
	}
}

func TestEscapesRefused(t *testing.T) {
	t.Parallel()
	id := runHTTPD(t)
	s := newSyncer(t, id, nil)
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret"), "secret", 0o644)
	if err := os.Symlink(filepath.Join(outside, "secret"), s.path("leak")); err != nil {
		t.Fatal(err)
	}
	s.write("fine.txt", "fine", 0o644)
	_, err := s.apply("fine.txt", "leak")
	var esc *EscapeError
	if !errors.As(err, &esc) || esc.Path != s.path("leak") {
		t.Fatalf("apply = %v, want EscapeError for %s", err, s.path("leak"))
	}
	if out, code := testenv.ExecCode(t, id, "ls", "/www/leak", "/www/fine.txt"); code == 0 {
		t.Errorf("files arrived from a refused batch: %s", out)
	}
	// A container path outside the sync's, as a buggy caller could build.
	u := Update{Files: []FileSync{{LocalPath: s.path("fine.txt"), ContainerPath: "/etc/passwd", Sync: s.lu.Syncs[0]}}}
	if _, err := Apply(testCtx(t), s.tgt, u, nil); err == nil || !strings.Contains(err.Error(), "outside /www") {
		t.Errorf("container escape = %v, want refusal", err)
	}
	if got := testenv.Exec(t, id, "cat", "/etc/passwd"); strings.Contains(got, "fine") {
		t.Error("/etc/passwd was overwritten")
	}
}

func TestRunTriggersAndFailures(t *testing.T) {
	t.Parallel()
	id := runHTTPD(t)
	s := newSyncer(t, id, &model.LiveUpdate{})
	s.lu.Runs = []model.Run{
		{Cmd: model.Cmd{Argv: []string{"sh", "-c", "echo txt >> /tmp/runs"}, Shell: true}, Triggers: []string{s.src + "/**/*.txt"}},
		{Cmd: model.Cmd{Argv: []string{"sh", "-c", "echo any >> /tmp/runs; echo to-logs"}, Shell: true}},
	}
	s.write("a.go", "a", 0o644)
	s.mustApply("a.go")
	s.write("b.txt", "b", 0o644)
	res := s.mustApply("b.txt")
	if got := testenv.Exec(t, id, "cat", "/tmp/runs"); got != "any\ntxt\nany\n" {
		t.Errorf("runs log = %q, want the trigger to fire only for b.txt", got)
	}
	if res.Ran != 2 {
		t.Errorf("ran %d steps, want 2", res.Ran)
	}
	if !strings.Contains(s.logs.String(), "to-logs") {
		t.Errorf("run output missing from logs: %q", s.logs.String())
	}
	s.lu.Runs = []model.Run{{Cmd: model.Cmd{Argv: []string{"/bin/false"}}}}
	_, err := s.apply("a.go")
	var re *RunError
	if !errors.As(err, &re) || re.ExitCode != 1 || !strings.Contains(err.Error(), "/bin/false") {
		t.Errorf("failing run = %v, want RunError naming /bin/false with exit code 1", err)
	}
}

func TestRestartContainerThenReconnect(t *testing.T) {
	t.Parallel()
	id := runHTTPD(t)
	cli := testenv.Docker(t)
	started := func() string {
		c, err := cli.ContainerInspect(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return c.State.StartedAt
	}
	s := newSyncer(t, id, &model.LiveUpdate{Restart: true})
	timeout := 5
	s.tgt.RestartTimeout = &timeout
	before := started()
	s.write("a.txt", "a", 0o644)
	res := s.mustApply("a.txt")
	if !res.Restarted || started() == before {
		t.Fatalf("container not restarted (result %+v, StartedAt %s)", res, started())
	}
	if n := strings.Count(s.logs.String(), "not created with loop's process supervisor"); n != 1 {
		t.Errorf("the container-restart fallback was explained %d times, want once: %s", n, s.logs.String())
	}
	if got := testenv.Exec(t, id, "cat", "/www/a.txt"); got != "a" {
		t.Errorf("a.txt after restart = %q", got)
	}
	// The next update reconnects to a fresh agent (the old one died with
	// the restart) and does not fall back.
	s.lu.Restart = false
	s.write("b.txt", "b", 0o644)
	s.mustApply("b.txt")
	if got := testenv.Exec(t, id, "cat", "/www/b.txt"); got != "b" {
		t.Errorf("b.txt = %q", got)
	}
	if strings.Contains(s.logs.String(), "not using the sync agent") {
		t.Errorf("fell back after restart: %s", s.logs.String())
	}
	// A restart behind loop's back breaks the held stream; the next Sync
	// notices ErrClosed, reconnects and resends.
	if err := cli.ContainerRestart(testCtx(t), id, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	s.write("c.txt", "c", 0o644)
	s.mustApply("c.txt")
	if got := testenv.Exec(t, id, "cat", path.Join("/www", "c.txt")); got != "c" {
		t.Errorf("c.txt after external restart = %q", got)
	}
}
