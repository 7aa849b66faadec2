// Package ignore decides which paths loop leaves alone: files a build context
// excludes (.dockerignore, the Dockerfile-specific ignore file, docker_build
// ignore= and only=), .tiltignore, watch_settings(ignore=), and the defaults
// nobody wants watched (.git/, editor temp files).
//
// Patterns follow Docker's .dockerignore rules and are matched with
// github.com/moby/patternmatcher, the matcher Docker itself uses: a pattern
// that matches a directory matches everything below it, later patterns win,
// and `!pattern` re-includes. Every pattern is anchored at the directory it is
// relative to, so a Matcher answers for absolute paths and several sources with
// different roots combine with Any.
//
// A Matcher is immutable once built and safe for concurrent use: patterns are
// compiled when it is built (patternmatcher compiles lazily and is not safe for
// concurrent use otherwise).
package ignore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/loop-dev/loop/internal/pathrule"
)

// source is one set of rules with its own root.
type source interface {
	ignored(abs string, isDir bool) bool
	skipDir(abs string) bool
	// describe writes what decides the answers (for Key).
	describe(w io.Writer)
}

// Matcher says whether a path is ignored. The zero value and a nil *Matcher
// ignore nothing.
type Matcher struct {
	srcs  []source
	files []string
}

// Ignored reports whether absPath is ignored. Paths that are not absolute are
// never ignored. isDir matters only to the editor-temp-file defaults, which
// apply to files.
func (m *Matcher) Ignored(absPath string, isDir bool) bool {
	if m == nil || !filepath.IsAbs(absPath) {
		return false
	}
	absPath = filepath.Clean(absPath)
	for _, s := range m.srcs {
		if s.ignored(absPath, isDir) {
			return true
		}
	}
	return false
}

// SkipDir reports whether the directory absPath can be skipped entirely: it is
// ignored and no exception pattern (`!x`) could re-include anything below it.
// A walker that skips such directories sees exactly the paths that are not
// ignored. The answer is conservative: when in doubt it is false.
func (m *Matcher) SkipDir(absPath string) bool {
	if m == nil || !filepath.IsAbs(absPath) {
		return false
	}
	absPath = filepath.Clean(absPath)
	// With several sources, everything below is ignored as soon as one source
	// ignores everything below.
	for _, s := range m.srcs {
		if s.skipDir(absPath) {
			return true
		}
	}
	return false
}

// Files returns the ignore files this Matcher consulted, whether or not they
// existed, so that a watcher can reload when one appears, changes or goes.
func (m *Matcher) Files() []string {
	if m == nil {
		return nil
	}
	return append([]string(nil), m.files...)
}

// Reads reports whether path is one of the files the rules were read from (or
// looked for).
func (m *Matcher) Reads(path string) bool {
	if m == nil {
		return false
	}
	for _, f := range m.files {
		if f == path {
			return true
		}
	}
	return false
}

// Key is a digest of the rules and the files they were read from: two Matchers
// with the same Key answer alike, so a caller can tell that rules read again are
// the rules it has (without reading the files once more).
func (m *Matcher) Key() string {
	h := sha256.New()
	if m != nil {
		for _, f := range m.files {
			fmt.Fprintf(h, "file %q\n", f)
		}
		for _, s := range m.srcs {
			s.describe(h)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Any returns a Matcher that ignores a path when any of ms does. Nil entries
// are allowed.
func Any(ms ...*Matcher) *Matcher {
	out := &Matcher{}
	for _, m := range ms {
		if m == nil {
			continue
		}
		out.srcs = append(out.srcs, m.srcs...)
		out.files = append(out.files, m.files...)
	}
	return out
}

// ForContext returns the ignore rules of a build context: the
// Dockerfile-specific ignore file (`<dockerfile>.dockerignore` next to the
// Dockerfile) when it exists, else `<contextDir>/.dockerignore`; then the
// docker_build ignore= patterns; and, when only is not empty, everything
// outside the only paths. dockerfile may be empty (dockerfile_contents).
// Patterns and only paths are relative to contextDir; an absolute one inside
// contextDir is taken as is. A bad pattern is an error naming its file and line.
func ForContext(contextDir, dockerfile string, only, ignore []string) (*Matcher, error) {
	ctx, err := filepath.Abs(contextDir)
	if err != nil {
		return nil, fmt.Errorf("resolve context %s: %w", contextDir, err)
	}
	m := &Matcher{}
	var lines []line
	found := false
	if dockerfile != "" {
		specific := dockerfile + ".dockerignore"
		m.files = append(m.files, specific)
		lines, found, err = readIgnoreFile(specific)
		if err != nil {
			return nil, err
		}
	}
	general := filepath.Join(ctx, ".dockerignore")
	m.files = append(m.files, general)
	if !found {
		if lines, _, err = readIgnoreFile(general); err != nil {
			return nil, err
		}
	}
	for i, p := range ignore {
		lines = append(lines, line{text: p, num: i + 1, file: "docker_build ignore="})
	}
	rules, err := compile(ctx, lines, insideOnly)
	if err != nil {
		return nil, err
	}
	if len(rules) > 0 {
		m.srcs = append(m.srcs, &patternSet{rules: rules})
	}
	if len(only) > 0 {
		set, err := onlySet(ctx, only)
		if err != nil {
			return nil, err
		}
		m.srcs = append(m.srcs, set)
	}
	return m, nil
}

// onlySet ignores everything under ctx except the only paths (as Tilt's
// only= does): `**` followed by one exception per path.
func onlySet(ctx string, only []string) (*patternSet, error) {
	lines := []line{{text: "**", file: "docker_build only="}}
	for i, o := range only {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if filepath.IsAbs(o) {
			rel, ok := pathrule.Rel(ctx, o)
			if !ok {
				return nil, fmt.Errorf("docker_build only= entry %d %q: not inside the context %s", i+1, o, ctx)
			}
			o = rel
		}
		// only= names paths, not patterns: escape glob characters.
		lines = append(lines, line{text: "!" + escapeGlob(filepath.ToSlash(o)), num: i + 1, file: "docker_build only="})
	}
	rules, err := compile(ctx, lines, insideOnly)
	if err != nil {
		return nil, err
	}
	return &patternSet{rules: rules}, nil
}

// FromPatterns returns a Matcher for .dockerignore-style patterns relative to
// baseDir (such as watch_settings(ignore=) relative to the Tiltfile's
// directory). Absolute patterns are taken as absolute, and relative ones may
// climb out of baseDir with "..".
func FromPatterns(baseDir string, patterns []string) (*Matcher, error) {
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", baseDir, err)
	}
	lines := make([]line, len(patterns))
	for i, p := range patterns {
		lines[i] = line{text: p, num: i + 1}
	}
	rules, err := compile(base, lines, anywhere)
	if err != nil {
		return nil, err
	}
	m := &Matcher{}
	if len(rules) > 0 {
		m.srcs = append(m.srcs, &patternSet{rules: rules})
	}
	return m, nil
}

// TiltIgnore returns the rules of <dir>/.tiltignore, relative to dir. A
// missing file ignores nothing.
func TiltIgnore(dir string) (*Matcher, error) {
	base, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", dir, err)
	}
	name := filepath.Join(base, ".tiltignore")
	lines, _, err := readIgnoreFile(name)
	if err != nil {
		return nil, err
	}
	rules, err := compile(base, lines, insideOnly)
	if err != nil {
		return nil, err
	}
	m := &Matcher{files: []string{name}}
	if len(rules) > 0 {
		m.srcs = append(m.srcs, &patternSet{rules: rules})
	}
	return m, nil
}

// Defaults returns the rules loop always applies: any .git directory (and
// everything in it), and editor temporary files (vim swap files and its 4913
// probe, backup files ending in ~, Emacs lock and autosave files, JetBrains
// safe-write files, `name.tmp.<pid>` atomic-write files, .DS_Store).
func Defaults() *Matcher {
	return &Matcher{srcs: []source{defaults{}}}
}

type defaults struct{}

func (defaults) ignored(abs string, isDir bool) bool {
	if hasGitComponent(abs) {
		return true
	}
	return !isDir && isEditorTemp(filepath.Base(abs))
}

func (defaults) skipDir(abs string) bool { return hasGitComponent(abs) }

func (defaults) describe(w io.Writer) { fmt.Fprintln(w, "defaults") }

func hasGitComponent(abs string) bool {
	for p := abs; ; {
		i := strings.LastIndexByte(p, '/')
		if p[i+1:] == ".git" {
			return true
		}
		if i <= 0 {
			return false
		}
		p = p[:i]
	}
}

func isEditorTemp(name string) bool {
	switch {
	case name == "4913", name == ".DS_Store":
		return true
	case strings.HasSuffix(name, ".swp"), strings.HasSuffix(name, ".swo"), strings.HasSuffix(name, ".swx"):
		return true
	case strings.HasSuffix(name, "~"), strings.HasPrefix(name, ".#"):
		return true
	case len(name) > 1 && name[0] == '#' && name[len(name)-1] == '#':
		return true
	case strings.HasSuffix(name, "___jb_tmp___"), strings.HasSuffix(name, "___jb_old___"):
		return true
	}
	if i := strings.LastIndex(name, ".tmp."); i > 0 {
		rest := name[i+len(".tmp."):]
		return rest != "" && rest[0] >= '0' && rest[0] <= '9'
	}
	return false
}

// line is one pattern with where it came from, for errors.
type line struct {
	text string
	num  int
	file string
}

func (l line) where() string {
	if l.file == "" {
		return fmt.Sprintf("pattern %d", l.num)
	}
	if l.num == 0 {
		return l.file
	}
	return fmt.Sprintf("%s:%d", l.file, l.num)
}

// readIgnoreFile reads a .dockerignore-format file with the rules of
// patternmatcher/ignorefile.ReadAll (BOM stripped, `#` comments, blank lines
// skipped), keeping line numbers. found is false for a missing file.
func readIgnoreFile(name string) (lines []line, found bool, err error) {
	b, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read ignore file %s: %w", name, err)
	}
	return parseIgnoreFile(name, string(b)), true, nil
}

func parseIgnoreFile(name, content string) []line {
	content = strings.TrimPrefix(content, "\ufeff")
	var lines []line
	for i, l := range strings.Split(content, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.TrimSpace(l) == "" {
			continue
		}
		lines = append(lines, line{text: l, num: i + 1, file: name})
	}
	return lines
}

// scope says how a pattern relates to its base directory.
type scope int

const (
	// insideOnly is .dockerignore's rule: a leading "/" means the base
	// directory, and nothing outside it can match. An absolute pattern that
	// already lies inside the base is kept.
	insideOnly scope = iota
	// anywhere keeps absolute patterns absolute and lets "../" climb out.
	anywhere
)

// compile turns patterns relative to base into compiled rules, each with the
// directory its pattern is relative to.
func compile(base string, lines []line, sc scope) ([]rule, error) {
	var rules []rule
	for _, l := range lines {
		p := strings.TrimSpace(l.text)
		if p == "" {
			continue
		}
		excl := p[0] == '!'
		if excl {
			p = strings.TrimSpace(p[1:])
			if p == "" {
				return nil, fmt.Errorf("%s: bad ignore pattern %q: an exception needs a pattern after \"!\"", l.where(), l.text)
			}
		}
		p = filepath.ToSlash(filepath.Clean(p))
		trimmed := strings.TrimSpace(p)
		if trimmed != "" {
			trimmed = filepath.ToSlash(filepath.Clean(trimmed))
		}
		rb := base
		switch {
		case sc == anywhere && strings.HasPrefix(trimmed, "/"):
			rb, p = "/", trimmed[1:]
		case sc == insideOnly && strings.HasPrefix(trimmed, base+"/"):
			// An absolute path inside the base.
			p = trimmed[len(base)+1:]
		case sc == anywhere && strings.HasPrefix(trimmed, "../"):
			p = trimmed
			for strings.HasPrefix(p, "../") {
				rb, p = filepath.Dir(rb), p[3:]
			}
		default:
			// .dockerignore, exactly as Docker reads it: one leading "/" is the
			// base directory; then its matcher trims (an exception, whose "!"
			// leads, only at the end) and cleans once more: "a /" is "a",
			// "/ 0" is "0", "0 / /" is "0 ".
			if len(p) > 1 && p[0] == '/' {
				p = p[1:]
			}
			if excl {
				p = strings.TrimRightFunc(p, unicode.IsSpace)
			} else {
				p = strings.TrimSpace(p)
			}
			if p != "" {
				p = filepath.ToSlash(filepath.Clean(p))
			}
		}
		if p == "" || p == "/" || p == "." || p == ".." || strings.HasPrefix(p, "../") {
			// The base itself is never ignored (as in Docker, where "."
			// matches nothing), and nothing above it is matched.
			continue
		}
		r, err := newRule(rb, p, excl)
		if err != nil {
			return nil, fmt.Errorf("%s: bad ignore pattern %q: %w", l.where(), l.text, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// escapeGlob escapes the characters patternmatcher would otherwise read as
// pattern syntax (including "^", which it passes to its regexp unescaped), for
// only= entries, which name paths.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\^`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
