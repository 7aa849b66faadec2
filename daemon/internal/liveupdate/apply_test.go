package liveupdate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/agentwire"
)

// fakeTarget records what Apply asks of a container.
type fakeTarget struct {
	roots    []string
	ops      []agent.Op
	syncs    int
	execs    [][]string
	codes    map[string]int // argv[0] -> exit code
	restarts int
}

func (f *fakeTarget) Sync(_ context.Context, roots []string, ops []agent.Op, _ io.Writer) error {
	f.syncs++
	f.roots, f.ops = roots, append(f.ops, ops...)
	return nil
}

func (f *fakeTarget) Exec(_ context.Context, argv []string, logs io.Writer) (int, error) {
	f.execs = append(f.execs, argv)
	_, _ = io.WriteString(logs, "ran "+argv[0]+"\n")
	return f.codes[argv[0]], nil
}

func (f *fakeTarget) Restart(context.Context, io.Writer) error { f.restarts++; return nil }

func (f *fakeTarget) byPath() map[string]agent.Op {
	m := map[string]agent.Op{}
	for _, op := range f.ops {
		m[op.Path] = op
	}
	return m
}

func write(t testing.TB, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func plan(t *testing.T, lu *model.LiveUpdate, paths ...string) Update {
	t.Helper()
	var cs []Change
	for _, p := range paths {
		cs = append(cs, Change{Path: p})
	}
	d, err := Plan(lu, cs)
	if err != nil {
		t.Fatal(err)
	}
	if d.Update == nil {
		t.Fatalf("plan %v = %+v, want an update", paths, d)
	}
	return *d.Update
}

func TestApplyBuildsOpsFromHostFiles(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "main.go"), "package main", 0o644)
	write(t, filepath.Join(src, "bin", "run.sh"), "#!/bin/sh", 0o755)
	write(t, filepath.Join(src, "newdir", "a.txt"), "a", 0o600)
	write(t, filepath.Join(src, "newdir", "sub", "b.txt"), "b", 0o644)
	write(t, filepath.Join(src, "newdir", "skip.swp"), "x", 0o644)
	if err := os.Symlink("a.txt", filepath.Join(src, "newdir", "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "main.go"), filepath.Join(src, "abslink")); err != nil {
		t.Fatal(err)
	}
	lu := &model.LiveUpdate{
		Syncs:  []model.Sync{{LocalPath: src, ContainerPath: "/app"}},
		Ignore: []string{src + "/**/*.swp"},
	}
	u := plan(t, lu,
		filepath.Join(src, "main.go"),
		filepath.Join(src, "bin", "run.sh"),
		filepath.Join(src, "gone.txt"), // never existed: a removal
		filepath.Join(src, "newdir"),
		filepath.Join(src, "newdir", "a.txt"), // also covered by newdir
		filepath.Join(src, "abslink"),
	)
	ft := &fakeTarget{}
	res, err := Apply(context.Background(), ft, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ft.syncs != 1 || !reflect.DeepEqual(ft.roots, []string{"/app"}) {
		t.Errorf("syncs = %d with roots %v, want one batch for /app", ft.syncs, ft.roots)
	}
	ops := ft.byPath()
	if len(ops) != len(ft.ops) {
		t.Errorf("a container path got two ops: %+v", ft.ops)
	}
	type want struct {
		kind   agentwire.OpKind
		mode   os.FileMode
		data   string
		target string
	}
	wants := map[string]want{
		"/app/main.go":          {agentwire.OpWrite, 0o644, "package main", ""},
		"/app/bin/run.sh":       {agentwire.OpWrite, 0o755, "#!/bin/sh", ""},
		"/app/gone.txt":         {agentwire.OpRemove, 0, "", ""},
		"/app/newdir":           {agentwire.OpMkdir, 0o755, "", ""},
		"/app/newdir/a.txt":     {agentwire.OpWrite, 0o600, "a", ""},
		"/app/newdir/sub":       {agentwire.OpMkdir, 0o755, "", ""},
		"/app/newdir/sub/b.txt": {agentwire.OpWrite, 0o644, "b", ""},
		"/app/newdir/link":      {agentwire.OpSymlink, 0, "", "a.txt"},
		"/app/abslink":          {agentwire.OpSymlink, 0, "", "/app/main.go"},
	}
	for p, w := range wants {
		op, ok := ops[p]
		if !ok {
			t.Errorf("no op for %s", p)
			continue
		}
		if op.Kind != w.kind || string(op.Data) != w.data || op.Target != w.target || (w.mode != 0 && op.Mode != w.mode) {
			t.Errorf("%s: got %s mode %o %q -> %q, want %s mode %o %q -> %q", p, op.Kind, op.Mode, op.Data, op.Target, w.kind, w.mode, w.data, w.target)
		}
	}
	if _, ok := ops["/app/newdir/skip.swp"]; ok {
		t.Error("ignored file inside a new directory was sent")
	}
	if len(ops) != len(wants) {
		t.Errorf("%d ops, want %d: %+v", len(ops), len(wants), ft.ops)
	}
	// A directory's op comes before its contents.
	idx := map[string]int{}
	for i, op := range ft.ops {
		idx[op.Path] = i
	}
	if idx["/app/newdir"] > idx["/app/newdir/sub/b.txt"] {
		t.Error("directory sent after its contents")
	}
	if res.Removed != 1 || res.Written != len(wants)-1 {
		t.Errorf("result = %+v", res)
	}
}

func TestApplyRefusesSymlinksOutOfTheSync(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	secret := filepath.Join(base, "secret")
	write(t, filepath.Join(secret, "key"), "k", 0o600)
	write(t, filepath.Join(src, "ok.txt"), "ok", 0o644)
	if err := os.Symlink(filepath.Join(secret, "key"), filepath.Join(src, "key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(src, "secretdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret/nothing", filepath.Join(src, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../secret", filepath.Join(src, "d", "up")); err != nil {
		t.Fatal(err)
	}
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: src, ContainerPath: "/app"}}}
	for _, p := range []string{
		filepath.Join(src, "key"),              // file link out
		filepath.Join(src, "secretdir", "key"), // through a linked parent
		filepath.Join(src, "secretdir"),        // directory link out
		filepath.Join(src, "dangling"),         // dangling link out
		filepath.Join(src, "d"),                // a directory holding a link out
	} {
		ft := &fakeTarget{}
		_, err := Apply(context.Background(), ft, plan(t, lu, filepath.Join(src, "ok.txt"), p), nil)
		var esc *EscapeError
		if !errors.As(err, &esc) || !strings.Contains(err.Error(), src) {
			t.Errorf("%s: err = %v, want an EscapeError naming it", p, err)
		}
		if ft.syncs != 0 {
			t.Errorf("%s: sent %d batches, want none", p, ft.syncs)
		}
	}
}

func TestApplySyncRootIsASymlink(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	write(t, filepath.Join(real, "a.txt"), "a", 0o644)
	link := filepath.Join(base, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	lu := &model.LiveUpdate{Syncs: []model.Sync{{LocalPath: link, ContainerPath: "/app"}}}
	changes, err := InitialSync(lu, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Path != filepath.Join(link, "a.txt") {
		t.Fatalf("initial sync = %+v", changes)
	}
	for _, p := range []string{link, filepath.Join(link, "a.txt")} {
		ft := &fakeTarget{}
		if _, err := Apply(context.Background(), ft, plan(t, lu, p), nil); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if op := ft.byPath()["/app/a.txt"]; op.Kind != agentwire.OpWrite || string(op.Data) != "a" {
			t.Errorf("%s: ops = %+v", p, ft.ops)
		}
	}
}

func TestApplyRunsAndRestart(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "a"), "a", 0o644)
	lu := &model.LiveUpdate{
		Syncs: []model.Sync{{LocalPath: src, ContainerPath: "/app"}},
		Runs: []model.Run{
			{Cmd: model.Cmd{Argv: []string{"first"}}, Echo: true},
			{Cmd: model.Cmd{Argv: []string{"sh", "-c", "fails"}, Shell: true}},
			{Cmd: model.Cmd{Argv: []string{"never"}}},
		},
		Restart: true,
	}
	ft := &fakeTarget{codes: map[string]int{"sh": 3}}
	var logs bytes.Buffer
	res, err := Apply(context.Background(), ft, plan(t, lu, filepath.Join(src, "a")), &logs)
	var re *RunError
	if !errors.As(err, &re) || re.ExitCode != 3 || !strings.Contains(err.Error(), "sh -c fails") {
		t.Fatalf("err = %v, want RunError naming the command and code 3", err)
	}
	if !reflect.DeepEqual(ft.execs, [][]string{{"first"}, {"sh", "-c", "fails"}}) {
		t.Errorf("execs = %v", ft.execs)
	}
	if ft.restarts != 0 || res.Restarted {
		t.Error("restarted after a failed run")
	}
	if !strings.Contains(logs.String(), "$ first\nran first\n") {
		t.Errorf("logs = %q", logs.String())
	}

	lu.Runs = []model.Run{{Cmd: model.Cmd{Argv: []string{"make css"}, Shell: true}}}
	ft = &fakeTarget{}
	res, err = Apply(context.Background(), ft, plan(t, lu, filepath.Join(src, "a")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ft.restarts != 1 || !res.Restarted || res.Ran != 1 {
		t.Errorf("result = %+v, restarts %d", res, ft.restarts)
	}
	if !reflect.DeepEqual(ft.execs, [][]string{{"sh", "-c", "make css"}}) {
		t.Errorf("shell string ran as %v, want it wrapped in sh -c", ft.execs)
	}
}

func TestInitialSync(t *testing.T) {
	src := t.TempDir()
	write(t, filepath.Join(src, "a.go"), "a", 0o644)
	write(t, filepath.Join(src, "pkg", "b.go"), "b", 0o644)
	write(t, filepath.Join(src, "node_modules", "x.js"), "x", 0o644)
	if err := os.MkdirAll(filepath.Join(src, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(t.TempDir(), "conf.yaml")
	write(t, conf, "c", 0o644)
	lu := &model.LiveUpdate{Syncs: []model.Sync{
		{LocalPath: src, ContainerPath: "/app"},
		{LocalPath: conf, ContainerPath: "/etc/conf.yaml"},
		{LocalPath: filepath.Join(src, "missing"), ContainerPath: "/m"},
	}}
	var asked []string
	changes, err := InitialSync(lu, func(p string, isDir bool) bool {
		asked = append(asked, p)
		return isDir && filepath.Base(p) == "node_modules"
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		got = append(got, c.Path)
	}
	sort.Strings(got)
	want := []string{conf, filepath.Join(src, "a.go"), filepath.Join(src, "empty"), filepath.Join(src, "pkg", "b.go")}
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %v, want %v", got, want)
	}
	for _, p := range asked {
		if strings.Contains(p, "x.js") {
			t.Error("walked into an ignored directory")
		}
	}
}
