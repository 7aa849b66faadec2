// Package pathrule owns loop's one answer to "is path p inside root r". It
// guards every write into a container (the host side picks the sync, the
// in-container agent checks again), the build context, the watcher and the
// renderers, so it has exactly one meaning and is standard library only: the
// static agent imports it too.
//
// The meaning is lexical. Both paths are cleaned first (filepath.Clean), so a
// ".." segment is resolved by spelling: "/a/b/../c" is not inside "/a/b". p is
// inside r when it is r or below it, segment by segment: "/a/bc" is never
// inside "/a/b". "/" holds every absolute path and "." every relative path
// that does not climb out with "..". An absolute and a relative path never
// hold one another, and the empty path holds nothing and is in nothing (an
// unset root must not mean "the current directory").
//
// Resolve adds the file system: it follows symlinks, for the callers that
// must not be led out of a root by a link.
//
// Paths are slash-separated, as on the Linux and macOS hosts loop runs on
// and in the Linux containers it writes to.
package pathrule

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Within reports whether p is root or lies below it (see the package comment
// for the exact rule).
func Within(root, p string) bool {
	_, ok := Rel(root, p)
	return ok
}

// Rel returns p relative to root, "." for root itself, when p is Within
// root; otherwise "" and false. Unlike filepath.Rel it never returns a path
// that climbs out with "..".
func Rel(root, p string) (string, bool) {
	if root == "" || p == "" {
		return "", false
	}
	r, q := clean(root), clean(p)
	if filepath.IsAbs(r) != filepath.IsAbs(q) {
		return "", false
	}
	var rest string
	switch {
	case q == r:
		return ".", true
	case r == "/":
		rest = q[1:]
	case r == ".":
		rest = q
	case len(q) > len(r) && q[len(r)] == '/' && q[:len(r)] == r:
		rest = q[len(r)+1:]
	default:
		return "", false
	}
	// Only a relative root made of ".." segments (or ".") can leave a
	// remainder that climbs: "../.." is not inside "..".
	if rest == ".." || strings.HasPrefix(rest, "../") {
		return "", false
	}
	return rest, true
}

// clean is filepath.Clean (on slash-separated systems), made cheap for a
// path that is clean already: the watcher and the live update ask about
// every changed file, and the paths they pass are clean.
func clean(p string) string {
	if isClean(p) {
		return p
	}
	return filepath.Clean(p)
}

// isClean reports whether filepath.Clean would return slash path p
// unchanged: no empty, "." or ".." segment (but "." alone and the leading
// ".." segments of a relative path), so no trailing slash either.
func isClean(p string) bool {
	if p == "" {
		return false
	}
	// The common case, found fast: nothing that could make an empty, "."
	// or ".." segment.
	if p[0] != '.' && p[len(p)-1] != '/' && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return true
	}
	if p == "/" || p == "." {
		return true
	}
	leading := p[0] != '/' // in a relative path's leading ".." segments
	start := 0
	if !leading {
		start = 1
	}
	for i := start; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "", ".":
			return false
		case "..":
			if !leading {
				return false
			}
		default:
			leading = false
		}
		start = i + 1
	}
	return true
}

// ErrOutside is wrapped by Resolve's error when p leads outside root.
var ErrOutside = errors.New("path leads outside its root")

// maxLinks bounds the symlinks Resolve follows (filepath.EvalSymlinks's
// bound), so that a loop of links ends.
const maxLinks = 255

// Resolve returns where absolute path p really leads and checks that it is
// Within root, itself resolved. Both are cleaned first (lexically, as in
// Within); then every symlink on the way is followed, a dangling one to the
// target it names. The part of the path that does not exist yet is appended
// as spelled: nothing there can redirect, and whoever creates it (MkdirAll)
// makes real directories. A p that leads outside root gives an error
// wrapping ErrOutside; failing to read the file system (permissions, too
// many links) gives that error, wrapped.
func Resolve(root, p string) (string, error) {
	if !filepath.IsAbs(root) || !filepath.IsAbs(p) {
		return "", fmt.Errorf("resolve %s in %s: both paths must be absolute", p, root)
	}
	rr, err := physical(filepath.Clean(root))
	if err != nil {
		return "", fmt.Errorf("resolve root %s: %w", root, err)
	}
	rp, err := physical(filepath.Clean(p))
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", p, err)
	}
	if !Within(rr, rp) {
		return "", fmt.Errorf("resolve %s: it leads to %s, outside %s: %w", p, rp, rr, ErrOutside)
	}
	return rp, nil
}

// physical follows the symlinks of clean absolute path p one segment at a
// time, as the kernel would, tolerating a missing tail.
func physical(p string) (string, error) {
	done, todo := "/", p[1:]
	links := 0
	for todo != "" {
		var name string
		name, todo, _ = strings.Cut(todo, "/")
		switch name {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, name)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			// Nothing below a missing entry (or below a file) exists
			// either; the rest is taken as spelled.
			return filepath.Join(next, todo), nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = next
			continue
		}
		if links++; links > maxLinks {
			return "", fmt.Errorf("follow %s: %w", next, syscall.ELOOP)
		}
		target, err := os.Readlink(next)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		// The link's target replaces its name; what followed it follows
		// the target.
		todo = strings.TrimPrefix(target, "/") + "/" + todo
	}
	return done, nil
}
