package ignore

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// validRel reports whether p is a clean relative path strictly inside a base.
func validRel(p string) bool {
	return p != "" && p != "." && !filepath.IsAbs(p) && filepath.Clean(p) == p &&
		p != ".." && !strings.HasPrefix(p, "../")
}

// FuzzMatch feeds arbitrary .dockerignore content and paths through the
// matcher. It must never panic, must agree with Docker's own matcher
// (patternmatcher on the path relative to the context), and SkipDir must be
// sound: nothing below a skippable directory is left un-ignored.
func FuzzMatch(f *testing.F) {
	f.Add("*.log\n!keep.log\n", "keep.log", "x")
	f.Add("node_modules\n!node_modules/keep\n", "node_modules", "keep/a.js")
	f.Fuzz(func(t *testing.T, patterns, path, below string) {
		const base = "/ctx"
		lines := parseIgnoreFile("fuzz", patterns)
		rules, err := compile(base, lines, insideOnly)
		if err != nil {
			return
		}
		m := Any(&Matcher{srcs: []source{&patternSet{rules: rules}}}, Defaults())
		if fp, err := FromPatterns(base, strings.Split(patterns, "\n")); err == nil {
			m2 := Any(fp, m)
			m2.Ignored(filepath.Join(base, path), false)
			m2.SkipDir(filepath.Join(base, path))
			m2.Ignored(path, true)
		}
		abs := filepath.Join(base, path)
		got := m.Ignored(abs, true)
		docker := &Matcher{srcs: []source{&patternSet{rules: rules}}}
		// patternmatcher v0.6.1 fails to escape '{', '|' and '}' when it
		// turns a pattern into a regexp (its escape table shifts them out
		// of a byte), so Docker reads "a/*|" as "anything". loop matches
		// them literally, as filepath.Match does: no agreement to check.
		if validRel(path) && !strings.ContainsAny(patterns, "{|}") {
			excludes, rerr := ignorefile.ReadAll(strings.NewReader(patterns))
			pm, perr := patternmatcher.New(excludes)
			if rerr == nil && perr == nil {
				want, merr := pm.MatchesOrParentMatches(path)
				if merr == nil && docker.Ignored(abs, false) != want {
					t.Fatalf("patterns %q, path %q: Ignored = %v, patternmatcher says %v", patterns, path, !want, want)
				}
			}
		}
		if m.SkipDir(abs) {
			if !got {
				t.Fatalf("patterns %q: SkipDir(%q) but the directory is not ignored", patterns, path)
			}
			if validRel(below) {
				if child := filepath.Join(abs, below); !m.Ignored(child, false) || !m.Ignored(child, true) {
					t.Fatalf("patterns %q: SkipDir(%q) but %q below it is not ignored", patterns, path, below)
				}
			}
		}
	})
}
