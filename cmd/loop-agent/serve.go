package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"

	"github.com/loop-dev/loop/internal/agentwire"
	"github.com/loop-dev/loop/internal/pathrule"
)

// serve answers requests from r on w, one at a time, until r ends or a Bye.
// An Apply's ops are applied as they arrive, each write streamed into its
// file while the rest of the request is still on its way. A frame it cannot
// decode ends the session: the stream cannot be resynchronised.
func serve(r *bufio.Reader, w io.Writer) error {
	for {
		var opErrs []agentwire.OpError
		req, err := agentwire.ReadRequestFunc(r, func(req *agentwire.Request, i int, op agentwire.Op, data io.Reader) {
			if err := applyOp(req.Roots, op, data); err != nil {
				opErrs = append(opErrs, agentwire.OpError{Index: i, Path: op.Path, Msg: err.Error()})
			}
		})
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		rep := handle(req)
		rep.OpErrors = opErrs
		if err := agentwire.WriteReply(w, rep); err != nil {
			return fmt.Errorf("write reply: %w", err)
		}
		if req.Kind == agentwire.ReqBye {
			return nil
		}
	}
}

// handle answers a request whose ops, if any, serve has applied.
func handle(req *agentwire.Request) *agentwire.Reply {
	rep := &agentwire.Reply{Kind: req.Kind}
	switch req.Kind {
	case agentwire.ReqPing:
		rep.Version = agentwire.Version
		rep.ExeSHA256 = exeSHA256()
	case agentwire.ReqList:
		entries, err := list(req.Root)
		if err != nil {
			rep.Err = err.Error()
		}
		rep.Entries = entries
	case agentwire.ReqRestartProcess:
		pid, err := restartProcess(superviseSocket, req.Grace)
		if err != nil {
			rep.Err = err.Error()
		}
		rep.PID = uint64(pid)
	}
	return rep
}

func exeSHA256() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	f, err := os.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// applyOp applies op; data is a write's content.
func applyOp(roots []string, op agentwire.Op, data io.Reader) error {
	root, err := checkPath(roots, op.Path)
	if err != nil {
		return err
	}
	switch op.Kind {
	case agentwire.OpWrite:
		return writeFile(op.Path, op.Mode, data)
	case agentwire.OpRemove:
		if op.Path == "/" {
			return errors.New("refusing to remove /")
		}
		return os.RemoveAll(op.Path)
	case agentwire.OpMkdir:
		return mkdir(op.Path, op.Mode)
	case agentwire.OpSymlink:
		target := op.Target
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(op.Path), target)
		}
		if !pathrule.Within(root, target) {
			return fmt.Errorf("symlink target %s is outside %s", op.Target, root)
		}
		return symlink(op.Path, op.Target)
	}
	return fmt.Errorf("unknown op %s", op.Kind)
}

// checkPath returns the most specific root p lies under, or why p must not
// be touched: p is not absolute and clean, is under none of roots, or its
// parent directory resolves (through symlinks) to somewhere outside that
// root. p itself is not followed: writes and links replace it, removals
// remove it. loop checks the same before sending; this is the second line.
func checkPath(roots []string, p string) (string, error) {
	if !path.IsAbs(p) {
		return "", errors.New("path is not absolute")
	}
	if path.Clean(p) != p {
		return "", errors.New("path is not clean (.., . or //)")
	}
	root := ""
	for _, r := range roots {
		if path.IsAbs(r) && path.Clean(r) == r && pathrule.Within(r, p) && len(r) > len(root) {
			root = r
		}
	}
	if root == "" {
		return "", fmt.Errorf("path is outside the batch's roots %v", roots)
	}
	if p == root {
		return root, nil
	}
	if _, err := pathrule.Resolve(root, path.Dir(p)); err != nil {
		return "", fmt.Errorf("check parent directory: %w", err)
	}
	return root, nil
}

const modeBits = os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky

// writeFile replaces p atomically with what data holds: readers see the old
// or the new content, never a partial file. The temp file lives in p's
// directory so the rename stays on one file system.
func writeFile(p string, mode os.FileMode, data io.Reader) error {
	if mode&modeBits == 0 {
		mode = 0o644
	}
	dir := path.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".loop-tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = copyFull(f, data)
	if err == nil {
		err = f.Chmod(mode & modeBits)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = replace(tmp, p)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// copyFull copies data to f, filling a buffer of up to 1 MB before each
// write: a stdin pipe hands over 64 KB a read at most, and a large file goes
// to disk in fewer, larger writes. Only io.EOF ends data; any other error
// (the stream broke midway) fails the copy.
func copyFull(f *os.File, data io.Reader) error {
	size := 1 << 20
	if lr, ok := data.(*io.LimitedReader); ok && lr.N < int64(size) {
		size = int(lr.N)
	}
	buf := make([]byte, max(size, 1))
	for {
		n, err := 0, error(nil)
		for n < len(buf) && err == nil {
			var m int
			m, err = data.Read(buf[n:])
			n += m
		}
		if n > 0 {
			if _, werr := f.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// replace renames tmp over p, first removing p when it is a directory (the
// file replaced a directory on the host).
func replace(tmp, p string) error {
	err := os.Rename(tmp, p)
	if err == nil {
		return nil
	}
	if fi, lerr := os.Lstat(p); lerr == nil && fi.IsDir() {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		return os.Rename(tmp, p)
	}
	return err
}

func mkdir(p string, mode os.FileMode) error {
	if mode&modeBits == 0 {
		mode = 0o755
	}
	if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
		// A file or symlink stands where the host now has a directory;
		// removing it also keeps Chmod from following a link out.
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	return os.Chmod(p, mode&modeBits)
}

var tmpSeq atomic.Uint64

func symlink(p, target string) error {
	dir := path.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := path.Join(dir, fmt.Sprintf(".loop-tmp-link-%d-%d", os.Getpid(), tmpSeq.Add(1)))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := replace(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// list describes every entry under root (root included) without following
// symlinks. A missing root lists nothing.
func list(root string) ([]agentwire.Entry, error) {
	if !path.IsAbs(root) || path.Clean(root) != root {
		return nil, errors.New("root is not an absolute clean path")
	}
	var entries []agentwire.Entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		e := agentwire.Entry{Path: p, Mode: fi.Mode(), Size: fi.Size()}
		switch {
		case fi.Mode().IsRegular():
			sum, err := hashFile(p)
			if err != nil {
				return err
			}
			e.SHA256 = sum
		case fi.Mode()&os.ModeSymlink != 0:
			if e.LinkTarget, err = os.Readlink(p); err != nil {
				return err
			}
		}
		entries = append(entries, e)
		return nil
	})
	return entries, err
}

func hashFile(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}
