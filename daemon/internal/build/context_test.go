package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/loop-dev/loop/daemon/internal/ignore"
	"github.com/loop-dev/loop/daemon/model"
)

// writeTree creates files (with parent directories) under dir.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readTar returns the entries of a tar by name (directories end in "/").
func readTar(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		entries[hdr.Name] = hdr
	}
}

func tarFile(t *testing.T, b []byte, name string) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in tar: %v", name, err)
		}
		if hdr.Name == name {
			c, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(c)
		}
	}
}

func contextFor(t *testing.T, img *model.Image) (string, []byte) {
	t.Helper()
	m, err := ignore.ForContext(img.Context, img.Dockerfile, img.Only, img.Ignore)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	hash, err := ContextTar(context.Background(), img, ignore.Any(m, ignore.Defaults()), &buf)
	if err != nil {
		t.Fatal(err)
	}
	return hash, buf.Bytes()
}

func TestContextTarContent(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"Dockerfile":      "FROM scratch\nCOPY . /\n",
		".dockerignore":   "*.log\nbuild\n!build/keep\n",
		"main.go":         "package main\n",
		"app.log":         "noise",
		"build/out":       "binary",
		"build/keep":      "kept",
		"src/a/b.txt":     "deep",
		".git/HEAD":       "ref: refs/heads/main\n",
		"src/.main.c.swp": "swap",
	})
	if err := os.Chmod(filepath.Join(dir, "main.go"), 0o751); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("src/a/b.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	img := &model.Image{Ref: "x/y", Context: dir, Dockerfile: filepath.Join(dir, "Dockerfile")}
	_, b := contextFor(t, img)
	entries := readTar(t, b)
	var names []string
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	df := dockerfileName([]byte("FROM scratch\nCOPY . /\n"))
	want := []string{df, ".dockerignore", "Dockerfile", "build/keep", "link", "main.go", "src/", "src/a/", "src/a/b.txt"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("tar entries\n got %q\nwant %q", names, want)
	}
	if got := entries["main.go"].Mode; got != 0o751 {
		t.Errorf("main.go mode = %o, want 751", got)
	}
	if l := entries["link"]; l.Typeflag != tar.TypeSymlink || l.Linkname != "src/a/b.txt" {
		t.Errorf("link entry = %c -> %q, want a symlink to src/a/b.txt", l.Typeflag, l.Linkname)
	}
	if got := tarFile(t, b, ".dockerignore"); got != ".dockerignore\n"+df+"\n" {
		t.Errorf(".dockerignore in tar = %q", got)
	}
	if got := tarFile(t, b, df); got != "FROM scratch\nCOPY . /\n" {
		t.Errorf("generated Dockerfile = %q", got)
	}
}

func TestContextTarDockerfileOutsideAndContents(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a"})
	writeTree(t, other, map[string]string{"build.Dockerfile": "FROM scratch\nCOPY a.txt /\n"})
	img := &model.Image{Ref: "x/y", Context: dir, Dockerfile: filepath.Join(other, "build.Dockerfile")}
	h1, b := contextFor(t, img)
	if got := tarFile(t, b, dockerfileName([]byte("FROM scratch\nCOPY a.txt /\n"))); !strings.Contains(got, "COPY a.txt") {
		t.Errorf("Dockerfile from outside the context: got %q", got)
	}
	img2 := &model.Image{Ref: "x/y", Context: dir, DockerfileContents: "FROM scratch\nCOPY a.txt /\n"}
	h2, _ := contextFor(t, img2)
	if h1 != h2 {
		t.Error("the same Dockerfile text from a file and from dockerfile_contents hash differently")
	}
	img3 := &model.Image{Ref: "x/y", Context: dir, DockerfileContents: "FROM scratch\nCOPY a.txt /b\n"}
	if h3, _ := contextFor(t, img3); h3 == h1 {
		t.Error("a different Dockerfile gives the same hash")
	}
	if _, err := ContextTar(context.Background(), &model.Image{Context: dir}, nil, io.Discard); err == nil {
		t.Error("no error for a missing <context>/Dockerfile")
	}
}

func TestContextHashIgnoresMtimeOnly(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "a/b.txt": "one", "c.txt": "two"})
	img := &model.Image{Ref: "x/y", Context: dir}
	h1, _ := contextFor(t, img)
	old := time.Now().Add(-48 * time.Hour)
	for _, p := range []string{"a/b.txt", "c.txt", "a"} {
		if err := os.Chtimes(filepath.Join(dir, p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if h2, _ := contextFor(t, img); h2 != h1 {
		t.Error("touching files changed the hash")
	}
	if err := os.Chmod(filepath.Join(dir, "c.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	h3, _ := contextFor(t, img)
	if h3 == h1 {
		t.Error("a mode change kept the hash")
	}
	writeTree(t, dir, map[string]string{"c.txt": "TWO"})
	if err := os.Chmod(filepath.Join(dir, "c.txt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if h4, _ := contextFor(t, img); h4 == h3 {
		t.Error("a content change kept the hash")
	}
	if err := os.Rename(filepath.Join(dir, "c.txt"), filepath.Join(dir, "d.txt")); err != nil {
		t.Fatal(err)
	}
	if h5, _ := contextFor(t, img); h5 == h3 {
		t.Error("a rename kept the hash")
	}
	// An ignored file does not count.
	writeTree(t, dir, map[string]string{".dockerignore": "*.tmp\n"})
	h6, _ := contextFor(t, img)
	writeTree(t, dir, map[string]string{"x.tmp": "noise"})
	if h7, _ := contextFor(t, img); h7 != h6 {
		t.Error("an ignored file changed the hash")
	}
}

func TestContextTarRefusesSymlinkOutside(t *testing.T) {
	for name, target := range map[string]string{"relative": "../../etc/passwd", "absolute": "/etc/passwd", "sibling": "../../CTX2/x"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			// A sibling whose name starts with the context's is outside too.
			target := strings.ReplaceAll(target, "CTX", filepath.Base(dir))
			writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "sub/ok": "x"})
			link := filepath.Join(dir, "sub", "evil")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			_, err := ContextTar(context.Background(), &model.Image{Context: dir}, nil, io.Discard)
			if !errors.Is(err, ErrOutsideContext) || !strings.Contains(err.Error(), link) {
				t.Fatalf("got %v, want ErrOutsideContext naming %s", err, link)
			}
			// Ignored, the link is not sent and not an error.
			m, err := ignore.FromPatterns(dir, []string{"sub/evil"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ContextTar(context.Background(), &model.Image{Context: dir}, m, io.Discard); err != nil {
				t.Fatalf("ignored link: %v", err)
			}
		})
	}
}

func TestRef(t *testing.T) {
	base := &model.Image{Ref: "example/hello"}
	r := Ref(base, "abc")
	if !strings.HasPrefix(r, "example/hello:loop-") || len(r) != len("example/hello:loop-")+12 {
		t.Fatalf("Ref = %q", r)
	}
	if Ref(&model.Image{Ref: "example/hello:dev"}, "abc") != r || Ref(&model.Image{Ref: "example/hello@sha256:00"}, "abc") != r {
		t.Error("a tag or digest in the name changed the ref")
	}
	if got := Ref(&model.Image{Ref: "localhost:5000/hello"}, "abc"); !strings.HasPrefix(got, "localhost:5000/hello:loop-") {
		t.Errorf("registry port: %q", got)
	}
	variants := []*model.Image{
		{Ref: "example/hello", Target: "dev"},
		{Ref: "example/hello", Platform: "linux/arm64"},
		{Ref: "example/hello", BuildArgs: map[string]string{"A": "1"}},
		{Ref: "example/hello", BuildArgs: map[string]string{"A": "2"}},
	}
	seen := map[string]bool{r: true}
	for _, v := range variants {
		got := Ref(v, "abc")
		if seen[got] {
			t.Errorf("%+v: ref %s not distinct", v, got)
		}
		seen[got] = true
	}
	if Ref(base, "abd") == r {
		t.Error("a different context hash gave the same ref")
	}
	a := Ref(&model.Image{Ref: "x", BuildArgs: map[string]string{"A": "1", "B": "2", "C": "3"}}, "h")
	for range 5 {
		if b := Ref(&model.Image{Ref: "x", BuildArgs: map[string]string{"C": "3", "B": "2", "A": "1"}}, "h"); b != a {
			t.Fatal("build arg order changed the ref")
		}
	}
}

func TestSpillBuffer(t *testing.T) {
	for _, limit := range []int{1 << 20, 10} {
		s := &spillBuffer{limit: limit}
		for i := range 100 {
			if _, err := s.Write([]byte{byte(i), byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := s.Reader()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 200 || got[199] != 99 || got[10] != 5 {
			t.Errorf("limit %d: read back %d bytes", limit, len(got))
		}
		if (s.file != nil) != (limit == 10) {
			t.Errorf("limit %d: spilled = %v", limit, s.file != nil)
		}
		s.Close()
		if s.file != nil {
			if _, err := os.Stat(s.file.Name()); !os.IsNotExist(err) {
				t.Errorf("temporary file left behind: %v", err)
			}
		}
	}
}

// BenchmarkContextTar writes a generated 10,000-file context (100
// directories of 100 files of 1–4 KiB) to io.Discard.
func BenchmarkContextTar(b *testing.B) {
	dir := b.TempDir()
	var total int64
	for d := range 100 {
		sub := filepath.Join(dir, "pkg", strings.Repeat("d", 1+d%3)+string(rune('a'+d%26)), "x"+string(rune('a'+d/26)))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 100 {
			data := bytes.Repeat([]byte{byte(f)}, 1024*(1+(f%4)))
			total += int64(len(data))
			if err := os.WriteFile(filepath.Join(sub, "f"+string(rune('a'+f%26))+string(rune('a'+f/26))+".go"), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	writeTree(b, dir, map[string]string{"Dockerfile": "FROM scratch\nCOPY . /\n", ".dockerignore": "**/*.tmp\n"})
	img := &model.Image{Ref: "bench/ctx", Context: dir}
	m, err := ignore.ForContext(dir, "", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	m = ignore.Any(m, ignore.Defaults())
	df, err := readDockerfile(img)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		st, err := writeContext(context.Background(), img, df, m, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if st.files != 10001 { // and the Dockerfile
			b.Fatalf("files = %d, want 10001", st.files)
		}
	}
}
