package liveupdate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/loop-dev/loop/daemon/internal/agent"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/agentwire"
	"github.com/loop-dev/loop/internal/pathrule"
)

// Target is where an update lands: a container reached through an agent,
// the archive API, or a fake in tests.
type Target interface {
	// Sync applies ops in order. Every op's path lies under one of roots.
	Sync(ctx context.Context, roots []string, ops []agent.Op, logs io.Writer) error
	// Exec runs argv in the container with output to logs and returns its
	// exit code.
	Exec(ctx context.Context, argv []string, logs io.Writer) (int, error)
	// Restart restarts the application: its process when the target can,
	// otherwise the container. Notes go to logs.
	Restart(ctx context.Context, logs io.Writer) error
}

// Result says what Apply did and how long each phase took.
type Result struct {
	Sync, Run, Restart time.Duration
	// Written counts files, directories and links sent; Removed removals.
	Written, Removed int
	Bytes            int64
	Ran              int
	Restarted        bool
}

// EscapeError refuses a host path that resolves outside its sync's local
// path (through a symlink of its own or of a parent directory).
type EscapeError struct {
	Path     string
	Resolved string
	Root     string
}

func (e *EscapeError) Error() string {
	return fmt.Sprintf("refuse to sync %s: it resolves to %s, outside the synced %s", e.Path, e.Resolved, e.Root)
}

// RunError is a run step that exited non-zero.
type RunError struct {
	Argv     []string
	ExitCode int
}

func (e *RunError) Error() string {
	return fmt.Sprintf("run %q: exit code %d", strings.Join(e.Argv, " "), e.ExitCode)
}

// Apply applies u to target: it reads the host files now (content and mode;
// a directory becomes a Mkdir plus its contents; a missing path a Remove),
// sends them as one batch, executes the run steps in order and restarts the
// container when asked. Nothing is sent when any path escapes its sync
// (*EscapeError). A failing run step stops the update (*RunError). logs
// receives run output and notes; it may be nil.
func Apply(ctx context.Context, target Target, u Update, logs io.Writer) (Result, error) {
	if logs == nil {
		logs = io.Discard
	}
	var res Result
	start := time.Now()
	b := batcher{u: &u, logs: logs, seen: map[string]agentwire.OpKind{}, roots: map[string]bool{}, resolved: map[string]string{}}
	for _, f := range u.Files {
		if err := b.add(f); err != nil {
			return res, err
		}
	}
	if len(b.ops) > 0 {
		if err := target.Sync(ctx, b.rootList(), b.ops, logs); err != nil {
			return res, fmt.Errorf("sync %d changes: %w", len(b.ops), err)
		}
	}
	res.Sync = time.Since(start)
	for _, op := range b.ops {
		if op.Kind == agentwire.OpRemove {
			res.Removed++
		} else {
			res.Written++
			res.Bytes += int64(len(op.Data))
		}
	}

	start = time.Now()
	for _, r := range u.Runs {
		argv := runArgv(r.Cmd)
		if r.Echo {
			fmt.Fprintf(logs, "$ %s\n", strings.Join(argv, " "))
		}
		code, err := target.Exec(ctx, argv, logs)
		if err != nil {
			return res, fmt.Errorf("run %q: %w", strings.Join(argv, " "), err)
		}
		res.Ran++
		if code != 0 {
			res.Run = time.Since(start)
			return res, &RunError{Argv: argv, ExitCode: code}
		}
	}
	res.Run = time.Since(start)

	if u.Restart {
		start = time.Now()
		if err := target.Restart(ctx, logs); err != nil {
			return res, fmt.Errorf("restart: %w", err)
		}
		res.Restart = time.Since(start)
		res.Restarted = true
	}
	return res, nil
}

// runArgv is the command to execute. The loader turns a shell string into
// ["sh", "-c", s] already; a lone shell string is wrapped here too, so no
// shell is needed unless the step asked for one.
func runArgv(c model.Cmd) []string {
	if c.Shell && len(c.Argv) == 1 {
		return []string{"sh", "-c", c.Argv[0]}
	}
	return c.Argv
}

// batcher turns FileSyncs into agent ops, each container path once.
type batcher struct {
	u        *Update
	logs     io.Writer
	ops      []agent.Op
	seen     map[string]agentwire.OpKind // container paths with an op already, and its kind
	roots    map[string]bool             // container roots touched
	resolved map[string]string           // sync local path -> its resolved form
}

func (b *batcher) rootList() []string {
	roots := make([]string, 0, len(b.roots))
	for r := range b.roots {
		roots = append(roots, r)
	}
	sort.Strings(roots)
	return roots
}

// covered reports whether cp already has an op, or a parent has one that
// replaced everything below it (a removal, or a file or link where a
// directory was). A parent's Mkdir covers nothing: it merges into the
// container's directory, so a child deleted on the host still needs its
// removal (the walk gave every child that exists an op of its own).
func (b *batcher) covered(cp string) bool {
	if _, ok := b.seen[cp]; ok {
		return true
	}
	for p := path.Dir(cp); ; p = path.Dir(p) {
		if k, ok := b.seen[p]; ok && k != agentwire.OpMkdir {
			return true
		}
		if p == "/" || p == "." {
			return false
		}
	}
}

func (b *batcher) add(f FileSync) error {
	if b.covered(f.ContainerPath) {
		return nil
	}
	root := filepath.Clean(f.Sync.LocalPath)
	croot := path.Clean(f.Sync.ContainerPath)
	if !pathrule.Within(croot, f.ContainerPath) {
		return fmt.Errorf("sync %s: container path %s is outside %s", f.LocalPath, f.ContainerPath, croot)
	}
	b.roots[croot] = true
	rroot, err := b.resolveRoot(root)
	if err != nil {
		return err
	}
	// The sync's own path may be a symlink (to a shared tree, say): follow
	// it there, and nowhere below.
	walkPath := f.LocalPath
	var fi fs.FileInfo
	if f.LocalPath == root {
		walkPath = rroot
		fi, err = os.Stat(rroot)
	} else {
		fi, err = os.Lstat(f.LocalPath)
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return b.emit(agent.Remove(f.ContainerPath))
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", f.LocalPath, err)
	}
	// The directory holding the file must be inside the sync too: a
	// symlinked parent would smuggle in a file from elsewhere.
	if f.LocalPath != root {
		dir, err := filepath.EvalSymlinks(filepath.Dir(f.LocalPath))
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return b.emit(agent.Remove(f.ContainerPath))
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", f.LocalPath, err)
		}
		if !pathrule.Within(rroot, dir) {
			return &EscapeError{Path: f.LocalPath, Resolved: filepath.Join(dir, filepath.Base(f.LocalPath)), Root: root}
		}
	}
	if !fi.IsDir() {
		return b.entry(walkPath, fi, f.ContainerPath, root, rroot, croot)
	}
	if f.Deleted {
		// The directory went away and came back (or was moved away and
		// another took its place): what the container holds below it is
		// stale, and its children's removals may never have been reported
		// (a moved directory reports only itself). Replace it whole.
		if err := b.emit(agent.Remove(f.ContainerPath)); err != nil {
			return err
		}
	}
	return filepath.WalkDir(walkPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil // deleted or replaced by a file while walking; its own event follows
			}
			return fmt.Errorf("sync %s: %w", p, err)
		}
		rel, err := filepath.Rel(walkPath, p)
		if err != nil {
			return err
		}
		if rel != "." && b.skip(filepath.Join(f.LocalPath, rel), d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		return b.entry(p, fi, path.Join(f.ContainerPath, filepath.ToSlash(rel)), root, rroot, croot)
	})
}

// entry emits the op for one host entry whose parent is known to be inside
// the sync.
func (b *batcher) entry(p string, fi fs.FileInfo, cp, root, rroot, croot string) error {
	switch {
	case fi.Mode().IsRegular():
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return b.emit(agent.Remove(cp))
		}
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		return b.emit(agent.Write(cp, fi.Mode()&modeBits, data))
	case fi.IsDir():
		return b.emit(agent.Mkdir(cp, fi.Mode()&modeBits))
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := linkTarget(p, root, rroot, croot)
		if err != nil {
			return err
		}
		return b.emit(agent.Symlink(cp, target))
	}
	fmt.Fprintf(b.logs, "live update: skipping %s: not a regular file, directory or symlink\n", p)
	return nil
}

const modeBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// linkTarget checks that link p points inside the sync and returns the
// target to create in the container: relative targets are kept, absolute
// ones are mapped to the container root.
func linkTarget(p, root, rroot, croot string) (string, error) {
	target, err := os.Readlink(p)
	if err != nil {
		return "", fmt.Errorf("sync %s: %w", p, err)
	}
	resolved, err := filepath.EvalSymlinks(p)
	switch {
	case err == nil:
		if !pathrule.Within(rroot, resolved) {
			return "", &EscapeError{Path: p, Resolved: resolved, Root: root}
		}
	case errors.Is(err, fs.ErrNotExist) || isLoop(p):
		// Dangling, or a loop of links (which the container gets as it
		// is): judge the target by its spelling.
		abs := target
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(filepath.Dir(p), target)
		}
		if !pathrule.Within(root, abs) && !pathrule.Within(rroot, abs) {
			return "", &EscapeError{Path: p, Resolved: abs, Root: root}
		}
	default:
		return "", fmt.Errorf("sync %s: %w", p, err)
	}
	if !filepath.IsAbs(target) {
		return filepath.ToSlash(target), nil
	}
	base := root
	if !pathrule.Within(root, target) {
		base = rroot
	}
	rel, err := filepath.Rel(base, filepath.Clean(target))
	if err != nil {
		return "", fmt.Errorf("sync %s: %w", p, err)
	}
	return path.Join(croot, filepath.ToSlash(rel)), nil
}

// skip reports whether a path found inside a synced directory is ignored.
func (b *batcher) skip(p string, isDir bool) bool {
	return match(b.u.ignore, p) || (b.u.Skip != nil && b.u.Skip(p, isDir))
}

// isLoop reports whether resolving link p runs into a loop of links
// (filepath.EvalSymlinks says so only in its message; stat says ELOOP).
func isLoop(p string) bool {
	_, err := os.Stat(p)
	return errors.Is(err, syscall.ELOOP)
}

func (b *batcher) emit(op agent.Op) error {
	b.seen[op.Path] = op.Kind
	b.ops = append(b.ops, op)
	return nil
}

// resolveRoot returns the sync's local path with symlinks resolved; a
// missing local path resolves to itself (every change is then a removal).
func (b *batcher) resolveRoot(root string) (string, error) {
	if r, ok := b.resolved[root]; ok {
		return r, nil
	}
	r, err := filepath.EvalSymlinks(root)
	if errors.Is(err, fs.ErrNotExist) {
		r, err = root, nil
	}
	if err != nil {
		return "", fmt.Errorf("resolve sync path %s: %w", root, err)
	}
	b.resolved[root] = r
	return r, nil
}
