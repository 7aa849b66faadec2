package render

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// HelmOptions are the inputs of `helm template` as the Tiltfile's helm() and Argo CD's
// spec.source.helm give them.
type HelmOptions struct {
	// Chart is a local chart directory or packaged chart.
	Chart string
	// ReleaseName defaults to "release-name" like `helm template` (Argo CD passes the app name).
	ReleaseName string
	Namespace   string
	// ValueFiles are -f files; relative paths resolve against the chart directory.
	ValueFiles []string
	// Set are --set arguments, SetString --set-string, SetFile --set-file.
	Set       []string
	SetString []string
	SetFile   []string
	// ValuesObject is merged last (Argo CD's valuesObject / values).
	ValuesObject map[string]any
	KubeVersion  string
	APIVersions  []string
	SkipCRDs     bool
	// SkipHooks leaves hooks out (Argo CD keeps them: they become sync hooks).
	SkipHooks bool
	// SkipTests leaves out test hooks (helm.sh/hook: test), like `helm template --skip-tests`.
	SkipTests bool
}

// Helm renders a chart in process like `helm template --include-crds`: dependencies are
// checked and, when missing, built like `helm dependency build`; a render with no objects
// is an error, never silence.
func Helm(ctx context.Context, o HelmOptions) ([]*unstructured.Unstructured, error) {
	text, err := HelmTemplate(ctx, o)
	if err != nil {
		return nil, err
	}
	objs, err := Parse([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("helm template %s: parse output: %w", o.Chart, err)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("helm template %s: the chart rendered no objects", o.Chart)
	}
	return objs, nil
}

// HelmTemplate renders a chart in process like `helm template --include-crds` and
// returns what that command prints: the manifest, then each hook, every document after
// a "# Source: <template>" line. Dependencies are handled as Helm does.
func HelmTemplate(ctx context.Context, o HelmOptions) (string, error) {
	chartPath, err := filepath.Abs(o.Chart)
	if err != nil {
		return "", fmt.Errorf("helm template %s: %w", o.Chart, err)
	}
	ch, err := loadChartWithDeps(chartPath)
	if err != nil {
		return "", err
	}
	settings := cli.New()
	vopts := values.Options{Values: o.Set, StringValues: o.SetString, FileValues: o.SetFile}
	for _, f := range o.ValueFiles {
		if !filepath.IsAbs(f) {
			f = filepath.Join(chartPath, f)
		}
		vopts.ValueFiles = append(vopts.ValueFiles, f)
	}
	if len(o.ValuesObject) > 0 {
		// Argo CD writes valuesObject to a file passed after the value files, so it
		// overrides them while --set still wins.
		f, err := os.CreateTemp("", "loop-helm-values-*.yaml")
		if err != nil {
			return "", fmt.Errorf("helm template %s: %w", o.Chart, err)
		}
		defer os.Remove(f.Name())
		data, err := yaml.Marshal(o.ValuesObject)
		if err == nil {
			_, err = f.Write(data)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("helm template %s: write valuesObject: %w", o.Chart, err)
		}
		vopts.ValueFiles = append(vopts.ValueFiles, f.Name())
	}
	vals, err := vopts.MergeValues(getter.All(settings))
	if err != nil {
		return "", fmt.Errorf("helm template %s: values: %w", o.Chart, err)
	}

	inst := action.NewInstall(new(action.Configuration))
	inst.DryRun, inst.DryRunOption = true, "true"
	inst.ClientOnly, inst.Replace = true, true
	inst.ReleaseName = o.ReleaseName
	if inst.ReleaseName == "" {
		inst.ReleaseName = "release-name"
	}
	inst.Namespace = o.Namespace
	if inst.Namespace == "" {
		inst.Namespace = "default"
	}
	inst.IncludeCRDs = !o.SkipCRDs
	inst.DisableHooks = o.SkipHooks
	inst.APIVersions = chartutil.VersionSet(o.APIVersions)
	if o.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(o.KubeVersion)
		if err != nil {
			return "", fmt.Errorf("helm template %s: kube version %q: %w", o.Chart, o.KubeVersion, err)
		}
		inst.KubeVersion = kv
	}
	rel, err := inst.RunWithContext(ctx, ch, vals)
	if err != nil {
		return "", fmt.Errorf("helm template %s: %w", o.Chart, err)
	}
	var b strings.Builder
	b.WriteString(strings.TrimSpace(rel.Manifest))
	b.WriteString("\n")
	if !o.SkipHooks {
		for _, h := range rel.Hooks {
			if o.SkipTests && slices.Contains(h.Events, release.HookTest) {
				continue
			}
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", h.Path, h.Manifest)
		}
	}
	return b.String(), nil
}

// loadChartWithDeps loads a chart and, if its declared dependencies are not all present,
// builds them like `helm dependency build` (writing charts/, as the CLI does) and reloads.
func loadChartWithDeps(path string) (*chart.Chart, error) {
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("helm load chart %s: %w", path, err)
	}
	req := ch.Metadata.Dependencies
	if len(req) == 0 {
		return ch, nil
	}
	if err := action.CheckDependencies(ch, req); err == nil {
		return ch, nil
	}
	settings := cli.New()
	m := &downloader.Manager{
		Out:              io.Discard,
		ChartPath:        path,
		SkipUpdate:       true,
		Getters:          getter.All(settings),
		RepositoryConfig: settings.RepositoryConfig,
		RepositoryCache:  settings.RepositoryCache,
	}
	if err := m.Build(); err != nil {
		return nil, fmt.Errorf("helm dependency build %s: %w", path, err)
	}
	if ch, err = loader.Load(path); err != nil {
		return nil, fmt.Errorf("helm load chart %s: %w", path, err)
	}
	if err := action.CheckDependencies(ch, req); err != nil {
		return nil, fmt.Errorf("helm chart %s: %w", path, err)
	}
	return ch, nil
}
