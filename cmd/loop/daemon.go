package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/loop-dev/loop/daemon"
	"github.com/loop-dev/loop/daemon/client"
)

func newDaemonCmd() *cobra.Command {
	var pf projectFlags
	var listen string
	cmd := &cobra.Command{
		Use:   "daemon [-f Tiltfile] [--listen 127.0.0.1:PORT] [RESOURCE...] [-- ARGS]",
		Short: "Run the project's daemon without a UI, serving the local API (attach with `loop ui`)",
		Long: `Run the project's daemon without a UI. It serves the local API on a unix
socket in the project's state directory ($LOOP_STATE_DIR, else
$XDG_STATE_HOME/loop, else ~/.local/state/loop), mode 0600, and on a loopback
TCP address only with --listen (requests there need the token the daemon
writes next to the socket). Events are logged to stdout as ` + "`loop up --headless`" + ` does.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			only, tiltArgs := splitArgs(cmd, args)
			h := newHeadless(cmd.OutOrStdout())
			d := daemon.New(daemon.Options{
				Tiltfile: pf.file, Args: tiltArgs, ExtensionsDir: pf.extensionsDir, NoBuiltinExtensions: pf.noBuiltinExts, Only: only, Sink: h.event,
			})
			return d.Serve(cmd.Context(), daemon.ServeOptions{Listen: listen, Ready: func(sock string) {
				fmt.Fprintf(cmd.ErrOrStderr(), "loop daemon: serving %s\n", sock)
			}})
		},
	}
	pf.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "", "also serve the API on this loopback TCP address (127.0.0.1:PORT); needs the token file")
	return cmd
}

// clientFlags say how a client verb reaches the daemon.
type clientFlags struct {
	projectFlags
	addr string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	f.projectFlags.register(cmd)
	cmd.Flags().StringVar(&f.addr, "addr", "", "reach the daemon on this loopback TCP address (started with --listen) instead of its socket")
}

func (f *clientFlags) client() (*client.Client, error) {
	path, err := f.tiltfilePath()
	if err != nil {
		return nil, err
	}
	if f.addr != "" {
		tf, err := daemon.TokenPath(path)
		if err != nil {
			return nil, err
		}
		tok, err := os.ReadFile(tf)
		if err != nil {
			return nil, fmt.Errorf("read the API token: %w", err)
		}
		return client.New(client.Options{Addr: f.addr, Token: strings.TrimSpace(string(tok))}), nil
	}
	sock, err := daemon.SocketPath(path)
	if err != nil {
		return nil, err
	}
	return client.New(client.Options{Socket: sock}), nil
}

// explain turns "no daemon" into what to do about it.
func (f *clientFlags) explain(err error) error {
	if errors.Is(err, client.ErrUnavailable) {
		return fmt.Errorf("no loop daemon is running for %s (start one with `loop up` or `loop daemon`): %w", f.file, err)
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
