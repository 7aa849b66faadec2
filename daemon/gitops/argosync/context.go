package argosync

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// localContextPrefixes and localContexts are kube contexts of clusters that run on the
// developer's machine (as Tilt counts them); any other needs allow_k8s_contexts.
var (
	localContextPrefixes = []string{"kind-", "k3d-", "colima", "orbstack", "rancher-desktop"}
	localContexts        = []string{"docker-desktop", "docker-for-desktop", "minikube", "microk8s", "crc-admin", "crc-developer", "kwok-loop"}
)

// IsLocalContext says whether a kube context names a cluster on this machine.
func IsLocalContext(name string) bool {
	if slices.Contains(localContexts, name) {
		return true
	}
	for _, p := range localContextPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// CheckContext refuses a context that is not local unless allowed names it.
func CheckContext(name string, allowed []string) error {
	if IsLocalContext(name) || slices.Contains(allowed, name) {
		return nil
	}
	return fmt.Errorf("refusing to deploy to kube context %q: it is not a local cluster; "+
		"if you mean it, add allow_k8s_contexts(%q) to the Tiltfile", name, name)
}

// Cluster is a connection to the cluster of one kube context.
type Cluster struct {
	Context   string
	Namespace string
	Config    *rest.Config
	Dynamic   dynamic.Interface
}

// Connect loads the kubeconfig (KUBECONFIG or ~/.kube/config; kubeContext "" means the
// current context), refuses a non-local context that allowed does not name, and connects.
func Connect(kubeContext string, allowed []string) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext})
	raw, err := cc.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	name := kubeContext
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		return nil, fmt.Errorf("load kubeconfig: no current context (is KUBECONFIG set?)")
	}
	if err := CheckContext(name, allowed); err != nil {
		return nil, err
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube context %s: %w", name, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	// Deprecation warnings (v1 Endpoints while listing for prune) are not the user's business.
	cfg.WarningHandler = rest.NoWarnings{}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kube context %s: namespace: %w", name, err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube context %s: %w", name, err)
	}
	return &Cluster{Context: name, Namespace: ns, Config: cfg, Dynamic: dyn}, nil
}
