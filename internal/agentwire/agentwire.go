// Package agentwire owns the protocol between loop and its in-container sync
// agent (cmd/loop-agent). Both ends import it: it sits in the module's top
// internal/ tree so that cmd/loop-agent and the daemon can reach it without the
// daemon importing cmd/, and it uses the standard library only so the agent
// stays a small static binary (depguard checks both).
//
// A message is a frame: a 4-byte big-endian payload length, then the payload.
// A payload starts with one byte naming its kind; strings and byte slices are
// a uvarint length followed by the bytes; numbers are uvarints. loop sends one
// Request at a time on the agent's stdin and reads exactly one Reply from its
// stdout before sending the next, so frames need no identifiers.
//
// An op's data comes last in the op, after everything that says where it
// goes, so the agent can stream it into its file while the rest of the frame
// is still arriving (ReadRequestFunc): a large file's transfer and its write
// overlap instead of following each other.
//
// A RestartProcess request asks the agent to have the container's
// supervisor (the agent run as `supervise`, see cmd/loop-agent) restart the
// application process; the reply carries the new process's PID.
package agentwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Version is the protocol version the agent reports in its Ping reply.
// Version 2 added RestartProcess, version 3 Bye; version 4 moved an op's
// data after its target, so that it can be streamed.
const Version = 4

// MaxFrame bounds a frame's payload. Senders split larger batches.
const MaxFrame = 256 << 20

// ReqKind names a request (and the reply answering it).
type ReqKind uint8

// Request kinds.
const (
	ReqPing  ReqKind = 1
	ReqApply ReqKind = 2
	ReqList  ReqKind = 3
	// ReqRestartProcess restarts the supervised application process: the
	// agent forwards it to the supervisor and replies once the new process
	// has started (Reply.PID), or with Err when there is no supervisor.
	ReqRestartProcess ReqKind = 4
	// ReqBye ends the session: the agent replies and exits, even when its
	// stdin stays open (a kubelet that does not pass the end of stdin on).
	ReqBye ReqKind = 5
)

// OpKind names one change inside an Apply request.
type OpKind uint8

// Op kinds.
const (
	// OpWrite atomically replaces Path with Data and Mode, creating parents.
	OpWrite OpKind = 1
	// OpRemove removes Path recursively; a missing Path is not an error.
	OpRemove OpKind = 2
	// OpMkdir creates Path (and parents) and sets Mode.
	OpMkdir OpKind = 3
	// OpSymlink makes Path a symbolic link to Target, which must resolve
	// inside the op's root.
	OpSymlink OpKind = 4
)

func (k OpKind) String() string {
	switch k {
	case OpWrite:
		return "write"
	case OpRemove:
		return "remove"
	case OpMkdir:
		return "mkdir"
	case OpSymlink:
		return "symlink"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Op is one change to the container's file system. Paths are absolute
// container paths. Mode carries permission bits and os.ModeSetuid, ModeSetgid
// and ModeSticky; type bits are ignored.
type Op struct {
	Kind   OpKind
	Path   string
	Mode   os.FileMode
	Data   []byte
	Target string
}

// Request is what loop sends. Roots and Ops are used by ReqApply, Root by
// ReqList, Grace by ReqRestartProcess.
type Request struct {
	Kind  ReqKind
	Roots []string
	Ops   []Op
	Root  string
	// Grace is how long the old process may take to exit after SIGTERM
	// before it is killed; 0 means the supervisor's default. Sent in
	// milliseconds.
	Grace time.Duration
}

// OpError reports why the op at Index of an Apply request failed.
type OpError struct {
	Index int
	Path  string
	Msg   string
}

func (e OpError) Error() string { return fmt.Sprintf("%s: %s", e.Path, e.Msg) }

// Entry describes one file under a listed root. Mode includes type bits;
// SHA256 is set for regular files only.
type Entry struct {
	Path       string
	Mode       os.FileMode
	Size       int64
	SHA256     [32]byte
	LinkTarget string
}

// Reply answers one Request. Err is set when the whole request failed;
// OpErrors when some ops of an Apply failed (the others were applied).
type Reply struct {
	Kind     ReqKind
	Err      string
	OpErrors []OpError
	Entries  []Entry
	// Ping: the protocol version and the SHA-256 of the agent's executable,
	// so loop can tell a stale agent from its own.
	Version   uint64
	ExeSHA256 string
	// RestartProcess: the PID of the new process (in the container).
	PID uint64
}

// ErrFrameTooLarge is returned for a frame whose payload exceeds MaxFrame.
var ErrFrameTooLarge = errors.New("frame too large")

// inlineData is the size up to which an op's data is copied into the
// frame's buffer; larger data is written from the caller's slice (no copy).
const inlineData = 64 << 10

// WriteRequest encodes r as one frame and writes it at once: one Write, or
// one vectored write (net.Buffers) when ops carry large data, which is sent
// from the ops' own slices.
func WriteRequest(w io.Writer, r *Request) error {
	b := make([]byte, 4, 64+requestSize(r))
	var bufs net.Buffers
	n := 0 // payload bytes in bufs
	b = append(b, byte(r.Kind))
	switch r.Kind {
	case ReqPing, ReqBye:
	case ReqApply:
		b = binary.AppendUvarint(b, uint64(len(r.Roots)))
		for _, root := range r.Roots {
			b = appendString(b, root)
		}
		b = binary.AppendUvarint(b, uint64(len(r.Ops)))
		for _, op := range r.Ops {
			b = append(b, byte(op.Kind))
			b = appendString(b, op.Path)
			b = binary.AppendUvarint(b, uint64(op.Mode))
			b = appendString(b, op.Target)
			if len(op.Data) <= inlineData {
				b = appendBytes(b, op.Data)
				continue
			}
			b = binary.AppendUvarint(b, uint64(len(op.Data)))
			bufs = append(bufs, b, op.Data)
			n += len(b) + len(op.Data)
			b = nil
		}
	case ReqList:
		b = appendString(b, r.Root)
	case ReqRestartProcess:
		b = binary.AppendUvarint(b, uint64(r.Grace.Milliseconds()))
	default:
		return fmt.Errorf("write request: unknown kind %d", r.Kind)
	}
	if bufs == nil {
		return writeFrame(w, b)
	}
	bufs = append(bufs, b)
	n += len(b) - 4
	if n > MaxFrame {
		return fmt.Errorf("write frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	binary.BigEndian.PutUint32(bufs[0][:4], uint32(n))
	_, err := bufs.WriteTo(w)
	return err
}

func requestSize(r *Request) int {
	n := len(r.Root)
	for _, root := range r.Roots {
		n += len(root) + 4
	}
	for _, op := range r.Ops {
		n += len(op.Path) + len(op.Target) + 24
		if len(op.Data) <= inlineData {
			n += len(op.Data)
		}
	}
	return n
}

// ReadRequest reads one frame and decodes it. It returns io.EOF when r ends
// cleanly before a frame starts.
func ReadRequest(r io.Reader) (*Request, error) {
	br, ok := r.(byteReader)
	if !ok {
		p, err := readFrame(r)
		if err != nil {
			return nil, err
		}
		frame := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(p)), uint32(len(p)))
		br = bytes.NewReader(append(frame, p...))
	}
	return ReadRequestFunc(br, nil)
}

// WriteReply encodes r as one frame and writes it with a single Write.
func WriteReply(w io.Writer, r *Reply) error {
	b := make([]byte, 4, 256+len(r.Entries)*96)
	b = append(b, byte(r.Kind))
	b = appendString(b, r.Err)
	b = binary.AppendUvarint(b, uint64(len(r.OpErrors)))
	for _, e := range r.OpErrors {
		b = binary.AppendUvarint(b, uint64(e.Index))
		b = appendString(b, e.Path)
		b = appendString(b, e.Msg)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Entries)))
	for _, e := range r.Entries {
		b = appendString(b, e.Path)
		b = binary.AppendUvarint(b, uint64(e.Mode))
		b = binary.AppendUvarint(b, uint64(e.Size))
		b = append(b, e.SHA256[:]...)
		b = appendString(b, e.LinkTarget)
	}
	b = binary.AppendUvarint(b, r.Version)
	b = appendString(b, r.ExeSHA256)
	b = binary.AppendUvarint(b, r.PID)
	return writeFrame(w, b)
}

// ReadReply reads one frame and decodes it.
func ReadReply(r io.Reader) (*Reply, error) {
	p, err := readFrame(r)
	if err != nil {
		return nil, err
	}
	d := decoder{b: p}
	rep := &Reply{Kind: ReqKind(d.byte()), Err: d.string()}
	n := d.count()
	for i := 0; i < n && d.err == nil; i++ {
		rep.OpErrors = append(rep.OpErrors, OpError{Index: int(d.uvarint()), Path: d.string(), Msg: d.string()})
	}
	n = d.count()
	for i := 0; i < n && d.err == nil; i++ {
		e := Entry{Path: d.string(), Mode: os.FileMode(d.uvarint()), Size: int64(d.uvarint())}
		copy(e.SHA256[:], d.raw(32))
		e.LinkTarget = d.string()
		rep.Entries = append(rep.Entries, e)
	}
	rep.Version = d.uvarint()
	rep.ExeSHA256 = d.string()
	rep.PID = d.uvarint()
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("read reply: %w", err)
	}
	return rep, nil
}

// writeFrame fills in the length reserved in b[:4] and writes b at once, so
// a frame is never interleaved and costs one system call.
func writeFrame(w io.Writer, b []byte) error {
	n := len(b) - 4
	if n > MaxFrame {
		return fmt.Errorf("write frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	binary.BigEndian.PutUint32(b[:4], uint32(n))
	_, err := w.Write(b)
	return err
}

// readFrameLen reads a frame's header: its payload's length.
func readFrameLen(r io.Reader) (uint32, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err // io.EOF when the stream ended between frames
	}
	n := binary.BigEndian.Uint32(h[:])
	if n > MaxFrame {
		return 0, fmt.Errorf("read frame of %d bytes: %w", n, ErrFrameTooLarge)
	}
	return n, nil
}

func readFrame(r io.Reader) ([]byte, error) {
	n, err := readFrameLen(r)
	if err != nil {
		return nil, err
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return p, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// decoder reads a payload; the first error sticks and later reads return
// zero values, so callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated payload")

func (d *decoder) raw(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = errShort
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) byte() byte {
	p := d.raw(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in the rest of the payload (each
// element takes at least one byte), so a corrupt count cannot allocate.
func (d *decoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.err = errShort
		return 0
	}
	return int(v)
}

func (d *decoder) string() string { return string(d.raw(d.count())) }

func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return d.err
}
