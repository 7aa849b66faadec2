// Command release builds loop's release files into a directory (make
// release: dist/):
//
//   - loop_VERSION_OS_ARCH.tar.gz for each target: a folder of that name
//     holding loop (which embeds the sync agents), README.md and LICENSE
//     when the repository has them;
//   - loop_VERSION_OS_ARCH.spdx.json: an SPDX 2.3 SBOM of that binary's Go
//     modules, read from its build info (runtime/debug.BuildInfo);
//   - SHA256SUMS of all of them, in the format sha256sum -c reads.
//
// The same sources, Go toolchain and flags give the same bytes: binaries are
// built with -trimpath, without VCS stamp or build ID, static (CGO_ENABLED=0);
// tar entries are sorted with the commit's time and owner 0:0; gzip headers
// carry no name or time; the SBOM's creation time is the commit's time and
// its namespace is derived from the binary's hash.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Targets are the platforms released by default, as OS/ARCH.
var Targets = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64"}

// Package is the command a release ships.
const Package = "github.com/loop-dev/loop/cmd/loop"

// docs are the repository files each archive carries when they exist.
var docs = []string{"LICENSE", "README.md"}

type options struct {
	out     string
	version string
	commit  string
	date    time.Time
	targets []string
}

func main() {
	var o options
	var date, targets string
	flag.StringVar(&o.out, "out", "dist", "directory to write the release files into")
	flag.StringVar(&o.version, "version", "", "loop's version (git describe); names the files")
	flag.StringVar(&o.commit, "commit", "", "the commit released")
	flag.StringVar(&date, "date", "", "the commit's time, RFC 3339: file times in the archives and the SBOM's creation time")
	flag.StringVar(&targets, "targets", strings.Join(Targets, " "), "OS/ARCH pairs to release, space-separated")
	flag.Parse()
	if err := run(&o, date, targets); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(o *options, date, targets string) error {
	if o.version == "" || strings.ContainsAny(o.version, `/\ `) {
		return fmt.Errorf("release: -version must be a version without slashes or spaces, got %q", o.version)
	}
	t, err := time.Parse(time.RFC3339, date)
	if err != nil {
		return fmt.Errorf("release: -date: %w", err)
	}
	o.date = t.UTC()
	o.targets = strings.Fields(targets)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("release: %w", err)
	}
	tmp, err := os.MkdirTemp("", "loop-release-")
	if err != nil {
		return fmt.Errorf("release: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()

	var written []string
	for _, target := range o.targets {
		goos, goarch, ok := strings.Cut(target, "/")
		if !ok {
			return fmt.Errorf("release: target %q is not OS/ARCH", target)
		}
		base := fmt.Sprintf("loop_%s_%s_%s", o.version, goos, goarch)
		bin := filepath.Join(tmp, base, "loop")
		if err := buildLoop(bin, goos, goarch, o); err != nil {
			return err
		}
		files, err := releaseFiles(bin)
		if err != nil {
			return err
		}
		archive := base + ".tar.gz"
		if err := writeArchive(filepath.Join(o.out, archive), base, files, o.date); err != nil {
			return err
		}
		sbom := base + ".spdx.json"
		if err := writeSBOM(filepath.Join(o.out, sbom), bin, base, o); err != nil {
			return err
		}
		written = append(written, archive, sbom)
		fmt.Printf("%s/%s\n%s/%s\n", o.out, archive, o.out, sbom)
	}
	if err := writeSums(o.out, written); err != nil {
		return err
	}
	fmt.Printf("%s/SHA256SUMS\n", o.out)
	return nil
}

// buildLoop compiles loop for goos/goarch into out with fixed flags and an
// environment freed of variables that would change the output.
func buildLoop(out, goos, goarch string, o *options) error {
	ldflags := fmt.Sprintf("-s -w -buildid= -X main.version=%s -X main.commit=%s -X main.date=%s",
		o.version, o.commit, o.date.Format(time.RFC3339))
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags="+ldflags, "-o", out, Package)
	cmd.Env = buildEnv(goos, goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build loop for %s/%s: %w\n%s", goos, goarch, err, b)
	}
	return nil
}

func buildEnv(goos, goarch string) []string {
	fixed := []string{"CGO_ENABLED=0", "GOOS=" + goos, "GOARCH=" + goarch, "GOFLAGS=", "GOEXPERIMENT=", "GOAMD64=v1", "GOARM64=v8.0"}
	env := slices.Clone(fixed)
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(fixed, func(s string) bool { return strings.HasPrefix(s, name+"=") }) && !strings.HasPrefix(name, "CGO_") {
			env = append(env, kv)
		}
	}
	return env
}

// file is one archive entry: its name inside the archive's folder and
// where its bytes are.
type file struct {
	name, path string
	mode       int64
}

// releaseFiles lists what an archive holds, sorted by name.
func releaseFiles(bin string) ([]file, error) {
	files := []file{{name: "loop", path: bin, mode: 0o755}}
	for _, d := range docs {
		if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("release: %w", err)
		}
		files = append(files, file{name: d, path: d, mode: 0o644})
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })
	return files, nil
}

// writeArchive writes a tar.gz holding dir/ and files in it. Entries are in
// the order given, with mtime, owner 0:0 and no user or group names; the
// gzip header has no name and no time.
func writeArchive(path, dir string, files []file, mtime time.Time) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write archive: %w", cerr)
		}
	}()
	zw, err := gzip.NewWriterLevel(f, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	tw := tar.NewWriter(zw)
	hdr := func(name string, typ byte, mode, size int64) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: mtime, Format: tar.FormatUSTAR}
	}
	if err := tw.WriteHeader(hdr(dir+"/", tar.TypeDir, 0o755, 0)); err != nil {
		return fmt.Errorf("write archive %s: %w", path, err)
	}
	for _, fl := range files {
		if err := addFile(tw, hdr(dir+"/"+fl.name, tar.TypeReg, fl.mode, 0), fl.path); err != nil {
			return fmt.Errorf("write archive %s: %w", path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write archive %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write archive %s: %w", path, err)
	}
	return nil
}

func addFile(tw *tar.Writer, h *tar.Header, path string) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = src.Close() }()
	st, err := src.Stat()
	if err != nil {
		return err
	}
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, src)
	return err
}

// writeSBOM writes the SPDX document of the binary at bin.
func writeSBOM(path, bin, name string, o *options) error {
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		return fmt.Errorf("write sbom: read build info of %s: %w", bin, err)
	}
	sum, err := fileSHA256(bin)
	if err != nil {
		return fmt.Errorf("write sbom: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write sbom: %w", err)
	}
	if err := encodeSBOM(f, sbomDoc(info, sbomInput{name: name, version: o.version, binSHA256: sum, created: o.date})); err != nil {
		_ = f.Close()
		return fmt.Errorf("write sbom %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write sbom %s: %w", path, err)
	}
	return nil
}

// writeSums writes SHA256SUMS for names in dir, sorted by name.
func writeSums(dir string, names []string) error {
	names = slices.Sorted(slices.Values(names))
	var b strings.Builder
	for _, n := range names {
		sum, err := fileSHA256(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("write checksums: %w", err)
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write checksums: %w", err)
	}
	return nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
