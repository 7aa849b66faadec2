package statedir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestForIsPrivateAndStable(t *testing.T) {
	base := t.TempDir()
	t.Setenv(Env, base)
	a, err := For("/work/proj/Tiltfile")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := For("/work/proj/Tiltfile")
	c, _ := For("/work/other/proj/Tiltfile")
	if a != b {
		t.Fatalf("same Tiltfile gave %s and %s", a, b)
	}
	if a == c {
		t.Fatalf("different projects share %s", a)
	}
	if !strings.HasPrefix(a, filepath.Join(base, "projects", "proj-")) {
		t.Fatalf("state dir %s not under %s", a, base)
	}
	fi, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want 0700", fi.Mode().Perm())
	}
}
