package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/devcontainer"
)

// devcontainerFlags say which workspace and config a devcontainer verb uses.
type devcontainerFlags struct {
	workspace string
	config    string
}

func (f *devcontainerFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.workspace, "workspace-folder", ".", "the workspace folder (its .devcontainer/ holds the config)")
	cmd.Flags().StringVar(&f.config, "config", "", "the devcontainer.json to use (default: found under the workspace folder)")
}

// runner loads the config and connects a devcontainer.Runner to Docker.
func (f *devcontainerFlags) runner(cmd *cobra.Command) (*devcontainer.Runner, *devcontainer.Config, func(), error) {
	cfg, err := devcontainer.Load(devcontainer.LoadOptions{WorkspaceFolder: f.workspace, ConfigPath: f.config})
	if err != nil {
		return nil, nil, nil, err
	}
	cli, err := daemon.Docker(cmd.Context())
	if err != nil {
		return nil, nil, nil, err
	}
	r := devcontainer.NewRunner(cli, daemon.DevcontainerBuilder(cli))
	r.Out = cmd.ErrOrStderr()
	// Inside a container of the same engine, bind sources are host paths.
	mapPath, desc, err := daemon.MapHostPath(cmd.Context(), cli)
	switch {
	case err != nil:
		fmt.Fprintln(cmd.ErrOrStderr(), "loop: host-path mapping inactive:", err)
	case desc != "":
		r.MapPath = mapPath
		fmt.Fprintln(cmd.ErrOrStderr(), "loop:", desc)
	}
	return r, cfg, func() { _ = cli.Close() }, nil
}

func newDevcontainerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "devcontainer",
		Short: "Run this workspace's .devcontainer/devcontainer.json on the Docker engine (up, exec, down)",
	}
	cmd.AddCommand(newDevcontainerUpCmd(), newDevcontainerExecCmd(), newDevcontainerDownCmd())
	return cmd
}

func newDevcontainerUpCmd() *cobra.Command {
	var f devcontainerFlags
	var up bool
	cmd := &cobra.Command{
		Use:   "up [--workspace-folder DIR] [--config PATH] [--up [-- UP-ARGS]]",
		Short: "Create (or reuse) the dev container and run its lifecycle commands (--up: and start loop up inside it)",
		Long: `Create (or reuse) the dev container and run its lifecycle commands.

With --up, loop then copies itself into the container and starts ` + "`loop up --detach`" + `
there (arguments after -- go to it), in the workspace folder as the remote user,
and returns once that loop answers; ` + "`loop devcontainer down`" + ` stops it with
` + "`loop down`" + ` before removing the container. An image that has loop installed can
run ` + "`loop up --detach`" + ` from postStartCommand instead.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 && !up {
				return usageError{fmt.Errorf("unexpected arguments %q (arguments after -- go to loop up, with --up)", args)}
			}
			r, cfg, done, err := f.runner(cmd)
			if err != nil {
				return err
			}
			defer done()
			res, err := r.Up(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			state := "reused"
			if res.Created {
				state = "created"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "dev container %s %s (image %s, workspace %s, user %q)\n",
				res.ContainerID[:12], state, res.Image, res.WorkspaceFolder, res.RemoteUser)
			if !up {
				return nil
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find loop's own binary: %w", err)
			}
			r.Out = cmd.OutOrStdout()
			return r.StartLoop(cmd.Context(), cfg, self, args)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&up, "up", false, "then start `loop up --detach` inside the container and wait until it answers")
	return cmd
}

func newDevcontainerExecCmd() *cobra.Command {
	var f devcontainerFlags
	cmd := &cobra.Command{
		Use:   "exec [--workspace-folder DIR] [--config PATH] [--] CMD [ARG...]",
		Short: "Run a command in the dev container, in the workspace folder, as the remote user",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, cfg, done, err := f.runner(cmd)
			if err != nil {
				return err
			}
			defer done()
			// The command's exit code becomes loop's.
			code, err := r.Exec(cmd.Context(), cfg, args, os.Stdin, cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if code != 0 {
				done()
				os.Exit(code)
			}
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	f.register(cmd)
	return cmd
}

func newDevcontainerDownCmd() *cobra.Command {
	var f devcontainerFlags
	cmd := &cobra.Command{
		Use:   "down [--workspace-folder DIR] [--config PATH]",
		Short: "Remove the dev container (and its anonymous volumes)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, cfg, done, err := f.runner(cmd)
			if err != nil {
				return err
			}
			defer done()
			n, err := r.Down(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if n == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no dev container for", cfg.LocalWorkspaceFolder)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d dev container(s)\n", n)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
