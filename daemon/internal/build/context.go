package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/internal/pathrule"
)

// contextStats describes one written context.
type contextStats struct {
	hash       string // hex sha256 over paths, types, modes, link targets, contents
	dockerfile string // the Dockerfile's name inside the tar
	files      int    // regular files from the context directory
	bytes      int64  // tar bytes written
}

// ContextTar streams the build context of img to w as a tar and returns a
// content hash of it: entry paths, types, modes, link targets and file
// contents, not modification times, so the same tree always hashes the same.
//
// Paths m ignores are left out (directories m.SkipDir allows are not even
// read); a nil m leaves nothing out. The Dockerfile (img.Dockerfile, which may
// lie outside the context, img.DockerfileContents, or <context>/Dockerfile) is
// added under a generated name, and the tar's .dockerignore names it so that
// the engine drops it from the context after reading, as the docker CLI does.
// A symlink in the context whose target lies outside the context is an error
// naming the link; nothing outside the context is read, apart from the
// Dockerfile.
func ContextTar(ctx context.Context, img *model.Image, m *ignore.Matcher, w io.Writer) (hash string, err error) {
	df, err := readDockerfile(img)
	if err != nil {
		return "", err
	}
	st, err := writeContext(ctx, img, df, m, w)
	return st.hash, err
}

// dockerfileName is where the Dockerfile goes inside the context tar. It is
// derived from the content so that the tar (and its hash) is deterministic.
func dockerfileName(content []byte) string {
	sum := sha256.Sum256(content)
	return ".loop-dockerfile." + hex.EncodeToString(sum[:6])
}

func readDockerfile(img *model.Image) ([]byte, error) {
	if img.DockerfileContents != "" {
		return []byte(img.DockerfileContents), nil
	}
	path := img.Dockerfile
	if path == "" {
		path = filepath.Join(img.Context, "Dockerfile")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read dockerfile: %w", err)
	}
	return b, nil
}

// writeContext writes img's context as the tar the engine receives, with df
// (img's Dockerfile, read by the caller) under a name of its own.
func writeContext(ctx context.Context, img *model.Image, df []byte, m *ignore.Matcher, w io.Writer) (contextStats, error) {
	root := filepath.Clean(img.Context)
	if !filepath.IsAbs(root) {
		return contextStats{}, fmt.Errorf("build context %q: not an absolute path", img.Context)
	}
	if fi, err := os.Stat(root); err != nil {
		return contextStats{}, fmt.Errorf("build context: %w", err)
	} else if !fi.IsDir() {
		return contextStats{}, fmt.Errorf("build context %s: not a directory", root)
	}
	cw := &countingWriter{w: w}
	tw := &tarHasher{tw: tar.NewWriter(cw), h: sha256.New(), root: root, m: m, ctx: ctx}
	name := dockerfileName(df)
	// The engine reads .dockerignore only to drop the Dockerfile and itself
	// from the context after parsing (the files were already filtered here).
	if err := tw.addBytes(".dockerignore", []byte(".dockerignore\n"+name+"\n")); err != nil {
		return contextStats{}, err
	}
	if err := tw.addBytes(name, df); err != nil {
		return contextStats{}, err
	}
	if err := tw.walk(root, ""); err != nil {
		return contextStats{}, err
	}
	if err := tw.tw.Close(); err != nil {
		return contextStats{}, fmt.Errorf("write context tar: %w", err)
	}
	return contextStats{
		hash:       hex.EncodeToString(tw.h.Sum(nil)),
		dockerfile: name,
		files:      tw.files,
		bytes:      cw.n,
	}, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tarHasher writes context entries to a tar and hashes what identifies them.
type tarHasher struct {
	tw    *tar.Writer
	h     hash.Hash
	root  string
	m     *ignore.Matcher
	ctx   context.Context
	files int
	buf   []byte
}

// epoch is the modification time of generated entries.
var epoch = time.Unix(0, 0)

// record hashes an entry's identity; contents follow through the same hash.
func (t *tarHasher) record(hdr *tar.Header) {
	var num [8]byte
	t.h.Write([]byte{hdr.Typeflag})
	binary.BigEndian.PutUint32(num[:4], uint32(hdr.Mode))
	t.h.Write(num[:4])
	binary.BigEndian.PutUint64(num[:], uint64(hdr.Size))
	t.h.Write(num[:])
	t.h.Write([]byte(hdr.Name)) // a hash.Hash never returns an error
	t.h.Write([]byte{0})
	t.h.Write([]byte(hdr.Linkname))
	t.h.Write([]byte{0})
}

func (t *tarHasher) writeHeader(hdr *tar.Header) error {
	t.record(hdr)
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("write context tar entry %s: %w", hdr.Name, err)
	}
	return nil
}

func (t *tarHasher) addBytes(name string, b []byte) error {
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: epoch}
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	t.h.Write(b)
	if _, err := t.tw.Write(b); err != nil {
		return fmt.Errorf("write context tar entry %s: %w", name, err)
	}
	return nil
}

// tarMode is the tar mode of a file: permissions and the set-id and sticky bits.
func tarMode(fm fs.FileMode) int64 {
	mode := int64(fm.Perm())
	if fm&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if fm&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if fm&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// walk adds the entries of directory dir (rel is its path in the tar, "" for
// the root) in name order.
func (t *tarHasher) walk(dir, rel string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read context directory %s: %w", dir, err)
	}
	for _, e := range entries {
		abs := dir + "/" + e.Name()
		name := e.Name()
		if rel != "" {
			name = rel + "/" + name
		}
		if name == ".dockerignore" {
			continue // replaced by the generated one
		}
		typ := e.Type()
		switch {
		case typ.IsDir():
			if t.m.Ignored(abs, true) {
				if t.m.SkipDir(abs) {
					continue
				}
				// An exception may re-include something below: descend
				// without an entry of its own, as the docker CLI does.
			} else {
				info, err := e.Info()
				if err != nil {
					return fmt.Errorf("stat %s: %w", abs, err)
				}
				hdr := &tar.Header{Name: name + "/", Typeflag: tar.TypeDir, Mode: tarMode(info.Mode()), ModTime: info.ModTime()}
				if err := t.writeHeader(hdr); err != nil {
					return err
				}
			}
			if err := t.walk(abs, name); err != nil {
				return err
			}
		case typ&fs.ModeSymlink != 0:
			if t.m.Ignored(abs, false) {
				continue
			}
			if err := t.addSymlink(abs, name); err != nil {
				return err
			}
		case typ.IsRegular():
			if t.m.Ignored(abs, false) {
				continue
			}
			if err := t.addFile(abs, name); err != nil {
				return err
			}
		default:
			// Sockets, pipes and devices are not context material (the
			// docker CLI would block reading a pipe).
		}
	}
	return nil
}

func (t *tarHasher) addSymlink(abs, name string) error {
	target, err := os.Readlink(abs)
	if err != nil {
		return fmt.Errorf("read symlink %s: %w", abs, err)
	}
	// Judged by spelling (pathrule.Within), not through the host's file
	// system: the link goes into the tar as it is and nothing here follows
	// it (walk does not descend into links). A link that hops out through
	// another link is refused at that other one, unless that one is ignored
	// and so not in the tar at all.
	resolved := target
	if !filepath.IsAbs(resolved) {
		resolved = filepath.Join(filepath.Dir(abs), target)
	}
	if !pathrule.Within(t.root, resolved) {
		return fmt.Errorf("symlink %s points outside the build context %s (to %s): %w", abs, t.root, target, ErrOutsideContext)
	}
	info, err := os.Lstat(abs)
	if err != nil {
		return fmt.Errorf("stat %s: %w", abs, err)
	}
	return t.writeHeader(&tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: tarMode(info.Mode()), ModTime: info.ModTime()})
}

func (t *tarHasher) addFile(abs, name string) error {
	f, err := os.Open(abs)
	if err != nil {
		return fmt.Errorf("open %s: %w", abs, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", abs, err)
	}
	if !info.Mode().IsRegular() {
		// Replaced by something else since the directory was read.
		return fmt.Errorf("read %s: %w", abs, errChanged)
	}
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: tarMode(info.Mode()), Size: info.Size(), ModTime: info.ModTime()}
	if err := t.writeHeader(hdr); err != nil {
		return err
	}
	if t.buf == nil {
		t.buf = make([]byte, 256<<10)
	}
	// Exactly Size bytes: a file that grows or shrinks while being read
	// would corrupt the tar otherwise.
	n, err := io.CopyBuffer(io.MultiWriter(t.tw, t.h), io.LimitReader(f, info.Size()), t.buf)
	if err != nil {
		return fmt.Errorf("copy %s into the context: %w", abs, err)
	}
	if n != info.Size() {
		return fmt.Errorf("copy %s into the context: %w", abs, errChanged)
	}
	t.files++
	return nil
}

// ErrOutsideContext is returned (wrapped) when the context holds a symlink
// pointing outside it.
var ErrOutsideContext = errors.New("refusing to follow a link out of the build context")

var errChanged = errors.New("file changed while it was being read")
