package kube

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/reference"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/loop-dev/loop/daemon/gitops/render"
	"github.com/loop-dev/loop/daemon/model"
)

// Registry is where built images go for a cluster that pulls them from a registry:
// pushed to Host from this machine, named from HostFromCluster in the manifests.
type Registry struct {
	Host            string
	HostFromCluster string
	// SingleName, when set, is the one repository every image is pushed to.
	SingleName string
	// Source says where the registry was found, for the logs.
	Source string
}

// The ConfigMap a cluster advertises its local registry with (KEP-1755), as kind,
// k3d, minikube and microk8s set-ups write it.
const (
	registryConfigMapNS   = "kube-public"
	registryConfigMapName = "local-registry-hosting"
	registryConfigMapKey  = "localRegistryHosting.v1"
)

// Registry returns where built images go: default_registry when the Tiltfile sets it,
// else the registry the cluster advertises (KEP-1755), else nil (images are loaded
// into kind nodes, or the cluster shares the engine). The advertisement is read once.
func (d *Deployer) Registry(ctx context.Context, def *model.Registry) (*Registry, error) {
	if def != nil {
		from := def.HostFromCluster
		if from == "" {
			from = def.Host
		}
		return &Registry{Host: def.Host, HostFromCluster: from, SingleName: def.SingleName, Source: "default_registry()"}, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.regRead {
		return d.reg, nil
	}
	_, core, err := d.clientsLocked()
	if err != nil {
		return nil, err
	}
	cm, err := core.ConfigMaps(registryConfigMapNS).Get(ctx, registryConfigMapName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
		d.regRead = true
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read configmap %s/%s: %w", registryConfigMapNS, registryConfigMapName, err)
	}
	reg, err := parseRegistryHosting(cm.Data[registryConfigMapKey])
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s: %w", registryConfigMapNS, registryConfigMapName, err)
	}
	d.reg, d.regRead = reg, true
	return reg, nil
}

// parseRegistryHosting reads KEP-1755's LocalRegistryHostingV1; nil when it names no
// host.
func parseRegistryHosting(data string) (*Registry, error) {
	var v struct {
		Host                     string `json:"host"`
		HostFromContainerRuntime string `json:"hostFromContainerRuntime"`
		HostFromClusterNetwork   string `json:"hostFromClusterNetwork"`
	}
	if err := yaml.Unmarshal([]byte(data), &v); err != nil {
		return nil, fmt.Errorf("%s: %w", registryConfigMapKey, err)
	}
	if v.Host == "" {
		return nil, nil
	}
	// The container runtime pulls the images: its name for the registry is the one
	// manifests need.
	from := v.HostFromContainerRuntime
	if from == "" {
		from = v.Host
	}
	return &Registry{Host: v.Host, HostFromCluster: from, Source: "the cluster's " + registryConfigMapNS + "/" + registryConfigMapName}, nil
}

// Refs returns the name to push a built image (name:tag) as, and the name the
// cluster pulls it by: the registry, then the image's familiar name with '/', ':' and
// '@' as '_' (Tilt's naming: loop/web → localhost:5000/loop_web), or SingleName.
func (r *Registry) Refs(built string) (push, cluster string, err error) {
	named, err := reference.ParseNormalizedNamed(built)
	if err != nil {
		return "", "", fmt.Errorf("image %q: %w", built, err)
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return "", "", errors.New("image " + built + " has no tag")
	}
	repo := render.RegistryRepo(named)
	if r.SingleName != "" {
		repo = r.SingleName
	}
	tail := "/" + repo + ":" + tagged.Tag()
	return r.Host + tail, r.HostFromCluster + tail, nil
}
