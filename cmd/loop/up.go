package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/tui"
)

func newUpCmd() *cobra.Command {
	var pf projectFlags
	var headlessFlag, detachFlag bool
	var listen string
	cmd := &cobra.Command{
		Use:   "up [-f Tiltfile] [--headless|--detach] [--listen 127.0.0.1:PORT] [RESOURCE...] [-- ARGS]",
		Short: "Build and start the project, then live-update or rebuild on every save, with the terminal UI (Ctrl-C stops)",
		Long: `Build and start the project, then live-update or rebuild on every save.

With the terminal UI by default (q or Ctrl-C stops loop; what it started keeps
running until ` + "`loop down`" + `). --headless logs events as lines on stdout instead.
--detach starts the same daemon in the background and returns once its API
answers (at once when one already runs for the project), for scripts and
dev container lifecycle commands; it logs to daemon.log in the project's state
directory, ` + "`loop ui`" + ` attaches to it and ` + "`loop down`" + ` stops it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			only, tiltArgs := splitArgs(cmd, args)
			child := detachedChild()
			// Not passed on to the commands the daemon runs.
			_ = os.Unsetenv(detachedEnv)
			if detachFlag && !child {
				if headlessFlag {
					return usageError{errors.New("--detach and --headless do not go together: a detached daemon logs to its state directory")}
				}
				path, err := pf.tiltfilePath()
				if err != nil {
					return err
				}
				return detach(cmd.Context(), path, cmd.OutOrStdout(), time.Minute)
			}
			o := daemon.Options{Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, NoBuiltinExtensions: pf.noBuiltinExts, Only: only}
			if headlessFlag || child {
				o.Sink = newHeadless(cmd.OutOrStdout()).event
				return daemon.New(o).Serve(cmd.Context(), daemon.ServeOptions{Listen: listen})
			}
			return upWithUI(cmd.Context(), daemon.New(o), listen)
		},
	}
	pf.register(cmd)
	cmd.Flags().BoolVar(&headlessFlag, "headless", false, "log events and resource output as lines on stdout instead of the terminal UI")
	cmd.Flags().BoolVar(&detachFlag, "detach", false, "run in the background and return once the daemon's API answers (`loop down` stops it)")
	cmd.Flags().StringVar(&listen, "listen", "", "also serve the API on this loopback TCP address (127.0.0.1:PORT); needs the token file")
	return cmd
}

// upWithUI runs the daemon in this process and attaches the UI to it
// through the API socket, exactly as `loop ui` does. Quitting the UI stops
// the daemon; the daemon ending (an error) closes the UI.
func upWithUI(ctx context.Context, d *daemon.Daemon, listen string) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan string, 1)
	done := make(chan struct{})
	var runErr error
	go func() {
		defer close(done)
		runErr = d.Serve(ctx, daemon.ServeOptions{Listen: listen, Ready: func(s string) { ready <- s }})
	}()
	var sock string
	select {
	case sock = <-ready:
	case <-done:
		return runErr
	}
	uiCtx, closeUI := context.WithCancel(ctx)
	defer closeUI()
	go func() { // the UI's owner: closes it when the daemon ends first
		select {
		case <-done:
			closeUI()
		case <-uiCtx.Done():
		}
	}()
	uiErr := tui.Run(uiCtx, client.New(client.Options{Socket: sock}), tui.Options{StopsDaemon: true})
	stop()
	<-done
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	return uiErr
}

func newCICmd() *cobra.Command {
	var pf projectFlags
	var timeout time.Duration
	var budgetSpec string
	cmd := &cobra.Command{
		Use:   "ci [-f Tiltfile] [--timeout D] [--latency-budget SPEC] [RESOURCE...] [-- ARGS]",
		Short: "Bring every resource up once; exit 0 when all are ready, 1 naming the first that failed",
		RunE: func(cmd *cobra.Command, args []string) error {
			only, tiltArgs := splitArgs(cmd, args)
			budget, err := parseBudgetFlag(budgetSpec)
			if err != nil {
				return err
			}
			timing := metrics.Open(metrics.Options{})
			ctx := cmd.Context()
			h := newHeadless(cmd.OutOrStdout())
			start := time.Now()
			// The run's bound is --timeout, or the Tiltfile's ci_settings(timeout=).
			err = daemon.CI(ctx, daemon.Options{
				Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, NoBuiltinExtensions: pf.noBuiltinExts, Only: only,
				Sink:      func(ev api.Event) { h.event(ev); timing.Observe(ev) },
				CITimeout: timeout,
				// As tilt ci, the Tiltfile's own output is part of the run's log.
				TiltfileOutput: h.writer("Tiltfile"),
			})
			if err == nil && ctx.Err() != nil {
				err = ctx.Err()
			}
			if errors.Is(err, daemon.ErrCITimeout) {
				return fmt.Errorf("ci: %w", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loop ci: every resource ready in %s\n", fmtDur(time.Since(start)))
			return checkBudget(cmd.OutOrStdout(), budget, timing.Recent(), timing.RecentChains())
		},
	}
	pf.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "fail when not every resource is ready within this time (the Tiltfile's ci_settings(timeout=) takes its place)")
	cmd.Flags().StringVar(&budgetSpec, "latency-budget", "", "fail when the run's change-to-result times exceed this budget, e.g. p95=2s,live.p50=50ms,chain.p95=30s (chain: the load to every resource ready; chain.RESOURCE: chains that ended there; see `loop metrics`)")
	return cmd
}

func newDownCmd() *cobra.Command {
	var pf projectFlags
	var volumes bool
	cmd := &cobra.Command{
		Use:   "down [-f Tiltfile] [--volumes] [-- ARGS]",
		Short: "Stop a running `loop up` of the project, then remove the containers and networks it created (and named volumes with --volumes)",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, tiltArgs := splitArgs(cmd, args)
			// A daemon left running would start again what down removes.
			path, err := pf.tiltfilePath()
			if err != nil {
				return err
			}
			if _, err := stopRunning(cmd.Context(), path, cmd.OutOrStdout()); err != nil {
				return err
			}
			h := newHeadless(cmd.OutOrStdout())
			return daemon.Down(cmd.Context(), daemon.Options{
				Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, NoBuiltinExtensions: pf.noBuiltinExts, Sink: h.event,
			}, volumes)
		},
	}
	pf.register(cmd)
	cmd.Flags().BoolVar(&volumes, "volumes", false, "also remove named volumes")
	return cmd
}
