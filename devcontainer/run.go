package devcontainer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/loop-dev/loop/daemon/model"
)

// Labels of a dev container. The first three are the spec's (the reference
// CLI and VS Code find containers by them); LabelID is loop's.
const (
	LabelLocalFolder = "devcontainer.local_folder"
	LabelConfigFile  = "devcontainer.config_file"
	LabelMetadata    = "devcontainer.metadata"
	LabelID          = "dev.loop.devcontainer"
)

// markerDir holds, inside the container, one file per lifecycle command
// that has completed, so a reused container does not run it again.
const markerDir = "/var/lib/loop-devcontainer"

// rootUser is the user loop's own bookkeeping in the container runs as:
// uid and gid 0, by number, so that it works on images without /etc/passwd
// (scratch, distroless), where the user name root cannot be resolved.
const rootUser = "0:0"

// BuildFunc builds img and returns the image reference to run.
// daemon.DevcontainerBuilder gives loop's builder (context filtered by
// .dockerignore, tagged by a hash of its inputs).
type BuildFunc func(ctx context.Context, img *model.Image, logs io.Writer) (string, error)

// DockerAPI is the part of the Docker client the Runner uses.
type DockerAPI interface {
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, options container.StartOptions) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerRemove(ctx context.Context, id string, options container.RemoveOptions) error
	ContainerExecCreate(ctx context.Context, id string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, options container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, ref string, options image.PullOptions) (io.ReadCloser, error)
	CopyToContainer(ctx context.Context, id, dstPath string, content io.Reader, options container.CopyToContainerOptions) error
	ContainerStatPath(ctx context.Context, id, path string) (container.PathStat, error)
}

var _ DockerAPI = (*client.Client)(nil)

// Runner runs dev containers on one Docker engine. Set its fields before
// the first call; it is then safe for concurrent use on different
// workspaces.
type Runner struct {
	cli   DockerAPI
	build BuildFunc
	// Out receives progress, build output and lifecycle command output.
	Out io.Writer
	// MapPath, when set, turns a local path into the engine's path for bind
	// mount sources (loop inside a container talking to the host's engine).
	MapPath func(string) string
	// Labels are added to the containers Up creates.
	Labels map[string]string
}

// NewRunner returns a Runner; build builds "build" configs and Features.
func NewRunner(cli DockerAPI, build BuildFunc) *Runner {
	return &Runner{cli: cli, build: build, Out: io.Discard}
}

// UpResult describes the dev container Up left running.
type UpResult struct {
	ContainerID string
	// Created is true when Up created the container (false: reused).
	Created bool
	// Image is the image it runs (built, with Features installed).
	Image           string
	RemoteUser      string
	WorkspaceFolder string
}

// Find returns the dev container of c (running or not), found by the spec's
// labels. ok is false when there is none.
func (r *Runner) Find(ctx context.Context, c *Config) (ctr container.Summary, ok bool, err error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelLocalFolder+"="+c.LocalWorkspaceFolder),
		filters.Arg("label", LabelConfigFile+"="+c.Path),
	)})
	if err != nil {
		return ctr, false, fmt.Errorf("list dev containers of %s: %w", c.LocalWorkspaceFolder, err)
	}
	if len(list) == 0 {
		return ctr, false, nil
	}
	// The newest one, as the reference CLI picks.
	sort.Slice(list, func(i, j int) bool { return list[i].Created > list[j].Created })
	return list[0], true, nil
}

// Up runs initializeCommand on this machine, then finds the dev container
// of c and starts it if stopped, or builds and creates it, and runs the
// lifecycle commands that are due: onCreateCommand, updateContentCommand
// and postCreateCommand once per container, postStartCommand once per
// start, postAttachCommand on every Up. A failing command stops Up with an
// error holding its output.
func (r *Runner) Up(ctx context.Context, c *Config) (UpResult, error) {
	res := UpResult{WorkspaceFolder: c.WorkspaceFolder}
	if err := r.runHost(ctx, c, "initializeCommand", c.InitializeCommand); err != nil {
		return res, err
	}
	ctr, found, err := r.Find(ctx, c)
	if err != nil {
		return res, err
	}
	if found {
		res.ContainerID = ctr.ID
		if ctr.State != container.StateRunning {
			fmt.Fprintf(r.Out, "starting dev container %s\n", shortID(ctr.ID))
			if err := r.cli.ContainerStart(ctx, ctr.ID, container.StartOptions{}); err != nil {
				return res, fmt.Errorf("start dev container %s: %w", shortID(ctr.ID), err)
			}
		} else {
			fmt.Fprintf(r.Out, "reusing dev container %s\n", shortID(ctr.ID))
		}
	} else {
		img, err := r.image(ctx, c)
		if err != nil {
			return res, err
		}
		id, err := r.create(ctx, c, img)
		if err != nil {
			return res, err
		}
		res.ContainerID, res.Created = id, true
	}
	insp, err := r.cli.ContainerInspect(ctx, res.ContainerID)
	if err != nil {
		return res, fmt.Errorf("inspect dev container %s: %w", shortID(res.ContainerID), err)
	}
	res.Image = insp.Config.Image
	res.RemoteUser = remoteUser(c, insp)
	if err := r.lifecycle(ctx, c, insp); err != nil {
		return res, err
	}
	return res, nil
}

// image returns the image to run: c.Image (pulled when missing) or the
// built one, with c's Features installed on top.
func (r *Runner) image(ctx context.Context, c *Config) (string, error) {
	ref := c.Image
	if c.Build != nil {
		if r.build == nil {
			return "", errors.New("build dev container image: no builder configured")
		}
		fmt.Fprintf(r.Out, "building %s\n", c.Build.Dockerfile)
		var err error
		ref, err = r.build(ctx, &model.Image{
			Ref: "loop-devcontainer/" + ID(c.LocalWorkspaceFolder, c.Path), Context: c.Build.Context,
			Dockerfile: c.Build.Dockerfile, BuildArgs: c.Build.Args, Target: c.Build.Target,
		}, r.Out)
		if err != nil {
			return "", fmt.Errorf("build dev container image (%s): %w", c.Path, err)
		}
	} else if err := r.ensureImage(ctx, ref); err != nil {
		return "", err
	}
	if len(c.Features) == 0 {
		return ref, nil
	}
	return r.installFeatures(ctx, c, ref)
}

func (r *Runner) ensureImage(ctx context.Context, ref string) error {
	if _, err := r.cli.ImageInspect(ctx, ref); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect image %s: %w", ref, err)
	}
	fmt.Fprintf(r.Out, "pulling %s\n", ref)
	rc, err := r.cli.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return fmt.Errorf("pull image %s (not present locally): %w", ref, err)
	}
	defer rc.Close()
	if err := jsonmessage.DisplayJSONMessagesStream(rc, io.Discard, 0, false, nil); err != nil {
		return fmt.Errorf("pull image %s (not present locally): %w", ref, err)
	}
	return nil
}

// installFeatures builds an image FROM base that runs each Feature's
// install.sh, with its options in the environment, in order.
func (r *Runner) installFeatures(ctx context.Context, c *Config, base string) (string, error) {
	if r.build == nil {
		return "", errors.New("install features: no builder configured")
	}
	insp, err := r.cli.ImageInspect(ctx, base)
	if err != nil {
		return "", fmt.Errorf("inspect image %s: %w", base, err)
	}
	dir, err := os.MkdirTemp("", "loop-features-")
	if err != nil {
		return "", fmt.Errorf("install features: %w", err)
	}
	defer os.RemoveAll(dir)

	var df strings.Builder
	// uid 0, not the name root: an image without /etc/passwd has no names.
	fmt.Fprintf(&df, "FROM %s\nUSER %s\n", base, rootUser)
	containerUser := c.ContainerUser
	if containerUser == "" && insp.Config != nil {
		containerUser = insp.Config.User
	}
	if containerUser == "" {
		containerUser = "root"
	}
	remote := c.RemoteUser
	if remote == "" {
		remote = containerUser
	}
	var env []string
	for i, f := range c.Features {
		name := fmt.Sprintf("%d-%s", i, f.ID)
		if err := os.CopyFS(filepath.Join(dir, name), os.DirFS(f.Dir)); err != nil {
			return "", fmt.Errorf("install feature %s: copy %s: %w", f.Ref, f.Dir, err)
		}
		vars := map[string]string{"_REMOTE_USER": remote, "_CONTAINER_USER": containerUser}
		for k, v := range f.Env {
			vars[k] = v
		}
		if err := os.WriteFile(filepath.Join(dir, name, ".loop-feature.env"), []byte(envFile(vars)), 0o644); err != nil {
			return "", fmt.Errorf("install feature %s: %w", f.Ref, err)
		}
		fmt.Fprintf(&df, "COPY %s/ /tmp/loop-features/%s/\n", name, name)
		fmt.Fprintf(&df, "RUN cd /tmp/loop-features/%s && set -a && . ./.loop-feature.env && set +a && chmod +x install.sh && ./install.sh\n", name)
		for k, v := range f.ContainerEnv {
			env = append(env, fmt.Sprintf("%s=%s", k, strconv.Quote(v)))
		}
	}
	sort.Strings(env)
	if len(env) > 0 {
		fmt.Fprintf(&df, "ENV %s\n", strings.Join(env, " "))
	}
	if insp.Config != nil && insp.Config.User != "" {
		fmt.Fprintf(&df, "USER %s\n", insp.Config.User)
	}
	fmt.Fprintf(r.Out, "installing features %s\n", featureRefs(c.Features))
	ref, err := r.build(ctx, &model.Image{
		Ref:     "loop-devcontainer/" + ID(c.LocalWorkspaceFolder, c.Path) + "-features",
		Context: dir, DockerfileContents: df.String(),
	}, r.Out)
	if err != nil {
		return "", fmt.Errorf("install features %s: %w", featureRefs(c.Features), err)
	}
	return ref, nil
}

func featureRefs(fs []Feature) string {
	refs := make([]string, len(fs))
	for i, f := range fs {
		refs[i] = f.Ref
	}
	return strings.Join(refs, ", ")
}

// envFile writes vars as shell assignments, single-quoted.
func envFile(vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s='%s'\n", k, strings.ReplaceAll(vars[k], "'", `'\''`))
	}
	return b.String()
}

// keepAlive replaces the image's command when overrideCommand is true (the
// image may be busybox: only sh and sleep are needed). The trap makes stop
// immediate although the shell is PID 1.
var keepAlive = []string{"/bin/sh", "-c", "echo Container started; trap 'exit 0' TERM; while sleep 1000 & wait $!; do :; done", "-"}

func (r *Runner) create(ctx context.Context, c *Config, img string) (string, error) {
	ra := c.RunArgs
	labels := map[string]string{}
	for k, v := range ra.Labels {
		labels[k] = v
	}
	for k, v := range r.Labels {
		labels[k] = v
	}
	labels[LabelLocalFolder] = c.LocalWorkspaceFolder
	labels[LabelConfigFile] = c.Path
	labels[LabelID] = ID(c.LocalWorkspaceFolder, c.Path)
	labels[LabelMetadata] = metadata(c)

	env := map[string]string{}
	for _, f := range c.Features {
		for k, v := range f.ContainerEnv {
			env[k] = v
		}
	}
	for k, v := range c.ContainerEnv {
		env[k] = v
	}
	envList := make([]string, 0, len(env)+len(ra.Env))
	for k, v := range env {
		envList = append(envList, k+"="+v)
	}
	sort.Strings(envList)
	envList = append(envList, ra.Env...)

	cfg := &container.Config{
		Image: img, Env: envList, Labels: labels, Hostname: ra.Hostname,
		User: c.ContainerUser, ExposedPorts: nat.PortSet{},
	}
	if cfg.User == "" {
		cfg.User = ra.User
	}
	if c.OverrideCommand {
		cfg.Entrypoint, cfg.Cmd = keepAlive[:1], keepAlive[1:]
	}
	h := &container.HostConfig{
		Init: ptr(c.Init || ra.Init), Privileged: c.Privileged || ra.Privileged,
		CapAdd: append(append([]string{}, c.CapAdd...), ra.CapAdd...), CapDrop: ra.CapDrop,
		SecurityOpt: append(append([]string{}, c.SecurityOpt...), ra.SecurityOpt...),
		ExtraHosts:  ra.AddHost, NetworkMode: container.NetworkMode(ra.Network), ShmSize: ra.ShmSize,
		PortBindings: nat.PortMap{},
	}
	h.Devices = ra.Devices
	for _, f := range c.Features {
		h.Privileged = h.Privileged || f.Privileged
		if f.Init {
			h.Init = ptr(true)
		}
		h.CapAdd = append(h.CapAdd, f.CapAdd...)
		h.SecurityOpt = append(h.SecurityOpt, f.SecurityOpt...)
	}
	if c.WorkspaceMount != nil {
		h.Mounts = append(h.Mounts, r.mapMount(*c.WorkspaceMount))
	}
	for _, m := range append(append([]mount.Mount{}, c.Mounts...), ra.Mounts...) {
		h.Mounts = append(h.Mounts, r.mapMount(m))
	}
	for _, b := range ra.Binds {
		src, rest, _ := strings.Cut(b, ":")
		if filepath.IsAbs(src) && r.MapPath != nil {
			src = r.MapPath(src)
		}
		h.Binds = append(h.Binds, src+":"+rest)
	}
	// forwardPorts are not published: editors tunnel them, and with the
	// host's engine the services a dev container starts publish on the host
	// themselves (publishing them here too would take their ports).
	publish := append(append([]string{}, c.AppPorts...), ra.Publish...)
	if len(publish) > 0 {
		exposed, bindings, err := nat.ParsePortSpecs(publish)
		if err != nil {
			return "", fmt.Errorf("create dev container: ports: %w", err)
		}
		cfg.ExposedPorts, h.PortBindings = exposed, bindings
	}
	fmt.Fprintf(r.Out, "creating dev container from %s\n", img)
	created, err := r.cli.ContainerCreate(ctx, cfg, h, nil, nil, ra.Name)
	if err != nil {
		return "", fmt.Errorf("create dev container from %s: %w", img, err)
	}
	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		_ = r.cli.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		return "", fmt.Errorf("start dev container from %s: %w", img, err)
	}
	return created.ID, nil
}

func ptr[T any](v T) *T { return &v }

func (r *Runner) mapMount(m mount.Mount) mount.Mount {
	if m.Type == mount.TypeBind && r.MapPath != nil {
		m.Source = r.MapPath(m.Source)
	}
	return m
}

// metadata is the devcontainer.metadata label: what tools attaching later
// need from the config (the spec's array of property objects).
func metadata(c *Config) string {
	var items []map[string]any
	for _, f := range c.Features {
		items = append(items, map[string]any{"id": f.Ref})
	}
	item := map[string]any{}
	if c.RemoteUser != "" {
		item["remoteUser"] = c.RemoteUser
	}
	if c.ContainerUser != "" {
		item["containerUser"] = c.ContainerUser
	}
	if len(c.RemoteEnv) > 0 {
		item["remoteEnv"] = c.RemoteEnv
	}
	items = append(items, item)
	b, _ := json.Marshal(items)
	return string(b)
}

func remoteUser(c *Config, insp container.InspectResponse) string {
	if c.RemoteUser != "" {
		return c.RemoteUser
	}
	if insp.Config != nil {
		return insp.Config.User
	}
	return ""
}

// remoteEnv resolves RemoteEnv against the container's environment.
func remoteEnv(c *Config, insp container.InspectResponse) []string {
	cenv := map[string]string{}
	if insp.Config != nil {
		for _, kv := range insp.Config.Env {
			k, v, _ := strings.Cut(kv, "=")
			cenv[k] = v
		}
	}
	v := *c.vars
	v.containerEnv = cenv
	out := make([]string, 0, len(c.RemoteEnv))
	for k, val := range c.RemoteEnv {
		out = append(out, k+"="+v.expand(val))
	}
	sort.Strings(out)
	return out
}

// lifecycle runs the container-side lifecycle commands that are due.
func (r *Runner) lifecycle(ctx context.Context, c *Config, insp container.InspectResponse) error {
	done, err := r.markers(ctx, insp.ID)
	if err != nil {
		return err
	}
	started := ""
	if insp.State != nil {
		started = insp.State.StartedAt
	}
	for _, lc := range []struct {
		name string
		cmd  Command
		// marker is the content recorded after success; the command runs
		// when the recorded content differs. Empty: runs every time.
		marker string
	}{
		{"onCreateCommand", c.OnCreateCommand, "done"},
		{"updateContentCommand", c.UpdateContentCommand, "done"},
		{"postCreateCommand", c.PostCreateCommand, "done"},
		{"postStartCommand", c.PostStartCommand, started},
		{"postAttachCommand", c.PostAttachCommand, ""},
	} {
		if lc.cmd.Empty() || (lc.marker != "" && done[lc.name] == lc.marker) {
			continue
		}
		if err := r.runInContainer(ctx, c, insp, lc.name, lc.cmd); err != nil {
			return err
		}
		if lc.marker != "" {
			if err := r.mark(ctx, insp.ID, lc.name, lc.marker); err != nil {
				return err
			}
		}
	}
	return nil
}

// markers reads the completion markers of the container.
func (r *Runner) markers(ctx context.Context, id string) (map[string]string, error) {
	script := `cd ` + markerDir + ` 2>/dev/null || exit 0; for f in *; do [ -f "$f" ] && printf '%s=%s\n' "$f" "$(cat "$f")"; done; exit 0`
	out, code, err := r.exec(ctx, id, container.ExecOptions{User: rootUser, Cmd: []string{"/bin/sh", "-c", script}}, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("read lifecycle markers: %w", err)
	}
	if code != 0 {
		return nil, fmt.Errorf("read lifecycle markers: exit %d: %s", code, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func (r *Runner) mark(ctx context.Context, id, name, value string) error {
	out, code, err := r.exec(ctx, id, container.ExecOptions{User: rootUser, Cmd: []string{
		"/bin/sh", "-c", `mkdir -p "$1" && printf '%s' "$3" > "$1/$2"`, "-", markerDir, name, value,
	}}, nil, nil)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit %d: %s", code, out)
	}
	if err != nil {
		return fmt.Errorf("record %s as done: %w", name, err)
	}
	return nil
}

// runInContainer runs the steps of cmd in parallel as the remote user in
// the workspace folder and waits for all of them.
func (r *Runner) runInContainer(ctx context.Context, c *Config, insp container.InspectResponse, name string, cmd Command) error {
	opts := container.ExecOptions{User: remoteUser(c, insp), Env: remoteEnv(c, insp), WorkingDir: c.WorkspaceFolder}
	return r.runSteps(name, cmd, func(s Step, w io.Writer) (int, error) {
		o := opts
		o.Cmd = s.Args
		if s.Args == nil {
			o.Cmd = []string{"/bin/sh", "-c", s.Shell}
		}
		_, code, err := r.exec(ctx, insp.ID, o, nil, w)
		return code, err
	})
}

// runHost runs initializeCommand on this machine in the workspace folder.
func (r *Runner) runHost(ctx context.Context, c *Config, name string, cmd Command) error {
	return r.runSteps(name, cmd, func(s Step, w io.Writer) (int, error) {
		argv := s.Args
		if argv == nil {
			argv = []string{"/bin/sh", "-c", s.Shell}
		}
		ec := exec.CommandContext(ctx, argv[0], argv[1:]...)
		ec.Dir, ec.Stdout, ec.Stderr = c.LocalWorkspaceFolder, w, w
		err := ec.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), nil
		}
		return 0, err
	})
}

// runSteps runs each step in its own goroutine (all are waited for before
// it returns), streaming output to r.Out prefixed by the step's name, and
// reports the first failure with the step's output.
func (r *Runner) runSteps(name string, cmd Command, run func(Step, io.Writer) (int, error)) error {
	if cmd.Empty() {
		return nil
	}
	fmt.Fprintf(r.Out, "running %s\n", name)
	var outMu sync.Mutex
	errs := make([]error, len(cmd.Steps))
	var wg sync.WaitGroup
	for i, s := range cmd.Steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var captured bytes.Buffer
			w := &stepWriter{mu: &outMu, out: r.Out, prefix: stepPrefix(s), captured: &captured}
			code, err := run(s, w)
			w.flush()
			label := name
			if s.Name != "" {
				label += " " + s.Name
			}
			switch {
			case err != nil:
				errs[i] = fmt.Errorf("%s: %w", label, err)
			case code != 0:
				errs[i] = fmt.Errorf("%s failed with exit code %d: %s\n%s", label, code, describe(s), tail(captured.String(), 4096))
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func describe(s Step) string {
	if s.Args != nil {
		return strings.Join(s.Args, " ")
	}
	return s.Shell
}

func stepPrefix(s Step) string {
	if s.Name == "" {
		return ""
	}
	return "[" + s.Name + "] "
}

func tail(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// stepWriter writes whole lines to out (shared by parallel steps) and
// keeps everything in captured.
type stepWriter struct {
	mu       *sync.Mutex
	out      io.Writer
	prefix   string
	captured *bytes.Buffer
	partial  []byte
}

func (w *stepWriter) Write(p []byte) (int, error) {
	w.captured.Write(p)
	w.partial = append(w.partial, p...)
	i := bytes.LastIndexByte(w.partial, '\n')
	if i < 0 {
		return len(p), nil
	}
	w.emit(w.partial[:i+1])
	w.partial = append(w.partial[:0], w.partial[i+1:]...)
	return len(p), nil
}

func (w *stepWriter) flush() {
	if len(w.partial) > 0 {
		w.emit(append(w.partial, '\n'))
		w.partial = nil
	}
}

func (w *stepWriter) emit(lines []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range bytes.SplitAfter(lines, []byte("\n")) {
		if len(l) > 0 {
			_, _ = io.WriteString(w.out, w.prefix)
			_, _ = w.out.Write(l)
		}
	}
}

// exec runs opts in container id. With stdout nil the combined output is
// returned; otherwise output goes to stdout (and stderr, or stdout when
// stderr is nil).
func (r *Runner) exec(ctx context.Context, id string, opts container.ExecOptions, stdin io.Reader, stdout io.Writer, stderr ...io.Writer) (string, int, error) {
	opts.AttachStdout, opts.AttachStderr, opts.AttachStdin = true, true, stdin != nil
	ex, err := r.cli.ContainerExecCreate(ctx, id, opts)
	if err != nil {
		return "", 0, fmt.Errorf("exec %s: %w", strings.Join(opts.Cmd, " "), err)
	}
	att, err := r.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("exec %s: attach: %w", strings.Join(opts.Cmd, " "), err)
	}
	defer att.Close()
	if stdin != nil {
		// This goroutine ends when stdin ends (then it half-closes the
		// connection so the process sees EOF) or when the connection is
		// closed on return. A read from a terminal cannot be interrupted,
		// so it is not waited for.
		go func() {
			_, _ = io.Copy(att.Conn, stdin)
			_ = att.CloseWrite()
		}()
	}
	var buf bytes.Buffer
	out, errw := io.Writer(&buf), io.Writer(&buf)
	if stdout != nil {
		out, errw = stdout, stdout
		if len(stderr) > 0 && stderr[0] != nil {
			errw = stderr[0]
		}
	}
	if _, err := stdcopy.StdCopy(out, errw, att.Reader); err != nil {
		return buf.String(), 0, fmt.Errorf("exec %s: read output: %w", strings.Join(opts.Cmd, " "), err)
	}
	insp, err := r.cli.ContainerExecInspect(ctx, ex.ID)
	if err != nil {
		return buf.String(), 0, fmt.Errorf("exec %s: inspect: %w", strings.Join(opts.Cmd, " "), err)
	}
	return buf.String(), insp.ExitCode, nil
}

// ErrNotRunning is returned by Exec when the workspace has no running dev
// container.
var ErrNotRunning = errors.New("dev container is not running (run `loop devcontainer up`)")

// Exec runs argv in the running dev container of c, in the workspace folder,
// as the remote user, with remoteEnv. It returns the command's exit code.
func (r *Runner) Exec(ctx context.Context, c *Config, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	ctr, ok, err := r.Find(ctx, c)
	if err != nil {
		return 0, err
	}
	if !ok || ctr.State != container.StateRunning {
		return 0, fmt.Errorf("exec in %s: %w", c.LocalWorkspaceFolder, ErrNotRunning)
	}
	insp, err := r.cli.ContainerInspect(ctx, ctr.ID)
	if err != nil {
		return 0, fmt.Errorf("inspect dev container %s: %w", shortID(ctr.ID), err)
	}
	_, code, err := r.exec(ctx, ctr.ID, container.ExecOptions{
		User: remoteUser(c, insp), Env: remoteEnv(c, insp), WorkingDir: c.WorkspaceFolder, Cmd: argv,
	}, stdin, stdout, stderr)
	return code, err
}

// Down removes the dev container(s) of c with their anonymous volumes. A
// loop that StartLoop runs there is stopped first with `loop down`, so what
// it started goes too. It returns how many containers it removed (0 when
// there was none).
func (r *Runner) Down(ctx context.Context, c *Config) (int, error) {
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelLocalFolder+"="+c.LocalWorkspaceFolder),
		filters.Arg("label", LabelConfigFile+"="+c.Path),
	)})
	if err != nil {
		return 0, fmt.Errorf("list dev containers of %s: %w", c.LocalWorkspaceFolder, err)
	}
	for _, ctr := range list {
		if ctr.State == container.StateRunning {
			// The container goes either way; what that loop started may
			// then be left, and the warning says so.
			if err := r.stopLoop(ctx, c, ctr.ID); err != nil {
				fmt.Fprintf(r.Out, "warning: %v; what it started may still run (remove it with `loop down` in the workspace)\n", err)
			}
		}
		if err := r.cli.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return 0, fmt.Errorf("remove dev container %s: %w", shortID(ctr.ID), err)
		}
	}
	return len(list), nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
