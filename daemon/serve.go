package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/server"
	"github.com/loop-dev/loop/daemon/metrics"
	"github.com/loop-dev/loop/daemon/statedir"
)

// SocketPath returns the API socket of the project whose main Tiltfile is
// tiltfile (creating its state directory).
func SocketPath(tiltfile string) (string, error) {
	dir, err := statedir.For(tiltfile)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, api.SocketName), nil
}

// TokenPath returns the file holding the project's TCP API token.
func TokenPath(tiltfile string) (string, error) {
	dir, err := statedir.For(tiltfile)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, api.TokenName), nil
}

// ServeOptions add the local API to a run.
type ServeOptions struct {
	// Listen is an optional loopback TCP address (127.0.0.1:PORT); empty: unix socket only.
	Listen string
	// LogLines is how many lines per resource the API keeps (default 2000).
	LogLines int
	// Metrics and Prometheus serve /v1/metrics and /metrics when set.
	Metrics, Prometheus http.Handler
	// Ready is called once the API accepts connections, with the socket path.
	Ready func(socket string)
}

// Serve is Run with the local API: it serves the project's socket (and the
// TCP address when asked) while the daemon runs, and stops serving when Run
// returns. It fails at once if another daemon serves the same project.
func (d *Daemon) Serve(ctx context.Context, so ServeOptions) error {
	abs, err := filepath.Abs(d.o.Tiltfile)
	if err != nil {
		return err
	}
	sock, err := SocketPath(abs)
	if err != nil {
		return err
	}
	tok, err := TokenPath(abs)
	if err != nil {
		return err
	}
	docker := os.Getenv("DOCKER_HOST")
	if docker == "" {
		docker = "unix:///var/run/docker.sock"
	}
	if so.Metrics == nil {
		so.Metrics = d.lazyMetrics(func(m *metrics.Store) http.Handler { return m.Handler() })
	}
	if so.Prometheus == nil {
		so.Prometheus = d.lazyMetrics(func(m *metrics.Store) http.Handler { return m.PrometheusHandler() })
	}
	// POST /v1/stop ends Run as Ctrl-C would.
	ctx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	srv, err := server.Listen(server.Options{
		Socket: sock, Listen: so.Listen, TokenFile: tok, Control: d, UnknownResource: ErrUnknownResource, Stop: stopRun,
		Info:     server.Info{Project: filepath.Base(filepath.Dir(abs)), Tiltfile: abs, Docker: docker},
		LogLines: so.LogLines, Metrics: so.Metrics, Prometheus: so.Prometheus,
	})
	if err != nil {
		return err
	}
	next := d.o.Sink
	d.o.Sink = func(ev api.Event) {
		srv.Sink(ev)
		if next != nil {
			next(ev)
		}
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	if so.Ready != nil {
		so.Ready(sock)
	}
	err = d.Run(ctx)
	stop()
	if serr := <-served; err == nil {
		err = serr
	}
	return err
}

// lazyMetrics serves a handler of the timing store, which exists only once
// Run has set the project up.
func (d *Daemon) lazyMetrics(h func(*metrics.Store) http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := d.Metrics()
		if m == nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(api.Error{Error: "metrics: the daemon is still starting"})
			return
		}
		h(m).ServeHTTP(w, r)
	})
}
