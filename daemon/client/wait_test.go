package client_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
	"github.com/loop-dev/loop/daemon/internal/server"
)

// TestWaitVerdictAndChanges: a wait's verdict carries the lines its update
// produced, bounded, with a count of what was left out; the change's
// verdict says the same; logs filter by change and pattern.
func TestWaitVerdictAndChanges(t *testing.T) {
	sock := socket(t)
	fc := &fakeControl{}
	s, _ := serve(t, server.Options{Socket: sock, Control: fc, UnknownResource: errUnknown, LogLines: 2000})
	s.Sink(logEv("web", "before the update"))
	up := status("web", api.PhaseUpdating)
	up.Status.UpdateID = 1
	s.Sink(up)
	const n = 100000
	for i := range n {
		s.Sink(logEv("web", fmt.Sprintf("line %d", i)))
	}
	done := status("web", api.PhaseReady)
	done.Status.UpdateID = 1
	done.Status.LastUpdate = &api.Update{ID: 1, Kind: api.UpdateLive, Changes: []uint64{1}}
	s.Sink(done)

	c := client.New(client.Options{Socket: sock})
	ctx := context.Background()
	v, err := c.Wait(ctx, api.WaitRequest{Resources: []string{"web"}})
	if err != nil {
		t.Fatal(err)
	}
	rv := v.Resources[0]
	if len(rv.Logs) != api.DefaultVerdictLines+1 || rv.LogsOmitted != n-api.DefaultVerdictLines {
		t.Fatalf("verdict has %d lines, %d left out; want %d and %d", len(rv.Logs), rv.LogsOmitted, api.DefaultVerdictLines+1, n-api.DefaultVerdictLines)
	}
	if rv.Logs[len(rv.Logs)-1] != fmt.Sprintf("line %d", n-1) || !strings.Contains(strings.Join(rv.Logs, "\n"), fmt.Sprintf("… %d lines left out", rv.LogsOmitted)) {
		t.Fatalf("verdict lines %q", rv.Logs)
	}
	if all := strings.Join(rv.Logs, "\n"); strings.Contains(all, "before the update") {
		t.Fatalf("verdict has a line from before the update")
	}
	if _, err := c.Wait(ctx, api.WaitRequest{Resources: []string{"nope"}}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("wait on an unknown resource: %v", err)
	}

	cv, err := c.Change(ctx, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if cv.Result != api.ResultReady || len(cv.Resources) != 1 || len(cv.Resources[0].Logs) != 11 || cv.Resources[0].LogsOmitted != n-10 {
		t.Fatalf("change verdict %+v", cv)
	}
	if _, err := c.Change(ctx, 99, 0); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown change: %v", err)
	}
	list, err := c.Changes(ctx, 0)
	if err != nil || len(list) != 1 || list[0].ID != 1 || list[0].Resources[0] != "web" {
		t.Fatalf("changes %+v (%v)", list, err)
	}
	st, err := c.Logs(ctx, client.LogsOptions{Resource: "web", Change: 1, Grep: `^line 1999\d$`})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for l := range st.C {
		got = append(got, l.Text)
	}
	// The ring holds the last 2000 lines: 98000..99999, of which 19990..19999 are gone.
	if len(got) != 0 {
		t.Fatalf("grep found lines the ring no longer holds: %v", got)
	}
	st, err = c.Logs(ctx, client.LogsOptions{Resource: "web", Change: 1, Grep: `^line 9999\d$`})
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for l := range st.C {
		got = append(got, l.Text)
	}
	if len(got) != 10 || got[0] != "line 99990" {
		t.Fatalf("grep lines %v", got)
	}
}
