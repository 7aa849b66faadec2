//go:build linux

package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestFaultDockerdRestart stops the Docker engine under a running `up` and
// starts it again. The engine is a private dockerd (the machine's shared one
// must keep running for the other packages); live-restore is off, so the
// container stops with it. While the engine is down a change must fail with
// an error naming the engine; once it is back, the next change must bring
// the resource ready with a running container whose tree equals the host's,
// the changes made while the engine was down included.
func TestFaultDockerdRestart(t *testing.T) {
	// nolossProject caches testenv's client of the shared engine before
	// DOCKER_HOST changes (that client is per process).
	dir := nolossProject(t)
	// No network: the private engine has no bridge, and a project network
	// would be a second bridge on the host beside the shared engine's.
	writeFiles(t, dir, map[string]string{
		"compose.yaml": "services:\n  app:\n    image: looptest/noloss\n    init: true\n    network_mode: none\n",
	})
	engine := testenv.StartDockerd(t)
	cli := engine.Client()
	testenv.BusyboxOn(t, cli, testenv.BusyboxRef)
	t.Setenv("DOCKER_HOST", engine.Host)

	h := startUp(t, dir, "up")
	first := h.waitUpdates("app", 1, time.Minute).ContainerID
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string]string{"one.txt": "1\n"})
	h.waitSyncedOn(t, cli, src)

	start := time.Now()
	engine.Stop()
	t.Logf("private dockerd stopped in %s", time.Since(start).Round(time.Millisecond))
	// A new file, a new directory and a deletion while the engine is down.
	writeFiles(t, src, map[string]string{"two.txt": "2\n", "down/three.txt": "3\n"})
	if err := os.Remove(filepath.Join(src, "seed.txt")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("an error while the engine is down", 30*time.Second, func() bool {
		return h.status["app"].Phase == api.PhaseError
	})
	msg := h.statusOf("app").Error
	sock := strings.TrimPrefix(engine.Host, "unix://")
	if !strings.Contains(msg, sock) {
		t.Errorf("error while the engine is down does not name its socket %s: %q", sock, msg)
	}
	t.Logf("error shown while the engine was down: %s", msg)

	start = time.Now()
	engine.Start()
	t.Logf("private dockerd answered again after %s", time.Since(start).Round(time.Millisecond))
	insp, err := cli.ContainerInspect(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if insp.State.Running {
		t.Fatalf("container %s still runs after the engine restarted with live-restore off: the fault did not happen", first[:12])
	}
	writeFiles(t, src, map[string]string{"four.txt": "4\n"})
	h.waitFor("app ready after the engine came back", time.Minute, func() bool {
		s := h.status["app"]
		return s.Phase == api.PhaseReady && s.PendingFiles == 0
	})
	h.waitSyncedOn(t, cli, src)
	id := h.statusOf("app").ContainerID
	insp, err = cli.ContainerInspect(context.Background(), id)
	if err != nil || !insp.State.Running {
		t.Fatalf("container after recovery: running=%v, err=%v", err == nil && insp.State.Running, err)
	}
	h.mu.Lock()
	var kinds []string
	for _, u := range h.updates("app") {
		kinds = append(kinds, string(u.Kind))
	}
	h.mu.Unlock()
	t.Logf("container after recovery: %s (before the restart: %s); updates: %s", id[:12], first[:12], strings.Join(kinds, ", "))
}

// waitSyncedOn is waitSynced for a container of the engine cli talks to
// (compareTrees uses testenv's client of the shared engine).
func (h *harness) waitSyncedOn(t *testing.T, cli *client.Client, root string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(400 * time.Millisecond) // as settleAndCompare: the last events reached loop
		h.waitFor("app idle", time.Minute, func() bool {
			s := h.status["app"]
			return s.PendingFiles == 0 && (s.Phase == api.PhaseReady || s.Phase == api.PhaseError)
		})
		st := h.statusOf("app")
		diff := "app is in error: " + st.Error
		if st.Phase != api.PhaseError {
			diff = compareTreesOn(cli, st.ContainerID, root)
		}
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container tree differs from the host:\n%s", diff)
		}
	}
}
