package main

import (
	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/tui"
)

func newUICmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "ui [-f Tiltfile]",
		Short: "Attach the terminal UI to the project's running daemon (q leaves it running)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			return tui.Run(cmd.Context(), c, tui.Options{})
		},
	}
	cf.register(cmd)
	return cmd
}
