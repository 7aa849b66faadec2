//go:build tools

// Package k8s pins the Kubernetes commands that scripts/test-cluster.sh builds: the control
// plane and the kubelet of its real node.
package k8s

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
