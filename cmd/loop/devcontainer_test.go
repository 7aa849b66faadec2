package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/loop-dev/loop/devcontainer"
	"github.com/loop-dev/loop/internal/testenv"
)

// examples/devcontainer by its README: `loop devcontainer up --up` creates
// the container and starts loop inside it; the services it starts answer on
// the host's ports; a save on the host is live-updated into the service;
// `loop devcontainer down` removes the container and what loop started.
func TestExampleDevcontainerEndToEnd(t *testing.T) {
	ctx := context.Background()
	cli := testenv.Docker(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	// loop runs inside a busybox container: it must be static Linux.
	bin := testenv.StaticBinary(t, filepath.Join("..", "loop"))
	ws := t.TempDir()
	copyDir(t, filepath.Join("..", "..", "examples", "devcontainer"), ws)
	const project = "loop-devcontainer-example"
	projectContainers := func() []container.Summary {
		list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.compose.project="+project))})
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	t.Cleanup(func() { // what a failed run leaves
		_, _, _ = runBin(t, bin, ws, "devcontainer", "down", "--workspace-folder", ws)
		for _, c := range projectContainers() {
			_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
		}
	})

	out, errOut, code := runBin(t, bin, ws, "devcontainer", "up", "--up", "--workspace-folder", ws)
	if code != 0 || !strings.Contains(out, "in the background") {
		t.Fatalf("loop devcontainer up --up: exit %d\n%s%s", code, out, errOut)
	}
	// loop inside answered before up returned; the services follow.
	site := waitBody(t, "http://127.0.0.1:8081/", "through a bind mount")
	if want, _ := os.ReadFile(filepath.Join(ws, "site", "index.html")); site != string(want) {
		t.Errorf("site serves %q, want the workspace's site/index.html", site)
	}
	waitBody(t, "http://127.0.0.1:8082/", "built by loop inside the dev container")
	out, errOut, code = runBin(t, bin, ws, "devcontainer", "exec", "--workspace-folder", ws, "--", devcontainer.LoopPath, "status")
	if code != 0 || !strings.Contains(out, "app") || !strings.Contains(out, "ready") {
		t.Errorf("loop status inside the dev container: exit %d\n%s%s", code, out, errOut)
	}

	// The edit reaches the service through loop's live update (the app's
	// files are in its image, not mounted).
	if err := os.WriteFile(filepath.Join(ws, "app", "www", "index.html"), []byte("<h1>edited on the host</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitBody(t, "http://127.0.0.1:8082/", "edited on the host")
	before := projectContainers()
	if len(before) != 2 {
		t.Errorf("%d containers of %s, want site and app", len(before), project)
	}

	out, errOut, code = runBin(t, bin, ws, "devcontainer", "down", "--workspace-folder", ws)
	if code != 0 || !strings.Contains(out, "removed 1 dev container") || !strings.Contains(out+errOut, "stopped the loop daemon") {
		t.Fatalf("loop devcontainer down: exit %d\n%s%s", code, out, errOut)
	}
	if left := projectContainers(); len(left) != 0 {
		t.Errorf("after loop devcontainer down, %d containers of %s are left", len(left), project)
	}
}

// waitBody polls url until its body contains want, and returns the body.
func waitBody(t *testing.T, url, want string) string {
	t.Helper()
	var body string
	waitFor(t, 90*time.Second, url+" to serve "+want, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, want)
	})
	return body
}
