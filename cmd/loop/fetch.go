package main

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/starlark/tiltfile"
)

// maxFetches bounds `loop fetch`: each round fetches one thing a load needs
// and loads again; a Tiltfile needing more than this is not converging.
const maxFetches = 50

func newFetchCmd() *cobra.Command {
	var pf projectFlags
	cmd := &cobra.Command{
		Use:   "fetch [-f Tiltfile] [-- ARGS]",
		Short: "Download the extension repositories and Helm charts the Tiltfile needs and this machine lacks",
		Long: `Load the Tiltfile and download what it needs from the network: extension
repositories of load('ext://...') (cloned with git into the extension store,
as Tilt stores them) and charts of helm_resource() / helm_remote() from a chart
repository or an OCI registry (pulled with the Helm SDK into the chart cache).
Loading itself never uses the network, so loop up, loop ci and every reload
stay local; a load that needs something missing says to run loop fetch.
Each download lands whole or not at all. It loads as loop up does
(config.tilt_subcommand is "up").`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("fetch takes no arguments before --, got %q", pos)}
			}
			path, err := pf.tiltfilePath()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var fetched []string
			for range maxFetches {
				_, err := tiltfile.Load(cmd.Context(), path, tiltfile.Options{Args: tiltArgs, ExtensionsDir: pf.extensionsDir,
					NoBuiltinExtensions: pf.noBuiltinExts, Subcommand: "up", Output: io.Discard})
				var m *tiltfile.Missing
				if !errors.As(err, &m) {
					if err != nil {
						return fmt.Errorf("fetch: the Tiltfile does not load for another reason: %w", err)
					}
					if len(fetched) == 0 {
						fmt.Fprintln(out, "nothing to fetch: the Tiltfile loads with what is on this machine")
					}
					return nil
				}
				key := m.Kind + " " + m.Dest
				if slices.Contains(fetched, key) {
					return fmt.Errorf("fetch: %s %s is still missing after it was fetched into %s", m.Kind, m.Name, m.Dest)
				}
				fmt.Fprintf(out, "fetching %s %s from %s into %s\n", m.Kind, m.Name, m.URL, m.Dest)
				if err := tiltfile.Fetch(cmd.Context(), m, cmd.ErrOrStderr()); err != nil {
					return err
				}
				fetched = append(fetched, key)
			}
			return fmt.Errorf("fetch: the Tiltfile still needs more after %d downloads", maxFetches)
		},
	}
	pf.register(cmd)
	return cmd
}
