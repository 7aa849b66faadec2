#!/usr/bin/env bash
# Builds the test cluster's binaries into a cache keyed by version, skipping any binary already
# there: kube-apiserver, kube-controller-manager, kube-scheduler and the real node's kubelet from
# k8s.io/kubernetes through the tools module hack/k8s (staging modules replaced by their v0.X.Y
# twins), and kwok from its module. kube-apiserver takes ~18 min cold on 2 cores, the kubelet
# ~1 min once the API server's packages are built; the cache survives across runs on this machine.
# Usage: scripts/build-k8s.sh            (prints the cache directory on its last line)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
CACHE=${LOOP_K8S_CACHE:-/var/cache/loop/k8s}
DIR=$CACHE/$K8S_VERSION
GO=${GO:-go}
mkdir -p "$DIR" "$CACHE/kwok-$KWOK_VERSION"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# Without these a module build reports v0.0.0, and the kubelet's node says so.
minor=${K8S_VERSION#v1.}
minor=${minor%%.*}
VERSION_FLAGS="-X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
VERSION_FLAGS+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"

build() { # build NAME: one k8s.io/kubernetes command, unless cached
	local name=$1 out=$DIR/$1
	if [[ -x $out ]]; then echo "build-k8s: $name $K8S_VERSION cached at $out" >&2; return; fi
	echo "build-k8s: building $name $K8S_VERSION (cold: minutes; kube-apiserver ~18 min on 2 cores)" >&2
	local start=$SECONDS
	(cd "$ROOT/hack/k8s" && $GO build -trimpath -ldflags="-s -w $VERSION_FLAGS" -o "$out.tmp" "k8s.io/kubernetes/cmd/$name")
	mv "$out.tmp" "$out"
	echo "build-k8s: built $name in $((SECONDS - start))s -> $out" >&2
}

build kube-apiserver
build kube-controller-manager
build kube-scheduler
build kubelet

KWOK=$CACHE/kwok-$KWOK_VERSION/kwok
if [[ -x $KWOK ]]; then
	echo "build-k8s: kwok $KWOK_VERSION cached at $KWOK" >&2
else
	echo "build-k8s: building kwok $KWOK_VERSION" >&2
	start=$SECONDS
	GOBIN=$CACHE/kwok-$KWOK_VERSION $GO install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
	echo "build-k8s: built kwok in $((SECONDS - start))s" >&2
fi
# kwok ships its Stage YAML in its module; keep a copy next to the binary.
STAGES=$CACHE/kwok-$KWOK_VERSION/stages.yaml
if [[ ! -s $STAGES ]]; then
	src=$(GOFLAGS=-mod=mod $GO mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	{
		for s in node/fast node/heartbeat pod/fast; do
			for f in "$src/kustomize/stage/$s"/*.yaml; do
				[[ $(basename "$f") == kustomization.yaml ]] && continue
				echo "---"; cat "$f"
			done
		done
	} >"$STAGES.tmp"
	mv "$STAGES.tmp" "$STAGES"
fi
echo "$CACHE"
