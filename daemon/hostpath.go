package daemon

import (
	"context"
	"time"

	"github.com/docker/docker/client"

	"github.com/loop-dev/loop/daemon/api"
	"github.com/loop-dev/loop/daemon/internal/hostpath"
)

// hostPaths detects whether loop runs inside a container of the engine cli
// talks to, and says so in the run's header when paths are mapped (or
// mapping was turned off). A detection failure is reported and maps
// nothing: it must not stop the run.
func (d *Daemon) hostPaths(ctx context.Context, cli *client.Client) *hostpath.Mapper {
	m, err := hostpath.Detect(ctx, cli)
	text := ""
	switch {
	case err != nil:
		text = "host-path mapping inactive: " + err.Error()
		m = nil
	case m.Active() || m.Off():
		text = m.String()
	}
	if text != "" && d.o.Sink != nil {
		d.o.Sink(api.Event{Time: time.Now(), Kind: api.EventLog, Resource: "loop", Text: text})
	}
	return m
}

// MapHostPath returns the function that turns a local path into the Docker
// engine's path (identity unless loop runs in a container of that engine)
// and a one-line description when paths are mapped or mapping is off
// (empty otherwise), for `loop devcontainer`.
func MapHostPath(ctx context.Context, cli *client.Client) (func(string) string, string, error) {
	m, err := hostpath.Detect(ctx, cli)
	if err != nil {
		return nil, "", err
	}
	if !m.Active() && !m.Off() {
		return m.ToHost, "", nil
	}
	return m.ToHost, m.String(), nil
}
