package daemon_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/internal/testenv"
)

// addrOf returns a container's address on its first network.
func addrOf(tb testing.TB, id string) string {
	tb.Helper()
	insp, err := testenv.Docker(tb).ContainerInspect(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	for _, n := range insp.NetworkSettings.Networks {
		if n.IPAddress != "" {
			return n.IPAddress
		}
	}
	tb.Fatalf("container %s has no IP address", id)
	return ""
}

// reportSpread reports the median, p95 and the spread (max−min) of
// durations in milliseconds under the given prefix.
func reportSpread(b *testing.B, prefix string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
	b.ReportMetric(ms(metrics.Percentile(s, 50)), prefix+"p50-ms")
	b.ReportMetric(ms(metrics.Percentile(s, 95)), prefix+"p95-ms")
	b.ReportMetric(ms(s[len(s)-1]-s[0]), prefix+"spread-ms")
}

// uniqueName returns a compose project name unique to this run.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1000000)
}

// logPhases logs where the time went, from loop's own traces: per resource and kind
// of update, the count, p50, mean and mean per phase.
func (h *harness) logPhases(b *testing.B) {
	sum := metrics.Summarize(h.timing.Recent(), time.Time{})
	for _, g := range sum.Groups {
		if g.Resource != "" && g.Kind != "" && g.Kind != api.UpdateInit {
			b.Logf("%s %s: n=%d p50=%s mean=%s phases=%v", g.Resource, g.Kind, g.Count, g.P50, g.Mean, g.Phases)
		}
	}
}
