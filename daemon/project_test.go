package daemon_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/internal/testenv"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestBrokenTiltfileKeepsRunning: breaking the Tiltfile while up runs shows
// the error with path:line:col and leaves the containers running; fixing it
// resumes live updates.
func TestBrokenTiltfileKeepsRunning(t *testing.T) {
	dir := webProject(t, `sync('site', '/www')`)
	h := startUp(t, dir, "up")
	st := h.waitUpdates("web", 1, 2*time.Minute)
	good, err := os.ReadFile(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"Tiltfile": string(good) + "\nthis is not starlark(\n"})
	h.waitFor("a config error", 20*time.Second, func() bool { return len(h.configErrorsLocked()) > 0 })
	msg := h.configErrors()[0]
	if !regexp.MustCompile(`Tiltfile:\d+:\d+: `).MatchString(msg) {
		t.Fatalf("config error %q does not carry path:line:col", msg)
	}
	insp, err := testenv.Docker(t).ContainerInspect(context.Background(), st.ContainerID)
	if err != nil || !insp.State.Running {
		t.Fatalf("container stopped after a broken Tiltfile: %v", err)
	}
	// Fix it; a live update works again.
	writeFiles(t, dir, map[string]string{"Tiltfile": string(good)})
	writeFiles(t, dir, map[string]string{"site/index.html": "after fix\n"})
	eventually(t, 30*time.Second, func() error {
		if got, _ := containerFile(t, st.ContainerID, "/www/index.html"); got != "after fix\n" {
			return fmt.Errorf("/www/index.html = %q", got)
		}
		return nil
	})
}

func (h *harness) configErrorsLocked() []string {
	var out []string
	for _, ev := range h.events {
		if ev.Kind == "config" && ev.Text != "" {
			out = append(out, ev.Text)
		}
	}
	return out
}

// TestScratchImageLiveUpdate: an image with no shell, tar or rm gets writes
// and deletes through the sync agent.
func TestScratchImageLiveUpdate(t *testing.T) {
	bin := testenv.StaticBinary(t, "testdata/fileserver")
	dir := t.TempDir()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fileserver"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{
		"Dockerfile":      "FROM scratch\nCOPY fileserver /fileserver\nCOPY site /www\nENTRYPOINT [\"/fileserver\", \"/www\"]\n",
		"site/index.html": "scratch v1\n",
		"site/gone.txt":   "soon gone\n",
		"compose.yaml":    "services:\n  files:\n    image: looptest/scratch\n",
		"Tiltfile": fmt.Sprintf("docker_build('looptest/scratch', '.', live_update=[sync('site', '/www')])\n"+
			"docker_compose('compose.yaml', project_name='%s')\n", projectName(t)),
	})
	h := startUp(t, dir, "up")
	st := h.waitUpdates("files", 1, 2*time.Minute)
	ip := containerIP(t, st.ContainerID)
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ip + ":8080/" + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	writeFiles(t, dir, map[string]string{"site/index.html": "scratch v2\n"})
	eventually(t, 20*time.Second, func() error {
		if code, body := get("index.html"); code != 200 || body != "scratch v2\n" {
			return fmt.Errorf("GET index.html = %d %q", code, body)
		}
		return nil
	})
	if err := os.Remove(filepath.Join(dir, "site/gone.txt")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() error {
		if code, _ := get("gone.txt"); code != 404 {
			return fmt.Errorf("GET gone.txt = %d after delete, want 404", code)
		}
		return nil
	})
	if got := h.statusOf("files").ContainerID; got != st.ContainerID {
		t.Fatalf("container was recreated; want live updates only")
	}
}

func containerIP(t *testing.T, id string) string {
	t.Helper()
	insp, err := testenv.Docker(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range insp.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
	}
	t.Fatalf("container %s has no IP address", id)
	return ""
}

// TestComposeExample runs examples/compose: store becomes healthy before web
// starts, its published port is a link, develop.watch syncs, and compose's label
// queries find both.
func TestComposeExample(t *testing.T) {
	ensureExampleBase(t)
	dir := copyExample(t, "compose")
	h := startUp(t, dir, "up")
	web := h.waitUpdates("web", 1, 3*time.Minute)
	store := h.statusOf("store")
	// Published ports are links, as Tilt infers them.
	if l := web.Links; len(l) != 1 || l[0].URL != "http://127.0.0.1:8080/" {
		t.Fatalf("links of web = %+v, want its published port", l)
	}
	cli := testenv.Docker(t)
	ctx := context.Background()
	storeInsp, err := cli.ContainerInspect(ctx, store.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	webInsp, err := cli.ContainerInspect(ctx, web.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if storeInsp.State.Health == nil || storeInsp.State.Health.Status != "healthy" {
		t.Fatalf("store is not healthy: %+v", storeInsp.State.Health)
	}
	if webInsp.Created < storeInsp.State.StartedAt {
		t.Fatalf("web created (%s) before store started (%s)", webInsp.Created, storeInsp.State.StartedAt)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project=loop-compose"))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("compose label query found %d containers, want 2", len(list))
	}
	writeFiles(t, dir, map[string]string{"web/site/index.html": "edited\n"})
	eventually(t, 20*time.Second, func() error {
		if got, _ := containerFile(t, web.ContainerID, "/www/index.html"); got != "edited\n" {
			return fmt.Errorf("/www/index.html = %q", got)
		}
		return nil
	})
}

// TestCIFailureNamesResource: loop ci on a project whose command fails
// returns an error naming the resource.
func TestCIFailureNamesResource(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Tiltfile": "local_resource('fine', cmd='true')\nlocal_resource('broken', cmd='echo about to fail; exit 3')\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := daemon.CI(ctx, daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")})
	if !errors.Is(err, daemon.ErrResourceFailed) {
		t.Fatalf("ci error = %v, want a resource failure", err)
	}
	if !regexp.MustCompile(`broken`).MatchString(err.Error()) || !regexp.MustCompile(`3`).MatchString(err.Error()) {
		t.Fatalf("ci error %q does not name the resource and exit code", err)
	}
}

// TestCIExamples: loop ci on examples/local, compose, hello and kubernetes (its pod
// on the test cluster's real node, serving the example's page) exits 0.
func TestCIExamples(t *testing.T) {
	ensureExampleBase(t)
	kubeClient(t)
	for _, ex := range []string{"local", "compose", "hello", "kubernetes"} {
		t.Run(ex, func(t *testing.T) {
			dir := copyExample(t, ex)
			var ns string
			if ex == "kubernetes" {
				testenv.RealNode(t)
				ns = realNamespace(t, clientset(t), "loop-ci-example")
				exampleOnRealNode(t, dir, ns)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			tf := filepath.Join(dir, "Tiltfile")
			t.Cleanup(func() {
				_ = daemon.Down(context.Background(), daemon.Options{Tiltfile: tf}, true)
			})
			if err := daemon.CI(ctx, daemon.Options{Tiltfile: tf}); err != nil {
				t.Fatalf("ci on examples/%s: %v", ex, err)
			}
			if ex == "kubernetes" {
				// ci is done once the pod is ready: it serves the example's page.
				page, err := os.ReadFile(filepath.Join(dir, "web/site/index.html"))
				if err != nil {
					t.Fatal(err)
				}
				pods := podsOf(t, clientset(t), ns, "app=web")
				if len(pods) != 1 {
					t.Fatalf("pods of the example after ci: %d, want 1", len(pods))
				}
				got, err := execIn(t, ns, pods[0].Name, "web", "wget", "-qO-", "http://127.0.0.1:8080/")
				if err != nil || got != string(page) {
					t.Fatalf("the example's pod serves %q (%v), want web/site/index.html %q", got, err, page)
				}
			}
		})
	}
}
