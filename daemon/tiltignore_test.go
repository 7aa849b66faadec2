package daemon_test

import (
	"fmt"
	"testing"
	"time"
)

// TestTiltIgnoreEditedWhileUp: .tiltignore is read once per config load,
// and editing it while up runs takes effect for the next changes.
func TestTiltIgnoreEditedWhileUp(t *testing.T) {
	dir := webProject(t, `sync('site', '/www')`)
	h := startUp(t, dir, "up")
	st := h.waitUpdates("web", 1, 2*time.Minute)
	loads := h.configLoads()
	writeFiles(t, dir, map[string]string{".tiltignore": "site/private.txt\n"})
	// The engine applies a load before it handles later file events, so the
	// changes below meet the new rules once this load is reported.
	h.waitFor("the reload that reads .tiltignore", time.Minute, func() bool {
		return len(h.configLoadsLocked()) > len(loads)
	})
	if ev := h.configLoads()[len(loads)]; ev.Text != "" {
		t.Fatalf("reload after .tiltignore: %s", ev.Text)
	}
	syncsAllBut(t, dir, st.ContainerID, ".tiltignore")
}

// TestDockerignoreEditedWhileUp: an image's .dockerignore edited while up runs
// applies to the next changes, as Tilt does (the definition is the same, but the
// rules it read changed).
func TestDockerignoreEditedWhileUp(t *testing.T) {
	dir := webProject(t, `sync('site', '/www')`)
	h := startUp(t, dir, "up")
	h.waitUpdates("web", 1, 2*time.Minute)
	// .dockerignore is in the build context: the edit rebuilds (and reloads).
	writeFiles(t, dir, map[string]string{".dockerignore": "site/private.txt\n"})
	st := h.waitUpdates("web", 2, 2*time.Minute)
	syncsAllBut(t, dir, st.ContainerID, ".dockerignore")
}

// syncsAllBut saves site/private.txt, which the ignore file (named by which) now
// names, then site/public.txt: the public one must reach the container, the private
// one not. The public one, saved second, is the barrier: once it is synced, the
// engine has handled the private one's event.
func syncsAllBut(t *testing.T, dir, containerID, which string) {
	t.Helper()
	writeFiles(t, dir, map[string]string{"site/private.txt": "keep out\n"})
	writeFiles(t, dir, map[string]string{"site/public.txt": "hello\n"})
	eventually(t, 20*time.Second, func() error {
		if got, _ := containerFile(t, containerID, "/www/public.txt"); got != "hello\n" {
			return fmt.Errorf("/www/public.txt = %q", got)
		}
		return nil
	})
	if got, ok := containerFile(t, containerID, "/www/private.txt"); ok {
		t.Fatalf("a file %s names reached the container: %q", which, got)
	}
}
