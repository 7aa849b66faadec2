package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

// BenchmarkWaitLag measures how long after the last affected resource
// became ready `wait` returns to its client (over the daemon's socket):
// each iteration saves a file and waits. Reported: p50 and p95 of the lag
// (wait-lag-p50-ms) and of save → wait returned (save-to-verdict-p50-ms).
//
//	go test ./cmd/loop -run '^$' -bench BenchmarkWaitLag -benchtime 200x
func BenchmarkWaitLag(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		dir := b.TempDir()
		writeFile(b, dir, "in.txt", "0\n")
		writeFile(b, dir, "Tiltfile", "local_resource('echo', cmd='cat in.txt', deps=['in.txt'])\n")
		benchWaitLag(b, dir, "in.txt", "echo")
	})
	b.Run("compose-live", func(b *testing.B) {
		dir := goProject(b)
		benchWaitLag(b, dir, "image/static/a.txt", "app")
	})
}

func benchWaitLag(b *testing.B, dir, file, res string) {
	startDaemon(b, dir)
	sock, err := daemon.SocketPath(filepath.Join(dir, "Tiltfile"))
	if err != nil {
		b.Fatal(err)
	}
	c := client.New(client.Options{Socket: sock})
	ctx := context.Background()
	if v, err := c.Wait(ctx, api.WaitRequest{Timeout: 10 * time.Minute}); err != nil || v.Result != api.ResultReady {
		b.Fatalf("first wait: %v %+v", err, v)
	}
	var lags, totals []time.Duration
	b.ResetTimer()
	for i := range b.N {
		saved := time.Now()
		writeFile(b, dir, file, fmt.Sprintf("%d\n", i))
		v, err := c.Wait(ctx, api.WaitRequest{Resources: []string{res}})
		back := time.Now()
		if err != nil || v.Result != api.ResultReady {
			b.Fatalf("wait %d: %v %+v", i, err, v)
		}
		var ready time.Time
		for _, r := range v.Resources {
			if r.Update != nil && r.Affected && r.Update.Ready.After(ready) {
				ready = r.Update.Ready
			}
		}
		if ready.IsZero() {
			b.Fatalf("wait %d: no affected update: %+v", i, v)
		}
		lags = append(lags, back.Sub(ready))
		totals = append(totals, back.Sub(saved))
	}
	b.StopTimer()
	b.ReportMetric(ms(pct(lags, 50)), "wait-lag-p50-ms")
	b.ReportMetric(ms(pct(lags, 95)), "wait-lag-p95-ms")
	b.ReportMetric(ms(pct(totals, 50)), "save-to-verdict-p50-ms")
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
