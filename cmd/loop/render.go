package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/k8s/render"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

func newRenderCmd() *cobra.Command {
	var (
		pf     projectFlags
		outDir string
		images []string
	)
	cmd := &cobra.Command{
		Use:   "render [-f Tiltfile] [--out DIR] [--image NAME=REF]... [-- ARGS]",
		Short: "Render the Tiltfile's Kubernetes manifests (k8s_yaml, kustomize, helm) as a config repo would receive them",
		Long: `render loads the Tiltfile and renders its Kubernetes sources the way Argo CD's
repo server does (Kustomize and Helm in process), substituting image refs given
with --image NAME=REF in pod templates and k8s_kind paths. Without --out it prints
one YAML stream; with --out it writes one file per object, NAMESPACE/KIND-NAME.yaml.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("render takes no arguments before --, got %q", pos)}
			}
			refs := render.Images{}
			for _, im := range images {
				name, ref, ok := strings.Cut(im, "=")
				if !ok || name == "" || ref == "" {
					return usageError{fmt.Errorf("--image wants NAME=REF, got %q", im)}
				}
				refs[name] = ref
			}
			path, err := pf.tiltfilePath()
			if err != nil {
				return err
			}
			conf, err := tiltfile.Load(cmd.Context(), path, tiltfile.Options{Args: tiltArgs, ExtensionsDir: pf.extensionsDir, Subcommand: "render"})
			if err != nil {
				return err
			}
			objs, err := render.Config(cmd.Context(), conf, refs)
			if err != nil {
				return err
			}
			if outDir == "" {
				b, err := render.Encode(objs)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			written, err := render.WriteDir(outDir, objs)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d files under %s\n", len(written), outDir)
			return nil
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&outDir, "out", "", "write one file per object under DIR instead of printing")
	cmd.Flags().StringArrayVar(&images, "image", nil, "NAME=REF: use REF wherever the image NAME is referenced (repeatable)")
	return cmd
}
