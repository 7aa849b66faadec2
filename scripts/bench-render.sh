#!/usr/bin/env bash
# Render time per fixture, side by side in one run: loop's in-process Kustomize and Helm
# (go test -bench in daemon/gitops/render) against the kustomize and helm CLIs of the same
# versions, installed from the Go module proxy when missing (testdata/gen.sh made the
# expected outputs with them). N runs of each CLI; the mean wall time per render.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20}
bin=$(go env GOPATH)/bin
export PATH=$bin:$PATH
if ! command -v kustomize >/dev/null; then
	echo "bench-render: installing kustomize v5.8.2 from the module proxy" >&2
	go install sigs.k8s.io/kustomize/kustomize/v5@v5.8.2
fi
if ! command -v helm >/dev/null; then
	echo "bench-render: installing helm v3.22.0 from the module proxy" >&2
	go install helm.sh/helm/v3/cmd/helm@v3.22.0
fi
td=daemon/gitops/render/testdata
mean_ms() { # command...: mean wall time of N runs, in ms
	local start end
	start=$(date +%s%N)
	for _ in $(seq "$N"); do "$@" >/dev/null; done
	end=$(date +%s%N)
	awk -v d=$((end - start)) -v n="$N" 'BEGIN { printf "%.1f", d / n / 1e6 }'
}
k_cli=$(mean_ms kustomize build $td/kustomize/overlay)
h_cli=$(mean_ms helm template shop ./$td/helm/web --namespace shop -f $td/helm/web/values-dev.yaml -f $td/helm/web/values-local.yaml --include-crds)
out=$(go test -run '^$' -bench '^Benchmark(Kustomize|Helm)$' -benchtime 50x -count 1 ./daemon/gitops/render/)
echo "$out" | grep '^Benchmark' >&2
ns() { echo "$out" | awk -v b="$1" '$1 ~ "^"b"(-[0-9]+)?$" { print $3 }'; }
k_loop=$(awk -v n="$(ns BenchmarkKustomize)" 'BEGIN { printf "%.1f", n / 1e6 }')
h_loop=$(awk -v n="$(ns BenchmarkHelm)" 'BEGIN { printf "%.1f", n / 1e6 }')
printf '| fixture | loop (in process) | CLI | CLI command |\n|---|---|---|---|\n'
printf '| Kustomize overlay over a base in a parent directory | %s ms | %s ms | `kustomize build` %s |\n' "$k_loop" "$k_cli" "$(kustomize version)"
printf '| Helm chart, two values files | %s ms | %s ms | `helm template` %s |\n' "$h_loop" "$h_cli" "$(helm version --short)"
