package liveupdate

import (
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/internal/agent"
)

// TestHistoryReplayOrder: a replay applies the latest op per path, in an order that
// gives the same tree: a file written again after its directory was removed comes
// after the removal; data beyond the limit (HistoryMax) drops the history.
func TestHistoryReplayOrder(t *testing.T) {
	var h history
	h.add([]string{"/app"}, []agent.Op{agent.Write("/app/a/x", 0o644, []byte("1")), agent.Write("/app/b", 0o644, []byte("b"))})
	h.add([]string{"/app"}, []agent.Op{agent.Remove("/app/a")})
	h.add([]string{"/app", "/etc/app"}, []agent.Op{agent.Write("/app/a/x", 0o644, []byte("2")), agent.Write("/etc/app/c", 0o644, []byte("c"))})
	roots, ops := h.replay()
	var got []string
	for _, op := range ops {
		got = append(got, op.Kind.String()+" "+op.Path+" "+string(op.Data))
	}
	want := "write /app/b b|remove /app/a |write /app/a/x 2|write /etc/app/c c"
	if strings.Join(got, "|") != want || strings.Join(roots, ",") != "/app,/etc/app" {
		t.Fatalf("replay = %q roots %v, want %q", strings.Join(got, "|"), roots, want)
	}
	if h.bytes != 3 {
		t.Fatalf("history holds %d bytes, want 3", h.bytes)
	}

	h.max = 4
	h.add([]string{"/app"}, []agent.Op{agent.Write("/app/big", 0o644, []byte("12345"))})
	if !h.lost || len(h.ops) != 0 {
		t.Fatalf("history past its limit kept %d ops (lost %v)", len(h.ops), h.lost)
	}
}
