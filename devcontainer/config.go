// Package devcontainer turns a workspace's devcontainer.json into a running
// dev container on the Docker engine, without the Node devcontainer CLI.
//
// It owns two things:
//
//   - Reading: Load finds and parses devcontainer.json (JSON with comments and
//     trailing commas), substitutes the spec's variables and checks every
//     property it uses; a mistake is an *Error whose text is
//     "path:line:col: message".
//   - Running: Runner.Up creates (or finds and reuses) the container labelled
//     devcontainer.local_folder and devcontainer.config_file, as the
//     reference CLI and VS Code do, runs the lifecycle commands once each as
//     the spec says, and Exec and Down act on that container.
//
// See docs/devcontainers.md for what is supported.
package devcontainer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/mount"
	"github.com/tailscale/hujson"
)

// Config is a devcontainer.json, with variables substituted (except
// ${containerEnv:...} in RemoteEnv, resolved when the container exists) and
// every path made absolute.
type Config struct {
	// Path is the devcontainer.json file; Dir its folder.
	Path, Dir string
	// LocalWorkspaceFolder is the workspace on this machine.
	LocalWorkspaceFolder string
	Name                 string

	// Image is the image to run; empty when Build is set.
	Image string
	Build *Build
	// Features are local Features, in the order they are installed.
	Features []Feature

	// WorkspaceFolder is the workspace inside the container.
	WorkspaceFolder string
	// WorkspaceMount mounts the workspace (nil when "workspaceMount" is "").
	WorkspaceMount *mount.Mount
	Mounts         []mount.Mount

	ContainerEnv map[string]string
	// RemoteEnv is set for lifecycle commands and exec; values may still
	// hold ${containerEnv:VAR}.
	RemoteEnv     map[string]string
	ContainerUser string
	// RemoteUser runs lifecycle commands and exec; empty means ContainerUser
	// (or the image's user).
	RemoteUser string

	// ForwardPorts are for editors to tunnel; Up does not publish them.
	ForwardPorts []int
	// AppPorts are published as `docker run -p` would.
	AppPorts []string

	RunArgs         RunArgs
	OverrideCommand bool
	Init            bool
	Privileged      bool
	CapAdd          []string
	SecurityOpt     []string

	InitializeCommand    Command
	OnCreateCommand      Command
	UpdateContentCommand Command
	PostCreateCommand    Command
	PostStartCommand     Command
	PostAttachCommand    Command

	// vars resolves ${containerEnv:...} in RemoteEnv later.
	vars *vars
}

// Build is the "build" property.
type Build struct {
	// Dockerfile and Context are absolute.
	Dockerfile string
	Context    string
	Args       map[string]string
	Target     string
}

// Command is a lifecycle command. Each Step runs at the same time as the
// others (the object form); a string or an array is a single step.
type Command struct {
	Steps []Step
}

// Step is one command: Shell runs with `/bin/sh -c`, Args runs as is.
type Step struct {
	// Name is the key in the object form; empty otherwise.
	Name  string
	Shell string
	Args  []string
}

// Empty reports whether there is nothing to run.
func (c Command) Empty() bool { return len(c.Steps) == 0 }

// LoadOptions say where the workspace and its config are.
type LoadOptions struct {
	// WorkspaceFolder is the local workspace; empty means the current
	// directory.
	WorkspaceFolder string
	// ConfigPath is the devcontainer.json; empty means find it under
	// WorkspaceFolder.
	ConfigPath string
	// LookupEnv reads the local environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// ErrNoConfig is returned by Load when the workspace has no devcontainer.json.
var ErrNoConfig = errors.New("no devcontainer.json")

// FindConfig returns the devcontainer.json of workspace: .devcontainer/
// devcontainer.json, .devcontainer.json, or the only .devcontainer/<name>/
// devcontainer.json. It wraps ErrNoConfig when there is none.
func FindConfig(workspace string) (string, error) {
	for _, p := range []string{
		filepath.Join(workspace, ".devcontainer", "devcontainer.json"),
		filepath.Join(workspace, ".devcontainer.json"),
	} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	named, _ := filepath.Glob(filepath.Join(workspace, ".devcontainer", "*", "devcontainer.json"))
	switch len(named) {
	case 0:
		return "", fmt.Errorf("find devcontainer.json in %s (looked for .devcontainer/devcontainer.json, .devcontainer.json, .devcontainer/<name>/devcontainer.json): %w", workspace, ErrNoConfig)
	case 1:
		return named[0], nil
	}
	return "", fmt.Errorf("find devcontainer.json in %s: %d configurations (%s): choose one with --config", workspace, len(named), strings.Join(named, ", "))
}

// raw is devcontainer.json as decoded; polymorphic properties stay raw.
type raw struct {
	Name  string `json:"name"`
	Image string `json:"image"`
	Build *struct {
		Dockerfile string            `json:"dockerfile"`
		Context    string            `json:"context"`
		Args       map[string]string `json:"args"`
		Target     string            `json:"target"`
	} `json:"build"`
	// The older top-level spelling of build.dockerfile and build.context.
	DockerFile        string                     `json:"dockerFile"`
	Context           string                     `json:"context"`
	DockerComposeFile json.RawMessage            `json:"dockerComposeFile"`
	WorkspaceFolder   *string                    `json:"workspaceFolder"`
	WorkspaceMount    *string                    `json:"workspaceMount"`
	Mounts            []json.RawMessage          `json:"mounts"`
	ContainerEnv      map[string]string          `json:"containerEnv"`
	RemoteEnv         map[string]*string         `json:"remoteEnv"`
	ContainerUser     string                     `json:"containerUser"`
	RemoteUser        string                     `json:"remoteUser"`
	ForwardPorts      []json.RawMessage          `json:"forwardPorts"`
	AppPort           json.RawMessage            `json:"appPort"`
	RunArgs           []string                   `json:"runArgs"`
	OverrideCommand   *bool                      `json:"overrideCommand"`
	Init              bool                       `json:"init"`
	Privileged        bool                       `json:"privileged"`
	CapAdd            []string                   `json:"capAdd"`
	SecurityOpt       []string                   `json:"securityOpt"`
	Features          map[string]json.RawMessage `json:"features"`

	InitializeCommand    json.RawMessage `json:"initializeCommand"`
	OnCreateCommand      json.RawMessage `json:"onCreateCommand"`
	UpdateContentCommand json.RawMessage `json:"updateContentCommand"`
	PostCreateCommand    json.RawMessage `json:"postCreateCommand"`
	PostStartCommand     json.RawMessage `json:"postStartCommand"`
	PostAttachCommand    json.RawMessage `json:"postAttachCommand"`
}

// Load reads and checks the workspace's devcontainer.json. A mistake in the
// file is an *Error naming its line and column.
func Load(o LoadOptions) (*Config, error) {
	ws := o.WorkspaceFolder
	if ws == "" {
		ws = "."
	}
	ws, err := filepath.Abs(ws)
	if err != nil {
		return nil, fmt.Errorf("find workspace folder: %w", err)
	}
	cfgPath := o.ConfigPath
	if cfgPath == "" {
		if cfgPath, err = FindConfig(ws); err != nil {
			return nil, err
		}
	}
	if cfgPath, err = filepath.Abs(cfgPath); err != nil {
		return nil, fmt.Errorf("find devcontainer.json: %w", err)
	}
	src, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, fmt.Errorf("read devcontainer.json: %w", err)
	}
	lookup := o.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return parse(cfgPath, src, ws, lookup)
}

// ID is the spec's ${devcontainerId}-like identity of a workspace and config:
// stable across runs, different for different workspaces.
func ID(localWorkspaceFolder, configPath string) string {
	sum := sha256.Sum256([]byte(localWorkspaceFolder + "\x00" + configPath))
	return hex.EncodeToString(sum[:])[:16]
}

func parse(cfgPath string, src []byte, ws string, lookup func(string) (string, bool)) (*Config, error) {
	doc, err := parseJSONC(cfgPath, src)
	if err != nil {
		return nil, err
	}
	v := &vars{localWorkspaceFolder: ws, localEnv: lookup, devcontainerID: ID(ws, cfgPath)}

	// workspaceFolder is needed for ${containerWorkspaceFolder} before the
	// other properties are expanded.
	var first struct {
		WorkspaceFolder *string `json:"workspaceFolder"`
	}
	if err := doc.decode(&first); err != nil {
		return nil, err
	}
	v.containerWorkspaceFolder = "/workspaces/" + filepath.Base(ws)
	if first.WorkspaceFolder != nil && *first.WorkspaceFolder != "" {
		v.containerWorkspaceFolder = v.expand(*first.WorkspaceFolder)
	}

	// Expand variables in every string of a copy of the tree; positions for
	// messages come from the original.
	expanded := doc.tree.Clone()
	for val := range expanded.All() {
		lit, ok := val.Value.(hujson.Literal)
		if !ok || lit.Kind() != '"' {
			continue
		}
		s := lit.String()
		if e := v.expand(s); e != s {
			b, _ := json.Marshal(e)
			val.Value = hujson.Literal(b)
		}
	}
	expanded.Standardize()
	std := *doc
	std.std = expanded.Pack()

	var r raw
	if err := std.decode(&r); err != nil {
		return nil, err
	}
	c := &Config{
		Path: cfgPath, Dir: filepath.Dir(cfgPath), LocalWorkspaceFolder: ws, Name: r.Name,
		Image: r.Image, WorkspaceFolder: v.containerWorkspaceFolder,
		ContainerEnv: r.ContainerEnv, ContainerUser: r.ContainerUser, RemoteUser: r.RemoteUser,
		Init: r.Init, Privileged: r.Privileged, CapAdd: r.CapAdd, SecurityOpt: r.SecurityOpt,
		RemoteEnv: map[string]string{}, vars: v,
	}
	if !path.IsAbs(c.WorkspaceFolder) {
		return nil, doc.errorAt("/workspaceFolder", "\"workspaceFolder\" must be an absolute path in the container, not %q", c.WorkspaceFolder)
	}
	if r.DockerComposeFile != nil {
		return nil, doc.errorAt("/dockerComposeFile", "Compose-based dev containers (\"dockerComposeFile\") are not supported by loop yet: use \"image\" or \"build\", and run the Compose services with `loop up` inside the dev container")
	}

	if err := c.loadBuild(doc, &r); err != nil {
		return nil, err
	}
	if err := c.loadMounts(doc, &r); err != nil {
		return nil, err
	}
	for k, val := range r.RemoteEnv {
		if val != nil { // null unsets a variable: leave it out
			c.RemoteEnv[k] = *val
		}
	}
	if err := c.loadPorts(doc, &r); err != nil {
		return nil, err
	}
	if c.RunArgs, err = parseRunArgs(doc, r.RunArgs); err != nil {
		return nil, err
	}
	// overrideCommand defaults to true for image and Dockerfile configs.
	c.OverrideCommand = r.OverrideCommand == nil || *r.OverrideCommand
	for _, lc := range []struct {
		name string
		raw  json.RawMessage
		dst  *Command
	}{
		{"initializeCommand", r.InitializeCommand, &c.InitializeCommand},
		{"onCreateCommand", r.OnCreateCommand, &c.OnCreateCommand},
		{"updateContentCommand", r.UpdateContentCommand, &c.UpdateContentCommand},
		{"postCreateCommand", r.PostCreateCommand, &c.PostCreateCommand},
		{"postStartCommand", r.PostStartCommand, &c.PostStartCommand},
		{"postAttachCommand", r.PostAttachCommand, &c.PostAttachCommand},
	} {
		if *lc.dst, err = parseCommand(doc, "/"+lc.name, lc.raw); err != nil {
			return nil, err
		}
	}
	if err := c.loadFeatures(doc, r.Features, v); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) loadBuild(doc *document, r *raw) error {
	dockerfile, context, ptr := r.DockerFile, r.Context, "/dockerFile"
	if r.Build != nil {
		if r.Build.Dockerfile != "" {
			dockerfile, ptr = r.Build.Dockerfile, "/build/dockerfile"
		}
		if r.Build.Context != "" {
			context = r.Build.Context
		}
	}
	switch {
	case c.Image != "" && dockerfile != "":
		return doc.errorAt("/image", "set either \"image\" or \"build.dockerfile\", not both")
	case c.Image != "":
		return nil
	case dockerfile == "":
		if r.Build != nil {
			return doc.errorAt("/build", "\"build\" needs \"dockerfile\" (a path relative to the devcontainer.json folder)")
		}
		return doc.errorAt("", "set \"image\" (an image to run) or \"build\": {\"dockerfile\": ...}")
	}
	if context == "" {
		context = "."
	}
	b := &Build{
		Dockerfile: abs(c.Dir, dockerfile),
		Context:    abs(c.Dir, context),
	}
	if r.Build != nil {
		b.Args, b.Target = r.Build.Args, r.Build.Target
	}
	if fi, err := os.Stat(b.Dockerfile); err != nil || fi.IsDir() {
		return doc.errorAt(ptr, "Dockerfile %s does not exist: fix the path (it is relative to the folder of devcontainer.json)", b.Dockerfile)
	}
	if fi, err := os.Stat(b.Context); err != nil || !fi.IsDir() {
		return doc.errorAt("/build/context", "build context %s is not a directory: fix \"build.context\" (relative to the folder of devcontainer.json)", b.Context)
	}
	c.Build = b
	return nil
}

func abs(dir, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

func (c *Config) loadMounts(doc *document, r *raw) error {
	if r.WorkspaceMount == nil {
		c.WorkspaceMount = &mount.Mount{Type: mount.TypeBind, Source: c.LocalWorkspaceFolder, Target: c.WorkspaceFolder}
	} else if *r.WorkspaceMount != "" {
		m, err := parseMountString(*r.WorkspaceMount)
		if err != nil {
			return doc.errorAt("/workspaceMount", "\"workspaceMount\": %v", err)
		}
		c.WorkspaceMount = &m
	}
	for i, rm := range r.Mounts {
		ptr := "/mounts/" + strconv.Itoa(i)
		var m mount.Mount
		switch kindOf(rm) {
		case "string":
			var s string
			_ = json.Unmarshal(rm, &s)
			var err error
			if m, err = parseMountString(s); err != nil {
				return doc.errorAt(ptr, "mount: %v", err)
			}
		case "object":
			var o struct {
				Type, Source, Target string
				ReadOnly             bool `json:"readonly"`
			}
			if err := doc.decodeAt(ptr, rm, &o, "a mount object {\"type\", \"source\", \"target\"}"); err != nil {
				return err
			}
			m = mount.Mount{Type: mount.Type(o.Type), Source: o.Source, Target: o.Target, ReadOnly: o.ReadOnly}
			if err := checkMount(m); err != nil {
				return doc.errorAt(ptr, "mount: %v", err)
			}
		default:
			return doc.errorAt(ptr, "a mount must be a string (\"type=bind,source=...,target=...\") or an object, not %s", kindOf(rm))
		}
		c.Mounts = append(c.Mounts, m)
	}
	return nil
}

// parseMountString parses the `docker run --mount` syntax.
func parseMountString(s string) (mount.Mount, error) {
	m := mount.Mount{Type: mount.TypeVolume}
	for _, part := range strings.Split(s, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = mount.Type(val)
		case "source", "src":
			m.Source = val
		case "target", "destination", "dst":
			m.Target = val
		case "readonly", "ro":
			m.ReadOnly = val == "" || val == "true" || val == "1"
		case "consistency":
			m.Consistency = mount.Consistency(val)
		case "":
		default:
			// Options such as volume-opt are passed by docker but rare in
			// dev containers; refusing them beats ignoring them silently.
			return m, fmt.Errorf("unsupported option %q in %q (use type, source, target, readonly, consistency)", k, s)
		}
	}
	return m, checkMount(m)
}

func checkMount(m mount.Mount) error {
	switch m.Type {
	case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs:
	default:
		return fmt.Errorf("type %q is not bind, volume or tmpfs", m.Type)
	}
	if m.Target == "" {
		return errors.New("target is missing")
	}
	if m.Type == mount.TypeBind && !filepath.IsAbs(m.Source) {
		return fmt.Errorf("a bind source must be an absolute path (use ${localWorkspaceFolder}/...), not %q", m.Source)
	}
	return nil
}

func (c *Config) loadPorts(doc *document, r *raw) error {
	for i, rp := range r.ForwardPorts {
		ptr := "/forwardPorts/" + strconv.Itoa(i)
		var n int
		if err := json.Unmarshal(rp, &n); err == nil {
			if n < 1 || n > 65535 {
				return doc.errorAt(ptr, "port %d is out of range 1-65535", n)
			}
			c.ForwardPorts = append(c.ForwardPorts, n)
			continue
		}
		var s string
		if err := json.Unmarshal(rp, &s); err != nil {
			return doc.errorAt(ptr, "a forwarded port must be a number or \"host:port\", not %s", kindOf(rp))
		}
		host, port, ok := strings.Cut(s, ":")
		n, err := strconv.Atoi(port)
		if !ok || err != nil {
			return doc.errorAt(ptr, "a forwarded port must be a number or \"host:port\", not %q", s)
		}
		// "host:port" names a port of another host (a Compose service)
		// that an editor tunnels; loop publishes only the dev container's.
		if host == "localhost" || host == "127.0.0.1" {
			c.ForwardPorts = append(c.ForwardPorts, n)
		}
	}
	if r.AppPort == nil {
		return nil
	}
	var many []json.RawMessage
	if kindOf(r.AppPort) != "array" {
		many = []json.RawMessage{r.AppPort}
	} else {
		_ = json.Unmarshal(r.AppPort, &many)
	}
	for _, p := range many {
		var n int
		var s string
		if json.Unmarshal(p, &n) == nil {
			s = strconv.Itoa(n)
		} else if json.Unmarshal(p, &s) != nil {
			return doc.errorAt("/appPort", "\"appPort\" must be a number, a string (\"3000:3000\") or an array of them, not %s", kindOf(p))
		}
		if !strings.Contains(s, ":") {
			s = s + ":" + s
		}
		c.AppPorts = append(c.AppPorts, s)
	}
	return nil
}

// parseCommand reads a lifecycle command: a string, an array of strings or
// an object of either.
func parseCommand(doc *document, ptr string, rc json.RawMessage) (Command, error) {
	if rc == nil || kindOf(rc) == "null" {
		return Command{}, nil
	}
	step := func(ptr, name string, rc json.RawMessage) (Step, error) {
		switch kindOf(rc) {
		case "string":
			var s string
			_ = json.Unmarshal(rc, &s)
			return Step{Name: name, Shell: s}, nil
		case "array":
			var a []string
			if err := json.Unmarshal(rc, &a); err != nil || len(a) == 0 {
				return Step{}, doc.errorAt(ptr, "a command array must hold the program and its arguments as strings")
			}
			return Step{Name: name, Args: a}, nil
		}
		return Step{}, doc.errorAt(ptr, "%s must be a string, an array of strings or an object of commands, not %s", strings.TrimPrefix(ptr, "/"), kindOf(rc))
	}
	if kindOf(rc) != "object" {
		s, err := step(ptr, "", rc)
		if err != nil {
			return Command{}, err
		}
		return Command{Steps: []Step{s}}, nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(rc, &m)
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var cmd Command
	for _, k := range names {
		s, err := step(ptr+"/"+k, k, m[k])
		if err != nil {
			return Command{}, err
		}
		cmd.Steps = append(cmd.Steps, s)
	}
	return cmd, nil
}
