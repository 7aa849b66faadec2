package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/client"
)

// Exit codes of `loop wait` beyond exitOK and exitFailure.
const (
	exitTimeout  = 3 // the wait's --timeout passed first
	exitNoDaemon = 4 // no daemon answered
)

// exitError ends the program with code after printing err (when not nil).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func newWaitCmd() *cobra.Command {
	var cf clientFlags
	var output string
	var timeout time.Duration
	var lines int
	cmd := &cobra.Command{
		Use:   "wait [RESOURCE...] [--timeout D] [-o text|json] [-f Tiltfile]",
		Short: "Wait until every file change made before the call has reached its result, and print the verdict",
		Long: `wait returns once every file change saved before it was called has reached
its result on every resource it affects (RESOURCE..., or all): synced into the
running container and ready, rebuilt and ready, or failed. Changes still in
the watcher or the batcher count: the daemon writes a marker into a directory
of its own, watched by the same inotify instance, and waits for it to come
back before it looks at what is pending. With nothing changed it returns at
once with the current state.

The verdict lists, per resource the changes reached: the files, how they got
there (live, rebuild, local), the trace (phases and durations), the status
reached, the error, and the log lines the update produced (bounded by
--lines, with a count of what was left out). -o json prints it as JSON (see
docs/agents.md).

Exit codes: 0 every resource reached is ready; 1 one failed (named), or the
Tiltfile did not load; 2 wrong flags; 3 --timeout passed first; 4 no daemon
is running for the project.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			if timeout < 0 {
				return usageError{fmt.Errorf("--timeout %s: want a positive duration", timeout)}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			v, err := c.Wait(cmd.Context(), api.WaitRequest{Resources: args, Timeout: timeout, Client: "loop wait", Lines: lines})
			if err != nil {
				return waitError(&cf, err)
			}
			if err := printVerdict(cmd.OutOrStdout(), v, output == "json"); err != nil {
				return err
			}
			return verdictExit(v)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Minute, "give up after this long (exit 3); 0 waits as long as it takes")
	cmd.Flags().IntVar(&lines, "lines", 0, fmt.Sprintf("log lines per resource in the verdict (default %d, at most %d)", api.DefaultVerdictLines, api.MaxVerdictLines))
	return cmd
}

// waitError explains a failed call of a verdict-returning verb.
func waitError(cf *clientFlags, err error) error {
	if errors.Is(err, client.ErrUnavailable) {
		return exitError{exitNoDaemon, cf.explain(err)}
	}
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("%w (see `loop status`)", err)
	}
	return cf.explain(err)
}

// verdictExit maps a verdict to the exit code: the message names the first
// failure.
func verdictExit(v *api.Verdict) error {
	switch v.Result {
	case api.ResultFailed:
		return exitError{exitFailure, fmt.Errorf("%s failed: %s", v.Failed, firstLine(v.Error))}
	case api.ResultTimeout:
		var waiting []string
		for _, r := range v.Resources {
			if r.Note != "" && r.Phase != api.PhaseReady && r.Phase != api.PhaseError {
				waiting = append(waiting, r.Name+" ("+r.Note+")")
			}
		}
		return exitError{exitTimeout, fmt.Errorf("timed out waiting for %s", strings.Join(waiting, ", "))}
	case api.ResultPending:
		return exitError{exitTimeout, errors.New("the change's updates have not finished")}
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// printVerdict prints a verdict as JSON or as text: one line per resource,
// then the log lines of those that failed.
func printVerdict(w io.Writer, v *api.Verdict, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("encode verdict: %w", err)
		}
		return nil
	}
	change := ""
	if v.Change != 0 {
		change = fmt.Sprintf(" (change %d)", v.Change)
	}
	fmt.Fprintf(w, "%s%s\n", v.Result, change)
	if v.ConfigError != "" {
		fmt.Fprintf(w, "Tiltfile error: %s\n", v.ConfigError)
	}
	for _, r := range v.Resources {
		fmt.Fprintf(w, "  %-20s %-12s %s\n", r.Name, phaseWord(r.Phase), updateSummary(r))
		if r.Error != "" {
			fmt.Fprintf(w, "    error: %s\n", firstLine(r.Error))
		}
		if r.Phase == api.PhaseError {
			for _, l := range r.Logs {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
	}
	return nil
}

// updateSummary is "live 12ms: 2 files (sync 5ms, run 3ms)" or the note.
func updateSummary(r api.ResourceVerdict) string {
	u := r.Update
	var b strings.Builder
	if r.Note != "" && r.Phase != api.PhaseReady {
		b.WriteString(r.Note)
	}
	if u == nil || !r.Affected {
		return b.String()
	}
	if b.Len() > 0 {
		b.WriteString("; ")
	}
	b.WriteString(string(u.Kind))
	if t := u.Total(); t > 0 {
		b.WriteString(" " + fmtDur(t))
	}
	if len(u.Paths) > 0 {
		b.WriteString(": " + strings.Join(u.Paths[:min(3, len(u.Paths))], ", "))
		if u.Files > 3 {
			fmt.Fprintf(&b, " and %d more", u.Files-3)
		}
	}
	if len(u.Spans) > 0 {
		parts := make([]string, len(u.Spans))
		for i, s := range u.Spans {
			parts[i] = string(s.Name) + " " + fmtDur(s.Duration)
		}
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}

func newChangesCmd() *cobra.Command {
	var cf clientFlags
	var output string
	var lines int
	cmd := &cobra.Command{
		Use:   "changes [ID] [-o text|json] [-f Tiltfile]",
		Short: "List the latest changes, or print one change's verdict",
		Long: `changes lists the latest changes the running daemon has finished (a batch of
saved files, a trigger or a Tiltfile load; newest first) with their result
and the resources they reached. With an ID it prints that change's verdict,
as ` + "`loop wait`" + ` does (exit 1 when a resource failed).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(args) == 1 {
				id, err := strconv.ParseUint(args[0], 10, 64)
				if err != nil {
					return usageError{fmt.Errorf("change ID %q: want a number (see `loop changes`)", args[0])}
				}
				v, err := c.Change(cmd.Context(), id, lines)
				if err != nil {
					return waitError(&cf, err)
				}
				if err := printVerdict(w, v, output == "json"); err != nil {
					return err
				}
				return verdictExit(v)
			}
			list, err := c.Changes(cmd.Context(), 0)
			if err != nil {
				return waitError(&cf, err)
			}
			if output == "json" {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			for _, ch := range list {
				fmt.Fprintf(w, "%6d  %s  %-8s %s\n", ch.ID, ch.Time.Local().Format("15:04:05"), ch.Result, strings.Join(ch.Resources, " "))
			}
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().IntVar(&lines, "lines", 0, fmt.Sprintf("log lines per resource in a verdict (default %d)", api.DefaultVerdictLines))
	return cmd
}
