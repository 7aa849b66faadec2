package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loop-dev/loop/internal/agentwire"
)

// roundTrip sends reqs through serve as loop would and returns the replies.
func roundTrip(t *testing.T, reqs ...*agentwire.Request) []*agentwire.Reply {
	t.Helper()
	var in, out bytes.Buffer
	for _, r := range reqs {
		if err := agentwire.WriteRequest(&in, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := serve(bufio.NewReader(&in), &out); err != nil {
		t.Fatalf("serve: %v", err)
	}
	var reps []*agentwire.Reply
	for out.Len() > 0 {
		rep, err := agentwire.ReadReply(&out)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	if len(reps) != len(reqs) {
		t.Fatalf("got %d replies, want %d", len(reps), len(reqs))
	}
	return reps
}

func apply(t *testing.T, roots []string, ops ...agentwire.Op) []agentwire.OpError {
	t.Helper()
	return roundTrip(t, &agentwire.Request{Kind: agentwire.ReqApply, Roots: roots, Ops: ops})[0].OpErrors
}

func mustNoOpErrors(t *testing.T, errs []agentwire.OpError) {
	t.Helper()
	if len(errs) > 0 {
		t.Fatalf("op errors: %v", errs)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteCreatesParentsWithModeAndLeavesNoTemp(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "a", "b", "run.sh")
	mustNoOpErrors(t, apply(t, []string{root}, agentwire.Op{Kind: agentwire.OpWrite, Path: p, Mode: 0o751, Data: []byte("#!/bin/sh\n")}))
	if got := readFile(t, p); got != "#!/bin/sh\n" {
		t.Errorf("content = %q", got)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o751 {
		t.Errorf("mode = %o, want 751", got)
	}
	mustNoOpErrors(t, apply(t, []string{root}, agentwire.Op{Kind: agentwire.OpWrite, Path: p, Mode: 0o600, Data: []byte("v2")}))
	if got := readFile(t, p); got != "v2" {
		t.Errorf("content after rewrite = %q", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries, want only run.sh (temp files left?)", len(ents))
	}
}

func TestTypeChanges(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "x")
	mustNoOpErrors(t, apply(t, []string{root},
		agentwire.Op{Kind: agentwire.OpMkdir, Path: p, Mode: 0o755},
		agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(p, "inner"), Mode: 0o644, Data: []byte("i")},
	))
	// Directory becomes a file.
	mustNoOpErrors(t, apply(t, []string{root}, agentwire.Op{Kind: agentwire.OpWrite, Path: p, Mode: 0o644, Data: []byte("file")}))
	if got := readFile(t, p); got != "file" {
		t.Errorf("content = %q", got)
	}
	// File becomes a directory.
	mustNoOpErrors(t, apply(t, []string{root}, agentwire.Op{Kind: agentwire.OpMkdir, Path: p, Mode: 0o700}))
	fi, err := os.Lstat(p)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("after mkdir: %v %v", fi, err)
	}
}

func TestRemove(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "d")
	mustNoOpErrors(t, apply(t, []string{root}, agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(d, "e", "f"), Data: []byte("f")}))
	mustNoOpErrors(t, apply(t, []string{root},
		agentwire.Op{Kind: agentwire.OpRemove, Path: d},
		agentwire.Op{Kind: agentwire.OpRemove, Path: filepath.Join(root, "missing")},
	))
	if _, err := os.Lstat(d); !os.IsNotExist(err) {
		t.Errorf("after remove: %v", err)
	}
	errs := apply(t, []string{"/"}, agentwire.Op{Kind: agentwire.OpRemove, Path: "/"})
	if len(errs) != 1 {
		t.Errorf("removing / gave %v, want a refusal", errs)
	}
}

func TestRefusesEscapes(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "keep"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A dangling link leads where it names: MkdirAll through it must not
	// create outside/new.
	if err := os.Symlink("../outside/new", filepath.Join(root, "dangle")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		op   agentwire.Op
	}{
		{"relative", agentwire.Op{Kind: agentwire.OpWrite, Path: "root/x", Data: []byte("x")}},
		{"dotdot", agentwire.Op{Kind: agentwire.OpWrite, Path: root + "/../outside/x", Data: []byte("x")}},
		{"other root", agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(outside, "x"), Data: []byte("x")}},
		{"prefix sibling", agentwire.Op{Kind: agentwire.OpWrite, Path: root + "2/x", Data: []byte("x")}},
		{"parent symlink write", agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(root, "out", "x"), Data: []byte("x")}},
		{"parent symlink deep", agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(root, "out", "new", "x"), Data: []byte("x")}},
		{"parent symlink remove", agentwire.Op{Kind: agentwire.OpRemove, Path: filepath.Join(root, "out", "keep")}},
		{"parent symlink mkdir", agentwire.Op{Kind: agentwire.OpMkdir, Path: filepath.Join(root, "out", "d")}},
		{"parent dangling symlink", agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(root, "dangle", "x"), Data: []byte("x")}},
		{"parent dangling symlink mkdir", agentwire.Op{Kind: agentwire.OpMkdir, Path: filepath.Join(root, "dangle", "d")}},
		{"symlink target abs", agentwire.Op{Kind: agentwire.OpSymlink, Path: filepath.Join(root, "l1"), Target: outside}},
		{"symlink target rel", agentwire.Op{Kind: agentwire.OpSymlink, Path: filepath.Join(root, "l2"), Target: "../outside/keep"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := apply(t, []string{root}, c.op)
			if len(errs) != 1 || errs[0].Index != 0 {
				t.Fatalf("op errors = %v, want one refusal", errs)
			}
		})
	}
	ents, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "keep" {
		t.Errorf("outside dir changed: %v", ents)
	}
	if _, err := os.Lstat(filepath.Join(root, "l1")); !os.IsNotExist(err) {
		t.Errorf("refused symlink exists: %v", err)
	}
}

func TestMkdirOverSymlinkDoesNotFollow(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(root, "l")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	mustNoOpErrors(t, apply(t, []string{root}, agentwire.Op{Kind: agentwire.OpMkdir, Path: link, Mode: 0o700}))
	fi, err := os.Stat(outside)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("outside dir mode changed to %o", fi.Mode().Perm())
	}
	if fi, err := os.Lstat(link); err != nil || !fi.IsDir() {
		t.Errorf("link not replaced by a dir: %v %v", fi, err)
	}
}

func TestSymlinkInsideRootAndList(t *testing.T) {
	root := t.TempDir()
	mustNoOpErrors(t, apply(t, []string{root},
		agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(root, "sub", "a.txt"), Mode: 0o640, Data: []byte("hello")},
		agentwire.Op{Kind: agentwire.OpSymlink, Path: filepath.Join(root, "link"), Target: "sub/a.txt"},
	))
	if got := readFile(t, filepath.Join(root, "link")); got != "hello" {
		t.Errorf("through link = %q", got)
	}
	rep := roundTrip(t, &agentwire.Request{Kind: agentwire.ReqList, Root: root})[0]
	if rep.Err != "" {
		t.Fatal(rep.Err)
	}
	got := map[string]agentwire.Entry{}
	for _, e := range rep.Entries {
		got[strings.TrimPrefix(e.Path, root)] = e
	}
	if len(got) != 4 {
		t.Errorf("entries = %v, want root, sub, sub/a.txt, link", rep.Entries)
	}
	a := got["/sub/a.txt"]
	if a.SHA256 != sha256.Sum256([]byte("hello")) || a.Size != 5 || a.Mode != 0o640 {
		t.Errorf("a.txt entry = %+v", a)
	}
	if l := got["/link"]; l.LinkTarget != "sub/a.txt" || l.Mode&os.ModeSymlink == 0 {
		t.Errorf("link entry = %+v", l)
	}
	missing := roundTrip(t, &agentwire.Request{Kind: agentwire.ReqList, Root: filepath.Join(root, "nope")})[0]
	if missing.Err != "" || len(missing.Entries) != 0 {
		t.Errorf("missing root listed %+v", missing)
	}
}

func TestPingReportsVersionAndExecutableHash(t *testing.T) {
	rep := roundTrip(t, &agentwire.Request{Kind: agentwire.ReqPing})[0]
	if rep.Version != agentwire.Version || len(rep.ExeSHA256) != 64 {
		t.Errorf("ping = %+v", rep)
	}
}

func TestServeRejectsCorruptFrame(t *testing.T) {
	in := bytes.NewReader([]byte{0, 0, 0, 3, byte(agentwire.ReqApply), 5, 1})
	if err := serve(bufio.NewReader(in), &bytes.Buffer{}); err == nil {
		t.Fatal("serve accepted a truncated apply request")
	}
}

// A write whose data the stream cuts short leaves the old file as it was and
// no temp file behind; the session ends with the error.
func TestWriteCutShortKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app")
	mustNoOpErrors(t, apply(t, []string{dir}, agentwire.Op{Kind: agentwire.OpWrite, Path: p, Data: []byte("old")}))
	var in bytes.Buffer
	big := bytes.Repeat([]byte("new"), 100_000)
	if err := agentwire.WriteRequest(&in, &agentwire.Request{Kind: agentwire.ReqApply, Roots: []string{dir},
		Ops: []agentwire.Op{{Kind: agentwire.OpWrite, Path: p, Data: big}}}); err != nil {
		t.Fatal(err)
	}
	cut := in.Bytes()[:in.Len()-1000]
	if err := serve(bufio.NewReader(bytes.NewReader(cut)), &bytes.Buffer{}); err == nil {
		t.Fatal("serve accepted a request cut short")
	}
	if got := readFile(t, p); got != "old" {
		t.Errorf("after a cut write the file holds %d bytes, want the old content", len(got))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the file alone", len(entries))
	}
}

// A large write arrives whole (its data streamed in several pieces).
func TestLargeWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bin", "app")
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	mustNoOpErrors(t, apply(t, []string{dir}, agentwire.Op{Kind: agentwire.OpWrite, Path: p, Mode: 0o755, Data: big},
		agentwire.Op{Kind: agentwire.OpWrite, Path: filepath.Join(dir, "after"), Data: []byte("after")}))
	if got := readFile(t, p); got != string(big) {
		t.Errorf("large write: got %d bytes, want %d", len(got), len(big))
	}
	if got := readFile(t, filepath.Join(dir, "after")); got != "after" {
		t.Errorf("op after the large write: %q", got)
	}
}
