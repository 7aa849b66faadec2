package agentwire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestRequestRoundTrip(t *testing.T) {
	reqs := []*Request{
		{Kind: ReqPing},
		{Kind: ReqList, Root: "/app"},
		{Kind: ReqRestartProcess},
		{Kind: ReqBye},
		{Kind: ReqRestartProcess, Grace: 2500 * time.Millisecond},
		{Kind: ReqApply, Roots: []string{"/app", "/etc/app"}, Ops: []Op{
			{Kind: OpWrite, Path: "/app/a", Mode: 0o755 | os.ModeSetuid, Data: []byte("data")},
			{Kind: OpRemove, Path: "/app/b"},
			{Kind: OpMkdir, Path: "/app/c", Mode: 0o700},
			{Kind: OpSymlink, Path: "/app/d", Target: "a"},
		}},
	}
	var buf bytes.Buffer
	for _, r := range reqs {
		if err := WriteRequest(&buf, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range reqs {
		got, err := ReadRequest(&buf)
		if err != nil {
			t.Fatal(err)
		}
		// Empty and nil data compare unequal; normalise.
		for i := range got.Ops {
			if len(got.Ops[i].Data) == 0 {
				got.Ops[i].Data = nil
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}
	if _, err := ReadRequest(&buf); !errors.Is(err, io.EOF) {
		t.Errorf("after last frame: %v, want io.EOF", err)
	}
}

func TestReplyRoundTrip(t *testing.T) {
	want := &Reply{
		Kind:     ReqApply,
		Err:      "boom",
		OpErrors: []OpError{{Index: 3, Path: "/x", Msg: "denied"}},
		Entries: []Entry{
			{Path: "/a", Mode: os.ModeDir | 0o755},
			{Path: "/a/f", Mode: 0o644, Size: 3, SHA256: [32]byte{1, 2, 3}},
			{Path: "/a/l", Mode: os.ModeSymlink | 0o777, LinkTarget: "f"},
		},
		Version:   Version,
		ExeSHA256: "abc",
		PID:       4242,
	}
	var buf bytes.Buffer
	if err := WriteReply(&buf, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReply(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestTruncatedFramesFail(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteRequest(&buf, &Request{Kind: ReqApply, Roots: []string{"/r"}, Ops: []Op{{Kind: OpWrite, Path: "/r/a", Data: []byte("xyz")}}}); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	for n := 1; n < len(full); n++ {
		if _, err := ReadRequest(bytes.NewReader(full[:n])); err == nil {
			t.Fatalf("decoded a request cut at %d of %d bytes", n, len(full))
		}
	}
	// A frame whose length is right but whose counts lie.
	bad := []byte{0, 0, 0, 3, byte(ReqApply), 0x7f, 0}
	if _, err := ReadRequest(bytes.NewReader(bad)); err == nil {
		t.Fatal("decoded a request with a lying count")
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := ReadRequest(bytes.NewReader(huge)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
}

// A large op's data is written from the op's slice and can be read as a
// stream; what the receiver leaves unread is skipped, and the ops around it
// decode unchanged.
func TestApplyStreamsData(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), (inlineData/16)*3+1)
	req := &Request{Kind: ReqApply, Roots: []string{"/app"}, Ops: []Op{
		{Kind: OpWrite, Path: "/app/big", Mode: 0o755, Data: big},
		{Kind: OpWrite, Path: "/app/skipped", Data: big},
		{Kind: OpSymlink, Path: "/app/l", Target: "big"},
		{Kind: OpWrite, Path: "/app/small", Data: []byte("s")},
	}}
	var buf bytes.Buffer
	if err := WriteRequest(&buf, req); err != nil {
		t.Fatal(err)
	}
	if err := WriteRequest(&buf, &Request{Kind: ReqPing}); err != nil {
		t.Fatal(err)
	}
	var got []Op
	r := bufio.NewReaderSize(&buf, 16)
	rest, err := ReadRequestFunc(r, func(req *Request, i int, op Op, data io.Reader) {
		if !reflect.DeepEqual(req.Roots, []string{"/app"}) || i != len(got) {
			t.Errorf("op %d: roots %v, index %d", len(got), req.Roots, i)
		}
		if op.Path != "/app/skipped" {
			b, err := io.ReadAll(data)
			if err != nil {
				t.Fatal(err)
			}
			op.Data = b
		}
		got = append(got, op)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rest.Kind != ReqApply || len(rest.Ops) != 0 {
		t.Errorf("streamed request = %+v, want an Apply without ops", rest)
	}
	want := slices.Clone(req.Ops)
	want[1].Data = nil
	want[2].Data = []byte{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("streamed ops differ: got %d ops %v", len(got), got[2:])
	}
	if next, err := ReadRequestFunc(r, nil); err != nil || next.Kind != ReqPing {
		t.Errorf("next request = %+v, %v, want the ping", next, err)
	}
}
