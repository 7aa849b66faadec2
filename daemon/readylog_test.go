package daemon_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestReadyLog: with ready_log, a service and a serve_cmd are ready when
// their output matches, not when their process starts, and the update's
// trace ends at that line.
func TestReadyLog(t *testing.T) {
	testenv.Busybox(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"compose.yaml": `services:
  slow:
    image: loop-test/busybox:latest
    command: ["sh", "-c", "echo booting; sleep 1.5; echo server is listening; exec sleep 1000"]
`,
		"Tiltfile": fmt.Sprintf(`
docker_compose('compose.yaml', project_name='%s')
dc_resource('slow', ready_log='is listening$')
local_resource('serve', serve_cmd='echo starting; sleep 1.5; echo accepting connections; exec sleep 1000',
    ready_log='accepting conn')
`, projectName(t)),
	})
	h := startUp(t, dir, "up")
	for _, name := range []string{"slow", "serve"} {
		h.waitFor(name+" ready", 2*time.Minute, func() bool {
			return h.status[name].Phase == api.PhaseReady
		})
		st := h.statusOf(name)
		u := st.LastUpdate
		if u == nil || u.Ready.IsZero() {
			t.Fatalf("%s is ready without a finished trace: %+v", name, st)
		}
		if took := u.Ready.Sub(u.Started); took < 1400*time.Millisecond {
			t.Fatalf("%s ready %s after its start: before its ready line (sleep 1.5s)", name, took)
		}
		// It was running, not ready, while it booted.
		h.mu.Lock()
		sawRunning := false
		for _, ev := range h.events {
			if ev.Kind == api.EventStatus && ev.Resource == name && ev.Status.Phase == api.PhaseRunning {
				sawRunning = true
			}
		}
		h.mu.Unlock()
		if !sawRunning {
			t.Fatalf("%s never reported running before ready", name)
		}
	}
}
