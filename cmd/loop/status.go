package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/api"
)

func newStatusCmd() *cobra.Command {
	var cf clientFlags
	var output string
	cmd := &cobra.Command{
		Use:   "status [-f Tiltfile] [--output text|json]",
		Short: "Print the running daemon's resources and their last update",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			c, err := cf.client()
			if err != nil {
				return err
			}
			snap, err := c.State(cmd.Context(), 0)
			if err != nil {
				return cf.explain(err)
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				b, err := json.MarshalIndent(snap, "", "  ")
				if err != nil {
					return fmt.Errorf("encode status: %w", err)
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			if snap.ConfigError != "" {
				fmt.Fprintf(w, "Tiltfile error: %s\n", snap.ConfigError)
			}
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tSTATUS\tLAST UPDATE\tERROR")
			for _, r := range snap.Resources {
				last := "—"
				if u := r.LastUpdate; u != nil {
					last = string(u.Kind)
					if !u.Ready.IsZero() {
						last += " " + fmtDur(u.Total())
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Type, phaseWord(r.Phase), last, r.Error)
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func phaseWord(p api.Phase) string {
	switch p {
	case api.PhaseReady:
		return "● ready"
	case api.PhaseError:
		return "✗ error"
	case api.PhaseUpdating:
		return "… updating"
	default:
		return "○ " + string(p)
	}
}
