package daemon_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// BenchmarkKubeSaveToSynced: loop up on a Deployment whose image has a live_update
// sync, on the test cluster; each op saves one file and waits until the container has
// it (the test cluster's exec runs on this machine, so the container's file is a file
// here). Reports p50/p95 of save → file in the container, measured from outside loop.
// Run with `make bench-kube`.
func BenchmarkKubeSaveToSynced(b *testing.B) {
	testenv.BusyboxAs(b, "loop/busybox:latest")
	dyn := kubeClient(b)
	name := fmt.Sprintf("kbench-%d", time.Now().UnixNano()%1000000)
	target := testenv.ExecDir(b)
	dir := b.TempDir()
	writeFiles(b, dir, map[string]string{
		"Tiltfile":         fmt.Sprintf("docker_build('loop/kbench', 'app', live_update=[sync('app/src', '%s/app')])\nk8s_yaml('k8s.yaml')\n", target),
		"app/Dockerfile":   "FROM loop/busybox:latest\nCOPY src /app\n",
		"app/src/main.txt": "start\n",
		"k8s.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec: {containers: [{name: web, image: loop/kbench}]}
`, name, testenv.ExecNamespace),
	})
	b.Cleanup(func() {
		_ = dyn.Resource(gvrDeployment).Namespace(testenv.ExecNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	h := startUp(b, dir, "up")
	h.waitFor(name+" ready", 3*time.Minute, func() bool { return h.status[name].Phase == api.PhaseReady })
	in, out := filepath.Join(dir, "app/src/main.txt"), filepath.Join(target, "app/main.txt")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := fmt.Sprintf("edit %d %d\n", i, time.Now().UnixNano())
		start := time.Now()
		if err := os.WriteFile(in, []byte(want), 0o644); err != nil {
			b.Fatal(err)
		}
		for {
			if got, _ := os.ReadFile(out); string(got) == want {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("edit %d not in the container within 10 s", i)
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
		// Let the engine see the update end, so that each save is its own update.
		time.Sleep(30 * time.Millisecond)
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")
	b.ReportMetric(0, "ns/op")
}
