package tui

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fakeSource is a daemon the test controls.
type fakeSource struct {
	ch        chan client.Message
	mu        sync.Mutex
	triggered []string
	err       error
}

func newFake() *fakeSource { return &fakeSource{ch: make(chan client.Message, 1<<16)} }

func (f *fakeSource) Subscribe(context.Context, client.SubscribeOptions) <-chan client.Message {
	return f.ch
}

func (f *fakeSource) Trigger(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.triggered = append(f.triggered, name)
	return f.err
}

var t0 = time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)

// newModel returns a model of the given size at a fixed clock.
func newModel(t testing.TB, src Source, w, h int, o Options) *Model {
	t.Helper()
	o.Now = func() time.Time { return t0 }
	m := New(context.Background(), src, o)
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m
}

func feed(m *Model, msgs ...client.Message) { m.Update(streamMsg(msgs)) }

func press(m *Model, keys ...string) tea.Cmd {
	var last tea.Cmd
	for _, k := range keys {
		_, last = m.Update(keyMsg(k))
	}
	return last
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "pgup":
		return tea.KeyPressMsg{Code: tea.KeyPgUp}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(k)[0]
	return tea.KeyPressMsg{Code: r, Text: k}
}

// screen is the view as plain text: no colour, no trailing blanks.
func screen(m *Model) string {
	lines := strings.Split(ansi.Strip(m.View().Content), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n") + "\n"
}

// golden compares the screen with testdata/name.golden (-update rewrites it)
// and checks that it fits the terminal.
func golden(t *testing.T, m *Model, name string) {
	t.Helper()
	got := screen(m)
	rows := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if len(rows) != m.height {
		t.Errorf("%s: %d rows, want %d", name, len(rows), m.height)
	}
	for i, r := range rows {
		if w := ansi.StringWidth(r); w > m.width {
			t.Errorf("%s: row %d is %d cells wide, terminal %d: %q", name, i, w, m.width, r)
		}
	}
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `make golden` to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from %s (run `make golden` after checking):\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func snap(res ...api.ResourceStatus) client.Message {
	return client.Message{Snapshot: &api.Snapshot{
		Seq: 1, Instance: "i1", Project: "compose", Tiltfile: "/src/compose/Tiltfile",
		Docker: "unix:///var/run/docker.sock", Started: t0.Add(-192 * time.Second), Resources: res,
	}}
}

func ev(e api.Event) client.Message { return client.Message{Event: &e} }

func logMsg(res, text string) client.Message {
	return ev(api.Event{Kind: api.EventLog, Resource: res, Text: text})
}

func statusMsg(st api.ResourceStatus) client.Message {
	return ev(api.Event{Kind: api.EventStatus, Resource: st.Name, Status: &st})
}

func liveUpdate(started time.Time, total time.Duration) *api.Update {
	return &api.Update{
		Kind: api.UpdateLive, Edit: started.Add(-2 * time.Millisecond), Started: started,
		Ready: started.Add(total - 2*time.Millisecond), Files: 1,
		Spans: []api.Span{{Name: "sync", Duration: 4 * time.Millisecond}, {Name: "run", Duration: 1 * time.Millisecond}, {Name: "ready", Duration: total - 7*time.Millisecond}},
	}
}

// project feeds the model a realistic project: five resources in every
// phase, logs, build output and a few live updates for percentiles.
func project(m *Model) {
	feed(m, snap(
		api.ResourceStatus{Name: "store", Type: "compose", Phase: api.PhaseReady, LastUpdate: &api.Update{
			Kind: api.UpdateInit, Started: t0.Add(-3 * time.Minute), Ready: t0.Add(-3*time.Minute + 2100*time.Millisecond),
			Spans: []api.Span{{Name: "deploy", Duration: 900 * time.Millisecond}, {Name: "ready", Duration: 1200 * time.Millisecond}},
		}},
		api.ResourceStatus{Name: "web", Type: "compose", Phase: api.PhaseUpdating, Labels: []string{"frontend"}},
		api.ResourceStatus{Name: "worker", Type: "local", Phase: api.PhasePending},
		api.ResourceStatus{Name: "api", Type: "compose", Phase: api.PhaseError, Error: "build api: exit status 1",
			LastUpdate: &api.Update{Kind: api.UpdateRebuild, Started: t0.Add(-40 * time.Second), Error: "build api: exit status 1",
				Spans: []api.Span{{Name: "build", Duration: 3400 * time.Millisecond}}}},
		api.ResourceStatus{Name: "docs", Type: "local", Phase: api.PhaseDisabled},
	))
	for i := 1; i <= 3; i++ {
		feed(m, logMsg("web", fmt.Sprintf("Step %d/3 : COPY site /www", i)))
	}
	for i, d := range []time.Duration{38, 41, 45, 52, 120} {
		st := api.ResourceStatus{Name: "web", Type: "compose", Phase: api.PhaseReady, Labels: []string{"frontend"},
			LastUpdate: liveUpdate(t0.Add(time.Duration(i-10)*time.Second), d*time.Millisecond)}
		feed(m, statusMsg(st))
	}
	for i := 0; i < 30; i++ {
		feed(m, logMsg("web", fmt.Sprintf("GET /index.html 200 %d bytes", 100+i)))
	}
	feed(m, logMsg("api", "#5 [2/3] RUN go build ./..."), logMsg("api", "main.go:12:2: undefined: handler"), logMsg("api", "ERROR: build api: exit status 1"))
}
