package pathrule

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestWithinAndRel(t *testing.T) {
	for _, c := range []struct {
		root, p string
		rel     string // "" when p is not within root
	}{
		{"/a/b", "/a/b", "."},
		{"/a/b", "/a/b/c", "c"},
		{"/a/b", "/a/b/c/d", "c/d"},
		{"/a/b/", "/a/b//c/./d/", "c/d"},
		{"/a/b", "/a/bc", ""},
		{"/a/b", "/a/b-c/d", ""},
		{"/a/b", "/a", ""},
		{"/a/b", "/", ""},
		{"/a/b", "/a/b/../c", ""},
		{"/a/b", "/a/b/c/..", "."},
		{"/a/b/../c", "/a/c/x", "x"},
		{"/", "/", "."},
		{"/", "/x/y", "x/y"},
		{"/", "/..", "."},
		{"/", "x", ""},
		{"//", "/x", "x"},
		{"/a", "a", ""},
		{"a", "/a", ""},
		{"a", "a/b", "b"},
		{"a", "ab", ""},
		{"a/b", "a/b/../../c", ""},
		{".", "x", "x"},
		{".", ".", "."},
		{".", "./x/..", "."},
		{".", "..", ""},
		{".", "../x", ""},
		{".", "/x", ""},
		{"..", "../x", "x"},
		{"..", "../..", ""},
		{"..", "../../x", ""},
		{"../a", "../a/b", "b"},
		{"", "", ""},
		{"", "x", ""},
		{"", "/x", ""},
		{"x", "", ""},
		{"/", "", ""},
	} {
		rel, ok := Rel(c.root, c.p)
		if ok != (c.rel != "") || rel != c.rel {
			t.Errorf("Rel(%q, %q) = %q, %v; want %q", c.root, c.p, rel, ok, c.rel)
		}
		if got := Within(c.root, c.p); got != (c.rel != "") {
			t.Errorf("Within(%q, %q) = %v", c.root, c.p, got)
		}
	}
}

// tree makes base/root and base/outside with a few entries and returns
// their paths. links maps a path under base to a link target ("BASE" at its
// start stands for base).
func tree(t *testing.T, links map[string]string) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "d", "e"), filepath.Join(outside, "o")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for p, target := range links {
		if rest, ok := strings.CutPrefix(target, "BASE"); ok {
			target = base + rest
		}
		if err := os.Symlink(target, filepath.Join(base, p)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

func TestResolve(t *testing.T) {
	root, outside := tree(t, map[string]string{
		"root/in":       "d/e",
		"root/inabs":    "BASE/root/d",
		"root/out":      "../outside",
		"root/d/upout":  "../../outside/o",
		"root/dangle":   "../outside/new",
		"root/dangleIn": "d/new",
		"root/loop":     "loop2",
		"root/loop2":    "loop",
		"alias":         "root",
	})
	real := func(p string) string {
		t.Helper()
		r, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rroot, routside := real(root), real(outside)
	alias := filepath.Join(filepath.Dir(root), "alias")
	for _, c := range []struct {
		root, p string
		want    string // "" for ErrOutside
	}{
		{root, root, rroot},
		{root, root + "/d/e", rroot + "/d/e"},
		{root, root + "/new/deeper", rroot + "/new/deeper"},
		{root, root + "/f/below", rroot + "/f/below"},
		{root, root + "/in/x", rroot + "/d/e/x"},
		{root, root + "/inabs/e", rroot + "/d/e"},
		{root, root + "/dangleIn/x", rroot + "/d/new/x"},
		{root, root + "/out/../d", rroot + "/d"}, // lexical first: .. undoes "out"
		{root, root + "/out", ""},
		{root, root + "/out/x", ""},
		{root, root + "/d/upout", ""},
		{root, root + "/dangle", ""},
		{root, root + "/dangle/x", ""},
		{root, root + "/../outside", ""},
		{root, root + "2", ""},
		{alias, root + "/d", rroot + "/d"}, // a symlinked root holds its target's tree
		{root, alias + "/d", rroot + "/d"},
		{alias, alias + "/out", ""},
		{outside, root + "/out/o", routside + "/o"},
	} {
		got, err := Resolve(c.root, c.p)
		switch {
		case c.want == "" && !errors.Is(err, ErrOutside):
			t.Errorf("Resolve(%q, %q) = %q, %v; want ErrOutside", c.root, c.p, got, err)
		case c.want != "" && (err != nil || got != c.want):
			t.Errorf("Resolve(%q, %q) = %q, %v; want %q", c.root, c.p, got, err, c.want)
		}
	}
	if _, err := Resolve(root, root+"/loop/x"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("loop of links: %v, want ELOOP", err)
	}
	for _, c := range [][2]string{{"rel", root}, {root, "rel"}, {"", root}} {
		if _, err := Resolve(c[0], c[1]); err == nil || errors.Is(err, ErrOutside) {
			t.Errorf("Resolve(%q, %q): %v, want a refusal of the relative path", c[0], c[1], err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "d"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(root, "d"), 0o755)
	if os.Geteuid() != 0 {
		if _, err := Resolve(root, root+"/d/e/x"); err == nil || errors.Is(err, ErrOutside) {
			t.Errorf("unreadable directory: %v, want the permission error", err)
		}
	}
}

// climbs reports whether clean relative path rel leaves its base.
func climbs(rel string) bool { return rel == ".." || strings.HasPrefix(rel, "../") }

// segments splits a clean path into its segments: "/" and "." have none.
func segments(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" || p == "." {
		return nil
	}
	return strings.Split(p, "/")
}

// FuzzWithin checks Within and Rel against the rule stated three ways (a
// string prefix, segment lists and filepath.Rel) and for the properties the
// callers rely on.
func FuzzWithin(f *testing.F) {
	for _, s := range [][3]string{
		{"/a/b", "/a/b/c", "/a/b/c/d"},
		{"/a/b", "/a/bc", "/a/bc/d"},
		{"/", "/x", "/x/y"},
		{"/a/b", "/a/b/../c", "/a/c"},
		{".", "x", "x/y"},
		{"..", "../..", "../../x"},
		{"a/", "a//b/./", "a/b/../b/c"},
		{"", "x", "/"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, r, p, q string) {
		for _, s := range []string{r, p, q} {
			if isClean(s) != (s != "" && filepath.Clean(s) == s) {
				t.Fatalf("isClean(%q) = %v, filepath.Clean gives %q", s, isClean(s), filepath.Clean(s))
			}
		}
		in := Within(r, p)
		rel, ok := Rel(r, p)
		if in != ok {
			t.Fatalf("Within(%q, %q) = %v but Rel says %v", r, p, in, ok)
		}
		if r == "" || p == "" {
			if in {
				t.Fatalf("Within(%q, %q): an empty path is in nothing and holds nothing", r, p)
			}
			return
		}
		cr, cp := filepath.Clean(r), filepath.Clean(p)
		if Within(cr, cp) != in || Within(r, cp) != in || Within(cr, p) != in {
			t.Fatalf("Within(%q, %q) = %v changes with cleaning", r, p, in)
		}
		if !Within(r, r) {
			t.Fatalf("Within(%q, itself) = false", r)
		}

		// 1. The prefix rule.
		sameKind := filepath.IsAbs(cr) == filepath.IsAbs(cp)
		var want bool
		switch {
		case !sameKind:
		case cp == cr:
			want = true
		case cr == "/":
			want = true
		case cr == ".":
			want = !climbs(cp)
		default:
			want = strings.HasPrefix(cp, cr+"/") && !climbs(cp[len(cr)+1:])
		}
		if in != want {
			t.Fatalf("Within(%q, %q) = %v, the prefix rule says %v", r, p, in, want)
		}
		if filepath.IsAbs(cr) && sameKind && in != (cp == cr || cr == "/" || strings.HasPrefix(cp, cr+"/")) {
			t.Fatalf("Within(%q, %q) = %v: absolute paths follow the plain prefix rule", r, p, in)
		}

		// 2. Segments: root's are a prefix of p's, and what follows does not climb.
		rs, ps := segments(cr), segments(cp)
		want = sameKind && len(rs) <= len(ps)
		for i := 0; want && i < len(rs); i++ {
			want = rs[i] == ps[i]
		}
		if want && len(ps) > len(rs) && ps[len(rs)] == ".." {
			want = false
		}
		if in != want {
			t.Fatalf("Within(%q, %q) = %v, segments say %v", r, p, in, want)
		}

		// 3. filepath.Rel agrees, and Rel's answer leads back to p.
		frel, err := filepath.Rel(cr, cp)
		if in != (err == nil && !climbs(frel)) {
			t.Fatalf("Within(%q, %q) = %v, filepath.Rel gives %q, %v", r, p, in, frel, err)
		}
		if in && (rel != frel || filepath.Join(cr, rel) != cp) {
			t.Fatalf("Rel(%q, %q) = %q; filepath.Rel says %q", r, p, rel, frel)
		}

		// Transitivity.
		if in && Within(p, q) && !Within(r, q) {
			t.Fatalf("Within(%q, %q) and Within(%q, %q) but not Within(%q, %q)", r, p, p, q, r, q)
		}

		// A sibling sharing root's spelling as a prefix is never inside,
		// nor is root inside its own child.
		if cr != "/" && cr != "." {
			if sib := cr + "x" + strings.ReplaceAll(p, "/", ""); Within(r, sib) {
				t.Fatalf("sibling %q is Within %q", sib, r)
			}
		}
		if in && cp != cr && Within(p, r) {
			t.Fatalf("%q and %q are each within the other", r, p)
		}
	})
}

// FuzzResolve builds a small tree with two links of arbitrary targets and
// resolves an arbitrary path in it. Where the path exists, Resolve must
// agree with filepath.EvalSymlinks (the kernel's view); a result is always
// clean and within the resolved root; refusals are ErrOutside exactly when
// the path leads out.
func FuzzResolve(f *testing.F) {
	for _, s := range [][3]string{
		{"d", "../outside", "l1/x"},
		{"../outside/o", "d/e", "l2/../l1"},
		{"/", "l1", "l2/etc"},
		{"l2", "l1", "l1/x"},
		{"../outside/new", "d", "l1/deeper/x"},
		{"f", "../root/d/e", "l1/x"},
		{"d/e/../..", "..", "l2/outside"},
		{"x", "y", "d/../../root/d"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, target1, target2, sub string) {
		if strings.ContainsRune(target1+target2+sub, 0) {
			return
		}
		base := t.TempDir()
		root := filepath.Join(base, "root")
		for _, d := range []string{filepath.Join(root, "d", "e"), filepath.Join(base, "outside", "o")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if target1 == "" || target2 == "" ||
			os.Symlink(target1, filepath.Join(root, "l1")) != nil ||
			os.Symlink(target2, filepath.Join(root, "d", "l2")) != nil {
			return
		}
		rroot, err := filepath.EvalSymlinks(root)
		if err != nil {
			t.Fatal(err)
		}
		p := root + "/" + sub
		got, err := Resolve(root, p)
		if err == nil && (!filepath.IsAbs(got) || filepath.Clean(got) != got || !Within(rroot, got)) {
			t.Fatalf("Resolve(%q) = %q: not clean and within %q", p, got, rroot)
		}
		ev, everr := filepath.EvalSymlinks(filepath.Clean(p))
		if everr != nil {
			return // missing, a loop or unreadable: the kernel gives no answer to compare
		}
		if in := Within(rroot, ev); in != (err == nil) || (in && got != ev) || (!in && !errors.Is(err, ErrOutside)) {
			t.Fatalf("links %q, %q: Resolve(%q) = %q, %v; EvalSymlinks gives %q", target1, target2, p, got, err, ev)
		}
	})
}
