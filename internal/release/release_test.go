package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
)

// An archive written twice is the same bytes, and holds its folder and the
// files with the given time, owner 0:0 and modes.
func TestWriteArchiveIsReproducible(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "loop")
	if err := os.WriteFile(src, []byte("binary"), 0o700); err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(dir, "README.md")
	if err := os.WriteFile(readme, []byte("# loop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := []file{{name: "README.md", path: readme, mode: 0o644}, {name: "loop", path: src, mode: 0o755}}
	mtime := time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)
	var got [2][]byte
	for i := range got {
		out := filepath.Join(dir, "a.tar.gz")
		if err := writeArchive(out, "loop_v1_linux_amd64", files, mtime); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			// A different file time on disk changes nothing.
			if err := os.Chtimes(src, time.Now(), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = b
	}
	if !bytes.Equal(got[0], got[1]) {
		t.Fatal("two archives of the same files differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(got[0]))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() {
		t.Errorf("gzip header name %q time %v, want none", zr.Name, zr.ModTime)
	}
	tr := tar.NewReader(zr)
	want := []struct {
		name string
		mode int64
		body string
	}{{"loop_v1_linux_amd64/", 0o755, ""}, {"loop_v1_linux_amd64/README.md", 0o644, "# loop\n"}, {"loop_v1_linux_amd64/loop", 0o755, "binary"}}
	for _, w := range want {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("entry %s: %v", w.name, err)
		}
		body, _ := io.ReadAll(tr)
		if h.Name != w.name || h.Mode != w.mode || string(body) != w.body || !h.ModTime.Equal(mtime) ||
			h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("entry %+v with %q, want %s mode %o time %v owner 0:0 holding %q", h, body, w.name, w.mode, mtime, w.body)
		}
	}
	if _, err := tr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("more entries than %d: %v", len(want), err)
	}
}

// The SBOM is SPDX that the SPDX library reads back, with a package per
// module of the build info (the replacement's version when replaced), and
// the same bytes for the same input.
func TestSBOM(t *testing.T) {
	info := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/loop-dev/loop", Version: "(devel)"},
		Deps: []*debug.Module{
			{Path: "github.com/docker/docker", Version: "v28.5.2+incompatible", Sum: "h1:x"},
			{Path: "github.com/spf13/cobra", Version: "v1.10.2", Sum: "h1:y"},
			{Path: "k8s.io/api", Version: "v0.0.0", Replace: &debug.Module{Path: "k8s.io/api", Version: "v0.37.2"}},
		},
	}
	in := sbomInput{name: "loop_v1.0.0_linux_amd64", version: "v1.0.0", binSHA256: "ab12", created: time.Date(2026, 12, 3, 15, 4, 5, 0, time.UTC)}
	var a, b bytes.Buffer
	if err := encodeSBOM(&a, sbomDoc(info, in)); err != nil {
		t.Fatal(err)
	}
	if err := encodeSBOM(&b, sbomDoc(info, in)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two SBOMs of the same build info differ")
	}
	doc, err := spdxjson.Read(bytes.NewReader(a.Bytes()))
	if err != nil {
		t.Fatalf("SPDX library cannot read the SBOM: %v\n%s", err, a.String())
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.CreationInfo.Created != "2026-12-03T15:04:05Z" {
		t.Errorf("version %s created %s", doc.SPDXVersion, doc.CreationInfo.Created)
	}
	versions := map[string]string{}
	purls := map[string]string{}
	for _, p := range doc.Packages {
		versions[p.PackageName] = p.PackageVersion
		if len(p.PackageExternalReferences) == 1 {
			purls[p.PackageName] = p.PackageExternalReferences[0].Locator
		}
	}
	want := map[string]string{"github.com/loop-dev/loop": "v1.0.0", "stdlib": "go1.26.8", "github.com/docker/docker": "v28.5.2+incompatible", "github.com/spf13/cobra": "v1.10.2", "k8s.io/api": "v0.37.2"}
	for name, v := range want {
		if versions[name] != v {
			t.Errorf("package %s version %q, want %q", name, versions[name], v)
		}
	}
	if len(doc.Packages) != len(want) {
		t.Errorf("%d packages, want %d", len(doc.Packages), len(want))
	}
	if got := purls["github.com/docker/docker"]; got != "pkg:golang/github.com/docker/docker@v28.5.2%2Bincompatible" {
		t.Errorf("docker purl = %s", got)
	}
	// DESCRIBES loop, and loop DEPENDS_ON each of the others.
	if len(doc.Relationships) != len(want) {
		t.Errorf("%d relationships, want %d", len(doc.Relationships), len(want))
	}
}
