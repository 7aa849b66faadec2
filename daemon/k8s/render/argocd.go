package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// App is an Argo CD Application mirrored locally: its source rendered from the working tree.
type App struct {
	Name      string
	Namespace string // spec.destination.namespace
	// Tool is how the source was rendered: "Helm", "Kustomize" or "Directory".
	Tool     string
	Prune    bool // spec.syncPolicy.automated.prune
	SelfHeal bool // spec.syncPolicy.automated.selfHeal
	Objects  []*unstructured.Unstructured
}

// application is the part of an Argo CD Application that rendering reads.
type application struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Source      appSource `json:"source"`
		Destination struct {
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy struct {
			Automated *struct {
				Prune    bool `json:"prune"`
				SelfHeal bool `json:"selfHeal"`
			} `json:"automated"`
		} `json:"syncPolicy"`
	} `json:"spec"`
}

type appSource struct {
	Path string `json:"path"`
	Helm *struct {
		ReleaseName  string   `json:"releaseName"`
		ValueFiles   []string `json:"valueFiles"`
		Values       string   `json:"values"`
		ValuesObject map[string]any
		Parameters   []struct {
			Name        string `json:"name"`
			Value       string `json:"value"`
			ForceString bool   `json:"forceString"`
		} `json:"parameters"`
		SkipCrds bool `json:"skipCrds"`
	} `json:"helm"`
	Kustomize *struct {
		NamePrefix        string            `json:"namePrefix"`
		NameSuffix        string            `json:"nameSuffix"`
		Images            []string          `json:"images"`
		CommonLabels      map[string]string `json:"commonLabels"`
		CommonAnnotations map[string]string `json:"commonAnnotations"`
		Namespace         string            `json:"namespace"`
	} `json:"kustomize"`
	Directory *struct {
		Recurse bool   `json:"recurse"`
		Include string `json:"include"`
		Exclude string `json:"exclude"`
	} `json:"directory"`
}

// ArgoApps reads the Application manifests in path (a file or a directory of them) and
// renders each app's spec.source, whose path is relative to repoRoot, as the repo server
// would: the source type from an explicit tool block, else discovery (Chart.yaml → Helm,
// a kustomization file → Kustomize, else a directory of manifests).
func ArgoApps(ctx context.Context, path, repoRoot string) ([]*App, error) {
	var manifests []*unstructured.Unstructured
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("argocd_app %s: %w", path, err)
	}
	if st.IsDir() {
		manifests, err = Directory(path, DirectoryOptions{})
	} else {
		manifests, err = parseFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("argocd_app %s: %w", path, err)
	}
	var apps []*App
	for _, m := range manifests {
		if m.GetKind() != "Application" {
			continue
		}
		data, err := yaml.Marshal(m.Object)
		if err != nil {
			return nil, err
		}
		var a application
		if err := yaml.Unmarshal(data, &a); err != nil {
			return nil, fmt.Errorf("argocd_app %s: %w", path, err)
		}
		if v, ok, _ := unstructured.NestedMap(m.Object, "spec", "source", "helm", "valuesObject"); ok && a.Spec.Source.Helm != nil {
			a.Spec.Source.Helm.ValuesObject = v
		}
		app, err := renderApp(ctx, &a, repoRoot)
		if err != nil {
			return nil, fmt.Errorf("argocd_app %s: application %s: %w", path, a.Metadata.Name, err)
		}
		apps = append(apps, app)
	}
	if len(apps) == 0 {
		return nil, fmt.Errorf("argocd_app %s: no Application manifests", path)
	}
	return apps, nil
}

func renderApp(ctx context.Context, a *application, repoRoot string) (*App, error) {
	src := a.Spec.Source
	dir := filepath.Join(repoRoot, filepath.FromSlash(src.Path))
	app := &App{Name: a.Metadata.Name, Namespace: a.Spec.Destination.Namespace}
	if au := a.Spec.SyncPolicy.Automated; au != nil {
		app.Prune, app.SelfHeal = au.Prune, au.SelfHeal
	}
	app.Tool = sourceTool(src, dir)
	var err error
	switch app.Tool {
	case "Helm":
		o := HelmOptions{Chart: dir, ReleaseName: a.Metadata.Name, Namespace: app.Namespace}
		if h := src.Helm; h != nil {
			if h.ReleaseName != "" {
				o.ReleaseName = h.ReleaseName
			}
			o.ValueFiles, o.SkipCRDs = h.ValueFiles, h.SkipCrds
			o.ValuesObject = h.ValuesObject
			if o.ValuesObject == nil && strings.TrimSpace(h.Values) != "" {
				if err := yaml.Unmarshal([]byte(h.Values), &o.ValuesObject); err != nil {
					return nil, fmt.Errorf("helm values: %w", err)
				}
			}
			for _, p := range h.Parameters {
				if p.ForceString {
					o.SetString = append(o.SetString, p.Name+"="+p.Value)
				} else {
					o.Set = append(o.Set, p.Name+"="+p.Value)
				}
			}
		}
		app.Objects, err = Helm(ctx, o)
	case "Kustomize":
		var o KustomizeOptions
		if k := src.Kustomize; k != nil {
			o = KustomizeOptions{NamePrefix: k.NamePrefix, NameSuffix: k.NameSuffix, Images: k.Images,
				CommonLabels: k.CommonLabels, CommonAnnotations: k.CommonAnnotations, Namespace: k.Namespace}
		}
		app.Objects, err = Kustomize(dir, o)
	default:
		var o DirectoryOptions
		if d := src.Directory; d != nil {
			o = DirectoryOptions{Recurse: d.Recurse, Include: d.Include, Exclude: d.Exclude}
		}
		app.Objects, err = Directory(dir, o)
	}
	return app, err
}

// sourceTool picks the tool like the repo server: an explicit block wins, else discovery.
func sourceTool(src appSource, dir string) string {
	switch {
	case src.Helm != nil:
		return "Helm"
	case src.Kustomize != nil:
		return "Kustomize"
	case src.Directory != nil:
		return "Directory"
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err == nil {
		return "Helm"
	}
	for _, n := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return "Kustomize"
		}
	}
	return "Directory"
}
