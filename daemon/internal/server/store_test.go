package server

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

func TestStoreEventLogWrapsAndReportsGaps(t *testing.T) {
	s := newStore(3, 4)
	for i := 1; i <= 10; i++ {
		s.add(api.Event{Kind: api.EventLog, Resource: "web", Text: fmt.Sprint(i)})
	}
	if _, _, err := s.after(5, 100); !errors.Is(err, errGap) {
		t.Fatalf("after(5) with events 7..10 held: err = %v, want errGap", err)
	}
	if _, _, err := s.after(11, 100); !errors.Is(err, errGap) {
		t.Fatalf("after(11) beyond head: err = %v, want errGap", err)
	}
	evs, _, err := s.after(6, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 4 || evs[0].Seq != 7 || evs[3].Text != "10" {
		t.Fatalf("after(6) = %+v, want events 7..10", evs)
	}
	evs, _, _ = s.after(6, 2)
	if len(evs) != 2 || evs[1].Seq != 8 {
		t.Fatalf("after(6, max 2) = %+v", evs)
	}
	lines, head := s.lines("web", logFilter{})
	if head != 10 || len(lines) != 3 || lines[0].Text != "8" {
		t.Fatalf("lines = %+v (head %d), want the last 3 of 10", lines, head)
	}
}

func TestStoreSnapshotKeepsOrderAndCopies(t *testing.T) {
	s := newStore(10, 10)
	now := time.Unix(100, 0)
	s.add(api.Event{Kind: api.EventStatus, Status: &api.ResourceStatus{Name: "b", Phase: api.PhasePending}})
	s.add(api.Event{Kind: api.EventStatus, Status: &api.ResourceStatus{Name: "a", Phase: api.PhasePending}})
	st := &api.ResourceStatus{Name: "b", Phase: api.PhaseReady, LastUpdate: &api.Update{Kind: api.UpdateLive, Started: now}}
	s.add(api.Event{Kind: api.EventStatus, Status: st})
	st.LastUpdate.Kind = api.UpdateRebuild // the sender's later edits must not leak in
	s.add(api.Event{Kind: api.EventConfig, Text: "Tiltfile:1:2: boom"})
	s.add(api.Event{Kind: api.EventLog, Resource: "a", Text: "one"})
	s.add(api.Event{Kind: api.EventLog, Resource: "b", Text: "two"})
	s.add(api.Event{Kind: api.EventLog, Resource: "a", Text: "three"})
	snap := s.snapshot(1)
	if len(snap.Resources) != 2 || snap.Resources[0].Name != "b" || snap.Resources[1].Name != "a" {
		t.Fatalf("resources = %+v, want b then a", snap.Resources)
	}
	if snap.Resources[0].Phase != api.PhaseReady || snap.Resources[0].LastUpdate.Kind != api.UpdateLive {
		t.Fatalf("b = %+v", snap.Resources[0])
	}
	if snap.ConfigError != "Tiltfile:1:2: boom" || snap.Seq != 7 {
		t.Fatalf("config error %q seq %d", snap.ConfigError, snap.Seq)
	}
	if len(snap.Logs) != 2 || snap.Logs[0].Text != "two" || snap.Logs[1].Text != "three" {
		t.Fatalf("logs tail 1 per resource = %+v, want two, three in seq order", snap.Logs)
	}
}
