package tiltfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/registry"
)

// Loading never uses the network: a Tiltfile that needs an extension
// repository or a chart that is not on this machine fails with a *Missing,
// which says what to get and where it goes. `loop fetch` gets it (Fetch) and
// loads again, so the download happens once, when the user asks for it, and
// every later load (each save of the Tiltfile) stays local and fast.

// Missing is something a load needs from the network.
type Missing struct {
	// Kind is MissingRepo (an extension repository, cloned with git) or
	// MissingChart (a Helm chart, pulled with the Helm SDK).
	Kind string
	// Name is what the Tiltfile calls it: the repository's registered name,
	// or the chart.
	Name string
	// URL is the repository: a git URL, or a chart repository (https:// or
	// oci://).
	URL string
	// Ref is the git ref to check out (empty: the default branch).
	Ref string
	// Version is the chart version (empty: the latest).
	Version string
	// Username and Password authenticate to a chart repository.
	Username, Password string
	// Dest is the directory the repository or the chart's folder goes to.
	Dest string
}

// The kinds of Missing.
const (
	MissingRepo  = "extension repository"
	MissingChart = "chart"
)

func (m *Missing) Error() string {
	what := fmt.Sprintf("extension repo %q (%s)", m.Name, m.URL)
	if m.Kind == MissingChart {
		what = fmt.Sprintf("chart %q from %s", m.Name, m.URL)
		if m.Version != "" {
			what += " version " + m.Version
		}
	}
	return fmt.Sprintf("%s is not on this machine (looked in %s) and loading uses no network: "+
		"run `loop fetch` to download it there", what, m.Dest)
}

// Fetch downloads what m names into m.Dest, whole or not at all (it is
// fetched beside Dest and renamed into place). A repository is cloned with
// the git command; a chart is pulled with the Helm SDK, so no helm CLI is needed.
func Fetch(ctx context.Context, m *Missing, out io.Writer) error {
	if _, err := os.Stat(m.Dest); err == nil {
		return nil
	}
	parent := filepath.Dir(m.Dest)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("fetch %s: %w", m.Name, err)
	}
	tmp, err := os.MkdirTemp(parent, ".fetch-")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", m.Name, err)
	}
	defer os.RemoveAll(tmp)
	var got string
	switch m.Kind {
	case MissingRepo:
		got, err = cloneRepo(ctx, m, tmp, out)
	case MissingChart:
		got, err = pullChart(m, tmp)
	default:
		err = fmt.Errorf("unknown kind %q", m.Kind)
	}
	if err != nil {
		return fmt.Errorf("fetch %s %s from %s: %w", m.Kind, m.Name, m.URL, err)
	}
	if err := os.Rename(got, m.Dest); err != nil {
		return fmt.Errorf("fetch %s: %w", m.Name, err)
	}
	return nil
}

// cloneRepo clones m.URL into tmp/repo and checks out m.Ref.
func cloneRepo(ctx context.Context, m *Missing, tmp string, out io.Writer) (string, error) {
	if _, err := exec.LookPath("git"); err != nil {
		return "", fmt.Errorf("git is needed to clone it: %w", err)
	}
	dir := filepath.Join(tmp, "repo")
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", args...)
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = out, io.MultiWriter(out, &stderr)
		// Never stop to ask for credentials: loop fetch may run unattended.
		cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("git %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}
	if err := run("clone", "--quiet", m.URL, dir); err != nil {
		return "", err
	}
	if m.Ref != "" && m.Ref != "HEAD" {
		if err := run("-C", dir, "checkout", "--quiet", m.Ref); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// pullChart pulls chart m.Name of m.URL (a chart repository or an OCI
// registry) and unpacks it; it returns the chart's folder.
func pullChart(m *Missing, tmp string) (string, error) {
	settings := cli.New()
	// The index is read into a cache of this fetch's own, not helm's.
	settings.RepositoryCache = filepath.Join(tmp, "cache")
	settings.RepositoryConfig = filepath.Join(tmp, "repositories.yaml")
	cfg := &action.Configuration{}
	rc, err := registry.NewClient(registry.ClientOptCredentialsFile(filepath.Join(tmp, "registry.json")))
	if err != nil {
		return "", err
	}
	cfg.RegistryClient = rc
	p := action.NewPullWithOpts(action.WithConfig(cfg))
	p.Settings = settings
	p.Version = m.Version
	p.Username, p.Password = m.Username, m.Password
	p.Untar = true
	p.DestDir = filepath.Join(tmp, "dl")
	p.UntarDir = filepath.Join(tmp, "chart")
	if err := os.MkdirAll(p.DestDir, 0o755); err != nil {
		return "", err
	}
	ref := m.Name
	if registry.IsOCI(m.URL) {
		ref = strings.TrimSuffix(m.URL, "/") + "/" + m.Name
	} else {
		p.RepoURL = m.URL
	}
	if _, err := p.Run(ref); err != nil {
		return "", err
	}
	dir := filepath.Join(p.UntarDir, m.Name)
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return "", errors.New("the pulled archive has no " + m.Name + "/Chart.yaml")
	}
	return dir, nil
}
