package liveupdate

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/testenv"
)

// The benchmarks measure save-to-served: one small file changes and the
// op ends when busybox httpd, polled from outside over its bridge address,
// serves the new content. Each reports p50/p95 alongside ns/op.

type servedBench struct {
	b      *testing.B
	ip     string
	client *http.Client
	times  []time.Duration
}

func newServedBench(b *testing.B) (*servedBench, string) {
	id := runHTTPD(b)
	sb := &servedBench{b: b, ip: containerIP(b, id), client: &http.Client{Timeout: 2 * time.Second}}
	get(b, sb.ip, "/") // server up
	return sb, id
}

// waitServed polls until /bench.html has content.
func (sb *servedBench) waitServed(content string) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		resp, err := sb.client.Get("http://" + sb.ip + ":8080/bench.html")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) == content {
				return
			}
		}
	}
	sb.b.Fatalf("content %q never served", content)
}

// run times each op (edit through served) and reports percentiles.
func (sb *servedBench) run(edit func(i int, content string)) {
	sb.b.ResetTimer()
	for i := 0; i < sb.b.N; i++ {
		content := fmt.Sprintf("<p>edit %d</p>\n", i)
		start := time.Now()
		edit(i, content)
		sb.waitServed(content)
		sb.times = append(sb.times, time.Since(start))
	}
	sb.b.StopTimer()
	sort.Slice(sb.times, func(i, j int) bool { return sb.times[i] < sb.times[j] })
	pct := func(p float64) float64 {
		return float64(sb.times[int(p*float64(len(sb.times)-1))].Microseconds()) / 1000
	}
	sb.b.ReportMetric(pct(0.50), "p50-ms")
	sb.b.ReportMetric(pct(0.95), "p95-ms")
}

func BenchmarkAgentWrite(b *testing.B) {
	sb, id := newServedBench(b)
	ctx := context.Background()
	s, err := agent.Connect(ctx, testenv.Docker(b), id)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	roots := []string{"/www"}
	sb.run(func(_ int, content string) {
		if err := s.Apply(ctx, roots, []agent.Op{agent.Write("/www/bench.html", 0o644, []byte(content))}); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkCopyToContainer(b *testing.B) {
	sb, id := newServedBench(b)
	cli := testenv.Docker(b)
	ctx := context.Background()
	sb.run(func(_ int, content string) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		_ = tw.WriteHeader(&tar.Header{Name: "www/bench.html", Mode: 0o644, Size: int64(len(content)), ModTime: time.Now()})
		_, _ = tw.Write([]byte(content))
		_ = tw.Close()
		if err := cli.CopyToContainer(ctx, id, "/", &buf, container.CopyToContainerOptions{}); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkLiveUpdate is the whole controller path: the file is written on
// the host, planned, read back and applied through a DockerTarget.
func BenchmarkLiveUpdate(b *testing.B) {
	sb, id := newServedBench(b)
	src := b.TempDir()
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: src, ContainerPath: "/www"}}}
	tgt := NewDockerTarget(testenv.Docker(b), id)
	defer tgt.Close()
	ctx := context.Background()
	if err := tgt.Connect(ctx); err != nil {
		b.Fatal(err)
	}
	p := filepath.Join(src, "bench.html")
	sb.run(func(_ int, content string) {
		write(b, p, content, 0o644)
		d, err := Plan(lu, []Change{{Path: p}})
		if err != nil || d.Update == nil {
			b.Fatalf("plan: %+v %v", d, err)
		}
		if _, err := Apply(ctx, tgt, *d.Update, nil); err != nil {
			b.Fatal(err)
		}
	})
}
