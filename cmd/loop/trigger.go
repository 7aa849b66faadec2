package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/client"
)

func newTriggerCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "trigger [-f Tiltfile] RESOURCE",
		Short: "Update a resource now on the running daemon",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client()
			if err != nil {
				return err
			}
			if err := c.Trigger(cmd.Context(), args[0]); err != nil {
				if errors.Is(err, client.ErrNotFound) {
					return fmt.Errorf("trigger %s: no such resource (see `loop status`)", args[0])
				}
				return cf.explain(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "triggered %s\n", args[0])
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}
