package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/model"
)

// releaseHistory is how many revisions of a release are kept, as helm
// upgrade's default --history-max (the extension runs helm upgrade --install).
const releaseHistory = 10

// releases is the Helm SDK's store of a release's namespace: Secrets named
// sh.helm.release.v1.NAME.vN, where the helm CLI reads them.
func (d *Deployer) releases(rel *model.HelmRelease) (*storage.Storage, string, error) {
	_, core, err := d.clients()
	if err != nil {
		return nil, "", err
	}
	ns := rel.Namespace
	if ns == "" {
		ns = d.Namespace()
	}
	if ns == "" {
		ns = "default"
	}
	s := storage.Init(driver.NewSecrets(core.Secrets(ns)))
	s.MaxHistory = releaseHistory
	return s, ns, nil
}

// RecordRelease records objs, just applied, as a new revision of the Helm
// release rel (the previous one superseded), so that `helm list` and
// `helm get manifest` show what loop installed. loop keeps applying and
// deleting the objects itself; the record says what they are.
func (d *Deployer) RecordRelease(ctx context.Context, rel *model.HelmRelease, objs []*unstructured.Unstructured, logs io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, ns, err := d.releases(rel)
	if err != nil {
		return fmt.Errorf("record helm release %s: %w", rel.Name, err)
	}
	ch, err := loader.Load(rel.Chart)
	if err != nil {
		return fmt.Errorf("record helm release %s: load chart %s: %w", rel.Name, rel.Chart, err)
	}
	var manifest strings.Builder
	for _, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return fmt.Errorf("record helm release %s: %w", rel.Name, err)
		}
		manifest.WriteString("---\n")
		manifest.Write(b)
	}
	history, err := s.History(rel.Name)
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return fmt.Errorf("record helm release %s: %w", rel.Name, err)
	}
	now := helmtime.Now()
	r := &release.Release{Name: rel.Name, Namespace: ns, Chart: ch, Manifest: manifest.String(), Version: 1,
		Info: &release.Info{FirstDeployed: now, LastDeployed: now, Status: release.StatusDeployed, Description: "Install complete"}}
	for _, h := range history {
		if h.Version >= r.Version {
			r.Version = h.Version + 1
		}
		if h.Info != nil && h.Info.Status != release.StatusUninstalled && h.Info.FirstDeployed.Before(r.Info.FirstDeployed) {
			r.Info.FirstDeployed = h.Info.FirstDeployed
		}
		if h.Info != nil && h.Info.Status == release.StatusDeployed {
			h.Info.Status = release.StatusSuperseded
			if err := s.Update(h); err != nil {
				return fmt.Errorf("record helm release %s: supersede revision %d: %w", rel.Name, h.Version, err)
			}
		}
	}
	if r.Version > 1 {
		r.Info.Description = "Upgrade complete"
	}
	if err := s.Create(r); err != nil {
		return fmt.Errorf("record helm release %s: %w", rel.Name, err)
	}
	fmt.Fprintf(logs, "helm release %s (namespace %s) revision %d recorded\n", rel.Name, ns, r.Version)
	return nil
}

// UninstallRelease removes the Helm release's records once loop deleted its
// objects, as helm uninstall does; with KeepHistory (--keep-history) the last
// revision stays, marked uninstalled. A release never recorded is no error.
func (d *Deployer) UninstallRelease(ctx context.Context, rel *model.HelmRelease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s, _, err := d.releases(rel)
	if err != nil {
		return fmt.Errorf("uninstall helm release %s: %w", rel.Name, err)
	}
	history, err := s.History(rel.Name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("uninstall helm release %s: %w", rel.Name, err)
	}
	for _, h := range history {
		if rel.KeepHistory {
			if h.Info != nil && h.Info.Status == release.StatusDeployed {
				h.Info.Status, h.Info.Deleted, h.Info.Description = release.StatusUninstalled, helmtime.Now(), "Uninstallation complete"
				if err := s.Update(h); err != nil {
					return fmt.Errorf("uninstall helm release %s: %w", rel.Name, err)
				}
			}
			continue
		}
		if _, err := s.Delete(rel.Name, h.Version); err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
			return fmt.Errorf("uninstall helm release %s: revision %d: %w", rel.Name, h.Version, err)
		}
	}
	return nil
}
