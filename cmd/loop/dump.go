package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

func newDumpCmd() *cobra.Command {
	dump := &cobra.Command{
		Use:   "dump",
		Short: "Print what loop understood of the project",
	}
	var pf projectFlags
	var output string
	cfg := &cobra.Command{
		Use:   "config [-f Tiltfile] [--output json|yaml] [-- ARGS]",
		Short: "Load the Tiltfile and print the model: resources, images, live-update steps, compose projects, Kubernetes sources, settings, files read",
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("dump config takes no arguments before --, got %q", pos)}
			}
			if output != "json" && output != "yaml" {
				return usageError{fmt.Errorf("--output must be json or yaml, got %q", output)}
			}
			conf, err := pf.load(cmd.Context(), "dump", tiltArgs)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(conf, "", "  ")
			if err != nil {
				return fmt.Errorf("encode config: %w", err)
			}
			if output == "yaml" {
				if b, err = yaml.JSONToYAML(b); err != nil {
					return fmt.Errorf("encode config as yaml: %w", err)
				}
			} else {
				b = append(b, '\n')
			}
			_, err = cmd.OutOrStdout().Write(b)
			return err
		},
	}
	pf.register(cfg)
	cfg.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	dump.AddCommand(cfg)
	return dump
}
