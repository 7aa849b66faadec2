package daemon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// Security rules, each tested so that the test fails if the rule goes.
// Covered elsewhere (and listed in docs/reliability.md): the TCP listener's
// loopback-only check and token (daemon/client TestTCPListenerNeedsLoopbackAndToken),
// build contexts refusing symlinks out (daemon/internal/build), the sync
// agent refusing paths outside its roots (cmd/loop-agent TestRefusesEscapes,
// daemon/internal/agent TestAgentRefusesEscapes).

// listeningTCP returns the inodes of the TCP sockets this process listens on.
func listeningTCP(t *testing.T) map[string]bool {
	t.Helper()
	listening := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue // no IPv6
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 9 && fields[3] == "0A" { // TCP_LISTEN
				listening[fields[9]] = true
			}
		}
		_ = fh.Close()
	}
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		inode := strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")
		if listening[inode] {
			mine[inode] = true
		}
	}
	return mine
}

func localProject(t *testing.T, tiltfile string) string {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"Tiltfile": tiltfile})
	return dir
}

// TestSecuritySocketPrivateNoTCPByDefault: the API socket is 0600 in a 0700
// state directory, and serving the API opens no TCP listener unless asked.
func TestSecuritySocketPrivateNoTCPByDefault(t *testing.T) {
	t.Setenv("LOOP_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	dir := localProject(t, "local_resource('noop', cmd='true')\n")
	before := listeningTCP(t)
	d := daemon.New(daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, daemon.ServeOptions{Ready: func(s string) { ready <- s }}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	}()
	var sock string
	select {
	case sock = <-ready:
	case err := <-done:
		t.Fatalf("serve ended before it was ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the API was not ready within a minute")
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket %s mode = %v, want a 0600 socket", sock, fi.Mode())
	}
	di, err := os.Stat(filepath.Dir(sock))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("state directory %s mode = %v, want 0700", filepath.Dir(sock), di.Mode().Perm())
	}
	for inode := range listeningTCP(t) {
		if !before[inode] {
			t.Errorf("serving the API opened a TCP listener (socket inode %s) although none was asked for", inode)
		}
	}
}

// TestSecurityTCPListenerLoopbackOnly: asking for a non-loopback address is
// refused before anything listens.
func TestSecurityTCPListenerLoopbackOnly(t *testing.T) {
	t.Setenv("LOOP_STATE_DIR", filepath.Join(t.TempDir(), "state"))
	dir := localProject(t, "local_resource('noop', cmd='true')\n")
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", ":0"} {
		d := daemon.New(daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile")})
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := d.Serve(ctx, daemon.ServeOptions{Listen: addr})
		cancel()
		if err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("serve on %s: err = %v, want a loopback-only refusal", addr, err)
		}
	}
}

// TestSecuritySecretsMasked: values of *_TOKEN, *_PASSWORD, *_SECRET and of
// names given to secret_settings(names=) never reach logs or statuses.
func TestSecuritySecretsMasked(t *testing.T) {
	secrets := map[string]string{
		"MY_API_TOKEN":   "tok-4f1c9e2d",
		"DB_PASSWORD":    "hunter2-long",
		"app_secret":     "s3cr3t-value",
		"CUSTOM_KEY":     "custom-7788",
		"LOOPTEST_PLAIN": "plain-visible",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	dir := localProject(t, `
secret_settings(names=['CUSTOM_KEY'])
local_resource('leaky', cmd='echo token=$MY_API_TOKEN pw=$DB_PASSWORD s=$app_secret c=$CUSTOM_KEY p=$LOOPTEST_PLAIN l=$LOCAL_TOKEN')
local_resource('failing', cmd='echo failing with $DB_PASSWORD >&2; exit 3')
`+"local_resource('envd', cmd='echo local=$LOCAL_TOKEN', env={'LOCAL_TOKEN': 'from-tiltfile-99'})\n")
	h := startUp(t, dir, "up")
	h.waitFor("leaky's output", time.Minute, func() bool {
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == "leaky" && strings.Contains(ev.Text, "p=plain-visible") {
				return true
			}
		}
		return false
	})
	h.waitFor("envd's output and failing's error", time.Minute, func() bool {
		seen := false
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && ev.Resource == "envd" && strings.HasPrefix(ev.Text, "local=") {
				seen = true
			}
		}
		return seen && h.status["failing"].Phase == api.PhaseError
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	leaked := map[string]bool{}
	masked := 0
	for _, ev := range h.events {
		texts := []string{ev.Text}
		if ev.Status != nil {
			texts = append(texts, ev.Status.Error)
			if ev.Status.LastUpdate != nil {
				texts = append(texts, ev.Status.LastUpdate.Error)
			}
		}
		for _, text := range texts {
			for name, v := range secrets {
				if name != "LOOPTEST_PLAIN" && strings.Contains(text, v) {
					leaked[fmt.Sprintf("%s in %q", name, text)] = true
				}
			}
			if strings.Contains(text, "from-tiltfile-99") {
				leaked[fmt.Sprintf("local_resource env LOCAL_TOKEN in %q", text)] = true
			}
			masked += strings.Count(text, "********")
		}
	}
	for l := range leaked {
		t.Errorf("secret leaked: %s", l)
	}
	if masked < 5 {
		t.Errorf("%d masked values in the events, want at least 5 (token, password, secret, custom, local)", masked)
	}
}

// TestSecuritySymlinkOutOfSyncNeverSent: a link in a synced directory that
// points outside it is refused end to end; its target never reaches the
// container and the error names the link.
func TestSecuritySymlinkOutOfSyncNeverSent(t *testing.T) {
	dir := nolossProject(t)
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"id_rsa": "PRIVATE KEY MATERIAL\n"})
	h := startUp(t, dir, "up")
	id := h.waitUpdates("app", 1, 2*time.Minute).ContainerID
	src := filepath.Join(dir, "src")
	if err := os.Symlink(filepath.Join(outside, "id_rsa"), filepath.Join(src, "key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(src, "keys")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the escape to be refused", time.Minute, func() bool {
		for _, ev := range h.events {
			if ev.Kind == api.EventLog && strings.Contains(ev.Text, "refuse to sync") {
				return true
			}
		}
		return false
	})
	out, _ := testenv.ExecCode(t, id, "sh", "-c", "grep -rs 'PRIVATE KEY' /app; ls -la /app")
	if strings.Contains(out, "PRIVATE KEY MATERIAL") {
		t.Fatalf("a file outside the sync reached the container:\n%s", out)
	}
	for _, p := range []string{"/app/key", "/app/keys"} {
		if _, code := testenv.ExecCode(t, id, "test", "-e", p); code == 0 {
			t.Errorf("%s exists in the container; a link pointing out must not be sent", p)
		}
	}
}
