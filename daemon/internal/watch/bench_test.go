package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

var (
	benchTreeOnce sync.Once
	benchTreeDir  string // removed by TestMain
	benchTreeErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchTreeDir != "" {
		os.RemoveAll(benchTreeDir)
	}
	os.Exit(code)
}

// benchTree builds, once per test binary run, a 100,000-file project: 20,000
// files in 1,050 source directories and 80,000 in a 4,800-directory
// node_modules that the watcher ignores.
func benchTree(b *testing.B) string {
	benchTreeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "loop-watch-bench-")
		if err != nil {
			benchTreeErr = err
			return
		}
		benchTreeDir = dir
		files := func(d string, n int) error {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			for i := range n {
				if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d.go", i)), []byte("package x\n"), 0o644); err != nil {
					return err
				}
			}
			return nil
		}
		for i := range 50 {
			for j := range 20 {
				if err := files(filepath.Join(dir, "src", fmt.Sprintf("pkg%02d", i), fmt.Sprintf("sub%02d", j)), 20); err != nil {
					benchTreeErr = err
					return
				}
			}
		}
		for i := range 800 {
			for _, sub := range []string{"lib", "lib/a", "lib/b", "dist", "test"} {
				if err := files(filepath.Join(dir, "node_modules", fmt.Sprintf("pkg%03d", i), sub), 20); err != nil {
					benchTreeErr = err
					return
				}
			}
		}
	})
	if benchTreeErr != nil {
		b.Fatal(benchTreeErr)
	}
	return benchTreeDir
}

func heapBytes() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkStartup100k times New+Run until Ready on a 100,000-file tree with
// an ignored node_modules, then until a change to a watched file is seen.
func BenchmarkStartup100k(b *testing.B) {
	dir := benchTree(b)
	ignore := func(p string, isDir bool) bool { return isDir && filepath.Base(p) == "node_modules" }
	target := filepath.Join(dir, "src/pkg25/sub10/f010.go")
	var readyTotal, changeTotal time.Duration
	var watches, entries int
	var heapDelta float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		heap0 := heapBytes()
		t0 := time.Now()
		w, err := New(Options{Roots: []string{dir}, Ignore: ignore})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		select {
		case <-w.Ready():
		case err := <-done:
			b.Fatal(err)
		}
		readyTotal += time.Since(t0)
		st := w.Stats()
		watches, entries = st.Watches, st.Entries
		heapDelta += float64(heapBytes()-heap0) / (1 << 20)

		t1 := time.Now()
		write(b, target, fmt.Sprintf("package x // %d\n", i))
	wait:
		for evs := range w.Events() {
			for _, e := range evs {
				if e.Path == target {
					break wait
				}
			}
		}
		changeTotal += time.Since(t1)
		cancel()
		go func() {
			for range w.Events() {
			}
		}()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(readyTotal.Microseconds())/1000/n, "ready-ms")
	b.ReportMetric(float64(changeTotal.Microseconds())/1000/n, "change-ms")
	b.ReportMetric(float64(watches), "watches")
	b.ReportMetric(float64(entries), "entries")
	b.ReportMetric(heapDelta/n, "heap-MB")
}

// BenchmarkBurst writes 1,000 files as fast as it can and reports how the
// live preset batches them and over how long the events were read.
func BenchmarkBurst(b *testing.B) {
	var batches, spread float64
	for i := 0; i < b.N; i++ {
		bs := burst(b, 1000, LiveQuiet, LiveMax)
		batches += float64(len(bs))
		spread += float64(bs[len(bs)-1].Last.Sub(bs[0].First).Microseconds()) / 1000
	}
	b.ReportMetric(batches/float64(b.N), "batches")
	b.ReportMetric(spread/float64(b.N), "spread-ms")
}
