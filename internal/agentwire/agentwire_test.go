package agentwire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"reflect"
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
