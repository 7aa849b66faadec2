package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// DockerAPI is the part of the Docker client the controller uses;
// *client.Client implements it.
type DockerAPI interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerStop(ctx context.Context, id string, options container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerLogs(ctx context.Context, id string, options container.LogsOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	NetworkList(ctx context.Context, options network.ListOptions) ([]network.Summary, error)
	NetworkCreate(ctx context.Context, name string, options network.CreateOptions) (network.CreateResponse, error)
	NetworkConnect(ctx context.Context, networkID, containerID string, config *network.EndpointSettings) error
	NetworkRemove(ctx context.Context, networkID string) error
	VolumeInspect(ctx context.Context, id string) (volume.Volume, error)
	VolumeCreate(ctx context.Context, options volume.CreateOptions) (volume.Volume, error)
	VolumeList(ctx context.Context, options volume.ListOptions) (volume.ListResponse, error)
	VolumeRemove(ctx context.Context, id string, force bool) error
}

var _ DockerAPI = (*client.Client)(nil)

// DefaultPollInterval is how often the controller re-inspects a container it
// waits for (dependency conditions, readiness). A local inspect costs about a
// millisecond, so a short interval costs little and keeps waits tight.
const DefaultPollInterval = 50 * time.Millisecond

// Controller converges Compose services on one Docker engine. It is safe for
// concurrent use: Up of different services may run in parallel (a service
// waits for its dependencies by watching their containers), but the caller
// must not run two Up calls for the same service at once.
type Controller struct {
	cli DockerAPI
	// PollInterval is the period of container state polling; set it before
	// first use.
	PollInterval time.Duration
	// MapPath, when non-nil, turns each bind mount source into the path the
	// engine sees (loop in a container talking to the host's engine, see
	// package hostpath); set it before first use.
	MapPath func(string) string

	// ensureMu serialises network and volume creation: on API 1.41 two
	// concurrent creates of one network name would both succeed.
	ensureMu sync.Mutex
}

// New returns a controller talking to cli.
func New(cli DockerAPI) *Controller {
	return &Controller{cli: cli, PollInterval: DefaultPollInterval}
}

// Up brings service of proj to its declared state and returns its container
// ID. It waits (bounded by ctx) for the service's depends_on conditions on the
// dependency containers, found by their labels; ensures the project's
// networks and named volumes; then keeps the existing container when its
// config hash is unchanged (unless ForceRecreate) (starting it if it is stopped, which re-runs a
// completed one-shot service as `docker compose up` does), or replaces it.
// image, when non-empty, overrides the service image (loop's built ref); the
// image must exist locally. beforeStart, if non-nil, runs with the container
// ID just before the container is started, and not at all when a running
// container is kept.
func (c *Controller) Up(ctx context.Context, proj *Project, service, image string, beforeStart func(ctx context.Context, id string) error, opts ...UpOption) (string, error) {
	var o upOptions
	for _, opt := range opts {
		opt(&o)
	}
	s, ok := proj.Service(service)
	if !ok {
		return "", fmt.Errorf("up %s: no enabled service %q in project %s", service, service, proj.Name)
	}
	if err := c.waitDependencies(ctx, proj, s); err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	if err := c.ensureNetworks(ctx, proj); err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	if err := c.ensureVolumes(ctx, proj); err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	if image == "" {
		image = s.Image
	}
	img, err := c.cli.ImageInspect(ctx, image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("up %s: image %s is not available locally (loop does not pull): %w", service, image, err)
		}
		return "", fmt.Errorf("up %s: inspect image %s: %w", service, image, err)
	}
	netMode, err := c.resolveNetworkMode(ctx, proj, s)
	if err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	var sup *supervision
	if o.supervisor != nil {
		sup = &supervision{wrapper: o.supervisor}
		if img.Config != nil {
			sup.imageEntrypoint, sup.imageCmd = img.Config.Entrypoint, img.Config.Cmd
		}
	}
	sp, err := proj.spec(s, image, img.ID, netMode, sup)
	if err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	if c.MapPath != nil {
		mapBindSources(sp, c.MapPath)
	}

	existing, err := c.serviceContainers(ctx, proj.Name, service)
	if err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	for i, ctr := range existing {
		if !o.recreate && i == 0 && ctr.Labels[LabelConfigHash] == sp.Hash && ctr.Names != nil && strings.TrimPrefix(ctr.Names[0], "/") == sp.Name {
			switch ctr.State {
			case container.StateRunning, container.StateRestarting, container.StatePaused:
				return ctr.ID, nil
			}
			if err := c.start(ctx, ctr.ID, beforeStart); err != nil {
				return "", fmt.Errorf("up %s: %w", service, err)
			}
			return ctr.ID, nil
		}
		if err := c.remove(ctx, ctr.ID, false); err != nil {
			return "", fmt.Errorf("up %s: replace container %s: %w", service, shortID(ctr.ID), err)
		}
	}
	// A container of that name left by another tool makes create fail with
	// a conflict; the error names the container.
	created, err := c.cli.ContainerCreate(ctx, sp.Config, sp.Host, sp.Network, nil, sp.Name)
	if err != nil {
		return "", fmt.Errorf("up %s: create container %s: %w", service, sp.Name, err)
	}
	for _, n := range sp.Extra {
		if err := c.cli.NetworkConnect(ctx, n.Name, created.ID, n.Endpoint); err != nil {
			return "", fmt.Errorf("up %s: connect %s to network %s: %w", service, sp.Name, n.Name, err)
		}
	}
	if err := c.start(ctx, created.ID, beforeStart); err != nil {
		return "", fmt.Errorf("up %s: %w", service, err)
	}
	return created.ID, nil
}

func (c *Controller) start(ctx context.Context, id string, beforeStart func(ctx context.Context, id string) error) error {
	if beforeStart != nil {
		if err := beforeStart(ctx, id); err != nil {
			return fmt.Errorf("prepare container %s: %w", shortID(id), err)
		}
	}
	if err := c.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", shortID(id), err)
	}
	return nil
}

// remove stops a container (honouring its stop signal and grace period) and
// removes it.
func (c *Controller) remove(ctx context.Context, id string, volumes bool) error {
	if err := c.cli.ContainerStop(ctx, id, container.StopOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop: %w", err)
	}
	if err := c.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: volumes}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove: %w", err)
	}
	return nil
}

// serviceContainers lists the (non one-off) containers of a service, newest
// first.
func (c *Controller) serviceContainers(ctx context.Context, project, service string) ([]container.Summary, error) {
	list, err := c.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelProject+"="+project),
		filters.Arg("label", LabelService+"="+service),
		filters.Arg("label", LabelOneoff+"=False"),
	)})
	if err != nil {
		return nil, fmt.Errorf("list containers of %s: %w", service, err)
	}
	return list, nil
}

// resolveNetworkMode turns network_mode "service:x" into "container:<id>" of
// x's container; other modes are used as written.
func (c *Controller) resolveNetworkMode(ctx context.Context, proj *Project, s *Service) (string, error) {
	name, ok := strings.CutPrefix(s.config.NetworkMode, types.ServicePrefix)
	if !ok {
		return "", nil
	}
	list, err := c.serviceContainers(ctx, proj.Name, name)
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", fmt.Errorf("network_mode service:%s: service %s has no container", name, name)
	}
	return "container:" + list[0].ID, nil
}

// ensureNetworks creates the project's networks that do not exist yet and
// checks that external ones exist.
func (c *Controller) ensureNetworks(ctx context.Context, proj *Project) error {
	c.ensureMu.Lock()
	defer c.ensureMu.Unlock()
	for _, key := range sortedKeys(proj.raw.Networks) {
		n := proj.raw.Networks[key]
		list, err := c.cli.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("name", n.Name))})
		if err != nil {
			return fmt.Errorf("list networks: %w", err)
		}
		found := false
		for _, existing := range list {
			// The name filter matches substrings.
			if existing.Name == n.Name {
				found = true
				break
			}
		}
		if found {
			continue
		}
		if n.External {
			return fmt.Errorf("network %s is declared external but does not exist", n.Name)
		}
		labels := map[string]string{}
		for k, v := range n.Labels {
			labels[k] = v
		}
		labels[LabelNetwork] = key
		labels[LabelProject] = proj.Name
		labels[LabelVersion] = ComposeVersion
		labels[LabelManaged] = "true"
		opts := network.CreateOptions{
			Driver:     n.Driver,
			Options:    n.DriverOpts,
			Internal:   n.Internal,
			Attachable: n.Attachable,
			Labels:     labels,
			EnableIPv6: n.EnableIPv6,
		}
		if n.Ipam.Driver != "" || len(n.Ipam.Config) > 0 {
			opts.IPAM = &network.IPAM{Driver: n.Ipam.Driver, Options: n.Ipam.Options}
			for _, pool := range n.Ipam.Config {
				opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: pool.Subnet, IPRange: pool.IPRange, Gateway: pool.Gateway, AuxAddress: pool.AuxiliaryAddresses})
			}
		}
		if _, err := c.cli.NetworkCreate(ctx, n.Name, opts); err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
	}
	return nil
}

// ensureVolumes creates the project's named volumes that do not exist yet and
// checks that external ones exist.
func (c *Controller) ensureVolumes(ctx context.Context, proj *Project) error {
	c.ensureMu.Lock()
	defer c.ensureMu.Unlock()
	for _, key := range sortedKeys(proj.raw.Volumes) {
		v := proj.raw.Volumes[key]
		_, err := c.cli.VolumeInspect(ctx, v.Name)
		if err == nil {
			continue
		}
		if !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("inspect volume %s: %w", v.Name, err)
		}
		if v.External {
			return fmt.Errorf("volume %s is declared external but does not exist", v.Name)
		}
		labels := map[string]string{}
		for k, val := range v.Labels {
			labels[k] = val
		}
		labels[LabelVolume] = key
		labels[LabelProject] = proj.Name
		labels[LabelVersion] = ComposeVersion
		labels[LabelManaged] = "true"
		if _, err := c.cli.VolumeCreate(ctx, volume.CreateOptions{Name: v.Name, Driver: v.Driver, DriverOpts: v.DriverOpts, Labels: labels}); err != nil {
			return fmt.Errorf("create volume %s: %w", v.Name, err)
		}
	}
	return nil
}

// waitDependencies waits until every depends_on condition of s holds. A
// dependency that is not enabled (inactive profile, optional) is skipped.
func (c *Controller) waitDependencies(ctx context.Context, proj *Project, s *Service) error {
	for _, dep := range sortedKeys(s.DependsOn) {
		if _, ok := proj.Service(dep); !ok {
			continue
		}
		if err := c.waitCondition(ctx, proj.Name, dep, s.DependsOn[dep]); err != nil {
			return fmt.Errorf("dependency %s (%s): %w", dep, s.DependsOn[dep], err)
		}
	}
	return nil
}

// errNotYet says a condition does not hold yet; polling goes on.
var errNotYet = errors.New("not yet")

func (c *Controller) waitCondition(ctx context.Context, project, service, condition string) error {
	check := func() error {
		list, err := c.serviceContainers(ctx, project, service)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return errNotYet
		}
		insp, err := c.cli.ContainerInspect(ctx, list[0].ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				return errNotYet // replaced while we looked
			}
			return fmt.Errorf("inspect %s: %w", shortID(list[0].ID), err)
		}
		return conditionMet(insp, condition)
	}
	return c.poll(ctx, check)
}

// conditionMet reports nil when the container satisfies a depends_on
// condition, errNotYet while it may still, and an error when it cannot.
func conditionMet(insp container.InspectResponse, condition string) error {
	st := insp.State
	if st == nil {
		return errNotYet
	}
	switch condition {
	case types.ServiceConditionStarted, "":
		if st.Running || st.Status == container.StateExited && !startedAtZero(st.StartedAt) {
			return nil
		}
		return errNotYet
	case types.ServiceConditionHealthy:
		if hc := insp.Config; hc == nil || hc.Healthcheck == nil || len(hc.Healthcheck.Test) == 0 || hc.Healthcheck.Test[0] == "NONE" {
			// Health is only reported once the container started; the
			// config says whether it ever will be.
			if st.Health == nil {
				return errors.New("container has no healthcheck")
			}
		}
		if st.Health == nil {
			return errNotYet
		}
		switch st.Health.Status {
		case container.Healthy:
			return nil
		case container.Unhealthy:
			return errors.New("container is unhealthy")
		}
		if st.Status == container.StateExited || st.Status == container.StateDead {
			return fmt.Errorf("container exited with code %d before it was healthy", st.ExitCode)
		}
		return errNotYet
	case types.ServiceConditionCompletedSuccessfully:
		if st.Status == container.StateExited || st.Status == container.StateDead {
			if st.ExitCode == 0 {
				return nil
			}
			return fmt.Errorf("container exited with code %d", st.ExitCode)
		}
		return errNotYet
	default:
		return fmt.Errorf("unknown condition %q", condition)
	}
}

func startedAtZero(s string) bool {
	t, err := time.Parse(time.RFC3339Nano, s)
	return err != nil || t.IsZero()
}

// poll calls check every PollInterval until it returns something other than
// errNotYet, or ctx is done.
func (c *Controller) poll(ctx context.Context, check func() error) error {
	interval := c.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := check()
		if !errors.Is(err, errNotYet) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("still waiting: %w", context.Cause(ctx))
		case <-t.C:
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// UpOption adjusts one Up call.
type UpOption func(*upOptions)

type upOptions struct {
	recreate   bool
	supervisor []string
}

// ForceRecreate replaces the service's container even when its config is
// unchanged: a container left by an earlier run may hold live-updated files
// that the current sources no longer have.
func ForceRecreate() UpOption { return func(o *upOptions) { o.recreate = true } }

// Supervise runs the container's command behind supervisor (an argv prefix,
// such as agent.Supervisor()): the container's entrypoint becomes
// supervisor followed by the effective entrypoint, and its command the
// effective command, computed from the service's entrypoint and command and
// the image's as the engine combines them. The config hash covers the
// wrapping, so toggling it recreates the container. The caller makes sure
// supervisor exists in the container before it starts (beforeStart).
// Services with tty: true or read_only: true, and an empty command, are not
// wrapped.
func Supervise(supervisor []string) UpOption {
	return func(o *upOptions) { o.supervisor = slices.Clone(supervisor) }
}
