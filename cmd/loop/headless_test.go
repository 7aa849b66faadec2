package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// A chain across resources is printed once, on the resource it ended at,
// however many status events carry it.
func TestHeadlessPrintsAChainOnce(t *testing.T) {
	var out bytes.Buffer
	h := newHeadless(&out)
	root := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	c := &api.Chain{Cause: api.CauseSave, Path: "main.go", Root: root, Ready: root.Add(1150 * ms), End: "hello",
		Links: []api.ChainLink{{Resource: "hello-compile"}, {Resource: "hello"}},
		Phases: []api.ChainPhase{
			{Resource: "hello-compile", Name: api.SpanCmd, Duration: 920 * ms},
			{Resource: "hello", Name: api.SpanSync, Start: 920 * ms, Duration: 225 * ms},
			{Resource: "hello", Name: api.PhaseOther, Start: 1145 * ms, Duration: 5 * ms},
		}}
	for _, phase := range []api.Phase{api.PhaseReady, api.PhaseReady, api.PhaseUpdating} {
		h.event(api.Event{Kind: api.EventStatus, Status: &api.ResourceStatus{Name: "hello", Phase: phase, Chain: c}})
	}
	want := "⛓ save main.go → ready in 1.15s (hello-compile cmd 920ms, hello sync 225ms)"
	if n := strings.Count(out.String(), want); n != 1 {
		t.Errorf("chain line printed %d times, want once:\n%s", n, out.String())
	}
}
