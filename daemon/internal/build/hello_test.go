package build

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestBuildHelloExample builds examples/hello's image the way its Tiltfile
// does: the local_resource's command compiles the binary on the host (its
// output redirected into a temporary copy of the context, so the test leaves
// the tree alone), then docker_build with only=['build/'] makes the FROM
// scratch image. The container must answer HTTP with the example's message.
func TestBuildHelloExample(t *testing.T) {
	ex, err := filepath.Abs("../../../examples/hello")
	if err != nil {
		t.Fatal(err)
	}
	tiltfile, err := os.ReadFile(filepath.Join(ex, "Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`cmd='([^']*-o build/hello[^']*)'`).FindSubmatch(tiltfile)
	if m == nil {
		t.Fatal("examples/hello/Tiltfile: no local_resource cmd writing build/hello")
	}
	src, err := os.ReadFile(filepath.Join(ex, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	msg := regexp.MustCompile(`const message = "([^"]*)"`).FindSubmatch(src)
	if msg == nil {
		t.Fatal("examples/hello/main.go: no message constant")
	}

	dir := t.TempDir()
	for _, f := range []string{"Dockerfile", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(ex, f))
		if err != nil {
			t.Fatal(err)
		}
		writeTree(t, dir, map[string]string{f: string(b)})
	}
	cmdline := strings.Replace(string(m[1]), "-o build/hello", "-o "+filepath.Join(dir, "build", "hello"), 1)
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = ex
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmdline, err, out)
	}

	img := &model.Image{Ref: "loop-example/hello", Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Only: []string{"build/"}}
	res, _ := build(t, newBuilder(t), img)
	if res.ContextFiles != 1 {
		t.Errorf("context has %d files, want just build/hello", res.ContextFiles)
	}
	id := testenv.RunContainer(t, &container.Config{Image: res.Ref}, nil)
	insp, err := testenv.Docker(t).ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var ip string
	if n, ok := insp.NetworkSettings.Networks["bridge"]; ok {
		ip = n.IPAddress
	}
	if ip == "" {
		t.Fatal("container has no bridge IP")
	}
	body := getUntilReady(t, "http://"+ip+":8000/")
	if want := string(msg[1]) + "\n"; body != want {
		t.Errorf("GET / = %q, want %q", body, want)
	}
}

// getUntilReady polls url until the server answers (it needs a moment to
// start listening) and returns the body.
func getUntilReady(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", url, err)
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %s", url, resp.Status)
			}
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
