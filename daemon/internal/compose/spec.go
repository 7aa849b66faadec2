package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/strslice"
	"github.com/docker/go-connections/nat"
)

// containerSpec is everything ContainerCreate (and the network connections
// that follow it) needs for one service container.
type containerSpec struct {
	Name    string
	Config  *container.Config
	Host    *container.HostConfig
	Network *network.NetworkingConfig
	// Extra are networks connected after create: API 1.41 accepts a single
	// endpoint at create time.
	Extra []extraNetwork
	// Hash is the config hash, also in Config.Labels[LabelConfigHash].
	Hash string
}

type extraNetwork struct {
	Name     string
	Endpoint *network.EndpointSettings
}

// supervision asks spec to run the container's effective command behind
// wrapper (loop's process supervisor). The image's entrypoint and command
// are needed to compute that effective command.
type supervision struct {
	wrapper                   []string
	imageEntrypoint, imageCmd []string
}

// spec builds the container of service s running image ref (whose ID is
// imageID). networkMode, when non-empty, replaces the service's network_mode
// (Up resolves "service:x" to "container:<id>"). sup, when non-nil, wraps
// the command (see supervise).
func (p *Project) spec(s *Service, ref, imageID, networkMode string, sup *supervision) (*containerSpec, error) {
	cfg := s.config
	labels := map[string]string{}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	for k, v := range cfg.CustomLabels {
		labels[k] = v
	}
	deps := make([]string, 0, len(cfg.DependsOn))
	for name, d := range cfg.DependsOn {
		deps = append(deps, fmt.Sprintf("%s:%s:%t", name, s.DependsOn[name], d.Restart))
	}
	sort.Strings(deps)
	for k, v := range map[string]string{
		LabelProject:         p.Name,
		LabelService:         s.Name,
		LabelContainerNumber: "1",
		LabelOneoff:          "False",
		LabelWorkingDir:      p.WorkingDir,
		LabelConfigFiles:     strings.Join(p.ComposeFiles, ","),
		LabelVersion:         ComposeVersion,
		LabelImage:           imageID,
		LabelDependsOn:       strings.Join(deps, ","),
		LabelManaged:         "true",
	} {
		labels[k] = v
	}
	if len(p.EnvFiles) > 0 {
		labels[LabelEnvFile] = strings.Join(p.EnvFiles, ",")
	}

	c := &container.Config{
		Hostname:     cfg.Hostname,
		Domainname:   cfg.DomainName,
		User:         cfg.User,
		ExposedPorts: nat.PortSet{},
		Tty:          cfg.Tty,
		OpenStdin:    cfg.StdinOpen,
		AttachStdout: true,
		AttachStderr: true,
		Env:          environment(cfg.Environment),
		Image:        ref,
		WorkingDir:   cfg.WorkingDir,
		Labels:       labels,
		StopSignal:   cfg.StopSignal,
		Healthcheck:  healthcheck(cfg.HealthCheck),
	}
	if cfg.Command != nil {
		c.Cmd = strslice.StrSlice(cfg.Command)
	}
	if cfg.Entrypoint != nil {
		c.Entrypoint = strslice.StrSlice(cfg.Entrypoint)
	}
	if sup != nil && !cfg.Tty && !cfg.ReadOnly {
		// A terminal's foreground group and a read-only /.loop (no restart
		// socket) do not fit the supervisor: such services restart whole.
		supervise(c, sup)
	}
	if cfg.StopGracePeriod != nil {
		secs := int(time.Duration(*cfg.StopGracePeriod).Seconds())
		c.StopTimeout = &secs
	}

	h := &container.HostConfig{
		PortBindings:   nat.PortMap{},
		RestartPolicy:  restartPolicy(cfg),
		Init:           cfg.Init,
		Privileged:     cfg.Privileged,
		ReadonlyRootfs: cfg.ReadOnly,
		CapAdd:         cfg.CapAdd,
		CapDrop:        cfg.CapDrop,
		DNS:            cfg.DNS,
		DNSSearch:      cfg.DNSSearch,
		DNSOptions:     cfg.DNSOpts,
		ExtraHosts:     cfg.ExtraHosts.AsList(":"),
		GroupAdd:       cfg.GroupAdd,
		SecurityOpt:    cfg.SecurityOpt,
		Sysctls:        cfg.Sysctls,
		ShmSize:        int64(cfg.ShmSize),
		IpcMode:        container.IpcMode(cfg.Ipc),
		PidMode:        container.PidMode(cfg.Pid),
		UTSMode:        container.UTSMode(cfg.Uts),
		UsernsMode:     container.UsernsMode(cfg.UserNSMode),
		Runtime:        cfg.Runtime,
		VolumesFrom:    cfg.VolumesFrom,
		Resources: container.Resources{
			Memory:            int64(cfg.MemLimit),
			MemoryReservation: int64(cfg.MemReservation),
			NanoCPUs:          int64(cfg.CPUS * 1e9),
			CPUShares:         cfg.CPUShares,
			CpusetCpus:        cfg.CPUSet,
		},
	}
	if cfg.PidsLimit != 0 {
		limit := cfg.PidsLimit
		h.PidsLimit = &limit
	}
	if cfg.Logging != nil {
		h.LogConfig = container.LogConfig{Type: cfg.Logging.Driver, Config: cfg.Logging.Options}
	}
	for name, u := range cfg.Ulimits {
		soft, hard := u.Single, u.Single
		if u.Soft != 0 || u.Hard != 0 {
			soft, hard = u.Soft, u.Hard
		}
		h.Ulimits = append(h.Ulimits, &container.Ulimit{Name: name, Soft: int64(soft), Hard: int64(hard)})
	}
	sort.Slice(h.Ulimits, func(i, j int) bool { return h.Ulimits[i].Name < h.Ulimits[j].Name })

	for _, e := range cfg.Expose {
		port, err := nat.NewPort(exposeProto(e))
		if err != nil {
			return nil, fmt.Errorf("expose %q: %w", e, err)
		}
		c.ExposedPorts[port] = struct{}{}
	}
	for _, pc := range cfg.Ports {
		port, err := nat.NewPort(protocol(pc.Protocol), strconv.FormatUint(uint64(pc.Target), 10))
		if err != nil {
			return nil, fmt.Errorf("port %d: %w", pc.Target, err)
		}
		c.ExposedPorts[port] = struct{}{}
		h.PortBindings[port] = append(h.PortBindings[port], nat.PortBinding{HostIP: pc.HostIP, HostPort: pc.Published})
	}

	if err := p.mounts(cfg, h); err != nil {
		return nil, err
	}

	sp := &containerSpec{Name: s.ContainerName, Config: c, Host: h}
	if err := p.networking(s, networkMode, sp); err != nil {
		return nil, err
	}

	// The hash covers the effective configuration, the image ID included
	// (Config.Labels carries it), but not the hash label itself.
	sum := sha256.New()
	if err := json.NewEncoder(sum).Encode(struct {
		Config  *container.Config
		Host    *container.HostConfig
		Network *network.NetworkingConfig
		Extra   []extraNetwork
	}{c, h, sp.Network, sp.Extra}); err != nil {
		return nil, fmt.Errorf("hash container config: %w", err)
	}
	sp.Hash = hex.EncodeToString(sum.Sum(nil))
	labels[LabelConfigHash] = sp.Hash
	return sp, nil
}

// effectiveCommand is the argv Docker runs for a container created with
// entrypoint and cmd from an image with imageEntrypoint and imageCmd, split
// into its entrypoint and command parts. As the engine merges them: an
// entrypoint set on the container (even empty) replaces the image's, and a
// non-empty one also drops the image's command; an empty command takes the
// image's only while no entrypoint is set.
func effectiveCommand(entrypoint, cmd, imageEntrypoint, imageCmd []string) (ep, args []string) {
	ep, args = entrypoint, cmd
	if len(ep) == 0 {
		if len(args) == 0 {
			args = imageCmd
		}
		if ep == nil {
			ep = imageEntrypoint
		}
	}
	return ep, args
}

// supervise puts sup.wrapper in front of c's effective command: the
// entrypoint becomes wrapper + the effective entrypoint and Cmd the
// effective command, so the engine runs wrapper followed by exactly what it
// would have run. An empty effective command is left alone (the engine
// refuses it either way).
func supervise(c *container.Config, sup *supervision) {
	ep, args := effectiveCommand(c.Entrypoint, c.Cmd, sup.imageEntrypoint, sup.imageCmd)
	if len(ep)+len(args) == 0 {
		return
	}
	wrapped := make([]string, 0, len(sup.wrapper)+len(ep))
	wrapped = append(append(wrapped, sup.wrapper...), ep...)
	c.Entrypoint = strslice.StrSlice(wrapped)
	c.Cmd = strslice.StrSlice(slices.Clone(args))
}

// mounts fills binds, mounts and tmpfs of h from the service volumes.
// Relative bind sources were made absolute (against the project directory) by
// compose-go; named volumes get their project-scoped name.
func (p *Project) mounts(cfg types.ServiceConfig, h *container.HostConfig) error {
	for _, t := range cfg.Tmpfs {
		if h.Tmpfs == nil {
			h.Tmpfs = map[string]string{}
		}
		target, opts, _ := strings.Cut(t, ":")
		h.Tmpfs[target] = opts
	}
	for _, v := range cfg.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			src := absIn(p.WorkingDir, v.Source)
			if v.Bind != nil && (!bool(v.Bind.CreateHostPath) || v.Bind.Propagation != "") {
				m := mount.Mount{Type: mount.TypeBind, Source: src, Target: v.Target, ReadOnly: v.ReadOnly}
				if v.Bind.Propagation != "" {
					m.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(v.Bind.Propagation)}
				}
				h.Mounts = append(h.Mounts, m)
				continue
			}
			// The bind string creates a missing host directory, as Compose's
			// default create_host_path does; the Mount API would refuse it.
			opts := []string{"rw"}
			if v.ReadOnly {
				opts[0] = "ro"
			}
			if v.Bind != nil && v.Bind.SELinux != "" {
				opts = append(opts, v.Bind.SELinux)
			}
			h.Binds = append(h.Binds, src+":"+v.Target+":"+strings.Join(opts, ","))
		case types.VolumeTypeVolume:
			m := mount.Mount{Type: mount.TypeVolume, Target: v.Target, ReadOnly: v.ReadOnly}
			if v.Source != "" {
				m.Source = v.Source
				if decl, ok := p.raw.Volumes[v.Source]; ok && decl.Name != "" {
					m.Source = decl.Name
				}
			}
			if v.Volume != nil && v.Volume.NoCopy {
				m.VolumeOptions = &mount.VolumeOptions{NoCopy: true}
			}
			h.Mounts = append(h.Mounts, m)
		case types.VolumeTypeTmpfs:
			m := mount.Mount{Type: mount.TypeTmpfs, Target: v.Target, ReadOnly: v.ReadOnly}
			if v.Tmpfs != nil {
				m.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size), Mode: os.FileMode(v.Tmpfs.Mode)}
			}
			h.Mounts = append(h.Mounts, m)
		default:
			return fmt.Errorf("volume %s: type %q is not supported", v.Target, v.Type)
		}
	}
	return nil
}

// networking sets the network mode and endpoints: the first network by
// priority at create time, the others connected before start. Each endpoint
// carries the aliases Compose gives: the container name, the service name
// (unless use_service_name_alias is false) and the declared aliases.
func (p *Project) networking(s *Service, networkMode string, sp *containerSpec) error {
	cfg := s.config
	if networkMode == "" {
		networkMode = cfg.NetworkMode
	}
	if networkMode != "" {
		sp.Host.NetworkMode = container.NetworkMode(networkMode)
		return nil
	}
	if len(cfg.Networks) == 0 {
		sp.Host.NetworkMode = "none"
		return nil
	}
	for i, key := range cfg.NetworksByPriority() {
		decl, ok := p.raw.Networks[key]
		if !ok {
			return fmt.Errorf("network %s is not declared", key)
		}
		ncfg := cfg.Networks[key]
		ep := &network.EndpointSettings{Aliases: []string{s.ContainerName}}
		if ncfg.ServiceNameAliasEnabled() {
			ep.Aliases = append(ep.Aliases, s.Name)
		}
		if ncfg != nil {
			ep.Aliases = append(ep.Aliases, ncfg.Aliases...)
			if ncfg.Ipv4Address != "" || ncfg.Ipv6Address != "" || len(ncfg.LinkLocalIPs) > 0 {
				ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: ncfg.Ipv4Address, IPv6Address: ncfg.Ipv6Address, LinkLocalIPs: ncfg.LinkLocalIPs}
			}
			ep.MacAddress = ncfg.MacAddress
			ep.DriverOpts = ncfg.DriverOpts
		}
		if i == 0 {
			sp.Host.NetworkMode = container.NetworkMode(decl.Name)
			sp.Network = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{decl.Name: ep}}
			continue
		}
		sp.Extra = append(sp.Extra, extraNetwork{Name: decl.Name, Endpoint: ep})
	}
	return nil
}

func healthcheck(hc *types.HealthCheckConfig) *container.HealthConfig {
	if hc == nil {
		return nil
	}
	if hc.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	out := &container.HealthConfig{Test: hc.Test}
	if hc.Interval != nil {
		out.Interval = time.Duration(*hc.Interval)
	}
	if hc.Timeout != nil {
		out.Timeout = time.Duration(*hc.Timeout)
	}
	if hc.StartPeriod != nil {
		out.StartPeriod = time.Duration(*hc.StartPeriod)
	}
	if hc.StartInterval != nil {
		out.StartInterval = time.Duration(*hc.StartInterval)
	}
	if hc.Retries != nil {
		out.Retries = int(*hc.Retries)
	}
	return out
}

// restartPolicy maps `restart:` (and deploy.restart_policy, which wins, as in
// Compose) onto the engine's policy.
func restartPolicy(cfg types.ServiceConfig) container.RestartPolicy {
	var rp container.RestartPolicy
	if cfg.Restart != "" {
		name, count, _ := strings.Cut(cfg.Restart, ":")
		rp.Name = restartMode(name)
		rp.MaximumRetryCount, _ = strconv.Atoi(count)
	}
	if cfg.Deploy != nil && cfg.Deploy.RestartPolicy != nil {
		rp = container.RestartPolicy{Name: restartMode(cfg.Deploy.RestartPolicy.Condition)}
		if m := cfg.Deploy.RestartPolicy.MaxAttempts; m != nil {
			rp.MaximumRetryCount = int(*m)
		}
	}
	return rp
}

func restartMode(s string) container.RestartPolicyMode {
	switch s {
	case "none", "no":
		return container.RestartPolicyDisabled
	case "any", "always":
		return container.RestartPolicyAlways
	default:
		return container.RestartPolicyMode(s)
	}
}

// environment renders the service environment as sorted KEY=VALUE entries;
// a variable without a value (unresolved by the loader) is passed as KEY.
func environment(env types.MappingWithEquals) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if v == nil {
			out = append(out, k)
			continue
		}
		out = append(out, k+"="+*v)
	}
	sort.Strings(out)
	return out
}

func exposeProto(e string) (string, string) {
	port, proto, ok := strings.Cut(e, "/")
	if !ok {
		proto = "tcp"
	}
	return proto, port
}
