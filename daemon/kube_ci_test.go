package daemon_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/internal/testenv"
)

// TestKubeCIPodError: under loop ci a pod in an error state fails its
// resource at once, as tilt ci does (a Job whose pods exit 123 would
// otherwise be retried up to its backoffLimit), with the pod's output in the
// log; ci_settings(k8s_grace_period=) tolerates it for that long (here the
// run's own timeout comes first).
func TestKubeCIPodError(t *testing.T) {
	testenv.RealNode(t)
	testenv.BusyboxAs(t, "loop/busybox:latest")
	cs := clientset(t)
	for _, c := range []struct {
		name, grace string
		want        func(error) bool
	}{
		{"fails at once", "", func(err error) bool { return err != nil && strings.Contains(err.Error(), "exited with code 123") }},
		{"grace period", "10m", func(err error) bool { return errors.Is(err, daemon.ErrCITimeout) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := copyTree(t, filepath.Join("testdata", "cipoderror"))
			t.Setenv("CIPOD_NAMESPACE", realNamespace(t, cs, "loop-cipod"))
			t.Setenv("CIPOD_GRACE", c.grace)
			var mu sync.Mutex
			var logs []string
			o := daemon.Options{Tiltfile: filepath.Join(dir, "Tiltfile"), Sink: func(ev api.Event) {
				if ev.Kind == api.EventLog {
					mu.Lock()
					logs = append(logs, ev.Text)
					mu.Unlock()
				}
			}}
			t.Cleanup(func() { _ = daemon.Down(context.Background(), daemon.Options{Tiltfile: o.Tiltfile}, false) })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			err := daemon.CI(ctx, o)
			if !c.want(err) {
				t.Fatalf("ci: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if all := strings.Join(logs, "\n"); !strings.Contains(all, "are you there, pod") {
				t.Errorf("the pod's output is not in the log:\n%s", all)
			}
		})
	}
}
