package compose

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// ContainerInfo describes one container of a project.
type ContainerInfo struct {
	ID      string
	Name    string
	Service string
	Image   string
	// State is the engine's state: created, running, exited, ...
	State string
	// Status is the engine's human status, e.g. "Up 3 seconds (healthy)".
	Status     string
	ConfigHash string
	Created    time.Time
	// Managed is true when loop created the container.
	Managed bool
}

// Containers lists the containers of a project, loop's and the compose
// CLI's alike (they share labels), one-off containers excluded.
func (c *Controller) Containers(ctx context.Context, projectName string) ([]ContainerInfo, error) {
	list, err := c.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelProject+"="+projectName),
		filters.Arg("label", LabelOneoff+"=False"),
	)})
	if err != nil {
		return nil, fmt.Errorf("list containers of project %s: %w", projectName, err)
	}
	out := make([]ContainerInfo, 0, len(list))
	for _, s := range list {
		info := ContainerInfo{
			ID:         s.ID,
			Service:    s.Labels[LabelService],
			Image:      s.Image,
			State:      string(s.State),
			Status:     s.Status,
			ConfigHash: s.Labels[LabelConfigHash],
			Created:    time.Unix(s.Created, 0),
			Managed:    s.Labels[LabelManaged] == "true",
		}
		if len(s.Names) > 0 {
			info.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		out = append(out, info)
	}
	return out, nil
}

// WaitReady waits until the container runs and, when it has a healthcheck,
// is healthy. A container that exited with code 0 counts as ready (a one-shot
// service that did its job); a non-zero exit or an unhealthy status is an
// error. ctx bounds the wait.
func (c *Controller) WaitReady(ctx context.Context, containerID string) error {
	err := c.poll(ctx, func() error {
		insp, err := c.cli.ContainerInspect(ctx, containerID)
		if err != nil {
			return fmt.Errorf("inspect: %w", err)
		}
		st := insp.State
		switch {
		case st == nil:
			return errNotYet
		case st.Status == container.StateExited || st.Status == container.StateDead:
			if st.ExitCode == 0 && !startedAtZero(st.StartedAt) {
				return nil
			}
			if startedAtZero(st.StartedAt) {
				return errNotYet
			}
			return fmt.Errorf("container exited with code %d", st.ExitCode)
		case !st.Running:
			return errNotYet
		case st.Health == nil || st.Health.Status == container.NoHealthcheck:
			return nil
		case st.Health.Status == container.Healthy:
			return nil
		case st.Health.Status == container.Unhealthy:
			return errors.New("container is unhealthy")
		default:
			return errNotYet
		}
	})
	if err != nil {
		return fmt.Errorf("wait for container %s: %w", shortID(containerID), err)
	}
	return nil
}

// Down removes a project's containers (stopped gracefully, in parallel) and
// networks, found by the Compose project label, so it also removes what the
// compose CLI created for that project. Named volumes (and the containers'
// anonymous volumes) are removed only when removeVolumes is set. External
// networks and volumes carry no project label and are never touched.
func (c *Controller) Down(ctx context.Context, projectName string, removeVolumes bool) error {
	projectFilter := filters.Arg("label", LabelProject+"="+projectName)
	list, err := c.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(projectFilter)})
	if err != nil {
		return fmt.Errorf("down %s: list containers: %w", projectName, err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, ctr := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.remove(ctx, ctr.ID, removeVolumes); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("container %s: %w", shortID(ctr.ID), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("down %s: %w", projectName, errors.Join(errs...))
	}

	nets, err := c.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(projectFilter)})
	if err != nil {
		return fmt.Errorf("down %s: list networks: %w", projectName, err)
	}
	for _, n := range nets {
		if err := c.cli.NetworkRemove(ctx, n.ID); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("network %s: %w", n.Name, err))
		}
	}
	if removeVolumes {
		vols, err := c.cli.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(projectFilter)})
		if err != nil {
			return fmt.Errorf("down %s: list volumes: %w", projectName, err)
		}
		for _, v := range vols.Volumes {
			if err := c.cli.VolumeRemove(ctx, v.Name, false); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("down %s: %w", projectName, errors.Join(errs...))
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
