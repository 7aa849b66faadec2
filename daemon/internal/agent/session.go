package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loop-dev/loop/internal/agentwire"
)

// chunkBytes bounds the file data of one Apply request; bigger batches go
// as several requests so that no frame nears agentwire.MaxFrame.
const chunkBytes = 16 << 20

var pingRequest = &agentwire.Request{Kind: agentwire.ReqPing}

// Session is a running agent reached over a held exec stream (Docker's or
// Kubernetes'). It is safe for concurrent use: requests are serialised. Once
// the stream fails every call returns an error wrapping ErrClosed; start a
// new Session then.
type Session struct {
	// Version and ExeSHA256 are what the agent reported when it started.
	Version   uint64
	ExeSHA256 string

	containerID string
	conn        stream
	out         *output

	mu     sync.Mutex // serialises requests; guards err
	err    error      // sticky: set when the stream fails
	closed atomic.Bool
	once   sync.Once
}

// stream is the agent's stdin, and the handle that ends or interrupts the
// exec it runs in.
type stream interface {
	io.Writer
	// CloseWrite ends the agent's stdin: it exits.
	CloseWrite() error
	Close() error
	// SetDeadline makes blocked reads and writes fail once t passes; a zero
	// t clears it. SetReadDeadline does so for reads only.
	SetDeadline(t time.Time) error
	SetReadDeadline(t time.Time) error
}

func newSession(containerID string, conn stream, out *output) *Session {
	return &Session{containerID: containerID, conn: conn, out: out}
}

// greet pings a new session's agent and records what it reports. On failure
// the session is closed and said holds what the agent and the runtime wrote
// (the runtime's complaint that the agent could not be executed, typically).
func (s *Session) greet(ctx context.Context) (said string, err error) {
	var captured bytes.Buffer
	s.out.capture = &captured
	rep, err := s.do(ctx, pingRequest)
	s.out.capture = nil
	if err != nil {
		s.Close()
		return strings.TrimSpace(captured.String() + " " + s.out.tail()), err
	}
	s.Version, s.ExeSHA256 = rep.Version, rep.ExeSHA256
	return "", nil
}

// ContainerID is the container the agent runs in.
func (s *Session) ContainerID() string { return s.containerID }

// ApplyError lists the ops the agent refused or failed; the other ops of
// the batch were applied.
type ApplyError struct {
	ContainerID string
	Errors      []OpError
	Ops         int
}

func (e *ApplyError) Error() string {
	msgs := make([]string, 0, len(e.Errors))
	for _, oe := range e.Errors {
		msgs = append(msgs, oe.Error())
	}
	return fmt.Sprintf("apply %d ops in %s: %d failed: %s", e.Ops, short(e.ContainerID), len(e.Errors), strings.Join(msgs, "; "))
}

// Apply sends ops (in order) with the roots they may touch and waits for the
// agent's acknowledgement. Ops the agent refuses (outside roots, escaping
// through symlinks) or fails come back as an *ApplyError.
func (s *Session) Apply(ctx context.Context, roots []string, ops []Op) error {
	var failed []OpError
	for start := 0; start < len(ops); {
		end, size := start, 0
		for end < len(ops) && (end == start || size+len(ops[end].Data) <= chunkBytes) {
			size += len(ops[end].Data)
			end++
		}
		rep, err := s.do(ctx, &agentwire.Request{Kind: agentwire.ReqApply, Roots: roots, Ops: ops[start:end]})
		if err != nil {
			return fmt.Errorf("apply %d ops in %s: %w", len(ops), short(s.containerID), err)
		}
		if rep.Err != "" {
			return fmt.Errorf("apply %d ops in %s: %s", len(ops), short(s.containerID), rep.Err)
		}
		for _, oe := range rep.OpErrors {
			oe.Index += start
			failed = append(failed, oe)
		}
		start = end
	}
	if len(failed) > 0 {
		return &ApplyError{ContainerID: s.containerID, Errors: failed, Ops: len(ops)}
	}
	return nil
}

// List describes every file under root in the container (root included,
// symlinks not followed). A missing root lists nothing.
func (s *Session) List(ctx context.Context, root string) ([]Entry, error) {
	rep, err := s.do(ctx, &agentwire.Request{Kind: agentwire.ReqList, Root: root})
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", root, short(s.containerID), err)
	}
	if rep.Err != "" {
		return rep.Entries, fmt.Errorf("list %s in %s: %s", root, short(s.containerID), rep.Err)
	}
	return rep.Entries, nil
}

// ErrNoSupervisor means the container's main process is not the agent's
// supervisor (it was not created with Supervisor's entrypoint, or its
// restart socket could not be opened).
var ErrNoSupervisor = errors.New("container process not supervised by the sync agent")

// RestartProcess has the container's supervisor restart the application
// process (SIGTERM, SIGKILL after grace, start again; 0 means the
// supervisor's default of 10 s) and returns the new process's PID once it
// has started. The container keeps running, and so does this session.
func (s *Session) RestartProcess(ctx context.Context, grace time.Duration) (int, error) {
	rep, err := s.do(ctx, &agentwire.Request{Kind: agentwire.ReqRestartProcess, Grace: grace})
	if err != nil {
		return 0, fmt.Errorf("restart process in %s: %w", short(s.containerID), err)
	}
	if rep.Err != "" {
		if strings.HasPrefix(rep.Err, "no supervisor") {
			return 0, fmt.Errorf("restart process in %s: %w: %s", short(s.containerID), ErrNoSupervisor, rep.Err)
		}
		return 0, fmt.Errorf("restart process in %s: %s", short(s.containerID), rep.Err)
	}
	return int(rep.PID), nil
}

// Ping checks the agent answers.
func (s *Session) Ping(ctx context.Context) error {
	_, err := s.do(ctx, pingRequest)
	return err
}

// Close ends the session: the agent sees its stdin end and exits. It is
// safe to call more than once and concurrently with requests, which then
// fail with ErrClosed.
func (s *Session) Close() {
	s.once.Do(func() {
		s.closed.Store(true)
		// Say bye when no request is under way, so that the agent exits
		// even if the end of its stdin never reaches it. Its reply is not
		// awaited.
		if s.mu.TryLock() {
			if s.err == nil {
				_ = s.conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
				_ = agentwire.WriteRequest(s.conn, &agentwire.Request{Kind: agentwire.ReqBye})
			}
			s.mu.Unlock()
		}
		_ = s.conn.CloseWrite()
		_ = s.conn.Close()
	})
}

// do sends one request and reads its reply. When ctx ends midway the
// connection's deadline is pulled in so the blocked read returns; the stream
// is then out of step and the session is dead.
func (s *Session) do(ctx context.Context, req *agentwire.Request) (*agentwire.Reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err // nothing sent: the session stays usable
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = s.conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			// ctx ended as the request finished: undo the deadline so
			// a request that did complete leaves the session usable.
			<-fired
			_ = s.conn.SetDeadline(time.Time{})
		}
	}()
	err := agentwire.WriteRequest(s.conn, req)
	var rep *agentwire.Reply
	if err == nil {
		rep, err = agentwire.ReadReply(s.out)
	}
	if err == nil && rep.Kind != req.Kind {
		err = fmt.Errorf("reply kind %d answers request kind %d", rep.Kind, req.Kind)
	}
	if err != nil {
		if s.out.capture != nil && ctx.Err() == nil {
			// Starting: keep the rest of what the runtime said.
			_ = s.conn.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
			_, _ = io.Copy(io.Discard, s.out)
		}
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, ctx.Err())
		}
		if tail := s.out.tail(); tail != "" {
			err = fmt.Errorf("%w; agent output: %s", err, tail)
		}
		s.err = fmt.Errorf("%w: %w", ErrClosed, err)
		s.Close()
		return nil, s.err
	}
	return rep, nil
}

// output is the agent's stdout as the session reads it. What the agent and
// the runtime say elsewhere (stderr, the runtime's own messages) is kept,
// the last few KB, for error reports.
type output struct {
	r io.Reader
	// capture, when set, keeps the stdout read (the start's ping reply, or
	// the runtime's complaint that the agent could not be executed).
	capture *bytes.Buffer

	mu   sync.Mutex
	errs []byte
}

const tailMax = 4 << 10

func (o *output) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	if o.capture != nil && o.capture.Len() < tailMax {
		o.capture.Write(p[:n])
	}
	return n, err
}

// Write keeps b as the latest of what was said besides stdout.
func (o *output) Write(b []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, b...)
	if len(o.errs) > tailMax {
		o.errs = o.errs[len(o.errs)-tailMax:]
	}
	return len(b), nil
}

func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.TrimSpace(string(o.errs))
}

// demux reads stdout out of Docker's multiplexed exec stream (8-byte
// header: stream, 3 zero bytes, big-endian length); other frames go to
// other.
type demux struct {
	r     *bufio.Reader
	left  int // stdout bytes left in the current frame
	other io.Writer
}

func (d *demux) Read(p []byte) (int, error) {
	for d.left == 0 {
		var h [8]byte
		if _, err := io.ReadFull(d.r, h[:]); err != nil {
			return 0, err
		}
		n := int(binary.BigEndian.Uint32(h[4:]))
		if h[0] == 1 {
			d.left = n
			continue
		}
		if _, err := io.CopyN(d.other, d.r, int64(n)); err != nil {
			return 0, err
		}
	}
	if len(p) > d.left {
		p = p[:d.left]
	}
	n, err := d.r.Read(p)
	d.left -= n
	return n, err
}
