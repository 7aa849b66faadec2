// Package statedir says where a project's state lives: the API socket, the
// timing history and anything else the daemon keeps between runs. It is
// outside the project tree (so the watcher never sees it and nothing is
// written into the user's sources), one directory per Tiltfile, mode 0700.
package statedir

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// Env overrides the base directory (tests, CI, several checkouts).
const Env = "LOOP_STATE_DIR"

// Base returns the base state directory: $LOOP_STATE_DIR, else
// $XDG_STATE_HOME/loop, else ~/.local/state/loop.
func Base() (string, error) {
	if d := os.Getenv(Env); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "loop"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "loop"), nil
}

var unsafeChars = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

// For returns (and creates, mode 0700) the state directory of the project
// whose main Tiltfile is tiltfile: <base>/projects/<dir name>-<hash>.
func For(tiltfile string) (string, error) {
	abs, err := filepath.Abs(tiltfile)
	if err != nil {
		return "", fmt.Errorf("state directory for %s: %w", tiltfile, err)
	}
	base, err := Base()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	name := unsafeChars.ReplaceAllString(filepath.Base(filepath.Dir(abs)), "_")
	dir := filepath.Join(base, "projects", name+"-"+hex.EncodeToString(sum[:])[:12])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	return dir, nil
}
