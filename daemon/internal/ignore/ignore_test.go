package ignore

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// write creates files (with parent directories) under dir.
func write(t *testing.T, dir string, files map[string]string) {
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

// check asserts Ignored for relative paths under base; a trailing "/" marks
// a directory.
func check(t *testing.T, m *Matcher, base string, want map[string]bool) {
	t.Helper()
	for rel, w := range want {
		isDir := strings.HasSuffix(rel, "/")
		p := filepath.Join(base, strings.TrimSuffix(rel, "/"))
		if got := m.Ignored(p, isDir); got != w {
			t.Errorf("Ignored(%s, dir=%v) = %v, want %v", rel, isDir, got, w)
		}
	}
}

func TestForContextDockerignore(t *testing.T) {
	ctx := t.TempDir()
	write(t, ctx, map[string]string{".dockerignore": "\ufeff# comment\n*.log\n\n/build\n!build/keep.txt\n**/secret*\ndocs/*/draft.md\n  tmp  \r\n"})
	m, err := ForContext(ctx, filepath.Join(ctx, "Dockerfile"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, ctx, map[string]bool{
		"app.log":             true,
		"sub/app.log":         false, // "*" does not cross "/"
		"build/":              true,
		"build/out.bin":       true,
		"build/keep.txt":      false,
		"secret.txt":          true,
		"a/b/secret-key":      true,
		"docs/x/draft.md":     true,
		"docs/x/y/draft.md":   false,
		"docs/draft.md":       false,
		"tmp/file":            true,
		"# comment":           false,
		"main.go":             false,
		".dockerignore":       false,
		"src/":                false,
		"logs.log/inside.txt": true, // a matching directory matches what is below
	})
	if m.Ignored(ctx, true) {
		t.Error("the context directory itself is ignored")
	}
	if m.Ignored(filepath.Join(filepath.Dir(ctx), "app.log"), false) {
		t.Error("a file outside the context matched")
	}
	if got, want := m.Files(), []string{filepath.Join(ctx, "Dockerfile.dockerignore"), filepath.Join(ctx, ".dockerignore")}; !slices.Equal(got, want) {
		t.Errorf("Files() = %v, want %v", got, want)
	}
}

func TestDockerfileSpecificIgnoreWins(t *testing.T) {
	ctx := t.TempDir()
	dfDir := t.TempDir() // the Dockerfile may live outside the context
	write(t, ctx, map[string]string{".dockerignore": "general.txt\n"})
	write(t, dfDir, map[string]string{"app.Dockerfile.dockerignore": "specific.txt\n"})
	m, err := ForContext(ctx, filepath.Join(dfDir, "app.Dockerfile"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, ctx, map[string]bool{"specific.txt": true, "general.txt": false})

	// Without a Dockerfile-specific file, .dockerignore applies.
	m, err = ForContext(ctx, filepath.Join(dfDir, "other.Dockerfile"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, ctx, map[string]bool{"specific.txt": false, "general.txt": true})

	// dockerfile_contents: no Dockerfile path.
	m, err = ForContext(ctx, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, ctx, map[string]bool{"general.txt": true})
	if got := m.Files(); !slices.Equal(got, []string{filepath.Join(ctx, ".dockerignore")}) {
		t.Errorf("Files() = %v", got)
	}
}

func TestForContextIgnoreAndOnly(t *testing.T) {
	ctx := t.TempDir()
	write(t, ctx, map[string]string{".dockerignore": "src/gen\n"})
	m, err := ForContext(ctx, "", []string{"src", "./go.mod", "web/static/", filepath.Join(ctx, "abs")},
		[]string{"*.md", "!README.md", filepath.Join(ctx, "src/private")})
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, ctx, map[string]bool{
		"src/main.go":         false,
		"src/":                false,
		"go.mod":              false,
		"go.sum":              true,
		"README.md":           true, // outside only=
		"src/NOTES.md":        false,
		"NOTES.md":            true,
		"src/gen/x.go":        true, // .dockerignore still applies inside only=
		"src/private/key":     true, // absolute ignore= inside the context
		"web/":                true,
		"web/static/app.js":   false,
		"web/other/app.js":    true,
		"abs/file":            false,
		"docs/":               true,
		"docs/guide/intro.md": true,
	})
	for dir, want := range map[string]bool{"docs": true, "web": false, "web/other": true, "src": false, "src/gen": true, "web/static": false} {
		if got := m.SkipDir(filepath.Join(ctx, dir)); got != want {
			t.Errorf("SkipDir(%s) = %v, want %v", dir, got, want)
		}
	}
	if _, err := ForContext(ctx, "", []string{"/elsewhere"}, nil); err == nil {
		t.Error("an only= path outside the context was accepted")
	}
}

func TestOnlyEscapesGlobCharacters(t *testing.T) {
	ctx := t.TempDir()
	m, err := ForContext(ctx, "", []string{"a[1]*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, ctx, map[string]bool{"a[1]*/x": false, "a1/x": true, "a[1]b/x": true})
}

func TestBadPatternNamesFileAndLine(t *testing.T) {
	ctx := t.TempDir()
	write(t, ctx, map[string]string{".dockerignore": "ok\n# fine\n[unclosed\n"})
	_, err := ForContext(ctx, "", nil, nil)
	if err == nil {
		t.Fatal("no error for a bad pattern")
	}
	if want := filepath.Join(ctx, ".dockerignore") + ":3"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	write(t, ctx, map[string]string{".dockerignore": "ok\n!\n"})
	if _, err := ForContext(ctx, "", nil, nil); err == nil || !strings.Contains(err.Error(), ".dockerignore:2") {
		t.Errorf("bare \"!\": got %v", err)
	}
	if _, err := ForContext(t.TempDir(), "", nil, []string{"a", "b[", "c"}); err == nil || !strings.Contains(err.Error(), "ignore=:2") {
		t.Errorf("bad ignore= pattern: got %v", err)
	}
	if _, err := FromPatterns(ctx, []string{"x", "[z"}); err == nil || !strings.Contains(err.Error(), "pattern 2") {
		t.Errorf("bad FromPatterns pattern: got %v", err)
	}
}

func TestDoubleStarAndExceptions(t *testing.T) {
	base := t.TempDir()
	m, err := FromPatterns(base, []string{"**/*.pyc", "vendor/**", "!vendor/keep/**", "a/**/z", "**/node_modules"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, base, map[string]bool{
		"x.pyc":                  true,
		"p/q/x.pyc":              true,
		"x.py":                   false,
		"vendor/":                false, // "vendor/**" matches what is below vendor only
		"vendor/lib/a.go":        true,
		"vendor/keep/a.go":       false,
		"a/z":                    true,
		"a/b/c/z":                true,
		"a/b/c/zz":               false,
		"node_modules/":          true,
		"web/node_modules/x/y":   true,
		"web/node_modules_old/y": false,
	})
}

func TestFromPatternsAbsoluteAndParent(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "project")
	m, err := FromPatterns(base, []string{filepath.Join(root, "shared", "*.tmp"), "../cache", "out"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, root, map[string]bool{
		"shared/a.tmp":    true,
		"shared/a.txt":    false,
		"cache/x":         true,
		"project/out/bin": true,
		"out":             false, // relative patterns are anchored at base
		"project/main.go": false,
	})
}

func TestTiltIgnore(t *testing.T) {
	dir := t.TempDir()
	m, err := TiltIgnore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.Ignored(filepath.Join(dir, "anything"), false) {
		t.Error("a missing .tiltignore ignores something")
	}
	write(t, dir, map[string]string{".tiltignore": "*.bak\ndist/\n"})
	m, err = TiltIgnore(dir)
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, dir, map[string]bool{"a.bak": true, "dist/x.js": true, "src/a.bak": false, "a.go": false})
	if got := m.Files(); !slices.Equal(got, []string{filepath.Join(dir, ".tiltignore")}) {
		t.Errorf("Files() = %v", got)
	}
}

func TestDefaults(t *testing.T) {
	m := Defaults()
	base := "/home/dev/proj"
	check(t, m, base, map[string]bool{
		".git/":                 true,
		".git/objects/ab/cdef":  true,
		"sub/.git/HEAD":         true,
		".gitignore":            false,
		".github/workflows/x":   false,
		"main.go":               false,
		".main.go.swp":          true,
		".main.go.swx":          true,
		"main.go~":              true,
		".#main.go":             true,
		"#main.go#":             true,
		"4913":                  true,
		"sub/4913":              true,
		"main.go___jb_tmp___":   true,
		"main.go___jb_old___":   true,
		"main.go.tmp.12345":     true,
		"main.go.tmp.":          false,
		"main.tmp.go":           false,
		".DS_Store":             true,
		"#":                     false,
		"backup~/":              false, // editor patterns are for files
		"backup~/main.go":       false,
		"docs/.DS_Store":        true,
		"node_modules/":         false,
		"weird.swp.d/file.go":   false,
		"notes.tmp.1/readme.md": false,
	})
	if !m.SkipDir(filepath.Join(base, ".git")) || m.SkipDir(filepath.Join(base, "src")) {
		t.Error("SkipDir: want .git skipped and src not")
	}
}

func TestAnyAndNil(t *testing.T) {
	dir := t.TempDir()
	a, err := FromPatterns(dir, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := FromPatterns(dir, []string{"b"})
	if err != nil {
		t.Fatal(err)
	}
	m := Any(nil, a, b, Defaults())
	check(t, m, dir, map[string]bool{"a": true, "b": true, "c": false, ".git/x": true})
	var none *Matcher
	if none.Ignored(filepath.Join(dir, "a"), false) || none.SkipDir(dir) || none.Files() != nil {
		t.Error("a nil Matcher ignores something")
	}
	if Any().Ignored(filepath.Join(dir, "a"), false) {
		t.Error("Any() ignores something")
	}
	if m.Ignored("a", false) {
		t.Error("a relative path was ignored")
	}
}

func TestSkipDir(t *testing.T) {
	cases := []struct {
		patterns []string
		dir      string
		want     bool
	}{
		{[]string{"node_modules"}, "node_modules", true},
		{[]string{"node_modules"}, "src", false},
		{[]string{"**/node_modules"}, "web/node_modules", true},
		{[]string{"node_modules", "!node_modules/keep"}, "node_modules", false},
		{[]string{"node_modules", "!node_modules/keep"}, "node_modules/other", true},
		{[]string{"node_modules", "!node_modules/keep"}, "node_modules/keep", false},
		{[]string{"node_modules", "!**/keep.txt"}, "node_modules", false},
		{[]string{"node_modules", "!*/keep.txt"}, "node_modules", false},
		{[]string{"node_modules", "!*/keep.txt"}, "node_modules/sub", true},
		{[]string{"node_modules", "!other/**"}, "node_modules", true},
		{[]string{"*", "!src"}, "docs", true},
		{[]string{"*", "!src"}, "src", false},
		{[]string{"*", "!src/a/b"}, "src", false},
		{[]string{"*", "!src/a/b"}, "src/c", true},
		{[]string{"a", "!a/b", "a/b"}, "a/b", true},
		{[]string{"a/*"}, "a", false}, // a itself is not ignored
		{[]string{"a", "!a/[bc]x"}, "a", false},
	}
	for _, c := range cases {
		base := "/p"
		m, err := FromPatterns(base, c.patterns)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.SkipDir(filepath.Join(base, c.dir)); got != c.want {
			t.Errorf("patterns %q: SkipDir(%s) = %v, want %v", c.patterns, c.dir, got, c.want)
		}
	}
}

// TestSkipDirIsSound walks a real tree: pruning every directory SkipDir
// allows must lose no path that is not ignored.
func TestSkipDirIsSound(t *testing.T) {
	dir := t.TempDir()
	var files = map[string]string{}
	for _, p := range []string{
		"node_modules/a/index.js", "node_modules/keep/x.txt", "node_modules/b/keep.txt",
		"src/main.go", "src/gen/a.pb.go", "src/gen/keep.txt", "docs/a/b/c.md", "docs/keep.txt",
		"build/out/bin", "build/out/keep.txt", "x/y/z/keep.txt", "x/y/other",
	} {
		files[p] = "x"
	}
	write(t, dir, files)
	sets := [][]string{
		{"node_modules", "!node_modules/keep"},
		{"*", "!src"},
		{"**", "!**/keep.txt"},
		{"node_modules", "build", "!build/*/keep.txt", "docs/a"},
		{"x", "!x/y", "x/y/z"},
		{"*/*", "!*/*/keep.txt", "src/gen"},
	}
	for _, patterns := range sets {
		m, err := FromPatterns(dir, patterns)
		if err != nil {
			t.Fatal(err)
		}
		var all, pruned []string
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			if !m.Ignored(p, d.IsDir()) {
				all = append(all, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == dir {
				return err
			}
			if d.IsDir() && m.SkipDir(p) {
				return filepath.SkipDir
			}
			if !m.Ignored(p, d.IsDir()) {
				pruned = append(pruned, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(all, pruned) {
			t.Errorf("patterns %q: pruned walk lost paths:\nall    %q\npruned %q", patterns, all, pruned)
		}
	}
}

func TestGlobCharactersInBaseDir(t *testing.T) {
	base := filepath.Join(t.TempDir(), "we[ir]d*^dir")
	m, err := FromPatterns(base, []string{"*.log", "!keep.log"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, m, base, map[string]bool{"a.log": true, "keep.log": false, "a.txt": false})
}

func TestConcurrentUse(t *testing.T) {
	base := "/p"
	m, err := FromPatterns(base, []string{"**/*.o", "build/**", "!build/keep", "a/*/[xy]z"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if !m.Ignored("/p/x/y.o", false) || m.Ignored("/p/build/keep", false) {
					t.Errorf("goroutine %d: wrong answer", i)
					return
				}
				m.SkipDir("/p/a/b")
				m.Ignored("/p/a/b/xz", false)
			}
		}()
	}
	wg.Wait()
}

// TestKey: rules read again from unchanged files have the same Key; an edited
// .dockerignore, other ignore= patterns, another context or a Dockerfile-specific
// ignore file appearing give another.
func TestKey(t *testing.T) {
	ctx := t.TempDir()
	write(t, ctx, map[string]string{".dockerignore": "*.log\n"})
	key := func(dir string, ignore ...string) string {
		t.Helper()
		m, err := ForContext(dir, filepath.Join(dir, "Dockerfile"), nil, ignore)
		if err != nil {
			t.Fatal(err)
		}
		return m.Key()
	}
	k := key(ctx)
	if key(ctx) != k {
		t.Fatal("the same rules read twice have different keys")
	}
	other := t.TempDir()
	write(t, other, map[string]string{".dockerignore": "*.log\n"})
	differ := map[string]string{"another context": key(other), "ignore= patterns": key(ctx, "tmp/")}
	write(t, ctx, map[string]string{".dockerignore": "*.log\nbuild/\n"})
	differ["an edited .dockerignore"] = key(ctx)
	write(t, ctx, map[string]string{"Dockerfile.dockerignore": "*.tmp\n"})
	differ["a Dockerfile-specific ignore file"] = key(ctx)
	seen := map[string]string{k: "the first"}
	for what, got := range differ {
		if prev, ok := seen[got]; ok {
			t.Errorf("%s has the key of %s", what, prev)
		}
		seen[got] = what
	}
	if Any(Defaults(), nil).Key() == Any(Defaults(), mustPatterns(t, ctx, "x")).Key() {
		t.Error("Any ignores its parts' rules in its key")
	}
}

func mustPatterns(t *testing.T, dir string, ps ...string) *Matcher {
	t.Helper()
	m, err := FromPatterns(dir, ps)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
