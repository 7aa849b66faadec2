package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/loop-dev/loop/daemon/gitops/render"
)

func newRenderCmd() *cobra.Command {
	var (
		pf     projectFlags
		outDir string
		images []string
	)
	cmd := &cobra.Command{
		Use:   "render [-f Tiltfile] [--out DIR] [--image NAME=REF]... [-- ARGS]",
		Short: "Render the Tiltfile's Kubernetes manifests (k8s_yaml, kustomize, helm, Argo CD apps) as a config repo would receive them",
		Long: `render loads the Tiltfile and renders its Kubernetes sources the way Argo CD's
repo server does (Kustomize and Helm in process): the Tiltfile's own k8s_yaml,
kustomize and helm objects, and every Application that argocd_app declares or an
argocd_appset generates, each with its destination namespace on namespaced objects.
Image refs given with --image NAME=REF are substituted in pod templates and
k8s_kind paths. Without --out it prints one YAML stream; with --out it writes one
file per object: the Tiltfile's own as NAMESPACE/KIND-NAME.yaml, each Argo CD app's
under its app name, APP/NAMESPACE/KIND-NAME.yaml.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			pos, tiltArgs := splitArgs(cmd, args)
			if len(pos) > 0 {
				return usageError{fmt.Errorf("render takes no arguments before --, got %q", pos)}
			}
			refs, err := imageFlags(images)
			if err != nil {
				return err
			}
			conf, err := pf.load(cmd.Context(), "render", tiltArgs)
			if err != nil {
				return err
			}
			apps, err := render.Apps(cmd.Context(), conf, refs)
			if err != nil {
				return err
			}
			for _, a := range apps {
				render.DefaultNamespace(a.Objects, a.Namespace)
			}
			if outDir == "" {
				var objs []*unstructured.Unstructured
				for _, a := range apps {
					objs = append(objs, a.Objects...)
				}
				b, err := render.Encode(objs)
				if err != nil {
					return err
				}
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return writeApps(cmd, outDir, apps)
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&outDir, "out", "", "write one file per object under DIR instead of printing")
	cmd.Flags().StringArrayVar(&images, "image", nil, "NAME=REF: use REF wherever the image NAME is referenced (repeatable)")
	return cmd
}

// imageFlags reads --image NAME=REF flags.
func imageFlags(images []string) (render.Images, error) {
	refs := render.Images{}
	for _, im := range images {
		name, ref, ok := strings.Cut(im, "=")
		if !ok || name == "" || ref == "" {
			return nil, usageError{fmt.Errorf("--image wants NAME=REF, got %q", im)}
		}
		refs[name] = ref
	}
	return refs, nil
}

// writeApps writes the Tiltfile's own objects at the top of dir and each Argo CD app's
// under dir/APP, refusing an app name that is also a namespace directory there.
func writeApps(cmd *cobra.Command, dir string, apps []*render.App) error {
	top := map[string]bool{}
	for _, a := range apps {
		if a.Tool != render.ToolTiltfile {
			continue
		}
		for _, o := range a.Objects {
			ns := o.GetNamespace()
			if ns == "" {
				ns = "_unnamespaced"
			}
			top[ns] = true
		}
	}
	for _, a := range apps {
		if a.Tool == render.ToolTiltfile {
			continue
		}
		if a.Name == "." || a.Name == ".." || strings.ContainsAny(a.Name, `/\`) {
			return fmt.Errorf("render: app name %q cannot be a directory name", a.Name)
		}
		if top[a.Name] {
			return fmt.Errorf("render: Argo CD app %q would share %s with the Tiltfile's objects in namespace %q; rename one",
				a.Name, filepath.Join(dir, a.Name), a.Name)
		}
	}
	total := 0
	for _, a := range apps {
		sub := dir
		if a.Tool != render.ToolTiltfile {
			sub = filepath.Join(dir, a.Name)
		}
		written, err := render.WriteDir(sub, a.Objects)
		if err != nil {
			return err
		}
		total += len(written)
		if a.Tool != render.ToolTiltfile {
			fmt.Fprintf(cmd.ErrOrStderr(), "app %s (%s %s): %d files under %s\n", a.Name, a.Tool, a.Path, len(written), sub)
		}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d files under %s\n", total, dir)
	return nil
}
