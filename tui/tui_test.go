package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

func TestGoldens(t *testing.T) {
	cases := []struct {
		name string
		w, h int
		keys []string
		prep func(m *Model)
	}{
		{name: "table_logs", w: 100, h: 30, keys: []string{"down"}},
		{name: "tab_build", w: 100, h: 30, keys: []string{"down", "2"}},
		{name: "tab_timing", w: 100, h: 30, keys: []string{"down", "3"}},
		{name: "error_state", w: 100, h: 30, keys: []string{"down", "down", "down", "3"}, prep: func(m *Model) {
			feed(m, ev(api.Event{Kind: api.EventConfig, Text: "/src/compose/Tiltfile:7:12: undefined: dc_resorce"}))
		}},
		{name: "tab_timing_chain", w: 100, h: 30, keys: []string{"3"}, prep: func(m *Model) {
			feed(m, ev(api.Event{Kind: api.EventStatus, Status: goChainStatus()}))
		}},
		{name: "size_80x24", w: 80, h: 24, keys: []string{"down"}},
		{name: "narrow_60x20", w: 60, h: 20, keys: []string{"down"}},
		{name: "expanded", w: 80, h: 24, keys: []string{"down", "enter"}},
		{name: "search", w: 80, h: 24, keys: []string{"down", "/", "1", "0", "5", "enter"}},
		{name: "help", w: 80, h: 24, keys: []string{"?"}},
		{name: "disconnected", w: 80, h: 24, keys: []string{"down"}, prep: func(m *Model) {
			feed(m, client.Message{Disconnected: fmt.Errorf("reach the loop daemon: dial unix loop.sock: connect: connection refused")})
		}},
		{name: "confirm_quit", w: 80, h: 24, keys: []string{"q"}},
		{name: "agent_wait", w: 100, h: 30, keys: []string{"down"}, prep: func(m *Model) {
			feed(m, ev(api.Event{Kind: api.EventWaits, Waits: []api.Wait{{ID: 1, Client: "mcp", Resources: []string{"api", "worker"}}}}))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newModel(t, newFake(), c.w, c.h, Options{StopsDaemon: true})
			project(m)
			if c.prep != nil {
				c.prep(m)
			}
			press(m, c.keys...)
			golden(t, m, c.name)
		})
	}
}

func TestSelectionAndTabs(t *testing.T) {
	m := newModel(t, newFake(), 100, 30, Options{})
	project(m)
	if r := m.selected(); r.status.Name != "store" {
		t.Fatalf("initial selection %s, want store", r.status.Name)
	}
	press(m, "j", "down")
	if r := m.selected(); r.status.Name != "worker" {
		t.Fatalf("after j, down: %s, want worker", r.status.Name)
	}
	press(m, "k")
	if s := screen(m); !strings.Contains(s, "▸ web") || !strings.Contains(s, "GET /index.html 200 129 bytes") {
		t.Fatalf("web selected: the logs pane shows web's last line:\n%s", s)
	}
	press(m, "down", "down", "down", "down", "down")
	if r := m.selected(); r.status.Name != "docs" {
		t.Fatalf("selection past the end: %s, want the last (docs)", r.status.Name)
	}
	press(m, "up", "up", "up", "2")
	if m.detail.tab != tabBuild || !strings.Contains(screen(m), "Step 3/3") {
		t.Fatalf("build tab of web lacks its build output:\n%s", screen(m))
	}
	if strings.Contains(screen(m), "GET /index.html") {
		t.Fatalf("build tab shows runtime logs:\n%s", screen(m))
	}
	press(m, "3")
	if s := screen(m); m.detail.tab != tabTiming || !strings.Contains(s, "p50 45ms p95 120ms (n=5)") {
		t.Fatalf("timing tab lacks percentiles:\n%s", s)
	}
	press(m, "1")
	if m.detail.tab != tabLogs {
		t.Fatal("1 does not go back to logs")
	}
}

func TestTriggerCallsTheSource(t *testing.T) {
	f := newFake()
	m := newModel(t, f, 100, 30, Options{})
	project(m)
	cmd := press(m, "j", "t")
	if cmd == nil {
		t.Fatal("t returned no command")
	}
	m.Update(cmd())
	if len(f.triggered) != 1 || f.triggered[0] != "web" {
		t.Fatalf("triggered %v, want [web]", f.triggered)
	}
	if !strings.Contains(screen(m), "triggered web") {
		t.Fatalf("no confirmation on screen:\n%s", screen(m))
	}
	f.err = &client.APIError{Status: 404, Message: "trigger web: unknown resource"}
	m.Update(press(m, "t")())
	if !strings.Contains(screen(m), "trigger web: trigger web: unknown resource") {
		t.Fatalf("no error on screen:\n%s", screen(m))
	}
}

func isQuit(cmd tea.Cmd) bool {
	if cmd == nil {
		return false
	}
	_, ok := cmd().(tea.QuitMsg)
	return ok
}

func TestQuitConfirmsOnlyWhenItStopsTheDaemon(t *testing.T) {
	m := newModel(t, newFake(), 80, 24, Options{StopsDaemon: true})
	project(m)
	if isQuit(press(m, "q")) {
		t.Fatal("q quit loop up without asking")
	}
	if !strings.Contains(screen(m), "Stop the daemon and quit? (y/n)") {
		t.Fatalf("no question:\n%s", screen(m))
	}
	if isQuit(press(m, "n")) || m.confirmQuit {
		t.Fatal("n did not cancel")
	}
	press(m, "q")
	if !isQuit(press(m, "y")) {
		t.Fatal("q, y did not quit")
	}
	if !isQuit(press(m, "ctrl+c")) {
		t.Fatal("ctrl+c did not quit")
	}
	ui := newModel(t, newFake(), 80, 24, Options{})
	if !isQuit(press(ui, "q")) {
		t.Fatal("q in loop ui did not quit at once")
	}
}

func TestDisconnectAndRecover(t *testing.T) {
	m := newModel(t, newFake(), 80, 24, Options{})
	project(m)
	if s := screen(m); !strings.Contains(s, "● connected") {
		t.Fatalf("not connected:\n%s", s)
	}
	feed(m, client.Message{Disconnected: client.ErrUnavailable})
	s := screen(m)
	if !strings.Contains(s, "disconnected") || !strings.Contains(s, "▸ store") {
		t.Fatalf("disconnected screen lacks the notice or the last state:\n%s", s)
	}
	feed(m, snap(api.ResourceStatus{Name: "fresh", Type: "local", Phase: api.PhaseReady}))
	s = screen(m)
	if strings.Contains(s, "disconnected") || !strings.Contains(s, "● connected") || !strings.Contains(s, "fresh") || strings.Contains(s, "store") {
		t.Fatalf("after a new snapshot the UI should show the new daemon only:\n%s", s)
	}
}

func TestLogFloodIsBoundedAndScrollPauses(t *testing.T) {
	m := newModel(t, newFake(), 80, 24, Options{LogLines: 100})
	feed(m, snap(api.ResourceStatus{Name: "web", Type: "compose", Phase: api.PhaseReady}))
	batch := make(streamMsg, 0, 10000)
	for i := 0; i < 10000; i++ {
		batch = append(batch, logMsg("web", fmt.Sprintf("line %05d", i)))
	}
	feed(m, batch...)
	r := m.st.res["web"]
	if r.logs.n != 100 || r.logs.total != 10000 {
		t.Fatalf("ring holds %d of %d, want 100 of 10000", r.logs.n, r.logs.total)
	}
	if s := screen(m); !strings.Contains(s, "line 09999") || strings.Contains(s, "line 09800") {
		t.Fatalf("following view:\n%s", s)
	}
	press(m, "pgup")
	before := screen(m)
	if strings.Contains(before, "line 09999") || !strings.Contains(before, "paused") {
		t.Fatalf("after pgup the newest line is still shown or no pause notice:\n%s", before)
	}
	feed(m, logMsg("web", "line 10000"))
	if after := screen(m); after != before {
		t.Fatalf("a new line moved a paused view:\n%s\nvs\n%s", before, after)
	}
	press(m, "G")
	if s := screen(m); !strings.Contains(s, "line 10000") {
		t.Fatalf("G did not follow again:\n%s", s)
	}
}

func TestSearchFiltersLogs(t *testing.T) {
	m := newModel(t, newFake(), 80, 24, Options{})
	project(m)
	press(m, "j", "/", "1", "2", "9", "enter")
	s := screen(m)
	if !strings.Contains(s, "bytes") || !strings.Contains(s, "129 bytes") || strings.Contains(s, "128 bytes") {
		t.Fatalf("search /129:\n%s", s)
	}
	press(m, "esc")
	if s := screen(m); !strings.Contains(s, "128 bytes") {
		t.Fatalf("esc did not clear the search:\n%s", s)
	}
}

func TestReadCoalescesAFlood(t *testing.T) {
	f := newFake()
	m := newModel(t, f, 80, 24, Options{})
	m.sub = f.ch
	for i := 0; i < 5000; i++ {
		f.ch <- logMsg("web", "x")
	}
	msg := m.read(0)()
	b, ok := msg.(streamMsg)
	if !ok || len(b) != 5000 {
		t.Fatalf("read returned %T of %d, want one batch of 5000", msg, len(b))
	}
	close(f.ch)
	if _, ok := m.read(0)().(streamEndMsg); !ok {
		t.Fatal("a closed stream does not end")
	}
}

// TestDriftShown: a Kubernetes resource whose live objects differ from what loop
// applied says so in its row (≠ and the count) and lists them in the Timing tab;
// back in sync, both go.
func TestDriftShown(t *testing.T) {
	m := newModel(t, newFake(), 100, 24, Options{})
	start := time.Now().Add(-time.Minute)
	st := api.ResourceStatus{Name: "web", Type: "k8s", Phase: api.PhaseReady, LastUpdate: liveUpdate(start, 300*time.Millisecond),
		Drift: []string{"apps/Deployment/default/web", "/ConfigMap/default/web-config"}}
	feed(m, snap(st))
	press(m, "3")
	s := screen(m)
	if !strings.Contains(row(s, "web"), "● ready ≠2") {
		t.Fatalf("row of web lacks the drift count:\n%s", s)
	}
	if !strings.Contains(s, "≠ out of sync: apps/Deployment/default/web") || !strings.Contains(s, "≠ out of sync: /ConfigMap/default/web-config") {
		t.Fatalf("timing tab lacks the drifted objects:\n%s", s)
	}
	st.Drift = nil
	feed(m, statusMsg(st))
	if s := screen(m); strings.Contains(s, "≠") {
		t.Fatalf("drift still shown once in sync:\n%s", s)
	}
}

// TestLinksShown: a resource's links (links=, port forwards, published ports)
// are listed in its Timing tab with their names.
func TestLinksShown(t *testing.T) {
	m := newModel(t, newFake(), 100, 24, Options{})
	st := api.ResourceStatus{Name: "web", Type: "k8s", Phase: api.PhaseReady, LastUpdate: liveUpdate(time.Now().Add(-time.Minute), 300*time.Millisecond),
		Links: []api.Link{{URL: "http://localhost:8000/", Name: "web"}, {URL: "https://docs.example/"}}}
	feed(m, snap(st))
	press(m, "3")
	s := screen(m)
	if !strings.Contains(s, "↗ http://localhost:8000/  web") || !strings.Contains(s, "↗ https://docs.example/") {
		t.Fatalf("timing tab lacks the links:\n%s", s)
	}
}

// TestDaemonLinesShown: a line the daemon logs for no resource (the objects of a
// resource that left the config deleted) shows under the header, not as a row.
func TestDaemonLinesShown(t *testing.T) {
	m := newModel(t, newFake(), 100, 24, Options{})
	feed(m, snap(api.ResourceStatus{Name: "web", Type: "k8s", Phase: api.PhaseReady}))
	feed(m, logMsg("", "extra left the config: deleted apps/Deployment/default/extra"))
	s := screen(m)
	if !strings.Contains(s, "· extra left the config: deleted apps/Deployment/default/extra") {
		t.Fatalf("the daemon's line is not shown:\n%s", s)
	}
	for _, l := range strings.Split(s, "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "▸")); len(f) > 0 && f[0] == "○" {
			t.Fatalf("the daemon's line made a row:\n%s", s)
		}
	}
}

// row returns the table row of a resource on a screen.
func row(screen, name string) string {
	for _, l := range strings.Split(screen, "\n") {
		if f := strings.Fields(strings.TrimPrefix(l, "▸")); len(f) > 0 && f[0] == name {
			return l
		}
	}
	return ""
}

// goChainStatus is a Go service whose last live update ended a chain: save
// main.go → compile → sync → restart.
func goChainStatus() *api.ResourceStatus {
	ms := time.Millisecond
	root := t0.Add(-10 * time.Second)
	u := &api.Update{ID: 8, Kind: api.UpdateLive, Edit: root.Add(930 * ms), Batched: root.Add(932 * ms), Started: root.Add(933 * ms),
		Ready: root.Add(1150 * ms), Files: 1, Spans: []api.Span{{Name: api.SpanSync, Duration: 190 * ms}, {Name: api.SpanRestart, Duration: 25 * ms}}}
	return &api.ResourceStatus{Name: "store", Type: "compose", Phase: api.PhaseReady, UpdateID: 8, LastUpdate: u, Chain: &api.Chain{
		ID: 3, Cause: api.CauseSave, Path: "main.go", Root: root, Ready: u.Ready, End: "store", EndUpdate: 8,
		Links: []api.ChainLink{{Resource: "store-compile", Update: 7}, {Resource: "store", Update: 8, Parent: 7}},
		Phases: []api.ChainPhase{
			{Resource: "store-compile", Name: api.PhaseBatch, Duration: 2 * ms},
			{Resource: "store-compile", Name: api.SpanCmd, Start: 2 * ms, Duration: 920 * ms},
			{Resource: "store-compile", Name: api.PhaseOther, Start: 922 * ms, Duration: 3 * ms},
			{Resource: "store", Name: api.PhaseHandoff, Start: 925 * ms, Duration: 7 * ms},
			{Resource: "store", Name: api.PhaseQueue, Start: 932 * ms, Duration: 1 * ms},
			{Resource: "store", Name: api.SpanSync, Start: 933 * ms, Duration: 190 * ms},
			{Resource: "store", Name: api.SpanRestart, Start: 1123 * ms, Duration: 25 * ms},
			{Resource: "store", Name: api.PhaseOther, Start: 1148 * ms, Duration: 2 * ms},
		}}}
}
