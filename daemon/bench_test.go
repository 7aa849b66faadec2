package daemon_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// BenchmarkSaveToServed measures what a developer sees: one file saved on
// the host until the running container serves the new content, measured
// from outside loop (write, then poll HTTP). It runs `loop up` on a busybox
// httpd service with sync('site', '/www') and reports p50/p95 per edit.
func BenchmarkSaveToServed(b *testing.B) {
	testenv.Busybox(b)
	dir := b.TempDir()
	files := map[string]string{
		"Dockerfile":      "FROM loop-test/busybox:latest\nCOPY site /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n",
		"site/index.html": "start\n",
		"compose.yaml":    "services:\n  web:\n    image: loopbench/web\n",
		"Tiltfile": "docker_build('loopbench/web', '.', live_update=[sync('site', '/www')])\n" +
			"docker_compose('compose.yaml', project_name='loopbench-save')\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ready := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	tf := filepath.Join(dir, "Tiltfile")
	go func() {
		done <- daemon.Up(ctx, daemon.Options{Tiltfile: tf, Sink: func(ev api.Event) {
			if ev.Kind == api.EventStatus && ev.Status.Phase == api.PhaseReady && ev.Status.ContainerID != "" {
				select {
				case ready <- ev.Status.ContainerID:
				default:
				}
			}
		}})
	}()
	defer func() {
		cancel()
		<-done
		_ = daemon.Down(context.Background(), daemon.Options{Tiltfile: tf}, true)
	}()
	var id string
	select {
	case id = <-ready:
	case err := <-done:
		b.Fatalf("up ended: %v", err)
	case <-time.After(2 * time.Minute):
		b.Fatal("service not ready within 2m")
	}
	insp, err := testenv.Docker(b).ContainerInspect(context.Background(), id)
	if err != nil {
		b.Fatal(err)
	}
	var ip string
	for _, n := range insp.NetworkSettings.Networks {
		ip = n.IPAddress
	}
	url := "http://" + ip + ":8080/index.html"
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: false}}
	get := func() string {
		resp, err := client.Get(url)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := fmt.Sprintf("edit %d %d\n", i, time.Now().UnixNano())
		start := time.Now()
		if err := os.WriteFile(filepath.Join(dir, "site/index.html"), []byte(want), 0o644); err != nil {
			b.Fatal(err)
		}
		for get() != want {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("edit %d not served within 10s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		// Let the watcher settle so each edit is its own change.
		time.Sleep(50 * time.Millisecond)
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		i := int(p * float64(len(lat)-1))
		return float64(lat[i]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op")
}
