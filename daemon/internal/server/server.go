// Package server serves a daemon's local API: HTTP on a unix socket (mode
// 0600) in the project's state directory, and, only when asked, on a loopback
// TCP address guarded by a bearer token. It owns a store built solely from
// the daemon's event stream: a snapshot of every resource, a bounded ring of
// log lines per resource and a sequence-numbered event log from which
// streams resume.
//
// Endpoints (all JSON; errors are api.Error with a non-2xx status):
//
//	GET  /v1/state?logs=N                 api.Snapshot (with the last N lines per resource)
//	GET  /v1/events?after=SEQ&instance=ID NDJSON api.Event stream; 410 when SEQ is gone
//	GET  /v1/logs?resource=R&since=D|T&change=ID&grep=RE&tail=N&after=SEQ&follow=1
//	                                      NDJSON api.LogLine (all resources when R is empty)
//	POST /v1/wait                         api.WaitRequest → api.Verdict (the barrier, see engine.Wait)
//	GET  /v1/changes?n=N                  []api.ChangeSummary, newest first
//	GET  /v1/changes/{id}?lines=N         api.Verdict of one change
//	POST /v1/resources/{name}/trigger     202
//	POST /v1/resources/{name}/enable      202
//	POST /v1/resources/{name}/disable     202
//	GET  /v1/metrics, GET /metrics        the handlers given in Options, else 404
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/loop-dev/loop/daemon/api"
)

// Control is what the API's verbs do to the running daemon.
type Control interface {
	Trigger(ctx context.Context, name string) error
	SetEnabled(ctx context.Context, name string, on bool) error
	// Wait returns the verdict of every change made before the call (the
	// server adds the log lines).
	Wait(ctx context.Context, req api.WaitRequest) (api.Verdict, error)
}

// Info describes the daemon in snapshots.
type Info struct {
	Project  string
	Tiltfile string
	Docker   string
	Kube     string
}

// Options configure a Server.
type Options struct {
	// Socket is the unix socket's path (required).
	Socket string
	// Listen is an optional loopback TCP address (127.0.0.1:PORT, [::1]:PORT,
	// localhost:PORT). Requests on it need the token in TokenFile.
	Listen string
	// TokenFile holds the TCP bearer token (created 0600 when missing).
	TokenFile string
	Control   Control
	// UnknownResource is the error Control returns for a name it does not
	// know; it becomes 404.
	UnknownResource error
	Info            Info
	// LogLines is how many lines the server keeps per resource (default 2000).
	LogLines int
	// EventLog is how many events a stream can resume across (default 16384).
	EventLog int
	// Metrics serves /v1/metrics and Prometheus serves /metrics when set.
	Metrics    http.Handler
	Prometheus http.Handler
	// Stop asks the daemon to end, as Ctrl-C does (what it started keeps
	// running); POST /v1/stop calls it. Nil means the daemon cannot be stopped
	// through the API.
	Stop func()
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Server is the local API. Listen creates it; Sink may be called from any
// goroutine as soon as Listen returns; Serve serves until its ctx is done.
type Server struct {
	o        Options
	st       *store
	instance string
	started  time.Time
	unix     net.Listener
	tcp      net.Listener
	token    string
}

// ErrAlreadyRunning is returned by Listen when a daemon answers on the socket.
var ErrAlreadyRunning = errors.New("a loop daemon is already running for this project")

// Listen opens the socket (and the TCP address when asked). A stale socket
// left by a dead daemon is replaced; a live one is ErrAlreadyRunning.
func Listen(o Options) (*Server, error) {
	if o.LogLines <= 0 {
		o.LogLines = 2000
	}
	if o.EventLog <= 0 {
		o.EventLog = 16384
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &Server{o: o, st: newStore(o.LogLines, o.EventLog), instance: hex.EncodeToString(id[:]), started: o.Now()}
	if o.Listen != "" {
		if err := checkLoopback(o.Listen); err != nil {
			return nil, err
		}
	}
	ln, err := listenUnix(o.Socket)
	if err != nil {
		return nil, err
	}
	s.unix = ln
	if o.Listen != "" {
		tok, err := loadToken(o.TokenFile)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		s.token = tok
		if s.tcp, err = net.Listen("tcp", o.Listen); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("listen on %s: %w", o.Listen, err)
		}
	}
	return s, nil
}

// Sink records one daemon event; pass it as daemon.Options.Sink. It never
// blocks on clients.
func (s *Server) Sink(ev api.Event) { s.st.add(ev) }

// Addr is the TCP address served, or nil.
func (s *Server) Addr() net.Addr {
	if s.tcp == nil {
		return nil
	}
	return s.tcp.Addr()
}

// Serve answers requests until ctx is done, then ends every stream, closes
// the listeners and removes the socket.
func (s *Server) Serve(ctx context.Context) error {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	mk := func(h http.Handler) *http.Server {
		return &http.Server{Handler: h, BaseContext: func(net.Listener) context.Context { return base }, ReadHeaderTimeout: 10 * time.Second}
	}
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	servers := []*http.Server{mk(s.routes())}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := servers[0].Serve(s.unix); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve %s: %w", s.o.Socket, err)
		}
	}()
	if s.tcp != nil {
		ts := mk(s.requireToken(s.routes()))
		servers = append(servers, ts)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ts.Serve(s.tcp); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", s.tcp.Addr(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel() // ends streaming handlers so Shutdown need not wait for them
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	for _, hs := range servers {
		_ = hs.Shutdown(sctx)
	}
	wg.Wait()
	_ = os.Remove(s.o.Socket)
	return err
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/state", s.handleState)
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.HandleFunc("GET /v1/logs", s.handleLogs)
	mux.HandleFunc("POST /v1/wait", s.handleWait)
	mux.HandleFunc("GET /v1/changes", s.handleChanges)
	mux.HandleFunc("GET /v1/changes/{id}", s.handleChange)
	mux.HandleFunc("POST /v1/resources/{name}/trigger", s.handleControl)
	mux.HandleFunc("POST /v1/resources/{name}/enable", s.handleControl)
	mux.HandleFunc("POST /v1/resources/{name}/disable", s.handleControl)
	mux.HandleFunc("POST /v1/stop", s.handleStop)
	mux.Handle("/v1/metrics", orNotFound(s.o.Metrics, "metrics are not available in this daemon"))
	mux.Handle("/metrics", orNotFound(s.o.Prometheus, "metrics are not available in this daemon"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// handleStop answers first, then stops the daemon: the reply must not race the
// listener's close.
func (s *Server) handleStop(w http.ResponseWriter, _ *http.Request) {
	if s.o.Stop == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon cannot be stopped through its API")
		return
	}
	writeJSON(w, http.StatusAccepted, struct{}{})
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	s.o.Stop()
}

func orNotFound(h http.Handler, msg string) http.Handler {
	if h != nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeError(w, http.StatusNotFound, msg) })
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, api.Error{Error: msg})
}

func (s *Server) snapshot(logTail int) api.Snapshot {
	snap := s.st.snapshot(logTail)
	snap.Instance = s.instance
	snap.Project, snap.Tiltfile, snap.Docker, snap.Kube = s.o.Info.Project, s.o.Info.Tiltfile, s.o.Info.Docker, s.o.Info.Kube
	snap.Started = s.started
	snap.PID = os.Getpid()
	return snap
}

func intParam(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("parameter %s: want a non-negative integer, got %q", name, v)
	}
	return n, nil
}

func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "logs")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, s.snapshot(n))
}

// streamBatch bounds how many events one write carries.
const streamBatch = 1024

// ndjson starts a newline-delimited JSON response; flush pushes what was
// encoded to the client.
func ndjson(w http.ResponseWriter) (*json.Encoder, func()) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	return json.NewEncoder(w), func() {
		if fl != nil {
			fl.Flush()
		}
	}
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if id := q.Get("instance"); id != "" && id != s.instance {
		writeError(w, http.StatusGone, "the daemon restarted; read /v1/state again")
		return
	}
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter after: want a sequence number, got %q", v))
			return
		}
		after = n
	} else {
		after = s.st.head()
	}
	evs, wake, err := s.st.after(after, streamBatch)
	if err != nil {
		writeError(w, http.StatusGone, err.Error())
		return
	}
	enc, flush := ndjson(w)
	flush()
	for {
		for _, ev := range evs {
			if err := enc.Encode(ev); err != nil {
				return
			}
			after = ev.Seq
		}
		if len(evs) > 0 {
			flush()
		}
		if len(evs) < streamBatch {
			select {
			case <-wake:
			case <-r.Context().Done():
				return
			}
		}
		if evs, wake, err = s.st.after(after, streamBatch); err != nil {
			return // fell behind the event log: the client resumes, gets 410 and re-reads the state
		}
	}
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	res := q.Get("resource")
	if res != "" && !s.st.known(res) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown resource %q", res))
		return
	}
	var f logFilter
	var err error
	if f.tail, err = intParam(r, "tail"); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if v := q.Get("after"); v != "" {
		if f.after, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter after: want a sequence number, got %q", v))
			return
		}
	}
	if v := q.Get("since"); v != "" {
		if f.since, err = parseSince(v, s.o.Now()); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if v := q.Get("change"); v != "" {
		id, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter change: want a change ID, got %q", v))
			return
		}
		start, ok := s.st.changeStart(id)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no change %d (see `loop changes`)", id))
			return
		}
		f.after = max(f.after, start)
	}
	if v := q.Get("grep"); v != "" {
		if f.grep, err = regexp.Compile(v); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("parameter grep: %v", err))
			return
		}
	}
	follow, _ := strconv.ParseBool(q.Get("follow"))
	lines, head := s.st.lines(res, f)
	enc, flush := ndjson(w)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			return
		}
	}
	flush()
	if !follow {
		return
	}
	after := head
	for {
		evs, wake, err := s.st.after(after, streamBatch)
		if err != nil {
			// A follower slower than the event log skips what it lost.
			after = s.st.head()
			continue
		}
		for _, ev := range evs {
			after = ev.Seq
			if ev.Kind != api.EventLog || (res != "" && ev.Resource != res) {
				continue
			}
			l := api.LogLine{Seq: ev.Seq, Time: ev.Time, Resource: ev.Resource, Text: ev.Text}
			if !f.match(l) {
				continue
			}
			if err := enc.Encode(l); err != nil {
				return
			}
		}
		flush()
		if len(evs) < streamBatch {
			select {
			case <-wake:
			case <-r.Context().Done():
				return
			}
		}
	}
}

// parseSince accepts a duration (5m: lines of the last five minutes) or an
// RFC 3339 time.
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("parameter since: want a duration (5m) or an RFC 3339 time, got %q", v)
	}
	return t, nil
}

func (s *Server) handleControl(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	verb := filepath.Base(r.URL.Path)
	if s.o.Control == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon does not accept "+verb)
		return
	}
	var err error
	switch verb {
	case "trigger":
		err = s.o.Control.Trigger(r.Context(), name)
	case "enable", "disable":
		err = s.o.Control.SetEnabled(r.Context(), name, verb == "enable")
	}
	switch {
	case err == nil:
		writeJSON(w, http.StatusAccepted, struct{}{})
	case s.o.UnknownResource != nil && errors.Is(err, s.o.UnknownResource):
		writeError(w, http.StatusNotFound, fmt.Sprintf("%s %s: unknown resource", verb, name))
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("%s %s: %v", verb, name, err))
	}
}

// verdictLines is the request's log line bound for verdicts.
func verdictLines(n int) int {
	if n <= 0 {
		return api.DefaultVerdictLines
	}
	return min(n, api.MaxVerdictLines)
}

func (s *Server) handleWait(w http.ResponseWriter, r *http.Request) {
	var req api.WaitRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("wait: read the request: %v", err))
		return
	}
	if s.o.Control == nil {
		writeError(w, http.StatusServiceUnavailable, "this daemon does not accept waits")
		return
	}
	v, err := s.o.Control.Wait(r.Context(), req)
	switch {
	case err == nil:
	case s.o.UnknownResource != nil && errors.Is(err, s.o.UnknownResource):
		writeError(w, http.StatusNotFound, fmt.Sprintf("wait: %v", err))
		return
	default:
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("wait: %v", err))
		return
	}
	s.st.fillLogs(&v, verdictLines(req.Lines))
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) handleChanges(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "n")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if n == 0 {
		n = 20
	}
	writeJSON(w, http.StatusOK, s.st.changeList(n))
}

func (s *Server) handleChange(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("change: want a change ID, got %q", r.PathValue("id")))
		return
	}
	lines, err := intParam(r, "lines")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	v, ok := s.st.changeVerdict(id, verdictLines(lines))
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no change %d: not seen, not finished yet, or forgotten (see `loop changes`)", id))
		return
	}
	writeJSON(w, http.StatusOK, v)
}
