package render

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomize --enable-helm inflates a kustomization's helmCharts by running the
// helm CLI (pull, then template). loop renders them in process with the Helm
// SDK instead: helmChartsFS serves every kustomization krusty reads with its
// helmCharts replaced by a resource file of the rendered objects, kept in
// memory, so no helm binary is needed and nothing is written into the tree.
// A chart must already be in the chart home (a load uses no network); the
// error says where and how to get it.

// helmGeneratedFile is the in-memory resource file of a kustomization's charts.
const helmGeneratedFile = ".loop-helm-charts.yaml"

type helmChartsFS struct {
	filesys.FileSystem
	ctx       context.Context
	generated map[string][]byte
	failed    map[string]error
}

func newHelmChartsFS(ctx context.Context, fs filesys.FileSystem) *helmChartsFS {
	return &helmChartsFS{FileSystem: fs, ctx: ctx, generated: map[string][]byte{}, failed: map[string]error{}}
}

func (h *helmChartsFS) Exists(path string) bool {
	if _, ok := h.generated[filepath.Clean(path)]; ok {
		return true
	}
	return h.FileSystem.Exists(path)
}

func (h *helmChartsFS) IsDir(path string) bool {
	if _, ok := h.generated[filepath.Clean(path)]; ok {
		return false
	}
	return h.FileSystem.IsDir(path)
}

// CleanedAbs resolves a generated file without the disk (where it is not).
func (h *helmChartsFS) CleanedAbs(path string) (filesys.ConfirmedDir, string, error) {
	if _, ok := h.generated[filepath.Clean(path)]; ok {
		d, _, err := h.FileSystem.CleanedAbs(filepath.Dir(path))
		return d, filepath.Base(path), err
	}
	return h.FileSystem.CleanedAbs(path)
}

func (h *helmChartsFS) ReadFile(path string) ([]byte, error) {
	p := filepath.Clean(path)
	if b, ok := h.generated[p]; ok {
		return b, h.failed[p]
	}
	data, err := h.FileSystem.ReadFile(path)
	if err != nil || !slices.Contains(konfig.RecognizedKustomizationFileNames(), filepath.Base(p)) {
		return data, err
	}
	return h.inflate(p, data)
}

// helmChart is one entry of a kustomization's helmCharts (kustomize's
// HelmChart type, the fields loop honours).
type helmChart struct {
	Name                  string         `json:"name"`
	Version               string         `json:"version"`
	Repo                  string         `json:"repo"`
	ReleaseName           string         `json:"releaseName"`
	Namespace             string         `json:"namespace"`
	ValuesFile            string         `json:"valuesFile"`
	AdditionalValuesFiles []string       `json:"additionalValuesFiles"`
	ValuesInline          map[string]any `json:"valuesInline"`
	ValuesMerge           string         `json:"valuesMerge"`
	IncludeCRDs           bool           `json:"includeCRDs"`
	SkipHooks             bool           `json:"skipHooks"`
	SkipTests             bool           `json:"skipTests"`
	APIVersions           []string       `json:"apiVersions"`
	KubeVersion           string         `json:"kubeVersion"`
}

// inflate renders the helmCharts of the kustomization at path (content data)
// and returns the kustomization with them replaced by helmGeneratedFile.
func (h *helmChartsFS) inflate(path string, data []byte) ([]byte, error) {
	var k map[string]any
	if err := yaml.Unmarshal(data, &k); err != nil || k == nil || k["helmCharts"] == nil {
		return data, nil // krusty reports a malformed file itself
	}
	var spec struct {
		HelmCharts  []helmChart `json:"helmCharts"`
		HelmGlobals struct {
			ChartHome string `json:"chartHome"`
		} `json:"helmGlobals"`
	}
	if err := yaml.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("kustomize %s: helmCharts: %w", path, err)
	}
	dir := filepath.Dir(path)
	home := spec.HelmGlobals.ChartHome
	if home == "" {
		home = "charts"
	}
	if !filepath.IsAbs(home) {
		home = filepath.Join(dir, home)
	}
	var out strings.Builder
	gen := filepath.Join(dir, helmGeneratedFile)
	for _, c := range spec.HelmCharts {
		text, err := h.render(dir, home, c)
		if err != nil {
			// krusty takes an error reading a kustomization for "not
			// found": the error is what reading the generated file gives.
			h.failed[gen] = fmt.Errorf("kustomize %s: helmCharts %s: %w", path, c.Name, err)
			break
		}
		out.WriteString("---\n")
		out.WriteString(text)
	}
	h.generated[gen] = []byte(out.String())
	delete(k, "helmCharts")
	delete(k, "helmGlobals")
	resources, _ := k["resources"].([]any)
	k["resources"] = append(resources, helmGeneratedFile)
	return yaml.Marshal(k)
}

func (h *helmChartsFS) render(dir, home string, c helmChart) (string, error) {
	chart := filepath.Join(home, c.Name)
	if !h.FileSystem.IsDir(chart) {
		get := "helm pull --untar --untardir " + home
		switch {
		case strings.HasPrefix(c.Repo, "oci://"):
			get += " " + strings.TrimSuffix(c.Repo, "/") + "/" + c.Name
		case c.Repo != "":
			get += " --repo " + c.Repo + " " + c.Name
		default:
			get += " " + c.Name
		}
		if c.Version != "" {
			get += " --version " + c.Version
		}
		return "", fmt.Errorf("no chart at %s, and loading uses no network: get it there once (%s)", chart, get)
	}
	o := HelmOptions{Chart: chart, ReleaseName: c.ReleaseName, Namespace: c.Namespace, KubeVersion: c.KubeVersion,
		APIVersions: c.APIVersions, SkipCRDs: !c.IncludeCRDs, SkipHooks: c.SkipHooks, SkipTests: c.SkipTests}
	var files []string
	for _, f := range append([]string{c.ValuesFile}, c.AdditionalValuesFiles...) {
		if f == "" {
			continue
		}
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		files = append(files, f)
	}
	switch c.ValuesMerge {
	case "", "override":
		// Inline values win over the values files.
		o.ValueFiles, o.ValuesObject = files, c.ValuesInline
	case "replace":
		o.ValueFiles, o.ValuesObject = files, c.ValuesInline
		if len(c.ValuesInline) > 0 {
			o.ValueFiles = nil
		}
	case "merge":
		// The values files win over inline values.
		merged := maps.Clone(c.ValuesInline)
		if merged == nil {
			merged = map[string]any{}
		}
		for i := len(files) - 1; i >= 0; i-- {
			b, err := os.ReadFile(files[i])
			if err != nil {
				return "", err
			}
			var v map[string]any
			if err := yaml.Unmarshal(b, &v); err != nil {
				return "", fmt.Errorf("values %s: %w", files[i], err)
			}
			merged = chartutil.CoalesceTables(v, merged)
		}
		o.ValuesObject = merged
	default:
		return "", fmt.Errorf("valuesMerge %q: want override, merge or replace", c.ValuesMerge)
	}
	if o.ReleaseName == "" {
		o.ReleaseName = "release-name"
	}
	return HelmTemplate(h.ctx, o)
}
