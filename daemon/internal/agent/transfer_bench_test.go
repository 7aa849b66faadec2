package agent

import (
	"bufio"
	"context"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
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

// BenchmarkTransfer7MB puts a 7 MB file into a busybox container three ways
// over the same kind of held Docker exec stream, interleaved in each
// iteration so that a busy machine weighs on all three alike:
//   - discard: the bytes into `dd of=/dev/null` (the stream alone);
//   - raw: the bytes into `dd of=/www/raw`, 1 MB writes (the stream and the
//     disk: the floor of a file transfer);
//   - agent: the sync agent's Apply of one write op (framed, written to a
//     temp file, renamed into place, acknowledged).
//
// Each reports its median in ms and MB/s; agent/raw is the ratio of the
// medians. Run with
// `go test -run '^$' -bench Transfer7MB -benchtime 20x ./daemon/internal/agent/`.
func BenchmarkTransfer7MB(b *testing.B) {
	id := testenv.RunContainer(b, &container.Config{Image: testenv.Busybox(b), Cmd: []string{"sleep", "3600"}}, nil)
	data := binaryLike(binarySize)
	ctx := context.Background()
	discard := newRawStream(b, id, "/dev/null", len(data))
	raw := newRawStream(b, id, "/www/raw", len(data))
	s, err := Connect(ctx, testenv.Docker(b), id)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	roots := []string{"/www"}
	ways := []struct {
		name string
		put  func() error
		took []time.Duration
	}{
		{name: "discard", put: func() error { return discard.put(data) }},
		{name: "raw", put: func() error { return raw.put(data) }},
		{name: "agent", put: func() error { return s.Apply(ctx, roots, []Op{Write("/www/app", 0o755, data)}) }},
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		for k := range ways {
			w := &ways[(i+k)%len(ways)]
			start := time.Now()
			if err := w.put(); err != nil {
				b.Fatalf("%s: %v", w.name, err)
			}
			w.took = append(w.took, time.Since(start))
		}
	}
	b.StopTimer()
	med := map[string]float64{}
	for _, w := range ways {
		slices.Sort(w.took)
		m := w.took[len(w.took)/2]
		med[w.name] = float64(m) / float64(time.Millisecond)
		b.ReportMetric(med[w.name], w.name+"-ms")
		b.ReportMetric(float64(len(data))/m.Seconds()/1e6, w.name+"-MB/s")
	}
	b.ReportMetric(med["agent"]/med["raw"], "agent/raw")
	got := testenv.Exec(b, id, "md5sum", "/www/app")
	if want := fmt.Sprintf("%x", md5.Sum(data)); !strings.HasPrefix(got, want) {
		b.Fatalf("md5sum in container %q, want %s", got, want)
	}
}

// rawStream is a held exec of a shell loop that copies exactly n bytes from
// its stdin to a file with 1 MB reads (dd) and answers "ok" after each copy.
type rawStream struct {
	b   *testing.B
	hj  types.HijackedResponse
	out *output
	ack *bufio.Reader
}

func newRawStream(b *testing.B, id, of string, n int) *rawStream {
	ctx := context.Background()
	cli := testenv.Docker(b)
	script := fmt.Sprintf(`mkdir -p /www; while dd bs=1M count=%d iflag=fullblock,count_bytes of=%s 2>/dev/null; do echo ok; done`, n, of)
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
	b.Cleanup(hj.Close)
	out := &output{}
	out.r = &demux{r: hj.Reader, other: out}
	return &rawStream{b: b, hj: hj, out: out, ack: bufio.NewReader(out)}
}

func (r *rawStream) put(data []byte) error {
	if _, err := r.hj.Conn.Write(data); err != nil {
		return err
	}
	line, err := r.ack.ReadString('\n')
	if err != nil || line != "ok\n" {
		return fmt.Errorf("raw ack %q: %w (%s)", line, err, r.out.tail())
	}
	return nil
}
