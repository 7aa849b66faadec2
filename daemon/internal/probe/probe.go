// Package probe runs readiness probes (model.Probe: an HTTP GET, a TCP
// connect or a command) the way Kubernetes and Tilt's probe() do, and reports
// when the probed thing becomes ready or stops being ready.
//
// Defaults are Tilt's and Kubernetes': initial delay 0, period 10s, timeout
// 1s, success threshold 1, failure threshold 3. Values set in the model win.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/loop-dev/loop/daemon/model"
)

// Defaults applied to the zero fields of a model.Probe.
const (
	DefaultPeriod           = 10 * time.Second
	DefaultTimeout          = 1 * time.Second
	DefaultSuccessThreshold = 1
	DefaultFailureThreshold = 3
)

// ErrNoAction is returned for a probe that names no HTTP, TCP or exec action.
var ErrNoAction = errors.New("probe has no http_get, tcp_socket or exec action")

// Result is one change of readiness.
type Result struct {
	Ready bool
	// Err is the failure of the last attempt when Ready is false.
	Err error
	At  time.Time
}

// settings are a probe's timings with defaults filled in.
type settings struct {
	delay, period, timeout time.Duration
	success, failure       int
}

func settingsOf(p *model.Probe) settings {
	s := settings{
		delay:   p.InitialDelay,
		period:  p.Period,
		timeout: p.Timeout,
		success: p.SuccessThreshold,
		failure: p.FailureThreshold,
	}
	if s.period <= 0 {
		s.period = DefaultPeriod
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.success <= 0 {
		s.success = DefaultSuccessThreshold
	}
	if s.failure <= 0 {
		s.failure = DefaultFailureThreshold
	}
	return s
}

// Once runs one attempt of p, bounded by p's timeout, and returns nil when it
// passes. Exec actions run in dir with env (nil env inherits the daemon's
// environment, as os/exec does).
func Once(ctx context.Context, p *model.Probe, dir string, env []string) error {
	if p == nil {
		return ErrNoAction
	}
	ctx, cancel := context.WithTimeout(ctx, settingsOf(p).timeout)
	defer cancel()
	switch {
	case p.HTTPGet != nil:
		return httpGet(ctx, p.HTTPGet)
	case p.TCPSocket != nil:
		return tcpConnect(ctx, p.TCPSocket)
	case p.Exec != nil:
		return execCommand(ctx, p.Exec, dir, env)
	}
	return ErrNoAction
}

// Watch probes p after its initial delay and then every period, until ctx is
// done. The first Result is sent once the state is known (success threshold
// passes in a row, or failure threshold failures in a row); after that one is
// sent on each change between ready and not ready. Probing waits while a
// Result is undelivered, so the receiver should read promptly. The channel is
// closed, and the probing goroutine has returned, after ctx is done.
func Watch(ctx context.Context, p *model.Probe, dir string, env []string) <-chan Result {
	out := make(chan Result)
	go func() {
		defer close(out)
		watch(ctx, p, dir, env, out)
	}()
	return out
}

func watch(ctx context.Context, p *model.Probe, dir string, env []string, out chan<- Result) {
	s := settingsOf(p)
	if !sleep(ctx, s.delay) {
		return
	}
	ticker := time.NewTicker(s.period)
	defer ticker.Stop()

	known, ready := false, false
	successes, failures := 0, 0
	for {
		err := Once(ctx, p, dir, env)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		var send *Result
		switch {
		case err == nil && successes >= s.success && (!known || !ready):
			known, ready = true, true
			send = &Result{Ready: true, At: time.Now()}
		case err != nil && failures >= s.failure && (!known || ready):
			known, ready = true, false
			send = &Result{Ready: false, Err: err, At: time.Now()}
		}
		if send != nil {
			select {
			case out <- *send:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// dial connects to host:port. An empty host means "localhost" as Tilt has it,
// but is dialled as 127.0.0.1 then ::1 directly: dev servers bind either
// loopback, and resolving the name would add a lookup to every attempt.
func dial(ctx context.Context, host string, port int) (net.Conn, error) {
	var d net.Dialer
	p := strconv.Itoa(port)
	if host != "" {
		return d.DialContext(ctx, "tcp", net.JoinHostPort(host, p))
	}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", p))
	if err == nil || ctx.Err() != nil {
		return conn, err
	}
	if conn6, err6 := d.DialContext(ctx, "tcp", net.JoinHostPort("::1", p)); err6 == nil {
		return conn6, nil
	}
	return nil, err
}

func tcpConnect(ctx context.Context, a *model.TCPSocketAction) error {
	conn, err := dial(ctx, a.Host, a.Port)
	if err != nil {
		return fmt.Errorf("tcp probe %s: %w", hostPort(a.Host, a.Port), err)
	}
	return conn.Close()
}

func hostPort(host string, port int) string {
	if host == "" {
		host = "localhost"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// httpClient does not follow redirects (a 3xx is a pass, as in Kubernetes)
// and keeps no idle connections: probes are seconds apart, and a kept
// connection would hide a server that stopped accepting new ones.
var httpClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport: &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		// Kubernetes does not verify certificates in probes either: dev
		// servers serve self-signed ones, and readiness is not trust.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			// The URL carries the probe's own host; an empty one was
			// written as "localhost" and is dialled as loopback.
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(port)
			if err != nil {
				return nil, fmt.Errorf("parse port %q: %w", port, err)
			}
			if host == "localhost" {
				host = ""
			}
			return dial(ctx, host, n)
		},
	},
}

func httpGet(ctx context.Context, a *model.HTTPGetAction) error {
	scheme := strings.ToLower(a.Scheme)
	if scheme == "" {
		scheme = "http"
	}
	path := a.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	url := scheme + "://" + hostPort(a.Host, a.Port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("http probe %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "loop-probe")
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("http probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	// Read a little so a small body is not cut off mid-send; the rest is dropped.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("http probe %s: status %s", url, resp.Status)
	}
	return nil
}

// execOutputLimit bounds the output of an exec probe quoted in its error.
const execOutputLimit = 1 << 10

func execCommand(ctx context.Context, a *model.ExecAction, dir string, env []string) error {
	if len(a.Command) == 0 {
		return errors.New("exec probe: empty command")
	}
	cmd := exec.CommandContext(ctx, a.Command[0], a.Command[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	out := &tailBuffer{limit: execOutputLimit}
	cmd.Stdout, cmd.Stderr = out, out
	isolate(cmd)
	// A child that keeps the output pipe open must not hold the probe past
	// its timeout.
	cmd.WaitDelay = 100 * time.Millisecond
	err := cmd.Run()
	if err == nil {
		return nil
	}
	name := strings.Join(a.Command, " ")
	if ctx.Err() != nil {
		return fmt.Errorf("exec probe %q: %w", name, ctx.Err())
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			return fmt.Errorf("exec probe %q: exit code %d: %s", name, exitErr.ExitCode(), msg)
		}
		return fmt.Errorf("exec probe %q: exit code %d", name, exitErr.ExitCode())
	}
	return fmt.Errorf("exec probe %q: %w", name, err)
}

// tailBuffer keeps the last limit bytes written to it. os/exec writes to it
// from one goroutine per stream, so Stdout and Stderr being the same value
// is serialised by exec (it shares one copying goroutine when they are ==).
type tailBuffer struct {
	limit int
	buf   []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.limit; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string { return string(b.buf) }
