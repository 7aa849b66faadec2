package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// listenUnix binds the socket with mode 0600, replacing a stale one.
func listenUnix(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("listen: no socket path")
	}
	// sun_path holds 108 bytes on Linux, 104 on macOS.
	if len(path) > 100 {
		return nil, fmt.Errorf("listen on %s: the socket path is longer than 100 bytes; set LOOP_STATE_DIR to a shorter directory", path)
	}
	if _, err := os.Stat(path); err == nil {
		c, derr := net.DialTimeout("unix", path, time.Second)
		if derr == nil {
			_ = c.Close()
			return nil, fmt.Errorf("listen on %s: %w", path, ErrAlreadyRunning)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	// The state directory is 0700 already; 0600 keeps the socket private
	// even if someone loosens the directory.
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	return ln, nil
}

// checkLoopback refuses any TCP address that is not loopback: the API can
// stop and start things, so it must never be reachable from the network.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("listen on %s: only loopback addresses are allowed (127.0.0.1:PORT, [::1]:PORT)", addr)
}

// loadToken reads the bearer token, creating it (0600) when missing.
func loadToken(path string) (string, error) {
	if path == "" {
		return "", errors.New("listen: no token file for the TCP listener")
	}
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		if err := os.Chmod(path, 0o600); err != nil {
			return "", fmt.Errorf("read token %s: %w", path, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	tok := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write token %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return "", fmt.Errorf("write token %s: %w", path, err)
	}
	return tok, nil
}

// requireToken lets through only requests bearing the token.
func (s *Server) requireToken(h http.Handler) http.Handler {
	want := []byte("Bearer " + s.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			writeError(w, http.StatusUnauthorized, "missing or wrong token (Authorization: Bearer <token file contents>)")
			return
		}
		h.ServeHTTP(w, r)
	})
}
