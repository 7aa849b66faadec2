package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	// the exit code; kwok as an error naming it. kwok sometimes loses the output of
	// a command that exits at once (the stream closes before its last frames are
	// sent; seen in about one run in ten over WebSocket, one in three over SPDY), so
	// the output is checked over a few tries, the command's effect once.
	code, err := k.Exec(ctx, pc, []string{"cp", filepath.Join(app, "src/main.txt"), filepath.Join(dir, "copy.txt")}, nil, nil, nil)
	if got, _ := os.ReadFile(filepath.Join(dir, "copy.txt")); err != nil || code != 0 || string(got) != "v1\n" {
		t.Fatalf("exec of cp: code %d, err %v, copy %q; want 0 and v1", code, err, got)
	}
	var out bytes.Buffer
	for try := 0; try < 5 && out.String() != "v1\n"; try++ {
		out.Reset()
		if code, err = k.Exec(ctx, pc, []string{"cat", filepath.Join(app, "src/main.txt")}, nil, &out, &out); err != nil || code != 0 {
			t.Fatalf("exec of cat: code %d, err %v", code, err)
		}
	}
	if out.String() != "v1\n" {
		t.Fatalf("exec of cat: output %q in five tries, want v1", out.String())
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

// BenchmarkKubeSave delivers one saved file (2 KB) into a pod's container on the test
// cluster, two ways over the same Kubernetes exec API: loop's held agent session (one
// request per save), and one exec per save carrying the file, which is how Tilt's live
// update reaches a pod (kubectl-exec style `tar -x`; here `head -c` into the file,
// since the test cluster's kubelet does not pass the end of stdin on). Both write the
// same file as the same user; run with `make bench-kube`.
func BenchmarkKubeSave(b *testing.B) {
	k, err := NewKube(testenv.KubeConfig(b))
	if err != nil {
		b.Fatal(err)
	}
	p := testenv.ExecPod(b, "agent-bench", "loop/agent-test:1")
	pc := PodContainer{Namespace: p.Namespace, Pod: p.Name, Container: "app", UID: string(p.UID)}
	dir := testenv.ExecDir(b)
	data := bytes.Repeat([]byte("x"), 2048)
	file := filepath.Join(dir, "app", "main.go")
	ctx := context.Background()

	b.Run("agent-session", func(b *testing.B) {
		s, err := ConnectKube(ctx, k, pc)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		roots := []string{filepath.Join(dir, "app")}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := s.Apply(ctx, roots, []Op{Write(file, 0o644, data)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("exec-per-save", func(b *testing.B) {
		script := fmt.Sprintf(`mkdir -p %[1]s && head -c %[2]d > %[3]s.tmp && mv -f %[3]s.tmp %[3]s`, filepath.Dir(file), len(data), file)
		for i := 0; i < b.N; i++ {
			code, err := k.Exec(ctx, pc, []string{"sh", "-c", script}, bytes.NewReader(data), nil, nil)
			if err != nil || code != 0 {
				b.Fatalf("exec: %d, %v", code, err)
			}
		}
	})
}
