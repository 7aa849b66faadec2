package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon/model"
	"github.com/loop-dev/loop/starlark/tiltfile"
)

// projectFlags are the flags every command that loads a Tiltfile shares.
type projectFlags struct {
	file          string
	extensionsDir string
	// noBuiltinExts loads the extensions loop has built-in versions of from
	// the extensions directory instead.
	noBuiltinExts bool
}

func (f *projectFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "Tiltfile", "path of the Tiltfile")
	cmd.Flags().StringVar(&f.extensionsDir, "extensions-dir", os.Getenv("LOOP_EXTENSIONS_DIR"),
		"extension store (a tilt_modules folder) or a checkout of tilt-extensions that load('ext://NAME') resolves from (default: $LOOP_EXTENSIONS_DIR, else ~/.local/share/loop/tilt_modules)")
	cmd.Flags().BoolVar(&f.noBuiltinExts, "no-builtin-extensions", false,
		"load the Starlark extensions where loop has built-in versions of them (restart_process, helm_resource, helm_remote)")
}

// tiltfilePath returns the absolute Tiltfile path.
func (f *projectFlags) tiltfilePath() (string, error) {
	return filepath.Abs(f.file)
}

// load runs the Tiltfile for the command sub, with tiltArgs for config.parse.
func (f *projectFlags) load(ctx context.Context, sub string, tiltArgs []string) (*model.Config, error) {
	path, err := f.tiltfilePath()
	if err != nil {
		return nil, err
	}
	return tiltfile.Load(ctx, path, tiltfile.Options{Args: tiltArgs, ExtensionsDir: f.extensionsDir, NoBuiltinExtensions: f.noBuiltinExts, Subcommand: sub})
}

// splitArgs separates positional arguments from those after `--`, which go
// to the Tiltfile's config.parse.
func splitArgs(cmd *cobra.Command, args []string) (positional, tiltArgs []string) {
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		return args[:n], args[n:]
	}
	return args, nil
}
