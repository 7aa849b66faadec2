package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/loop-dev/loop/daemon/internal/agent/agentbuild"
	"github.com/loop-dev/loop/internal/testenv"
)

func TestMain(m *testing.M) {
	// client-go reports a closed exec stream's goroutines through klog; the tests
	// check what the sessions return.
	klog.SetLogger(logr.Discard())
	cleanup, err := agentbuild.TestDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// busybox runs an httpd busybox container; Init lets SIGTERM stop it quickly.
func busybox(t *testing.T) string {
	t.Helper()
	img := testenv.Busybox(t)
	return testenv.RunContainer(t, &container.Config{Image: img, Cmd: []string{"httpd", "-f", "-p", "8080", "-h", "/www"}},
		&container.HostConfig{Init: boolPtr(true)})
}

func boolPtr(b bool) *bool { return &b }

func connect(t *testing.T, id string) *Session {
	t.Helper()
	s, err := Connect(ctxT(t), testenv.Docker(t), id)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestBinary(t *testing.T) {
	b, err := Binary(runtime.GOARCH)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x7fELF")) {
		t.Errorf("agent for %s is not an ELF binary", runtime.GOARCH)
	}
	if _, err := Binary("s390x"); !errors.Is(err, ErrNoBinary) {
		t.Errorf("Binary(s390x) = %v, want ErrNoBinary", err)
	}
	// The committed agents are embedded: a clean checkout's go build has them.
	t.Setenv(DirEnv, "")
	if got := Arches(); !slices.Equal(got, []string{"amd64", "arm64"}) {
		t.Errorf("embedded agents for %v, want amd64 and arm64", got)
	}
	for _, arch := range []string{"amd64", "x86_64", "arm64", "aarch64"} {
		if b, err := Binary(arch); err != nil || !bytes.HasPrefix(b, []byte("\x7fELF")) {
			t.Errorf("embedded agent for %s: %v (ELF: %v)", arch, err, bytes.HasPrefix(b, []byte("\x7fELF")))
		}
	}
	_, err = Binary("riscv64")
	if !errors.Is(err, ErrNoBinary) || !strings.Contains(err.Error(), "amd64, arm64") || !strings.Contains(err.Error(), DirEnv) {
		t.Errorf("embedded miss = %v, want ErrNoBinary naming the embedded arches and $%s", err, DirEnv)
	}
}

func TestApplyListAndCat(t *testing.T) {
	t.Parallel()
	id := busybox(t)
	s := connect(t, id)
	ctx := ctxT(t)
	ops := []Op{
		Write("/www/index.html", 0o644, []byte("hello")),
		Write("/www/sub/deep/run.sh", 0o755, []byte("#!/bin/sh\necho hi\n")),
		Mkdir("/www/empty", 0o700),
		Symlink("/www/link.html", "index.html"),
	}
	if err := s.Apply(ctx, []string{"/www"}, ops); err != nil {
		t.Fatal(err)
	}
	if got := testenv.Exec(t, id, "cat", "/www/index.html"); got != "hello" {
		t.Errorf("cat index.html = %q", got)
	}
	if got := testenv.Exec(t, id, "/www/sub/deep/run.sh"); got != "hi\n" {
		t.Errorf("run.sh printed %q", got)
	}
	entries, err := s.List(ctx, "/www")
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]Entry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	if e := byPath["/www/index.html"]; e.SHA256 != sha256.Sum256([]byte("hello")) || e.Mode != 0o644 {
		t.Errorf("index.html entry = %+v", e)
	}
	if e := byPath["/www/sub/deep/run.sh"]; e.Mode != 0o755 {
		t.Errorf("run.sh mode = %v", e.Mode)
	}
	if e := byPath["/www/empty"]; !e.Mode.IsDir() || e.Mode.Perm() != 0o700 {
		t.Errorf("empty dir entry = %+v", e)
	}
	if e := byPath["/www/link.html"]; e.LinkTarget != "index.html" {
		t.Errorf("link entry = %+v", e)
	}

	if err := s.Apply(ctx, []string{"/www"}, []Op{Remove("/www/sub"), Remove("/www/never-existed")}); err != nil {
		t.Fatal(err)
	}
	if out, code := testenv.ExecCode(t, id, "ls", "/www/sub"); code == 0 {
		t.Errorf("/www/sub still there: %s", out)
	}
}

// TestAgentRefusesEscapes sends requests loop itself would never send, to
// prove the agent's own checks inside a real container.
func TestAgentRefusesEscapes(t *testing.T) {
	t.Parallel()
	id := busybox(t)
	testenv.Exec(t, id, "mkdir", "-p", "/app")
	testenv.Exec(t, id, "ln", "-s", "/etc", "/app/etc")
	passwd := testenv.Exec(t, id, "cat", "/etc/passwd")
	s := connect(t, id)
	ops := []Op{
		Write("/etc/passwd", 0o644, []byte("owned")),        // outside the roots
		Write("/app/../etc/passwd", 0o644, []byte("owned")), // .. in the path
		Write("app/x", 0o644, []byte("x")),                  // relative
		Write("/app/etc/passwd", 0o644, []byte("owned")),    // parent is a symlink out
		Remove("/app/etc/passwd"),
		Mkdir("/app/etc/evil", 0o755),
		Symlink("/app/shadow", "/etc/shadow"),
		Symlink("/app/up", "../etc"),
		Write("/app/ok", 0o644, []byte("ok")), // the one legitimate op
	}
	err := s.Apply(ctxT(t), []string{"/app"}, ops)
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("apply = %v, want *ApplyError", err)
	}
	if len(ae.Errors) != len(ops)-1 {
		t.Errorf("%d refusals, want %d: %v", len(ae.Errors), len(ops)-1, ae)
	}
	for i, oe := range ae.Errors {
		if oe.Index != i {
			t.Errorf("refusal %d names op %d", i, oe.Index)
		}
	}
	if got := testenv.Exec(t, id, "cat", "/etc/passwd"); got != passwd {
		t.Errorf("/etc/passwd changed to %q", got)
	}
	if out, code := testenv.ExecCode(t, id, "ls", "/etc/evil", "/app/shadow", "/app/up"); code == 0 {
		t.Errorf("refused entries exist: %s", out)
	}
	if got := testenv.Exec(t, id, "cat", "/app/ok"); got != "ok" {
		t.Errorf("legitimate op: /app/ok = %q", got)
	}
}

func TestInstallBeforeStart(t *testing.T) {
	t.Parallel()
	cli := testenv.Docker(t)
	ctx := ctxT(t)
	created, err := cli.ContainerCreate(ctx, &container.Config{
		Image: testenv.Busybox(t), Cmd: []string{"sleep", "600"},
		Labels: map[string]string{testenv.TestLabel: "1"},
	}, &container.HostConfig{Init: boolPtr(true)}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	})
	if err := Install(ctx, cli, created.ID); err != nil {
		t.Fatalf("install into created container: %v", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := Start(ctx, cli, created.ID)
	if err != nil {
		t.Fatalf("start installed agent: %v", err)
	}
	defer s.Close()
	bin, _ := Binary(runtime.GOARCH)
	if s.ExeSHA256 != sha256Hex(bin) {
		t.Errorf("agent reports sha %s, want the installed binary's", s.ExeSHA256)
	}
}

func TestStartWithoutAgentIsNotInstalled(t *testing.T) {
	t.Parallel()
	id := busybox(t)
	_, err := Start(ctxT(t), testenv.Docker(t), id)
	if !errors.Is(err, ErrNotInstalled) {
		t.Fatalf("start = %v, want ErrNotInstalled", err)
	}
	t.Logf("start without agent: %v", err)
}

func TestConnectReplacesStaleAgent(t *testing.T) {
	t.Parallel()
	id := busybox(t)
	cli := testenv.Docker(t)
	ctx := ctxT(t)
	// Something else sits at the agent's path: an older, incompatible agent.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	script := []byte("#!/bin/sh\necho old agent\nexit 3\n")
	_ = tw.WriteHeader(&tar.Header{Name: ".loop/agent", Mode: 0o755, Size: int64(len(script))})
	_, _ = tw.Write(script)
	_ = tw.Close()
	if err := cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatal(err)
	}
	s := connect(t, id)
	if err := s.Apply(ctx, []string{"/www"}, []Op{Write("/www/a", 0o644, []byte("a"))}); err != nil {
		t.Fatal(err)
	}
	if got := testenv.Exec(t, id, "cat", "/www/a"); got != "a" {
		t.Errorf("/www/a = %q", got)
	}
	// A second Connect finds the current agent and does not reinstall.
	testenv.Exec(t, id, "touch", "-d", "2000-01-01 00:00:00", Path)
	before := testenv.Exec(t, id, "stat", "-c", "%Y", Path)
	connect(t, id)
	if got := testenv.Exec(t, id, "stat", "-c", "%Y", Path); got != before {
		t.Errorf("agent reinstalled although current (mtime %s, was %s)", got, before)
	}
}

func TestSessionDiesWithRestartAndConcurrentUse(t *testing.T) {
	t.Parallel()
	id := busybox(t)
	s := connect(t, id)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/www/c%d", i)
			errs[i] = s.Apply(ctx, []string{"/www"}, []Op{Write(p, 0o644, []byte(p))})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent apply %d: %v", i, err)
		}
	}
	if got := testenv.Exec(t, id, "cat", "/www/c7"); got != "/www/c7" {
		t.Errorf("/www/c7 = %q", got)
	}
	timeout := 5
	if err := testenv.Docker(t).ContainerRestart(ctx, id, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}
	err := s.Apply(ctx, []string{"/www"}, []Op{Write("/www/after", 0o644, nil)})
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("apply after restart = %v, want ErrClosed", err)
	}
	s2 := connect(t, id)
	if err := s2.Apply(ctx, []string{"/www"}, []Op{Write("/www/after", 0o644, []byte("x"))}); err != nil {
		t.Fatalf("apply on new session: %v", err)
	}
}

func TestCancelledBeforeSendKeepsSession(t *testing.T) {
	t.Parallel()
	id := busybox(t)
	s := connect(t, id)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Ping(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		t.Fatalf("ping with cancelled ctx = %v, want context.Canceled only", err)
	}
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping after = %v", err)
	}
	s.Close()
	if err := s.Ping(ctxT(t)); !errors.Is(err, ErrClosed) {
		t.Fatalf("ping after close = %v, want ErrClosed", err)
	}
}
