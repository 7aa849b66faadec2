package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/model"
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
			return writeAs(cmd.OutOrStdout(), output, "config", conf)
		},
	}
	pf.register(cfg)
	cfg.Flags().StringVarP(&output, "output", "o", "json", "output format: json or yaml")
	dump.AddCommand(cfg)

	var rpf projectFlags
	var routput string
	res := &cobra.Command{
		Use:   "resources [-f Tiltfile] [--output json|yaml] [-- ARGS]",
		Short: "Load the Tiltfile and print the resources loop up would run: name, type, Kubernetes objects or Compose service or commands, images and their live_update, resource_deps, links, labels, trigger mode",
		Long: `Load the Tiltfile and assemble its resources as loop up does, without Docker or a
cluster: local_resource commands, Compose services (compose files read), Kubernetes
objects (rendered and grouped by workload as Tilt groups them), the images each builds
with their live_update (checked as Tilt checks it). Prints {"resources": [...]}.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("dump resources takes no arguments before --, got %q", pos)}
			}
			if routput != "json" && routput != "yaml" {
				return usageError{fmt.Errorf("--output must be json or yaml, got %q", routput)}
			}
			conf, err := rpf.load(cmd.Context(), "dump", tiltArgs)
			if err != nil {
				return err
			}
			resources, err := daemon.Resources(cmd.Context(), conf)
			if err != nil {
				return err
			}
			if resources == nil {
				resources = []model.Resource{}
			}
			return writeAs(cmd.OutOrStdout(), routput, "resources", struct {
				Resources []model.Resource `json:"resources"`
			}{resources})
		},
	}
	rpf.register(res)
	res.Flags().StringVarP(&routput, "output", "o", "json", "output format: json or yaml")
	dump.AddCommand(res)
	return dump
}

// writeAs writes v as indented JSON or as YAML; what names it in errors.
func writeAs(w io.Writer, format, what string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // commands keep their > and &
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	b := buf.Bytes()
	if format == "yaml" {
		var err error
		if b, err = yaml.JSONToYAML(b); err != nil {
			return fmt.Errorf("encode %s as yaml: %w", what, err)
		}
	}
	_, err := w.Write(b)
	return err
}
