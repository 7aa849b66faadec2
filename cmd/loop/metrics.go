package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/daemon/statedir"
)

func newMetricsCmd() *cobra.Command {
	var pf projectFlags
	var asJSON bool
	var since time.Duration
	cmd := &cobra.Command{
		Use:   "metrics [-f Tiltfile] [--json] [--since D]",
		Short: "Change-to-result percentiles per resource and update kind, with where the time went",
		Long: `metrics reads the project's timing history (kept in its state directory by
every loop up and loop ci; no running daemon is needed) and prints, per
resource and update kind, how long a change took to reach a running result:
p50 and p95, and the mean time per phase:

  batch    first file event read → batch handed to the engine (watcher quiet period)
  queue    batch → update started (waiting for dependencies or a free slot)
  build, deploy, sync, run, restart, cmd   the update's own steps
  other    the rest: between steps, and waiting for readiness

The phases add up to the mean total.

Then chains: a save (or trigger, or load) followed across resources — a
local_resource's compile whose binary an image's live_update syncs is one
chain, from the save to the container being ready again. Per root path
pattern (main.go → *.go) and the resource the chain ended at: p50, p95,
and the mean per resource and phase of the critical path, where handoff
is the time between one resource's update and the next's batch.

--json prints the whole summary (p50/p90/p95/p99/max/mean and phases per
group, durations in nanoseconds).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since < 0 {
				return usageError{fmt.Errorf("--since %s: want a positive duration", since)}
			}
			tf, err := pf.tiltfilePath()
			if err != nil {
				return err
			}
			dir, err := statedir.For(tf)
			if err != nil {
				return err
			}
			var from time.Time
			if since > 0 {
				from = time.Now().Add(-since)
			}
			hist, err := metrics.ReadAll(dir, from)
			if err != nil {
				return err
			}
			sum := hist.Summary(from)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(sum)
			}
			printSummary(cmd.OutOrStdout(), sum)
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	cmd.Flags().DurationVar(&since, "since", 0, "only updates started within this long (e.g. 1h); default all history")
	return cmd
}

// printSummary prints one row per resource and kind, then one per kind
// over every resource when there is more than one resource.
func printSummary(w io.Writer, s api.MetricsSummary) {
	if s.Traces == 0 {
		fmt.Fprintln(w, "no updates recorded yet (run loop up or loop ci, then save a file)")
		return
	}
	resources := map[string]bool{}
	for _, g := range s.Groups {
		if g.Resource != "" {
			resources[g.Resource] = true
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tKIND\tCOUNT\tP50\tP95\tERRORS\tWHERE THE TIME WENT (mean)")
	for _, g := range s.Groups {
		switch {
		case g.Resource != "" && g.Kind != "":
		case g.Resource == "" && g.Kind != "" && len(resources) > 1:
		default:
			continue
		}
		res := g.Resource
		if res == "" {
			res = "(all)"
		}
		if g.Count == 0 {
			fmt.Fprintf(tw, "%s\t%s\t0\t-\t-\t%d\t\n", res, g.Kind, g.Errors)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%s\n", res, g.Kind, g.Count, fmtDur(g.P50), fmtDur(g.P95), g.Errors, phaseLine(g))
	}
	_ = tw.Flush()
	printChains(w, s.Chains)
}

// printChains prints one row per root pattern and end resource, then one
// per end resource over every root when there are several patterns.
func printChains(w io.Writer, groups []api.ChainStats) {
	roots := map[string]bool{}
	for _, g := range groups {
		if g.Root != "" {
			roots[g.Root] = true
		}
	}
	if len(roots) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHAIN (ROOT → END)\tCOUNT\tP50\tP95\tERRORS\tWHERE THE TIME WENT (mean)")
	for _, g := range groups {
		switch {
		case g.Root != "" && g.End != "":
		case g.Root == "" && g.End != "" && len(roots) > 1:
		default:
			continue
		}
		root := g.Root
		if root == "" {
			root = "(all)"
		}
		name := root + " → " + g.End
		if g.Count == 0 {
			fmt.Fprintf(tw, "%s\t0\t-\t-\t%d\t\n", name, g.Errors)
			continue
		}
		var parts []string
		for _, p := range g.Phases {
			if g.Mean > 0 && p.Duration*200 < g.Mean {
				continue
			}
			parts = append(parts, fmt.Sprintf("%s %s %s", p.Resource, p.Name, fmtDur(p.Duration)))
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\tmean %s = %s\n", name, g.Count, fmtDur(g.P50), fmtDur(g.P95), g.Errors, fmtDur(g.Mean), strings.Join(parts, " + "))
	}
	_ = tw.Flush()
}

// phaseLine renders the mean phases with their share of the mean total,
// leaving out phases under 0.5 % of it.
func phaseLine(g api.LatencyStats) string {
	var parts []string
	for _, p := range g.Phases {
		if g.Mean > 0 && p.Duration*200 < g.Mean {
			continue
		}
		pct := 0.0
		if g.Mean > 0 {
			pct = 100 * float64(p.Duration) / float64(g.Mean)
		}
		parts = append(parts, fmt.Sprintf("%s %s (%.0f%%)", p.Name, fmtDur(p.Duration), pct))
	}
	return fmt.Sprintf("mean %s = %s", fmtDur(g.Mean), strings.Join(parts, " + "))
}

// parseBudgetFlag parses --latency-budget; nil for an empty flag.
func parseBudgetFlag(spec string) (metrics.Budget, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	b, err := metrics.ParseBudget(spec)
	if err != nil {
		return nil, usageError{fmt.Errorf("--latency-budget: %w", err)}
	}
	return b, nil
}

// checkBudget prints every limit of the budget checked against the run's
// updates and fails naming those exceeded.
func checkBudget(w io.Writer, b metrics.Budget, traces []api.Trace, chains []api.Chain) error {
	if len(b) == 0 {
		return nil
	}
	results := b.Check(traces, chains)
	for _, r := range results {
		mark := "✓"
		if r.Exceeded() {
			mark = "✗"
		}
		fmt.Fprintf(w, "loop ci: latency %s %s\n", mark, r)
	}
	if ex := metrics.Exceeded(results); len(ex) > 0 {
		var names []string
		for _, r := range ex {
			names = append(names, fmt.Sprintf("%s (%s > %s)", r.Name, fmtDur(r.Got), fmtDur(r.Max)))
		}
		return fmt.Errorf("ci: latency budget exceeded: %s", strings.Join(names, ", "))
	}
	return nil
}
