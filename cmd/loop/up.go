package main

import (
	"errors"
	"fmt"
	"time"

	"context"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
)

func newUpCmd() *cobra.Command {
	var pf projectFlags
	var headlessFlag bool
	cmd := &cobra.Command{
		Use:   "up [-f Tiltfile] [--headless] [RESOURCE...] [-- ARGS]",
		Short: "Build and start the project, then live-update or rebuild on every save (Ctrl-C stops)",
		RunE: func(cmd *cobra.Command, args []string) error {
			only, tiltArgs := splitArgs(cmd, args)
			if !headlessFlag {
				// The terminal UI arrives with the daemon API; until then up logs lines.
				fmt.Fprintln(cmd.ErrOrStderr(), "loop: the terminal UI is not available yet; logging to stdout (as --headless)")
			}
			h := newHeadless(cmd.OutOrStdout())
			return daemon.Up(cmd.Context(), daemon.Options{
				Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, Only: only, Sink: h.event,
			})
		},
	}
	pf.register(cmd)
	cmd.Flags().BoolVar(&headlessFlag, "headless", false, "log events and resource output as lines on stdout instead of the terminal UI")
	return cmd
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
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
			h := newHeadless(cmd.OutOrStdout())
			start := time.Now()
			err = daemon.CI(ctx, daemon.Options{
				Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, Only: only,
				Sink: func(ev api.Event) { h.event(ev); timing.Observe(ev) },
			})
			if err == nil && ctx.Err() != nil {
				err = ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("ci: not every resource was ready within %s", timeout)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loop ci: every resource ready in %s\n", fmtDur(time.Since(start)))
			return checkBudget(cmd.OutOrStdout(), budget, timing.Recent())
		},
	}
	pf.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "fail when not every resource is ready within this time")
	cmd.Flags().StringVar(&budgetSpec, "latency-budget", "", "fail when the run's change-to-result times exceed this budget, e.g. p95=2s,live.p50=50ms (see `loop metrics`)")
	return cmd
}

func newDownCmd() *cobra.Command {
	var pf projectFlags
	var volumes bool
	cmd := &cobra.Command{
		Use:   "down [-f Tiltfile] [--volumes] [-- ARGS]",
		Short: "Remove the containers and networks `loop up` created (and named volumes with --volumes)",
		RunE: func(cmd *cobra.Command, args []string) error {
			_, tiltArgs := splitArgs(cmd, args)
			h := newHeadless(cmd.OutOrStdout())
			return daemon.Down(cmd.Context(), daemon.Options{
				Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, Sink: h.event,
			}, volumes)
		},
	}
	pf.register(cmd)
	cmd.Flags().BoolVar(&volumes, "volumes", false, "also remove named volumes")
	return cmd
}
