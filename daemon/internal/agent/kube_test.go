package agent

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/internal/testenv"
)

// The test cluster's node is kwok: an exec into a pod of testenv.ExecNamespace runs on
// this machine as user nobody, so the files land in a directory made for the test.
func kubePod(t *testing.T, name string) (*Kube, PodContainer) {
	t.Helper()
	k, err := NewKube(testenv.KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.ExecPod(t, name, "loop/agent-test:1")
	return k, PodContainer{Namespace: p.Namespace, Pod: p.Name, Container: "app", UID: string(p.UID)}
}

func TestKubeSessionAppliesAndRuns(t *testing.T) {
	k, pc := kubePod(t, "agent-session")
	dir := testenv.ExecDir(t)
	ctx := ctxT(t)

	s, err := ConnectKube(ctx, k, pc)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer s.Close()
	bin, err := Binary("amd64")
	if err != nil {
		t.Fatal(err)
	}
	if s.ExeSHA256 != sha256Hex(bin) {
		t.Fatalf("agent runs sha256 %s, want the installed %s", s.ExeSHA256, sha256Hex(bin))
	}

	app := filepath.Join(dir, "app")
	if err := s.Apply(ctx, []string{app}, []Op{
		Write(filepath.Join(app, "src/main.txt"), 0o644, []byte("v1\n")),
		Write(filepath.Join(app, "gone.txt"), 0o644, []byte("x")),
	}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if err := s.Apply(ctx, []string{app}, []Op{Remove(filepath.Join(app, "gone.txt"))}); err != nil {
		t.Fatalf("apply remove: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(app, "src/main.txt"))
	if err != nil || string(got) != "v1\n" {
		t.Fatalf("synced file: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(app, "gone.txt")); !os.IsNotExist(err) {
		t.Fatalf("removed file still there: %v", err)
	}
	// Outside the roots: refused, nothing written.
	outside := filepath.Join(dir, "outside.txt")
	err = s.Apply(ctx, []string{app}, []Op{Write(outside, 0o644, []byte("no"))})
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("write outside the roots: got %v, want an ApplyError", err)
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Fatalf("write outside the roots landed: %v", err)
	}

	// A second session finds the agent installed and does not install again.
	before, err := os.Stat(filepath.Join(dir, "..", ".loop", "agent"))
	if err != nil {
		t.Fatalf("agent not in $TMPDIR/.loop: %v", err)
	}
	s2, err := ConnectKube(ctx, k, pc)
	if err != nil {
		t.Fatalf("second connect: %v", err)
	}
	s2.Close()
	after, err := os.Stat(filepath.Join(dir, "..", ".loop", "agent"))
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("agent reinstalled by a second connect: %v", err)
	}

	// Exec: output and exit codes come back. A kubelet reports a non-zero exit as
	// the exit code; kwok as an error naming it.
	var out bytes.Buffer
	code, err := k.Exec(ctx, pc, []string{"cat", filepath.Join(app, "src/main.txt")}, nil, &out, &out)
	if err != nil || code != 0 || out.String() != "v1\n" {
		t.Fatalf("exec: code %d, err %v, output %q; want 0 and v1", code, err, out.String())
	}
	code, err = k.Exec(ctx, pc, []string{"sh", "-c", "exit 3"}, nil, nil, nil)
	if code != 3 && (err == nil || !strings.Contains(err.Error(), "exit status 3")) {
		t.Fatalf("exec of exit 3: code %d, err %v", code, err)
	}

	// The session dies with its stream and says so.
	s.Close()
	if err := s.Ping(ctx); err == nil {
		t.Fatal("ping on a closed session succeeded")
	}
}

func TestKubeStartOutsideExecNamespaceFails(t *testing.T) {
	k, err := NewKube(testenv.KubeConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	// No such pod: the API server refuses the exec.
	_, err = ConnectKube(ctxT(t), k, PodContainer{Namespace: "default", Pod: "no-such-pod", Container: "app"})
	if err == nil || !strings.Contains(err.Error(), "no-such-pod") {
		t.Fatalf("connect to a missing pod: %v, want an error naming it", err)
	}
}
