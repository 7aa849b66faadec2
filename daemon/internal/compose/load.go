package compose

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/loop-dev/loop/daemon/model"
)

// Project is a loaded Compose project: what Up needs to run its services.
// It is immutable once Load returns it.
type Project struct {
	// Name is the project name: the declared one, else the `name:` of the
	// file, else COMPOSE_PROJECT_NAME, else the normalised directory name.
	Name string
	// WorkingDir is the project directory (of the first compose file).
	WorkingDir string
	// Services are the services enabled by the active profiles, dependencies
	// before dependents (ties by name).
	Services []*Service
	// Disabled names services left out because their profiles are inactive.
	Disabled []string
	// ComposeFiles are the compose files read, in order.
	ComposeFiles []string
	// EnvFiles are the project env files used for interpolation.
	EnvFiles []string
	// Files is every file the load read (compose files, project and service
	// env files), absolute, sorted and unique: watch them to reload.
	Files []string

	raw *types.Project
}

// Service is one enabled service of a Project.
type Service struct {
	Name string
	// Image is the image the container runs unless Up is given another: the
	// `image:` of the service, or Compose's default "<project>-<service>"
	// for a service that only has `build:`.
	Image string
	// Build is non-nil when the service has `build:`; loop's builder builds it
	// and passes the resulting ref to Up.
	Build *model.Image
	// LiveUpdate comes from `develop.watch`; nil when there is none.
	LiveUpdate *model.LiveUpdate
	// DependsOn maps a service to its condition (service_started,
	// service_healthy or service_completed_successfully).
	DependsOn map[string]string
	// Ports are the published ports as declared.
	Ports []Port
	// HasHealthcheck reports whether the container will have a healthcheck
	// (declared in the compose file and not disabled; the image's own
	// HEALTHCHECK is not known until it is inspected).
	HasHealthcheck bool
	// ContainerName is the container's name: `container_name:` or
	// "<project>-<service>-1".
	ContainerName string

	config types.ServiceConfig
}

// Port is one published port of a service.
type Port struct {
	HostIP        string
	HostPort      string // empty: the engine picks one
	ContainerPort uint32
	Protocol      string
}

// Service returns the enabled service called name.
func (p *Project) Service(name string) (*Service, bool) {
	for _, s := range p.Services {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Load reads the compose files of a docker_compose() declaration as
// `docker compose` would: env is the environment for interpolation (nil means
// the process environment), p.EnvFile (or the project's .env) adds to it
// without overriding, p.Profiles (or COMPOSE_PROFILES) select services. Errors
// name the compose file, and the line when compose-go reports one.
func Load(ctx context.Context, p *model.ComposeProject, env []string) (*Project, error) {
	if p == nil || (len(p.Paths) == 0 && p.Inline == "") {
		return nil, errors.New("load compose project: no compose file given")
	}
	if env == nil {
		env = os.Environ()
	}
	if len(p.Env) > 0 {
		// The Tiltfile's os.putenv wins over the process environment.
		env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool {
			k, _, _ := strings.Cut(kv, "=")
			_, set := p.Env[k]
			return set
		})
		for _, k := range slices.Sorted(maps.Keys(p.Env)) {
			env = append(env, k+"="+p.Env[k])
		}
	}
	var (
		raw      *types.Project
		envFiles []string
		err      error
	)
	raw, envFiles, err = loadGuarded(ctx, p, env)
	if err != nil {
		return nil, err
	}
	return newProject(raw, envFiles, p)
}

func loadFiles(ctx context.Context, p *model.ComposeProject, env []string) (*types.Project, []string, error) {
	var envFiles []string
	if p.EnvFile != "" {
		envFiles = []string{p.EnvFile}
	}
	opts, err := cli.NewProjectOptions(p.Paths,
		cli.WithEnv(env),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithName(p.ProjectName),
		cli.WithDefaultProfiles(p.Profiles...),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("load compose project %s: %w", strings.Join(p.Paths, ", "), err)
	}
	raw, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, nil, loadError(p.Paths, err)
	}
	return raw, opts.EnvFiles, nil
}

// loadInline loads compose YAML given as a blob. It follows the same rules
// as loadFiles; the project directory is the declaring Tiltfile's.
func loadInline(ctx context.Context, p *model.ComposeProject, env []string) (*types.Project, []string, error) {
	wd := filepath.Dir(p.Pos.File)
	if p.Pos.File == "" {
		var err error
		if wd, err = os.Getwd(); err != nil {
			return nil, nil, fmt.Errorf("load inline compose: %w", err)
		}
	}
	name := inlineName(p)
	environment := types.NewMapping(env)
	envFile := p.EnvFile
	if envFile == "" {
		if st, err := os.Stat(filepath.Join(wd, ".env")); err == nil && !st.IsDir() {
			envFile = filepath.Join(wd, ".env")
		}
	}
	var envFiles []string
	if envFile != "" {
		envFiles = []string{envFile}
		fromFile, err := dotenv.GetEnvFromFile(environment, envFiles)
		if err != nil {
			return nil, nil, fmt.Errorf("load inline compose from %s: %w", name, err)
		}
		environment.Merge(fromFile)
	}
	profiles := p.Profiles
	if len(profiles) == 0 {
		for _, s := range strings.Split(environment["COMPOSE_PROFILES"], ",") {
			profiles = append(profiles, strings.TrimSpace(s))
		}
	}
	projectName := p.ProjectName
	if projectName == "" {
		projectName = environment["COMPOSE_PROJECT_NAME"]
	}
	raw, err := loader.LoadWithContext(ctx, types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: name, Content: []byte(p.Inline)}},
		Environment: environment,
	}, loader.WithProfiles(profiles), func(o *loader.Options) {
		if projectName != "" {
			o.SetProjectName(projectName, true)
		} else {
			o.SetProjectName(loader.NormalizeProjectName(filepath.Base(wd)), false)
		}
	})
	if err != nil {
		return nil, nil, loadError([]string{name}, err)
	}
	raw.ComposeFiles = nil // nothing on disk to record or watch
	return raw, envFiles, nil
}

func inlineName(p *model.ComposeProject) string {
	if p.Pos.File == "" {
		return "<inline compose>"
	}
	return fmt.Sprintf("%s:%d (inline compose)", p.Pos.File, p.Pos.Line)
}

// loadError makes sure a load error names a compose file: compose-go names
// the file for YAML and schema errors but not for every consistency error.
func loadError(paths []string, err error) error {
	msg := err.Error()
	for _, f := range paths {
		if strings.Contains(msg, f) || strings.Contains(msg, filepath.Base(f)) {
			return fmt.Errorf("load compose project: %w", err)
		}
	}
	return fmt.Errorf("load compose project %s: %w", strings.Join(paths, ", "), err)
}

func newProject(raw *types.Project, envFiles []string, decl *model.ComposeProject) (*Project, error) {
	p := &Project{
		Name:         raw.Name,
		WorkingDir:   raw.WorkingDir,
		ComposeFiles: absAll(raw.ComposeFiles),
		EnvFiles:     absAll(envFiles),
		raw:          raw,
	}
	files := append(slices.Clone(p.ComposeFiles), p.EnvFiles...)
	for name := range raw.DisabledServices {
		p.Disabled = append(p.Disabled, name)
	}
	sort.Strings(p.Disabled)

	declFile := decl.Pos.File
	if len(p.ComposeFiles) > 0 {
		declFile = p.ComposeFiles[0]
	}
	for _, name := range serviceOrder(raw.Services) {
		cfg := raw.Services[name]
		s, err := newService(raw, cfg, declFile)
		if err != nil {
			return nil, fmt.Errorf("load compose project %s: service %s: %w", p.Name, name, err)
		}
		p.Services = append(p.Services, s)
		for _, ef := range cfg.EnvFiles {
			files = append(files, absIn(raw.WorkingDir, ef.Path))
		}
	}
	sort.Strings(files)
	p.Files = slices.Compact(files)
	return p, nil
}

func newService(proj *types.Project, cfg types.ServiceConfig, file string) (*Service, error) {
	s := &Service{
		Name:          cfg.Name,
		Image:         cfg.Image,
		DependsOn:     map[string]string{},
		ContainerName: cfg.ContainerName,
		config:        cfg,
	}
	if s.Image == "" {
		s.Image = proj.Name + "-" + cfg.Name
	}
	if s.ContainerName == "" {
		s.ContainerName = fmt.Sprintf("%s-%s-1", proj.Name, cfg.Name)
	}
	for dep, d := range cfg.DependsOn {
		cond := d.Condition
		if cond == "" {
			cond = types.ServiceConditionStarted
		}
		s.DependsOn[dep] = cond
	}
	for _, port := range cfg.Ports {
		s.Ports = append(s.Ports, Port{HostIP: port.HostIP, HostPort: port.Published, ContainerPort: port.Target, Protocol: protocol(port.Protocol)})
	}
	s.HasHealthcheck = cfg.HealthCheck != nil && !cfg.HealthCheck.Disable && len(cfg.HealthCheck.Test) > 0 && cfg.HealthCheck.Test[0] != "NONE"
	lu, err := LiveUpdateFromWatch(cfg.Develop, proj.WorkingDir)
	if err != nil {
		return nil, err
	}
	if lu != nil {
		lu.Pos = model.Position{File: file}
	}
	s.LiveUpdate = lu
	if cfg.Build != nil {
		s.Build = buildImage(proj, cfg, s.Image, file)
		s.Build.LiveUpdate = lu
	}
	return s, nil
}

// buildImage converts `build:` into the docker_build shape loop's builder
// takes. Arguments without a value take it from the project environment, as
// Compose does.
func buildImage(proj *types.Project, cfg types.ServiceConfig, ref, file string) *model.Image {
	b := cfg.Build
	img := &model.Image{
		Ref:        ref,
		Context:    absIn(proj.WorkingDir, b.Context),
		Target:     b.Target,
		Network:    b.Network,
		Platform:   cfg.Platform,
		CacheFrom:  slices.Clone([]string(b.CacheFrom)),
		ExtraTag:   slices.Clone([]string(b.Tags)),
		PullParent: b.Pull,
		Pos:        model.Position{File: file},
	}
	if b.Context == "" {
		img.Context = proj.WorkingDir
	}
	if b.DockerfileInline != "" {
		img.DockerfileContents = b.DockerfileInline
	} else {
		df := b.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		img.Dockerfile = absIn(img.Context, df)
	}
	if len(b.ExtraHosts) > 0 {
		img.ExtraHosts = b.ExtraHosts.AsList(":")
		slices.Sort(img.ExtraHosts)
	}
	for _, k := range b.SSH {
		spec := k.ID
		if k.Path != "" {
			spec += "=" + k.Path
		}
		img.SSH = append(img.SSH, spec)
	}
	slices.Sort(img.SSH)
	for _, sec := range b.Secrets {
		// The build secret's ID is its target, else its source; its value
		// the project's secret of that source (a file, or an environment
		// variable of loop's environment).
		id := sec.Target
		if id == "" {
			id = sec.Source
		}
		def := proj.Secrets[sec.Source]
		switch {
		case def.File != "":
			img.BuildSecrets = append(img.BuildSecrets, "id="+id+",src="+absIn(proj.WorkingDir, def.File))
		case def.Environment != "":
			img.BuildSecrets = append(img.BuildSecrets, "id="+id+",env="+def.Environment)
		}
	}
	if len(b.Args) > 0 {
		img.BuildArgs = map[string]string{}
		for k, v := range b.Args {
			if v != nil {
				img.BuildArgs[k] = *v
			} else if ev, ok := proj.Environment[k]; ok {
				img.BuildArgs[k] = ev
			}
		}
	}
	return img
}

// serviceOrder sorts services so that each comes after the services it
// depends on; independent services are ordered by name. Dependencies on
// services that are not enabled are ignored (compose-go rejects cycles).
func serviceOrder(services types.Services) []string {
	names := make([]string, 0, len(services))
	for n := range services {
		names = append(names, n)
	}
	sort.Strings(names)
	done := map[string]bool{}
	var order []string
	var visit func(n string, path map[string]bool)
	visit = func(n string, path map[string]bool) {
		if done[n] || path[n] {
			return
		}
		path[n] = true
		deps := make([]string, 0, len(services[n].DependsOn))
		for d := range services[n].DependsOn {
			if _, ok := services[d]; ok {
				deps = append(deps, d)
			}
		}
		sort.Strings(deps)
		for _, d := range deps {
			visit(d, path)
		}
		done[n] = true
		order = append(order, n)
	}
	for _, n := range names {
		visit(n, map[string]bool{})
	}
	return order
}

func protocol(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}

func absIn(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func absAll(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		out = append(out, p)
	}
	return out
}

// loadGuarded runs compose-go on the project's files. compose-go panics on some
// malformed files (an extends whose file is a number, found by FuzzLoad); a broken
// compose file must be an error that names it, never a daemon that stops.
func loadGuarded(ctx context.Context, p *model.ComposeProject, env []string) (raw *types.Project, envFiles []string, err error) {
	defer func() {
		if r := recover(); r != nil {
			name := "the inline compose file"
			if len(p.Paths) > 0 {
				name = strings.Join(p.Paths, ", ")
			}
			raw, envFiles, err = nil, nil, fmt.Errorf("load compose file %s: the compose loader failed on it (%v); check the file's structure against the Compose specification", name, r)
		}
	}()
	if p.Inline != "" {
		return loadInline(ctx, p, env)
	}
	return loadFiles(ctx, p, env)
}

// override replaces the service's entrypoint (when entrypoint is non-nil)
// and command (when args is non-nil): a docker_build's or custom_build's
// entrypoint= and container_args=.
func (s *Service) override(entrypoint, args []string) {
	if entrypoint != nil {
		s.config.Entrypoint = types.ShellCommand(entrypoint)
	}
	if args != nil {
		s.config.Command = types.ShellCommand(args)
	}
}
