#!/usr/bin/env bash
# Regenerates the expected outputs with the real CLIs (installed from the Go module proxy):
#   go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.2  (its kustomize/api is v0.21.2, the one loop embeds)
#   go install helm.sh/helm/v3/cmd/helm@v3.22.0
set -euo pipefail
cd "$(dirname "$0")"
kustomize build kustomize/overlay >kustomize/overlay.expected.yaml
helm template shop ./helm/web --namespace shop -f helm/web/values-dev.yaml -f helm/web/values-local.yaml \
	--include-crds >helm/web.expected.yaml
{ kustomize version; helm version --short; } >expected-versions.txt
