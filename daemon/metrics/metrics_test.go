package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// live returns a finished live update edited at t0+at taking total, with a
// 2 ms batch, 1 ms queue and a sync span of half the total.
func live(at, total time.Duration) api.Update {
	edit := t0.Add(at)
	return api.Update{
		Kind: api.UpdateLive, Edit: edit, Batched: edit.Add(2 * time.Millisecond),
		Started: edit.Add(3 * time.Millisecond), Ready: edit.Add(total), Files: 1,
		Spans: []api.Span{{Name: "sync", Duration: total / 2}},
	}
}

func TestPercentileNearestRank(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 10; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 5 * time.Millisecond}, {90, 9 * time.Millisecond}, {95, 10 * time.Millisecond}, {10, time.Millisecond}, {100, 10 * time.Millisecond}, {1, time.Millisecond}} {
		if got := Percentile(d, c.p); got != c.want {
			t.Errorf("p%v of 1..10ms = %s, want %s", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %s, want 0", got)
	}
}

func sum(spans []api.Span) time.Duration {
	var s time.Duration
	for _, x := range spans {
		s += x.Duration
	}
	return s
}

func TestBreakdownAddsUp(t *testing.T) {
	u := live(0, 40*time.Millisecond)
	u.Spans = append(u.Spans, api.Span{Name: "run", Duration: 5 * time.Millisecond}, api.Span{Name: "sync", Duration: time.Millisecond})
	bd := api.Breakdown(u)
	want := []string{"batch", "queue", "sync", "run", "other"}
	var names []string
	for _, s := range bd {
		names = append(names, string(s.Name))
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("phases %v, want %v", names, want)
	}
	if sum(bd) != u.Total() {
		t.Fatalf("phases add to %s, total %s", sum(bd), u.Total())
	}
	if bd[2].Duration != 21*time.Millisecond {
		t.Errorf("sync = %s, want the two sync spans summed (21ms)", bd[2].Duration)
	}
	init := api.Update{Kind: api.UpdateInit, Started: t0, Ready: t0.Add(time.Second), Spans: []api.Span{{Name: "build", Duration: 700 * time.Millisecond}}}
	bd = api.Breakdown(init)
	if len(bd) != 2 || bd[0].Name != "build" || bd[1] != (api.Span{Name: "other", Duration: 300 * time.Millisecond}) {
		t.Errorf("init breakdown = %+v", bd)
	}
	if bd := api.Breakdown(api.Update{Started: t0, Error: "boom"}); bd != nil {
		t.Errorf("failed update has breakdown %+v", bd)
	}
}

func TestSummarizeGroupsAndMeans(t *testing.T) {
	var traces []api.Trace
	for i := 1; i <= 20; i++ {
		traces = append(traces, api.Trace{Resource: "web", Update: live(time.Duration(i)*time.Second, time.Duration(i)*time.Millisecond+7*time.Microsecond)})
	}
	traces = append(traces,
		api.Trace{Resource: "web", Update: api.Update{Kind: api.UpdateRebuild, Edit: t0, Batched: t0, Started: t0, Ready: t0.Add(3 * time.Second)}},
		api.Trace{Resource: "api", Update: api.Update{Kind: api.UpdateLive, Edit: t0, Started: t0, Error: "sync failed"}},
	)
	s := Summarize(traces, time.Time{})
	if s.Traces != 22 {
		t.Fatalf("traces = %d, want 22", s.Traces)
	}
	g, ok := s.Group("web", api.UpdateLive)
	if !ok {
		t.Fatalf("no web/live group in %+v", s.Groups)
	}
	if g.Count != 20 || g.P50 != 10*time.Millisecond+7*time.Microsecond || g.P95 != 19*time.Millisecond+7*time.Microsecond || g.Max != 20*time.Millisecond+7*time.Microsecond {
		t.Errorf("web/live = %+v", g)
	}
	if sum(g.Phases) != g.Mean {
		t.Errorf("mean phases add to %s, mean %s: %+v", sum(g.Phases), g.Mean, g.Phases)
	}
	if g.Phases[len(g.Phases)-1].Name != "other" || g.Phases[0].Name != "batch" {
		t.Errorf("phase order %+v", g.Phases)
	}
	live, _ := s.Group("", api.UpdateLive)
	if live.Count != 20 || live.Errors != 1 {
		t.Errorf("all live = count %d errors %d, want 20 and 1", live.Count, live.Errors)
	}
	all, _ := s.Group("", "")
	if all.Count != 21 || all.Max != 3*time.Second {
		t.Errorf("all = %+v", all)
	}
	if last := s.Groups[len(s.Groups)-1]; last.Resource != "" || last.Kind != "" {
		t.Errorf("last group is %s/%s, want the overall one", last.Resource, last.Kind)
	}
	recent := Summarize(traces, t0.Add(15*time.Second))
	if g, _ := recent.Group("web", api.UpdateLive); g.Count != 6 {
		t.Errorf("since t0+15s: %d web/live traces, want 6", g.Count)
	}
}

func TestRecordDedupesAndWaitsForReady(t *testing.T) {
	s := Open(Options{Keep: 3})
	defer s.Close()
	u := live(0, 10*time.Millisecond)
	pending := u
	pending.Ready = time.Time{}
	if s.Record("web", pending) {
		t.Error("an update not yet ready was recorded")
	}
	ev := api.Event{Kind: api.EventStatus, Resource: "web", Status: &api.ResourceStatus{Name: "web", Phase: api.PhaseReady, LastUpdate: &u}}
	s.Observe(ev)
	s.Observe(ev) // the same update reported again (e.g. the next "updating" event)
	if n := len(s.Recent()); n != 1 {
		t.Fatalf("%d traces after the same update twice, want 1", n)
	}
	for i := 1; i <= 4; i++ {
		if !s.Record("web", live(time.Duration(i)*time.Second, time.Duration(i)*time.Millisecond)) {
			t.Fatalf("update %d not recorded", i)
		}
	}
	r := s.Recent()
	if len(r) != 3 || r[0].Total() != 2*time.Millisecond || r[2].Total() != 4*time.Millisecond {
		t.Fatalf("window keeps %d traces (%v), want the last 3", len(r), r)
	}
	if s.Record("web", live(2*time.Second, time.Millisecond)) {
		t.Error("an older update was recorded after a newer one")
	}
	failed := api.Update{Kind: api.UpdateRebuild, Started: t0.Add(time.Minute), Error: "build failed"}
	if !s.Record("web", failed) {
		t.Error("a failed update was not recorded")
	}
}

func TestHistoryFileRoundTripAndRotation(t *testing.T) {
	dir := t.TempDir()
	s := Open(Options{Dir: dir, MaxBytes: 2000})
	const n = 40
	for i := range n {
		s.Record("web", live(time.Duration(i)*time.Second, time.Duration(i+1)*time.Millisecond))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{HistoryFile, RotatedFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Size() > 2000 {
			t.Errorf("%s is %d bytes, over the 2000-byte limit", name, fi.Size())
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	traces, err := ReadHistory(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(traces) == 0 || len(traces) >= n {
		t.Fatalf("history holds %d traces; want the newest ones only, bounded below %d", len(traces), n)
	}
	last := traces[len(traces)-1]
	if last.Resource != "web" || last.Total() != n*time.Millisecond || len(last.Spans) != 1 {
		t.Errorf("newest trace read back as %+v", last)
	}
	for i := 1; i < len(traces); i++ {
		if !traces[i].Started.After(traces[i-1].Started) {
			t.Fatalf("traces out of order at %d", i)
		}
	}
	since := last.Started.Add(-2 * time.Second)
	if recent, _ := ReadHistory(dir, since); len(recent) != 3 {
		t.Errorf("%d traces since the third newest, want 3", len(recent))
	}
	if none, err := ReadHistory(t.TempDir(), time.Time{}); err != nil || len(none) != 0 {
		t.Errorf("empty state dir: %v, %v", none, err)
	}
}

// fullDisk is a history file on a disk that fills up: once full, a write
// stores part of its bytes and fails with ENOSPC.
type fullDisk struct {
	*os.File
	mu   *sync.Mutex
	full *bool
}

func (f fullDisk) Write(p []byte) (int, error) {
	f.mu.Lock()
	full := *f.full
	f.mu.Unlock()
	if full {
		n, _ := f.File.Write(p[:len(p)/2])
		return n, &fs.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	return f.File.Write(p)
}

func TestDiskFullKeepsEarlierLines(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	full := false
	var logs []string
	var logMu sync.Mutex
	s := Open(Options{Dir: dir, Logf: func(f string, a ...any) {
		logMu.Lock()
		logs = append(logs, fmt.Sprintf(f, a...))
		logMu.Unlock()
	}, open: func(path string) (file, error) {
		f, err := openFile(path)
		if err != nil {
			return nil, err
		}
		return fullDisk{File: f.(*os.File), mu: &mu, full: &full}, nil
	}})
	setFull := func(v bool) {
		mu.Lock()
		full = v
		mu.Unlock()
	}
	for i := range 5 {
		s.Record("web", live(time.Duration(i)*time.Second, time.Millisecond))
	}
	waitLines(t, dir, 5)
	setFull(true)
	for i := 5; i < 8; i++ {
		s.Record("web", live(time.Duration(i)*time.Second, time.Millisecond))
	}
	waitFailed(t, s, 3)
	setFull(false)
	s.Record("web", live(8*time.Second, time.Millisecond))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, HistoryFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("history has %d lines, want the 5 before the disk filled and 1 after:\n%s", len(lines), data)
	}
	for i, l := range lines {
		var tr api.Trace
		if err := json.Unmarshal([]byte(l), &tr); err != nil {
			t.Errorf("line %d is not a whole trace: %v: %s", i+1, err, l)
		}
	}
	traces, err := ReadHistory(dir, time.Time{})
	if err != nil || len(traces) != 6 || !traces[5].Started.Equal(live(8*time.Second, 0).Started) {
		t.Errorf("read back %d traces (%v)", len(traces), err)
	}
	if _, failed := s.Lost(); failed != 3 {
		t.Errorf("%d failed writes counted, want 3", failed)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if len(logs) != 2 || !strings.Contains(logs[0], "no space left") || !strings.Contains(logs[1], "writing again") {
		t.Errorf("logs = %q, want one failure (naming the cause) and one recovery", logs)
	}
}

func waitLines(t *testing.T, dir string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if tr, _ := ReadHistory(dir, time.Time{}); len(tr) >= n {
			return
		}
	}
	t.Fatalf("history never reached %d lines", n)
}

func waitFailed(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, f := s.Lost(); f >= n {
			return
		}
	}
	t.Fatalf("never saw %d failed writes", n)
}

// A torn line that could not be cut off (truncate failed) must not glue
// itself to the next line.
func TestTornLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	line, _ := json.Marshal(api.Trace{Resource: "web", Update: live(0, time.Millisecond)})
	torn := string(line) + "\n" + string(line[:len(line)/2])
	if err := os.WriteFile(filepath.Join(dir, HistoryFile), []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}
	s := Open(Options{Dir: dir})
	s.Record("web", live(time.Second, 2*time.Millisecond))
	s.Close()
	traces, err := ReadHistory(dir, time.Time{})
	if err != nil || len(traces) != 2 || traces[1].Total() != 2*time.Millisecond {
		t.Fatalf("read %d traces (%v), want the whole line before the tear and the one after", len(traces), err)
	}
}

func TestRecordNeverWaitsForTheDisk(t *testing.T) {
	release := make(chan struct{})
	s := Open(Options{Dir: t.TempDir(), open: func(path string) (file, error) {
		<-release // a disk that hangs
		return openFile(path)
	}})
	const n = queueLen + 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			s.Record("web", live(time.Duration(i)*time.Second, time.Millisecond))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked on a hung disk")
	}
	dropped, _ := s.Lost()
	if dropped < n-queueLen-1 || dropped > n-queueLen {
		t.Errorf("dropped %d, want %d or %d (queue %d)", dropped, n-queueLen-1, n-queueLen, queueLen)
	}
	if len(s.Recent()) != DefaultKeep {
		t.Errorf("memory window has %d traces, want %d", len(s.Recent()), DefaultKeep)
	}
	close(release)
	s.Close()
}

func TestHandlers(t *testing.T) {
	dir := t.TempDir()
	s := Open(Options{Dir: dir})
	for i := range 10 {
		s.Record("web", live(time.Duration(i)*time.Second, time.Duration(i+1)*time.Millisecond))
	}
	s.Record("web", api.Update{Kind: api.UpdateRebuild, Started: t0.Add(time.Hour), Error: "boom"})
	waitLines(t, dir, 11)

	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metrics?recent=1", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /v1/metrics: %d %s", rec.Code, rec.Body)
	}
	var m api.Metrics
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	g, ok := m.History.Group("web", api.UpdateLive)
	if !ok || g.Count != 10 || g.P50 != 5*time.Millisecond {
		t.Errorf("history web/live = %+v", g)
	}
	if w, _ := m.Window.Group("web", api.UpdateRebuild); w.Errors != 1 {
		t.Errorf("window web/rebuild = %+v, want 1 error", w)
	}
	if len(m.Recent) != 11 {
		t.Errorf("recent = %d traces, want 11", len(m.Recent))
	}
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/v1/metrics?since=bogus", nil))
	if rec.Code != 400 {
		t.Errorf("since=bogus: %d, want 400", rec.Code)
	}
	rec = httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/metrics", nil))
	if rec.Code != 405 {
		t.Errorf("POST: %d, want 405", rec.Code)
	}

	rec = httptest.NewRecorder()
	s.PrometheusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`loop_change_to_result_seconds_bucket{kind="live",resource="web",le="0.005"} 5`,
		`loop_change_to_result_seconds_count{kind="live",resource="web"} 10`,
		`loop_update_phase_seconds_count{kind="live",phase="sync",resource="web"} 10`,
		`loop_updates_failed_total{kind="rebuild",resource="web"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("prometheus output lacks %q:\n%s", want, body)
		}
	}
	s.Close()
}
