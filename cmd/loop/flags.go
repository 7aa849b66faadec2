package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
)

// projectFlags are the flags every command that loads a Tiltfile shares.
type projectFlags struct {
	file          string
	extensionsDir string
}

func (f *projectFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "file", "f", "Tiltfile", "path of the Tiltfile")
	cmd.Flags().StringVar(&f.extensionsDir, "extensions-dir", os.Getenv("LOOP_EXTENSIONS_DIR"),
		"directory that load('ext://NAME') resolves from (default: $LOOP_EXTENSIONS_DIR, else the user's data dir)")
}

// tiltfilePath returns the absolute Tiltfile path.
func (f *projectFlags) tiltfilePath() (string, error) {
	return filepath.Abs(f.file)
}

// splitArgs separates positional arguments from those after `--`, which go
// to the Tiltfile's config.parse.
func splitArgs(cmd *cobra.Command, args []string) (positional, tiltArgs []string) {
	if n := cmd.ArgsLenAtDash(); n >= 0 {
		return args[:n], args[n:]
	}
	return args, nil
}
