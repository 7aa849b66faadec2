// Command loop is the developer inner-loop daemon: it reads a Tiltfile,
// builds and runs what it declares on Docker, watches files, live-updates or
// rebuilds on every save, and reports how long each change took.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/loop-dev/loop/starlark/tiltfile"
)

// Exit codes, documented in `loop --help`.
const (
	exitOK      = 0
	exitFailure = 1 // a command failed (a resource failed in `loop ci`, a broken Tiltfile, ...)
	exitUsage   = 2 // wrong flags or arguments
)

// usageError marks errors that come from how loop was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	quietClientGo()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	stop()
	if err == nil {
		os.Exit(exitOK)
	}
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "loop:", msg)
	}
	var te *tiltfile.Error
	if errors.As(err, &te) && te.Backtrace != "" {
		fmt.Fprintln(os.Stderr, te.Backtrace)
	}
	var ue usageError
	if errors.As(err, &ue) {
		os.Exit(exitUsage)
	}
	var xe exitError
	if errors.As(err, &xe) {
		os.Exit(xe.code)
	}
	os.Exit(exitFailure)
}

// quietClientGo sends client-go's klog output nowhere: it reports retries and closed
// exec streams on stderr, which would write over the terminal UI, and the errors that
// matter reach the user through loop's own results. Logging is the program's to set,
// so it is set here, once, not in a library package.
func quietClientGo() { klog.SetLogger(logr.Discard()) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "loop",
		Short: "loop builds, runs and live-updates what your Tiltfile declares, and times every change",
		Long: `loop is a developer inner-loop daemon. It reads the project's Tiltfile, builds
and starts what it declares on Docker, watches your files, and on every save
either syncs the changed files into the running containers or rebuilds,
reporting how long each change took to reach a running result.

Exit codes: 0 success; 1 a command failed (a resource failed, a broken
Tiltfile); 2 wrong flags or arguments.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newVersionCmd(), newDumpCmd(), newUpCmd(), newCICmd(), newDownCmd(), newMetricsCmd(), newDevcontainerCmd(),
		newDaemonCmd(), newUICmd(), newStatusCmd(), newLogsCmd(), newTriggerCmd(), newWaitCmd(), newChangesCmd(), newMCPCmd(), newRenderCmd(), newDiffCmd(), newFetchCmd())
	setVersionFlag(root)
	return root
}
