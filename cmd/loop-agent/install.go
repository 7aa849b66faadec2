package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// installMain runs `install DEST`: it copies the running executable to DEST
// (mode 0755, parents created, replaced atomically) and returns the exit
// code. A pod's init container runs it from loop's agent image to put the
// agent into the volume the application's container runs it from, so that
// the image needs no shell or cp.
func installMain(args []string, stderr io.Writer) int {
	if len(args) != 1 || args[0] == "" {
		fmt.Fprintln(stderr, "loop-agent install: usage: install DEST")
		return 2
	}
	if err := installSelf(args[0]); err != nil {
		fmt.Fprintf(stderr, "loop-agent install: %v\n", err)
		return 1
	}
	return 0
}

func installSelf(dest string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	src, err := os.Open(exe)
	if err != nil {
		return fmt.Errorf("read own executable: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("install %s: %w", dest, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".agent-*")
	if err != nil {
		return fmt.Errorf("install %s: %w", dest, err)
	}
	defer os.Remove(tmp.Name()) // gone after the rename; left on failure otherwise
	if _, err := io.Copy(tmp, src); err != nil {
		tmp.Close()
		return fmt.Errorf("install %s: %w", dest, err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("install %s: %w", dest, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("install %s: %w", dest, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("install %s: %w", dest, err)
	}
	return nil
}
