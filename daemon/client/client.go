// Package client is the Go client of the daemon's local API (see
// daemon/internal/server for the endpoints). The TUI and every CLI verb
// talk to the daemon only through it, in daemon/api types.
//
// A Client is safe for concurrent use. Streams deliver on a channel that is
// closed when the stream ends; Subscribe keeps a view of the daemon alive
// across disconnects, reconnecting with backoff.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// Errors callers branch on; match them with errors.Is.
var (
	// ErrUnavailable wraps failures to reach the daemon (no daemon running,
	// connection refused or dropped).
	ErrUnavailable = errors.New("daemon unavailable")
	// ErrNotFound is a 404: an unknown resource or endpoint.
	ErrNotFound = errors.New("not found")
	// ErrGap is a 410: the event log no longer holds the requested sequence
	// number, or the daemon restarted. Read the state again.
	ErrGap = errors.New("event stream gap")
)

// APIError is an error response from the daemon.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Is matches ErrNotFound and ErrGap by status.
func (e *APIError) Is(target error) bool {
	return (target == ErrNotFound && e.Status == http.StatusNotFound) ||
		(target == ErrGap && e.Status == http.StatusGone)
}

type unavailable struct{ err error }

func (u unavailable) Error() string        { return fmt.Sprintf("reach the loop daemon: %v", u.err) }
func (u unavailable) Unwrap() error        { return u.err }
func (u unavailable) Is(target error) bool { return target == ErrUnavailable }

// Options say where the daemon listens.
type Options struct {
	// Socket is the unix socket path (the project's state dir + api.SocketName).
	Socket string
	// Addr is a loopback TCP address, used instead of Socket, with Token.
	Addr  string
	Token string
	// MinBackoff and MaxBackoff bound Subscribe's reconnect delay
	// (defaults 100ms and 2s); it doubles per failed attempt.
	MinBackoff, MaxBackoff time.Duration
}

// Client talks to one daemon.
type Client struct {
	o    Options
	hc   *http.Client
	base string
}

// New returns a client; it connects lazily, per request.
func New(o Options) *Client {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = 2 * time.Second
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	base := "http://" + o.Addr
	if o.Addr == "" {
		sock := o.Socket
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://loop"
	}
	return &Client{o: o, hc: &http.Client{Transport: tr}, base: base}
}

func (c *Client) do(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	return c.doBody(ctx, method, path, q, nil)
}

func (c *Client) doBody(ctx context.Context, method, path string, q url.Values, body any) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.o.Token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, unavailable{err}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e api.Error
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s", method, path, resp.Status)
		}
		return nil, &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	return resp, nil
}

// State returns the daemon's snapshot, with up to logTail last lines of
// every resource.
func (c *Client) State(ctx context.Context, logTail int) (*api.Snapshot, error) {
	q := url.Values{}
	if logTail > 0 {
		q.Set("logs", strconv.Itoa(logTail))
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/state", q)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s api.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, unavailable{fmt.Errorf("read state: %w", err)}
	}
	return &s, nil
}

// Trigger asks the daemon to update a resource now.
func (c *Client) Trigger(ctx context.Context, name string) error {
	return c.post(ctx, "/v1/resources/"+url.PathEscape(name)+"/trigger")
}

// SetEnabled enables or disables a resource.
func (c *Client) SetEnabled(ctx context.Context, name string, on bool) error {
	verb := "disable"
	if on {
		verb = "enable"
	}
	return c.post(ctx, "/v1/resources/"+url.PathEscape(name)+"/"+verb)
}

// Stop asks the daemon to end, as Ctrl-C does: what it started keeps running.
// It returns once the daemon has accepted; WaitGone waits for it to be gone.
func (c *Client) Stop(ctx context.Context) error {
	return c.post(ctx, "/v1/stop")
}

// WaitGone polls until the daemon no longer answers, or ctx is done.
func (c *Client) WaitGone(ctx context.Context) error {
	t := time.NewTicker(25 * time.Millisecond)
	defer t.Stop()
	for {
		if _, err := c.State(ctx, 0); errors.Is(err, ErrUnavailable) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the daemon to stop: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (c *Client) post(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodPost, path, nil)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// Stream is a running NDJSON stream. C is closed when the stream ends: the
// daemon closed it or went away, or ctx was done; Err says why.
type Stream[T any] struct {
	C    <-chan T
	err  error
	done chan struct{}
}

// Err returns why the stream ended (nil for a clean end of a finite
// stream); call it after C is closed.
func (s *Stream[T]) Err() error {
	<-s.done
	return s.err
}

func startStream[T any](ctx context.Context, body io.ReadCloser) *Stream[T] {
	ch := make(chan T, 256)
	s := &Stream[T]{C: ch, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(ch)
		defer body.Close()
		stop := context.AfterFunc(ctx, func() { body.Close() })
		defer stop()
		sc := bufio.NewScanner(body)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			var v T
			if err := json.Unmarshal(line, &v); err != nil {
				s.err = fmt.Errorf("decode stream: %w", err)
				return
			}
			select {
			case ch <- v:
			case <-ctx.Done():
				s.err = ctx.Err()
				return
			}
		}
		if ctx.Err() != nil {
			s.err = ctx.Err()
		} else if err := sc.Err(); err != nil {
			s.err = unavailable{err}
		}
	}()
	return s
}

// Events streams every event after sequence number after, from the daemon
// instance named (empty: any). It fails with ErrGap when that daemon is gone
// or the sequence number has left the event log. The stream of a live daemon
// is endless: it ends when ctx is done or the daemon goes away.
func (c *Client) Events(ctx context.Context, after uint64, instance string) (*Stream[api.Event], error) {
	q := url.Values{"after": {strconv.FormatUint(after, 10)}}
	if instance != "" {
		q.Set("instance", instance)
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/events", q)
	if err != nil {
		return nil, err
	}
	return startStream[api.Event](ctx, resp.Body), nil
}

// LogsOptions select log lines.
type LogsOptions struct {
	// Resource is the resource's name; empty means every resource.
	Resource string
	// Tail keeps only the last Tail lines of the backlog (0: all kept).
	Tail int
	// Since is a duration (5m) or RFC 3339 time; older lines are left out.
	Since string
	// After leaves out lines up to this sequence number.
	After uint64
	// Change leaves out lines from before change ID's first update.
	Change uint64
	// Grep keeps only lines matching this regular expression (RE2).
	Grep string
	// Follow keeps the stream open for new lines.
	Follow bool
}

// Logs streams a resource's stored lines, then (with Follow) new ones.
func (c *Client) Logs(ctx context.Context, o LogsOptions) (*Stream[api.LogLine], error) {
	q := url.Values{}
	if o.Resource != "" {
		q.Set("resource", o.Resource)
	}
	if o.Tail > 0 {
		q.Set("tail", strconv.Itoa(o.Tail))
	}
	if o.Since != "" {
		q.Set("since", o.Since)
	}
	if o.After > 0 {
		q.Set("after", strconv.FormatUint(o.After, 10))
	}
	if o.Change > 0 {
		q.Set("change", strconv.FormatUint(o.Change, 10))
	}
	if o.Grep != "" {
		q.Set("grep", o.Grep)
	}
	if o.Follow {
		q.Set("follow", "1")
	}
	resp, err := c.do(ctx, http.MethodGet, "/v1/logs", q)
	if err != nil {
		return nil, err
	}
	return startStream[api.LogLine](ctx, resp.Body), nil
}

// getJSON decodes a GET's JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return unavailable{fmt.Errorf("read %s: %w", path, err)}
	}
	return nil
}

// Wait returns once every file change made before the call has reached its
// result on every resource it affects (req.Resources, or all), with the
// verdict. A timeout is a verdict (ResultTimeout), not an error; an unknown
// resource is ErrNotFound.
func (c *Client) Wait(ctx context.Context, req api.WaitRequest) (*api.Verdict, error) {
	resp, err := c.doBody(ctx, http.MethodPost, "/v1/wait", nil, req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var v api.Verdict
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return nil, unavailable{fmt.Errorf("read verdict: %w", err)}
	}
	return &v, nil
}

// Changes lists the latest n changes (0: the daemon's default), newest first.
func (c *Client) Changes(ctx context.Context, n int) ([]api.ChangeSummary, error) {
	q := url.Values{}
	if n > 0 {
		q.Set("n", strconv.Itoa(n))
	}
	var out []api.ChangeSummary
	return out, c.getJSON(ctx, "/v1/changes", q, &out)
}

// Change returns the verdict of one change with at most lines log lines per
// resource (0: the default); ErrNotFound when the daemon has no record.
func (c *Client) Change(ctx context.Context, id uint64, lines int) (*api.Verdict, error) {
	q := url.Values{}
	if lines > 0 {
		q.Set("lines", strconv.Itoa(lines))
	}
	var v api.Verdict
	if err := c.getJSON(ctx, "/v1/changes/"+strconv.FormatUint(id, 10), q, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
