package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestInstallCopiesItself(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "sub", "agent")
	var stderr bytes.Buffer
	if code := installMain([]string{dest}, &stderr); code != 0 {
		t.Fatalf("install: exit code %d: %s", code, stderr.String())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("installed %d bytes, not the running executable's %d", len(got), len(want))
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v, want 0755", fi.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(dest), ".agent-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestInstallRefusesBadArgsAndUnwritableDest(t *testing.T) {
	var stderr bytes.Buffer
	if code := installMain(nil, &stderr); code != 2 {
		t.Fatalf("no args: exit code %d, want 2", code)
	}
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
	if os.Geteuid() == 0 {
		ro = "/proc/self" // root writes anywhere else
	}
	stderr.Reset()
	if code := installMain([]string{filepath.Join(ro, "agent")}, &stderr); code != 1 || stderr.Len() == 0 {
		t.Fatalf("unwritable dest: exit code %d, stderr %q; want 1 and a message", code, stderr.String())
	}
}
