package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/internal/testenv"
)

// binarySize is about what a small Go service's binary weighs.
const binarySize = 7 << 20

// binaryLike returns n bytes that compress about as a Go binary does: runs
// of zeros and repeated code-like words between random stretches.
func binaryLike(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 0, n)
	for len(b) < n {
		switch r.IntN(4) {
		case 0:
			b = append(b, make([]byte, r.IntN(256))...)
		case 1:
			w := []byte{0x48, 0x8b, 0x44, 0x24, byte(r.IntN(256))}
			for range r.IntN(32) {
				b = append(b, w...)
			}
		default:
			for range r.IntN(512) {
				b = append(b, byte(r.Uint32()))
			}
		}
	}
	return b[:n]
}

// BenchmarkTransfer7MB puts a 7 MB file into a busybox container two ways
// over the same kind of held Docker exec stream, side by side in one run:
// "raw" writes the bytes into `head -c N > file` run in a loop by a shell
// and waits for its "ok" (the stream's floor: no framing, no agent), and
// "agent" is the sync agent's Apply of one write op (atomically replaced,
// acknowledged). Run with
// `go test -run '^$' -bench Transfer7MB -benchtime 20x ./daemon/internal/agent/`.
func BenchmarkTransfer7MB(b *testing.B) {
	id := testenv.RunContainer(b, &container.Config{Image: testenv.Busybox(b), Cmd: []string{"sleep", "3600"}}, nil)
	data := binaryLike(binarySize)
	ctx := context.Background()

	for _, raw := range []struct{ name, of string }{{"raw-discard", "/dev/null"}, {"raw-file", "/www/raw"}} {
		b.Run(raw.name, func(b *testing.B) { benchRawStream(b, id, raw.of, data) })
	}

	b.Run("agent", func(b *testing.B) {
		s, err := Connect(ctx, testenv.Docker(b), id)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		roots := []string{"/www"}
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for range b.N {
			if err := s.Apply(ctx, roots, []Op{Write("/www/app", 0o755, data)}); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		got := testenv.Exec(b, id, "md5sum", "/www/app")
		if want := fmt.Sprintf("%x", md5.Sum(data)); !bytes.HasPrefix([]byte(got), []byte(want)) {
			b.Fatalf("md5sum in container %q, want %s", got, want)
		}
	})
}

// benchRawStream writes data into a held exec of a shell loop that copies
// exactly len(data) bytes from its stdin to of with 1 MB reads (dd) and
// answers "ok" after each copy.
func benchRawStream(b *testing.B, id, of string, data []byte) {
	ctx := context.Background()
	cli := testenv.Docker(b)
	script := fmt.Sprintf(`mkdir -p /www; while dd bs=1M count=%d iflag=fullblock,count_bytes of=%s 2>/dev/null; do echo ok; done`, len(data), of)
	ex, err := cli.ContainerExecCreate(ctx, id, container.ExecOptions{
		Cmd: []string{"sh", "-c", script}, AttachStdin: true, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	hj, err := cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer hj.Close()
	out := &output{}
	out.r = &demux{r: hj.Reader, other: out}
	ack := bufio.NewReader(out)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := hj.Conn.Write(data); err != nil {
			b.Fatal(err)
		}
		line, err := ack.ReadString('\n')
		if err != nil || line != "ok\n" {
			b.Fatalf("raw ack %q: %v (%s)", line, err, out.tail())
		}
	}
	b.StopTimer()
	_ = hj.CloseWrite()
}
