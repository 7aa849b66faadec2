package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/gitops"
)

// differsError makes `loop diff` exit 1 when something differs, like `kubectl diff`.
type differsError struct {
	n, total int
	context  string
}

func (e differsError) Error() string {
	return fmt.Sprintf("%d of %d objects differ from kube context %s", e.n, e.total, e.context)
}

func newDiffCmd() *cobra.Command {
	var (
		pf     projectFlags
		images []string
		output string
	)
	cmd := &cobra.Command{
		Use:   "diff [-f Tiltfile] [--image NAME=REF]... [-o text|json] [-- ARGS]",
		Short: "Show how the current kube context differs from what the Tiltfile renders (exit 1 when it does)",
		Long: `diff renders the Tiltfile as loop render does (the Tiltfile's own objects and
every Argo CD app), connects to the current kube context (a context that is not a
local cluster is refused unless the Tiltfile's allow_k8s_contexts names it) and, for
each object, compares the live object with what a server-side apply of the desired
one would make it (a dry run). It prints a unified diff of the two as YAML, without
status, managed fields, server-set metadata or loop's own tracking label and
annotation, for every object that differs, is missing, or was applied for an app
earlier and is no longer rendered (it would be pruned).

A docker_build image not given with --image is taken to be the one running: when the
live container runs a ref loop built for it (NAME:loop-..., or pushed to a registry,
REGISTRY/ESCAPED_NAME:loop-...), that ref is desired.

Exit codes: 0 when everything is in sync; 1 when something differs (stderr counts
it) or the comparison failed; 2 wrong flags or arguments.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("diff takes no arguments before --, got %q", pos)}
			}
			if output != "text" && output != "json" {
				return usageError{fmt.Errorf("--output must be text or json, got %q", output)}
			}
			refs, err := imageFlags(images)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			conf, err := pf.load(ctx, "diff", tiltArgs)
			if err != nil {
				return err
			}
			rep, err := gitops.Diff(ctx, conf, gitops.DiffOptions{Images: refs})
			if err != nil {
				return err
			}
			if rep.Apps == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "nothing to compare: the Tiltfile declares no Kubernetes objects")
				return nil
			}
			if err := printReport(cmd.OutOrStdout(), rep, output); err != nil {
				return err
			}
			if rep.Differ > 0 {
				return differsError{n: rep.Differ, total: len(rep.Objects), context: rep.Context}
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "in sync: %d objects in kube context %s\n", len(rep.Objects), rep.Context)
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringArrayVar(&images, "image", nil, "NAME=REF: use REF wherever the image NAME is referenced (repeatable)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text (unified diffs) or json")
	return cmd
}

func printReport(w io.Writer, rep *gitops.Report, output string) error {
	if output == "json" {
		if rep.Objects == nil {
			rep.Objects = []gitops.ObjectDiff{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	for _, od := range rep.Objects {
		if od.State == gitops.InSync {
			continue
		}
		if _, err := fmt.Fprintf(w, "# %s (app %s): %s\n%s", od.Key, od.App, od.State, od.Diff); err != nil {
			return err
		}
	}
	return nil
}
