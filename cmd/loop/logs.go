package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/client"
)

func newLogsCmd() *cobra.Command {
	var cf clientFlags
	var o client.LogsOptions
	cmd := &cobra.Command{
		Use:   "logs [RESOURCE] [-f] [--tail N] [--since D] [--file Tiltfile]",
		Short: "Print a resource's log lines (every resource's without RESOURCE) from the running daemon",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
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
			for l := range st.C {
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
	return cmd
}
