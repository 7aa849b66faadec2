package hostpath

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/loop-dev/loop/internal/pathrule"
)

// FuzzToHost maps arbitrary paths through arbitrary mounts. ToHost must
// never panic; an absolute path comes back clean; a path under a mount's
// destination comes back under that mount's source (the longest destination
// wins), at the same relative path; any other path comes back unchanged but
// cleaned.
func FuzzToHost(f *testing.F) {
	f.Add("/workspaces/app", "/home/me/app", "/workspaces", "/srv", "/workspaces/app/src/a.go")
	f.Add("/workspaces/app", "/home/me/app", "/workspaces", "/srv", "/workspaces/other")
	f.Add("/w", "/h", "/", "/root", "/w/../etc")
	f.Add("/w", "/h", "/x", "/y", "relative/path")
	f.Add("/w", "/h", "/x", "/y", "/wx/a")
	f.Fuzz(func(t *testing.T, dest1, src1, dest2, src2, p string) {
		m := &Mapper{}
		for _, mt := range []Mount{{Dest: dest1, Source: src1}, {Dest: dest2, Source: src2}} {
			if !filepath.IsAbs(mt.Dest) || !filepath.IsAbs(mt.Source) {
				continue
			}
			m.mounts = append(m.mounts, Mount{Dest: filepath.Clean(mt.Dest), Source: filepath.Clean(mt.Source)})
		}
		sort.SliceStable(m.mounts, func(i, j int) bool { return len(m.mounts[i].Dest) > len(m.mounts[j].Dest) })
		got := m.ToHost(p)
		if !filepath.IsAbs(p) {
			if got != p {
				t.Fatalf("ToHost(%q) = %q: a relative path must come back as given", p, got)
			}
			return
		}
		clean := filepath.Clean(p)
		if filepath.Clean(got) != got {
			t.Fatalf("ToHost(%q) = %q, not clean", p, got)
		}
		for _, mt := range m.mounts {
			if !pathrule.Within(mt.Dest, clean) {
				continue
			}
			rel := strings.TrimPrefix(strings.TrimPrefix(clean, mt.Dest), "/")
			if !pathrule.Within(mt.Source, got) || strings.TrimPrefix(strings.TrimPrefix(got, mt.Source), "/") != rel {
				t.Fatalf("mounts %v: ToHost(%q) = %q, want %q below %q", m.mounts, p, got, rel, mt.Source)
			}
			return
		}
		if got != clean {
			t.Fatalf("mounts %v: ToHost(%q) = %q, want it unchanged (%q)", m.mounts, p, got, clean)
		}
	})
}
