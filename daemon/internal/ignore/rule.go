package ignore

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"

	"github.com/loop-dev/loop/internal/pathrule"
)

// rule is one pattern and the directory it is relative to: it matches an
// absolute path when, as in Docker, text matches the path relative to base or
// one of that path's parents (base itself never matches).
type rule struct {
	base      string // absolute and clean
	text      string
	exclusion bool
	// pm holds text alone as an inclusion pattern, already compiled, so that
	// matching only reads it.
	pm *patternmatcher.PatternMatcher
	// literal is the leading run of segments without pattern syntax: a path
	// the pattern (or a parent match of it) can match starts with it.
	literal string
	segs    []string
	// free is the index of the first segment that may match across "/"
	// (contains "**" or a character class), len(segs) if none does.
	free int
	// opaque is set when segment splitting cannot be trusted (an escaped
	// "/"): SkipDir then assumes the rule may match anything below.
	opaque bool
}

func newRule(base, text string, exclusion bool) (rule, error) {
	body := text
	if body[0] == '!' {
		// patternmatcher would read a leading "!" as an exception.
		body = `\` + body
	}
	pm, err := patternmatcher.New([]string{body})
	if err != nil {
		return rule{}, err
	}
	// Compile now (patternmatcher compiles on first match) so that later
	// matching never writes and bad syntax is reported here.
	if _, err := pm.MatchesOrParentMatches("x"); err != nil {
		return rule{}, err
	}
	r := rule{base: base, text: text, exclusion: exclusion, pm: pm, segs: strings.Split(text, "/")}
	r.free = len(r.segs)
	lit := true
	var litSegs []string
	for i, s := range r.segs {
		if strings.HasSuffix(s, `\`) {
			r.opaque = true
		}
		if r.free == len(r.segs) && (strings.Contains(s, "**") || strings.Contains(s, "[")) {
			r.free = i
		}
		if lit && !strings.ContainsAny(s, `*?[]\`) {
			litSegs = append(litSegs, s)
		} else {
			lit = false
		}
	}
	r.literal = strings.Join(litSegs, "/")
	return r, nil
}

// rel returns abs relative to the rule's base; ok is false when abs is not
// strictly below the base. It is pathrule.Rel's rule (without ".") written
// out for strings already clean (the base by compile, abs by the Matcher):
// it runs for every rule on every path, and pathrule.Rel checking both for
// cleanliness again cost a fifth of the matcher's time.
func (r *rule) rel(abs string) (string, bool) {
	if r.base == "/" {
		return abs[1:], len(abs) > 1
	}
	if len(abs) <= len(r.base) || abs[len(r.base)] != '/' || !strings.HasPrefix(abs, r.base) {
		return "", false
	}
	return abs[len(r.base)+1:], true
}

// matches reports whether the rule matches the absolute path abs or one of
// its parents.
func (r *rule) matches(abs string) bool {
	p, ok := r.rel(abs)
	if !ok {
		return false
	}
	if r.literal != "" && p != r.literal && (!strings.HasPrefix(p, r.literal) || p[len(r.literal)] != '/') {
		return false
	}
	ok, err := r.pm.MatchesOrParentMatches(p)
	return err == nil && ok
}

// mayMatchBelow reports whether the rule could match some path strictly
// below the absolute directory d. False means certainly not.
func (r *rule) mayMatchBelow(d string) bool {
	p, ok := r.rel(d)
	if !ok {
		// d is the base, above it (the rule may match anything below),
		// or beside it (nothing).
		return pathrule.Within(d, r.base)
	}
	if r.opaque {
		return true
	}
	dsegs := strings.Split(p, "/")
	k := len(dsegs)
	if r.free == len(r.segs) {
		// Every segment matches exactly one path segment: only a pattern
		// longer than d, whose first k segments match d, reaches below it.
		if len(r.segs) <= k {
			return false
		}
		return segsMatch(r.segs[:k], dsegs)
	}
	n := min(r.free, k)
	return segsMatch(r.segs[:n], dsegs[:n])
}

// segsMatch matches pattern segments (without "**" or classes) one to one
// against path segments; in doubt it says yes.
func segsMatch(pats, names []string) bool {
	for i, p := range pats {
		ok, err := filepath.Match(p, names[i])
		if err == nil && !ok {
			return false
		}
	}
	return true
}

// patternSet is an ordered list of rules: the last rule that matches decides,
// as in a .dockerignore file.
type patternSet struct {
	rules []rule
}

func (s *patternSet) describe(w io.Writer) {
	fmt.Fprintln(w, "patterns")
	for _, r := range s.rules {
		fmt.Fprintf(w, "%q %v %q\n", r.base, r.exclusion, r.text)
	}
}

func (s *patternSet) ignored(abs string, _ bool) bool {
	matched := false
	for i := range s.rules {
		r := &s.rules[i]
		// An inclusion cannot change a match, nor an exception a non-match.
		if r.exclusion != matched {
			continue
		}
		if r.matches(abs) {
			matched = !r.exclusion
		}
	}
	return matched
}

// tri is a three-valued truth: for every path below a directory, or for
// none, or it depends.
type tri int

const (
	no tri = iota
	maybe
	yes
)

// skipDir evaluates the rules for "any path below abs" at once: a rule that
// matches abs or a parent matches every such path (yes), one that could match
// below it gives maybe, otherwise no. The directory can be skipped when the
// result is yes for all of them.
func (s *patternSet) skipDir(abs string) bool {
	if !s.ignored(abs, true) {
		return false
	}
	state := no
	for i := range s.rules {
		r := &s.rules[i]
		m := no
		if r.matches(abs) {
			m = yes
		} else if r.mayMatchBelow(abs) {
			m = maybe
		}
		if r.exclusion {
			state = min(state, yes-m) // state AND NOT m
		} else {
			state = max(state, m) // state OR m
		}
	}
	return state == yes
}
