package agentwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// byteReader is what a request is decoded from as it arrives (a
// *bufio.Reader on the agent's stdin).
type byteReader interface {
	io.Reader
	io.ByteReader
}

// OpFunc receives one op of an Apply request as it is decoded: req holds
// the request's Kind and Roots, i is the op's index, and data streams the
// op's data (op.Data is nil); what OpFunc leaves unread is skipped. A
// failure to read data (the stream broke) ends the request with that error.
type OpFunc func(req *Request, i int, op Op, data io.Reader)

// ReadRequestFunc reads one frame from r and decodes it. With apply set,
// the ops of an Apply request are handed to apply one by one, each while its
// data is still arriving, and are not kept in the returned request; with
// apply nil they are returned with their data. It returns io.EOF when r ends
// cleanly before a frame starts. Ops handed to apply before a decoding error
// have been handed on: callers apply each op on its own, as they would if
// a later op failed.
func ReadRequestFunc(r byteReader, apply OpFunc) (*Request, error) {
	n, err := readFrameLen(r)
	if err != nil {
		return nil, err
	}
	f := &frameReader{r: r, left: int64(n)}
	req, err := f.request(apply)
	if err == nil && f.left != 0 {
		err = fmt.Errorf("%d trailing bytes", f.left)
	}
	if err != nil {
		return nil, fmt.Errorf("read request: %w", err)
	}
	return req, nil
}

func (f *frameReader) request(apply OpFunc) (*Request, error) {
	req := &Request{Kind: ReqKind(f.byte())}
	switch req.Kind {
	case ReqPing, ReqBye:
	case ReqApply:
		n := f.count()
		for i := 0; i < n && f.err == nil; i++ {
			req.Roots = append(req.Roots, f.string())
		}
		n = f.count()
		for i := 0; i < n && f.err == nil; i++ {
			op := Op{Kind: OpKind(f.byte()), Path: f.string(), Mode: os.FileMode(f.uvarint()), Target: f.string()}
			data := &io.LimitedReader{R: f, N: int64(f.count())}
			if f.err != nil {
				break
			}
			if apply == nil {
				op.Data = make([]byte, data.N)
				if _, err := io.ReadFull(data, op.Data); err != nil {
					return nil, err
				}
				req.Ops = append(req.Ops, op)
				continue
			}
			apply(req, i, op, data)
			if _, err := io.Copy(io.Discard, data); err != nil {
				return nil, err
			}
			if f.err != nil {
				return nil, f.err
			}
		}
	case ReqList:
		req.Root = f.string()
	case ReqRestartProcess:
		req.Grace = time.Duration(f.uvarint()) * time.Millisecond
	default:
		return nil, fmt.Errorf("unknown kind %d", req.Kind)
	}
	return req, f.err
}

// frameReader reads one frame's payload from a stream; the first error
// sticks (as decoder's does), and reads past the payload fail.
type frameReader struct {
	r    byteReader
	left int64 // payload bytes not read yet
	err  error
}

func (f *frameReader) fail(err error) {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if f.err == nil {
		f.err = err
	}
}

func (f *frameReader) ReadByte() (byte, error) {
	if f.err != nil {
		return 0, f.err
	}
	if f.left <= 0 {
		f.fail(errShort)
		return 0, f.err
	}
	c, err := f.r.ReadByte()
	if err != nil {
		f.fail(err)
		return 0, f.err
	}
	f.left--
	return c, nil
}

func (f *frameReader) Read(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	if int64(len(p)) > f.left {
		p = p[:f.left]
	}
	if len(p) == 0 {
		f.fail(errShort)
		return 0, f.err
	}
	n, err := f.r.Read(p)
	f.left -= int64(n)
	if err != nil {
		f.fail(err)
		return n, f.err
	}
	return n, nil
}

func (f *frameReader) byte() byte {
	c, _ := f.ReadByte()
	return c
}

func (f *frameReader) uvarint() uint64 {
	v, err := binary.ReadUvarint(f)
	if err != nil {
		f.fail(err)
	}
	return v
}

// count reads a length that must fit in the rest of the payload.
func (f *frameReader) count() int {
	v := f.uvarint()
	if f.err == nil && v > uint64(f.left) {
		f.fail(errShort)
	}
	if f.err != nil {
		return 0
	}
	return int(v)
}

func (f *frameReader) string() string {
	b := make([]byte, f.count())
	if _, err := io.ReadFull(f, b); err != nil {
		f.fail(err)
		return ""
	}
	return string(b)
}
