package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("port %q: %v", p, err)
	}
	return n
}

// statusServer answers every request with the status in code.
func statusServer(t *testing.T, code *atomic.Int32) (*httptest.Server, int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	return srv, portOf(t, srv.Listener.Addr().String())
}

func TestSettingsDefaultsAndOverrides(t *testing.T) {
	got := settingsOf(&model.Probe{})
	want := settings{period: 10 * time.Second, timeout: time.Second, success: 1, failure: 3}
	if got != want {
		t.Errorf("defaults: got %+v, want %+v", got, want)
	}
	p := &model.Probe{InitialDelay: 2 * time.Second, Period: 3 * time.Second, Timeout: 4 * time.Second, SuccessThreshold: 5, FailureThreshold: 6}
	got = settingsOf(p)
	want = settings{delay: 2 * time.Second, period: 3 * time.Second, timeout: 4 * time.Second, success: 5, failure: 6}
	if got != want {
		t.Errorf("overrides: got %+v, want %+v", got, want)
	}
}

func TestOnceHTTP(t *testing.T) {
	var code atomic.Int32
	_, port := statusServer(t, &code)
	ctx := context.Background()
	for _, tc := range []struct {
		host, path string
		code       int
		ok         bool
	}{
		{"", "/", 200, true},
		{"127.0.0.1", "healthz", 204, true},
		{"localhost", "/", 301, true},
		{"", "/redirect", 200, true}, // 302 from the handler, not followed
		{"", "/", 404, false},
		{"", "/", 500, false},
	} {
		code.Store(int32(tc.code))
		p := &model.Probe{HTTPGet: &model.HTTPGetAction{Host: tc.host, Port: port, Path: tc.path}}
		err := Once(ctx, p, "", nil)
		if (err == nil) != tc.ok {
			t.Errorf("host %q path %q status %d: got err %v, want ok=%v", tc.host, tc.path, tc.code, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), strconv.Itoa(tc.code)) {
			t.Errorf("status %d: error %q does not name the status", tc.code, err)
		}
	}
}

func TestOnceHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	p := &model.Probe{HTTPGet: &model.HTTPGetAction{Scheme: "HTTPS", Port: portOf(t, srv.Listener.Addr().String())}}
	if err := Once(context.Background(), p, "", nil); err != nil {
		t.Errorf("https with a self-signed certificate: %v", err)
	}
}

func TestOnceHTTPNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, l.Addr().String())
	l.Close()
	err = Once(context.Background(), &model.Probe{HTTPGet: &model.HTTPGetAction{Port: port}}, "", nil)
	if err == nil {
		t.Fatal("probe of a closed port passed")
	}
}

func TestOnceHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	p := &model.Probe{Timeout: 50 * time.Millisecond, HTTPGet: &model.HTTPGetAction{Port: portOf(t, srv.Listener.Addr().String())}}
	err := Once(context.Background(), p, "", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
}

func TestEmptyHostReachesIPv6Loopback(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Fatalf("listen on ::1: %v", err)
	}
	defer l.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Host, "localhost:") {
			w.WriteHeader(http.StatusBadRequest)
		}
	})}
	go srv.Serve(l)
	defer srv.Close()
	port := portOf(t, l.Addr().String())
	if err := Once(context.Background(), &model.Probe{HTTPGet: &model.HTTPGetAction{Port: port}}, "", nil); err != nil {
		t.Errorf("http: %v", err)
	}
	if err := Once(context.Background(), &model.Probe{TCPSocket: &model.TCPSocketAction{Port: port}}, "", nil); err != nil {
		t.Errorf("tcp: %v", err)
	}
}

func TestOnceTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, l.Addr().String())
	p := &model.Probe{TCPSocket: &model.TCPSocketAction{Host: "127.0.0.1", Port: port}}
	if err := Once(context.Background(), p, "", nil); err != nil {
		t.Errorf("listening: %v", err)
	}
	l.Close()
	if err := Once(context.Background(), p, "", nil); err == nil {
		t.Error("closed: probe passed")
	}
}

func TestOnceExec(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marker"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "PROBE_WANT=yes")
	ctx := context.Background()
	exe := func(argv ...string) error {
		return Once(ctx, &model.Probe{Exec: &model.ExecAction{Command: argv}}, dir, env)
	}
	if err := exe("true"); err != nil {
		t.Errorf("true: %v", err)
	}
	if err := exe("test", "-f", "marker"); err != nil {
		t.Errorf("dir not honoured: %v", err)
	}
	if err := exe("sh", "-c", `test "$PROBE_WANT" = yes`); err != nil {
		t.Errorf("env not honoured: %v", err)
	}
	err := exe("sh", "-c", "echo not yet >&2; exit 7")
	if err == nil || !strings.Contains(err.Error(), "exit code 7") || !strings.Contains(err.Error(), "not yet") {
		t.Errorf("failing command: got %v, want exit code 7 and its output", err)
	}
	if err := exe("/nonexistent/probe"); err == nil {
		t.Error("missing command passed")
	}
}

func TestOnceExecCancelKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	p := &model.Probe{Timeout: time.Minute, Exec: &model.ExecAction{
		Command: []string{"sh", "-c", "sleep 30 & echo $! > pid.tmp; mv pid.tmp pid; wait"},
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pidc := make(chan int, 1)
	go func() {
		defer cancel()
		for ctx.Err() == nil {
			if b, err := os.ReadFile(pidFile); err == nil {
				pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
				pidc <- pid
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	err := Once(ctx, p, dir, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want a cancellation error", err)
	}
	select {
	case pid := <-pidc:
		waitGone(t, pid)
	default:
		t.Fatal("probe ended before its command wrote the pid")
	}
}

// waitGone fails the test unless pid is gone (or a zombie) within a few seconds:
// a SIGKILLed process is not reaped synchronously.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive: %s", pid, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOnceNoAction(t *testing.T) {
	if err := Once(context.Background(), &model.Probe{}, "", nil); !errors.Is(err, ErrNoAction) {
		t.Errorf("got %v, want ErrNoAction", err)
	}
	if err := Once(context.Background(), nil, "", nil); !errors.Is(err, ErrNoAction) {
		t.Errorf("nil probe: got %v, want ErrNoAction", err)
	}
}

func next(t *testing.T, ch <-chan Result) Result {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("channel closed early")
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no result")
	}
	return Result{}
}

func TestWatchTransitions(t *testing.T) {
	var code atomic.Int32
	code.Store(503)
	_, port := statusServer(t, &code)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &model.Probe{Period: 5 * time.Millisecond, FailureThreshold: 2, SuccessThreshold: 2,
		HTTPGet: &model.HTTPGetAction{Port: port}}
	ch := Watch(ctx, p, "", nil)

	r := next(t, ch)
	if r.Ready || r.Err == nil || r.At.IsZero() {
		t.Fatalf("first result: got %+v, want not ready with an error", r)
	}
	code.Store(200)
	if r := next(t, ch); !r.Ready || r.Err != nil {
		t.Fatalf("after 200: got %+v, want ready", r)
	}
	code.Store(500)
	if r := next(t, ch); r.Ready || r.Err == nil || !strings.Contains(r.Err.Error(), "500") {
		t.Fatalf("after 500: got %+v, want not ready naming 500", r)
	}
	code.Store(200)
	if r := next(t, ch); !r.Ready {
		t.Fatalf("after recovery: got %+v, want ready", r)
	}
	cancel()
	for range ch { // drains to the close; a missing close hangs the test
	}
}

func TestWatchReportsOnlyChanges(t *testing.T) {
	var code atomic.Int32
	code.Store(200)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	p := &model.Probe{Period: time.Millisecond, HTTPGet: &model.HTTPGetAction{Port: portOf(t, srv.Listener.Addr().String())}}
	ch := Watch(ctx, p, "", nil)
	if r := next(t, ch); !r.Ready {
		t.Fatalf("got %+v, want ready", r)
	}
	// Keep probing a steady server: nothing new may arrive.
	for start := hits.Load(); hits.Load() < start+5; {
		select {
		case r := <-ch:
			t.Fatalf("unexpected result while steady: %+v", r)
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	for r := range ch {
		t.Fatalf("result after cancel: %+v", r)
	}
}
