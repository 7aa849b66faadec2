package agentbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed agents are what their sources build, and Check notices a
// stale, missing or stray file.
func TestCheck(t *testing.T) {
	committed := filepath.Join("..", "prebuilt")
	if err := Check(committed); err != nil {
		t.Fatalf("committed agents: %v", err)
	}
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(committed, Name("amd64")))
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(filepath.Join(dir, Name("amd64")), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stray"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Check(dir)
	for _, want := range []string{Name("amd64") + " differs", Name("arm64") + " is missing", "stray is not an agent", "make agent"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(stale dir) = %v, want it to say %q", err, want)
		}
	}
}
