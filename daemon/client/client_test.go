package client_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
	"github.com/loop-dev/loop/daemon/internal/server"
)

var errUnknown = errors.New("unknown resource")

type fakeControl struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeControl) Trigger(_ context.Context, name string) error {
	return f.record("trigger " + name)
}

func (f *fakeControl) SetEnabled(_ context.Context, name string, on bool) error {
	if on {
		return f.record("enable " + name)
	}
	return f.record("disable " + name)
}

// Wait answers as if update 1 of web had carried change 1.
func (f *fakeControl) Wait(_ context.Context, req api.WaitRequest) (api.Verdict, error) {
	if err := f.record("wait " + strings.Join(req.Resources, " ")); err != nil {
		return api.Verdict{}, err
	}
	return api.Verdict{Result: api.ResultReady, Change: 1, Resources: []api.ResourceVerdict{
		{Name: "web", Affected: true, Phase: api.PhaseReady, Update: &api.Update{ID: 1, Kind: api.UpdateLive, Changes: []uint64{1}}},
	}}, nil
}

func (f *fakeControl) record(c string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasSuffix(c, " nope") {
		return errUnknown
	}
	f.calls = append(f.calls, c)
	return nil
}

// serve starts a server on dir/loop.sock until the returned stop is called.
func serve(t *testing.T, o server.Options) (*server.Server, func()) {
	t.Helper()
	s, err := server.Listen(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(stop) })
	return s, func() { once.Do(stop) }
}

func socket(t *testing.T) string {
	return filepath.Join(t.TempDir(), api.SocketName)
}

func status(name string, p api.Phase) api.Event {
	return api.Event{Kind: api.EventStatus, Resource: name, Status: &api.ResourceStatus{Name: name, Type: "compose", Phase: p}}
}

func logEv(res, text string) api.Event {
	return api.Event{Kind: api.EventLog, Resource: res, Text: text, Time: time.Now()}
}

func TestStateEventsAndResume(t *testing.T) {
	sock := socket(t)
	s, _ := serve(t, server.Options{Socket: sock, Info: server.Info{Project: "demo"}, EventLog: 8})
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	s.Sink(status("web", api.PhaseUpdating))
	s.Sink(logEv("web", "building"))
	c := client.New(client.Options{Socket: sock})
	ctx := context.Background()
	snap, err := c.State(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Project != "demo" || snap.Seq != 2 || len(snap.Resources) != 1 || len(snap.Logs) != 1 || snap.Instance == "" {
		t.Fatalf("snapshot = %+v", snap)
	}
	ectx, cancel := context.WithCancel(ctx)
	st, err := c.Events(ectx, snap.Seq, snap.Instance)
	if err != nil {
		t.Fatal(err)
	}
	s.Sink(status("web", api.PhaseReady))
	s.Sink(logEv("web", "serving"))
	ev := <-st.C
	if ev.Seq != 3 || ev.Status == nil || ev.Status.Phase != api.PhaseReady {
		t.Fatalf("first event = %+v, want seq 3 ready", ev)
	}
	if ev = <-st.C; ev.Seq != 4 || ev.Text != "serving" {
		t.Fatalf("second event = %+v", ev)
	}
	cancel()
	for range st.C {
	}
	// Resume after seq 2 replays 3 and 4.
	st, err = c.Events(ctx, 2, snap.Instance)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-st.C; ev.Seq != 3 {
		t.Fatalf("resumed at %d, want 3", ev.Seq)
	}
	if _, err := c.Events(ctx, 2, "another-daemon"); !errors.Is(err, client.ErrGap) {
		t.Fatalf("events of another instance: err = %v, want ErrGap", err)
	}
	for i := 0; i < 20; i++ {
		s.Sink(logEv("web", "flood"))
	}
	if _, err := c.Events(ctx, 2, ""); !errors.Is(err, client.ErrGap) {
		t.Fatalf("events evicted from an 8-event log: err = %v, want ErrGap", err)
	}
}

func TestLogs(t *testing.T) {
	sock := socket(t)
	s, _ := serve(t, server.Options{Socket: sock})
	s.Sink(status("web", api.PhaseReady))
	s.Sink(status("db", api.PhaseReady))
	for _, l := range []string{"a", "b", "c"} {
		s.Sink(logEv("web", l))
		s.Sink(logEv("db", "db-"+l))
	}
	c := client.New(client.Options{Socket: sock})
	ctx := context.Background()
	collect := func(o client.LogsOptions) []string {
		st, err := c.Logs(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for l := range st.C {
			out = append(out, l.Text)
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := strings.Join(collect(client.LogsOptions{Resource: "web", Tail: 2}), ","); got != "b,c" {
		t.Fatalf("web tail 2 = %s", got)
	}
	if got := strings.Join(collect(client.LogsOptions{}), ","); got != "a,db-a,b,db-b,c,db-c" {
		t.Fatalf("all logs = %s", got)
	}
	if got := collect(client.LogsOptions{Resource: "web", Since: "1h"}); len(got) != 3 {
		t.Fatalf("since 1h = %v", got)
	}
	if _, err := c.Logs(ctx, client.LogsOptions{Resource: "nope"}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown resource: err = %v, want ErrNotFound", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Logs(fctx, client.LogsOptions{Resource: "web", Tail: 1, Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	if l := <-st.C; l.Text != "c" {
		t.Fatalf("follow backlog = %q", l.Text)
	}
	s.Sink(logEv("db", "other"))
	s.Sink(logEv("web", "new"))
	if l := <-st.C; l.Text != "new" || l.Resource != "web" {
		t.Fatalf("followed line = %+v, want web's new", l)
	}
}

func TestControlAndErrors(t *testing.T) {
	sock := socket(t)
	fc := &fakeControl{}
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("{}")) })
	serve(t, server.Options{Socket: sock, Control: fc, UnknownResource: errUnknown, Metrics: metrics})
	c := client.New(client.Options{Socket: sock})
	ctx := context.Background()
	if err := c.Trigger(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEnabled(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	if err := c.SetEnabled(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	err := c.Trigger(ctx, "nope")
	var ae *client.APIError
	if !errors.Is(err, client.ErrNotFound) || !errors.As(err, &ae) || !strings.Contains(ae.Message, "nope") {
		t.Fatalf("trigger unknown: %v", err)
	}
	if got := strings.Join(fc.calls, ";"); got != "trigger web;disable web;enable web" {
		t.Fatalf("calls = %s", got)
	}
	if _, err := c.Events(ctx, 0, ""); err != nil {
		t.Fatalf("events from 0 on an empty log: %v", err)
	}
	// Existing socket of a live daemon: refuse; a stale file: replace.
	if _, err := server.Listen(server.Options{Socket: sock}); !errors.Is(err, server.ErrAlreadyRunning) {
		t.Fatalf("second listen: %v, want ErrAlreadyRunning", err)
	}
	stale := socket(t)
	if err := os.WriteFile(stale, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	serve(t, server.Options{Socket: stale})
	if _, err := client.New(client.Options{Socket: stale}).State(ctx, 0); err != nil {
		t.Fatalf("state over a replaced stale socket: %v", err)
	}
	down := client.New(client.Options{Socket: filepath.Join(t.TempDir(), "none.sock")})
	if _, err := down.State(ctx, 0); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("no daemon: err = %v, want ErrUnavailable", err)
	}
}

func TestTCPListenerNeedsLoopbackAndToken(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, api.TokenName)
	if _, err := server.Listen(server.Options{Socket: filepath.Join(dir, "a.sock"), Listen: "0.0.0.0:0", TokenFile: tokFile}); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("listen on 0.0.0.0: err = %v, want a loopback refusal", err)
	}
	s, _ := serve(t, server.Options{Socket: filepath.Join(dir, "b.sock"), Listen: "127.0.0.1:0", TokenFile: tokFile})
	fi, err := os.Stat(tokFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode = %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	tok, _ := os.ReadFile(tokFile)
	ctx := context.Background()
	addr := s.Addr().String()
	var ae *client.APIError
	if _, err := client.New(client.Options{Addr: addr}).State(ctx, 0); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("no token: err = %v, want 401", err)
	}
	if _, err := client.New(client.Options{Addr: addr, Token: "wrong"}).State(ctx, 0); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("wrong token: err = %v, want 401", err)
	}
	if _, err := client.New(client.Options{Addr: addr, Token: strings.TrimSpace(string(tok))}).State(ctx, 0); err != nil {
		t.Fatalf("with token: %v", err)
	}
}

func next(t *testing.T, ch <-chan client.Message) client.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("subscription closed")
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return client.Message{}
}

func TestSubscribeSurvivesDaemonRestart(t *testing.T) {
	sock := socket(t)
	s1, stop1 := serve(t, server.Options{Socket: sock})
	s1.Sink(status("web", api.PhaseReady))
	c := client.New(client.Options{Socket: sock, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := c.Subscribe(ctx, client.SubscribeOptions{LogTail: 5})
	m := next(t, sub)
	if m.Snapshot == nil || len(m.Snapshot.Resources) != 1 {
		t.Fatalf("first message = %+v, want a snapshot with web", m)
	}
	first := m.Snapshot.Instance
	s1.Sink(logEv("web", "hello"))
	if m = next(t, sub); m.Event == nil || m.Event.Text != "hello" {
		t.Fatalf("second message = %+v, want the log event", m)
	}
	stop1()
	if m = next(t, sub); m.Disconnected == nil || !errors.Is(m.Disconnected, client.ErrUnavailable) {
		t.Fatalf("after stop: %+v, want Disconnected (ErrUnavailable)", m)
	}
	time.Sleep(100 * time.Millisecond) // let a few reconnect attempts fail
	s2, _ := serve(t, server.Options{Socket: sock})
	s2.Sink(status("db", api.PhasePending))
	m = next(t, sub)
	if m.Snapshot == nil || m.Snapshot.Instance == first || len(m.Snapshot.Resources) != 1 || m.Snapshot.Resources[0].Name != "db" {
		t.Fatalf("after restart: %+v, want a new daemon's snapshot", m)
	}
	cancel()
	for range sub {
	}
}
