package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/client"
)

func newLogsCmd() *cobra.Command {
	var cf clientFlags
	var o client.LogsOptions
	var output string
	cmd := &cobra.Command{
		Use:   "logs [RESOURCE] [-f] [--tail N] [--since D|--since-change ID] [--grep RE] [-o text|json] [--file Tiltfile]",
		Short: "Print a resource's log lines (every resource's without RESOURCE) from the running daemon",
		Long: `logs prints the log lines the running daemon holds (the last 2000 per
resource): build output, run steps, commands and the services' output.
--since keeps lines newer than a duration or time, --since-change those from
the first update of a change on (see ` + "`loop changes`" + `), --grep those matching a
regular expression (RE2), and --tail the last N of what is left. -o json
prints one JSON object per line (seq, time, resource, text).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			if len(args) == 1 {
				o.Resource = args[0]
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			st, err := c.Logs(cmd.Context(), o)
			if err != nil {
				return cf.explain(err)
			}
			h := newHeadless(cmd.OutOrStdout())
			enc := json.NewEncoder(cmd.OutOrStdout())
			for l := range st.C {
				if output == "json" {
					if err := enc.Encode(l); err != nil {
						return fmt.Errorf("write logs: %w", err)
					}
					continue
				}
				if o.Resource != "" {
					fmt.Fprintln(cmd.OutOrStdout(), l.Text)
				} else {
					h.line(l.Resource, l.Text)
				}
			}
			return cf.explain(st.Err())
		},
	}
	// Here -f follows (as tail -f, docker logs -f); the Tiltfile is --file.
	cmd.Flags().StringVar(&cf.file, "file", "Tiltfile", "path of the Tiltfile")
	cmd.Flags().StringVar(&cf.addr, "addr", "", "reach the daemon on this loopback TCP address (started with --listen) instead of its socket")
	cmd.Flags().BoolVarP(&o.Follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().IntVar(&o.Tail, "tail", 0, "print only the last N stored lines (0: all)")
	cmd.Flags().StringVar(&o.Since, "since", "", "print only lines newer than a duration (5m) or an RFC 3339 time")
	cmd.Flags().Uint64Var(&o.Change, "since-change", 0, "print only lines from the first update of this change on (see `loop changes`)")
	cmd.Flags().StringVar(&o.Grep, "grep", "", "print only lines matching this regular expression (RE2)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (one object per line)")
	return cmd
}
