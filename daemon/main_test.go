package daemon_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/klog/v2"

	"github.com/loop-dev/loop/daemon/internal/agent/agentbuild"
)

// TestMain builds the sync agent from the sources in the tree for the tests
// (the committed, embedded ones lag behind a source change until `make agent`).
func TestMain(m *testing.M) {
	if os.Getenv("LOOP_TEST_KUBECTL") != "" {
		os.Exit(fakeKubectl(os.Args[1:]))
	}
	// client-go reports retries through klog on stderr; cmd/loop silences it for the
	// program, the tests do it for the daemons they run in process.
	klog.SetLogger(logr.Discard())
	// Keep the daemons' state (sockets, timing history) out of the home dir.
	state, err := os.MkdirTemp("", "loop-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if os.Getenv("LOOP_STATE_DIR") == "" {
		os.Setenv("LOOP_STATE_DIR", state)
	}
	cleanup, err := agentbuild.TestDir()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build sync agent:", err)
		os.Exit(1)
	}
	code := m.Run()
	cleanup()
	os.RemoveAll(state)
	os.Exit(code)
}
