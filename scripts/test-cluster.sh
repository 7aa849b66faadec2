#!/usr/bin/env bash
# make test-cluster: a real Kubernetes control plane on loopback for loop's tests.
# etcd (Debian's etcd-server), kube-apiserver, kube-controller-manager and kube-scheduler built from
# k8s.io/kubernetes (scripts/build-k8s.sh, cached by version), and two nodes:
#  - kwok-node-0, faked by kwok, where pods get a status but no containers run. kwok also serves
#    its kubelet API, so pod logs and port-forwards through the API server work (see "kwok as
#    the kubelet" below). Pods go there unless they ask for the real node.
#  - a real node ($LOOP_TEST_NODE_NAME, default loop-node-0): a kubelet on a containerd of its
#    own, pulling from the test registry (scripts/test-node.sh). It is tainted, so only pods
#    that tolerate loop.dev/node=real run there. LOOP_TEST_REAL_NODE=0 leaves it out.
# It reuses
# a running cluster, restarting any piece that died or runs with outdated flags, and writes a
# kubeconfig whose context is named kind-loop-test so loop treats it as local. Prints what it
# does; the last line is the kubeconfig path.
#   scripts/test-cluster.sh          start (or reuse) the cluster
#   scripts/test-cluster.sh stop     stop it and delete its state
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${LOOP_TEST_CLUSTER_DIR:-/tmp/loop-test-cluster}
API_PORT=${LOOP_TEST_API_PORT:-16443}
ETCD_PORT=${LOOP_TEST_ETCD_PORT:-16379}
TOKEN=loop-test-admin-token
KUBECONFIG_OUT=$STATE/kubeconfig
say() { printf 'test-cluster: %s\n' "$*" >&2; }

alive() { [[ -f $STATE/$1.pid ]] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }
stop_one() {
	if alive "$1"; then kill "$(cat "$STATE/$1.pid")" 2>/dev/null || true; fi
	rm -f "$STATE/$1.pid"
}
stop_wait() { # stop_wait NAME: stop it and wait (up to 30 s) until it has exited and freed its ports
	local pid
	alive "$1" || { rm -f "$STATE/$1.pid"; return 0; }
	pid=$(cat "$STATE/$1.pid")
	stop_one "$1"
	for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
}
REAL_NODE=${LOOP_TEST_REAL_NODE:-1}
# shellcheck source=scripts/test-node.sh
source "$ROOT/scripts/test-node.sh"
if [[ ${1:-} == stop ]]; then
	node_down
	for p in registry kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_one "$p"; done
	rm -rf "$STATE"
	say "stopped and removed $STATE"
	exit 0
fi

start=$SECONDS
command -v etcd >/dev/null || { say "etcd not found: run make setup (installs Debian's etcd-server)"; exit 1; }
CACHE=$("$ROOT/scripts/build-k8s.sh" | tail -1)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
KWOK_VERSION=${KWOK_VERSION:-v0.8.0}
BIN=$CACHE/$K8S_VERSION
KWOK_DIR=$CACHE/kwok-$KWOK_VERSION
mkdir -p "$STATE"

api() { curl -ksf -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT$1" "${@:2}"; }
wait_for() { # wait_for WHAT SECONDS CMD...
	local what=$1 n=$2; shift 2
	for _ in $(seq 1 $((n * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
	say "$what did not come up within ${n}s; log tail:"; tail -20 "$STATE/$what.log" >&2 || true; return 1
}
launch() { # launch NAME CMD...: start in the background unless already running
	local name=$1; shift
	if alive "$name"; then say "$name already running (pid $(cat "$STATE/$name.pid"))"; return 1; fi
	nohup "$@" >"$STATE/$name.log" 2>&1 &
	echo $! >"$STATE/$name.pid"
	say "started $name (pid $!, log $STATE/$name.log)"
}

# Credentials: a static admin token and service-account signing keys.
if [[ ! -f $STATE/tokens.csv ]]; then
	echo "$TOKEN,loop-admin,loop-admin,system:masters" >"$STATE/tokens.csv"
	openssl genrsa -out "$STATE/sa.key" 2048 2>/dev/null
	openssl rsa -in "$STATE/sa.key" -pubout -out "$STATE/sa.pub" 2>/dev/null
	say "made the admin token and service-account keys in $STATE"
fi

launch etcd etcd --name loop-test --data-dir "$STATE/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
	--initial-cluster "loop-test=http://127.0.0.1:$((ETCD_PORT + 1))" --unsafe-no-fsync || true
wait_for etcd 30 curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# WatchList off: the server turns every watch from resourceVersion "" or "0" into a watch-list
# stream, which it then refuses because etcd 3.4 lacks RequestWatchProgress. kwok watches pods
# from "0", so it would only see them on its backed-off relists (up to 30 s apart) and Job pods
# would wait that long to Succeed. An API server started without the flag is restarted, with kwok.
if alive kube-apiserver && ! tr '\0' '\n' <"/proc/$(cat "$STATE/kube-apiserver.pid")/cmdline" | grep -qx -- '--feature-gates=WatchList=false'; then
	say "restarting kube-apiserver and kwok with --feature-gates=WatchList=false"
	stop_wait kwok
	stop_wait kube-apiserver
fi
launch kube-apiserver "$BIN/kube-apiserver" --feature-gates=WatchList=false --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
	--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" --cert-dir "$STATE/pki" \
	--token-auth-file "$STATE/tokens.csv" --authorization-mode RBAC \
	--service-account-issuer https://kubernetes.default.svc.cluster.local \
	--service-account-key-file "$STATE/sa.pub" --service-account-signing-key-file "$STATE/sa.key" \
	--service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true --endpoint-reconciler-type none || true
wait_for kube-apiserver 120 api /readyz

cat >"$KUBECONFIG_OUT" <<KC
apiVersion: v1
kind: Config
clusters:
  - name: loop-test
    cluster:
      server: https://127.0.0.1:$API_PORT
      insecure-skip-tls-verify: true
users:
  - name: loop-admin
    user:
      token: $TOKEN
contexts:
  - name: kind-loop-test
    context: {cluster: loop-test, user: loop-admin, namespace: default}
current-context: kind-loop-test
KC

launch kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG_OUT" \
	--authentication-kubeconfig "$KUBECONFIG_OUT" --authorization-kubeconfig "$KUBECONFIG_OUT" \
	--leader-elect=false --controllers='*,-serviceaccount-token' --bind-address 127.0.0.1 \
	--secure-port $((API_PORT + 2)) --service-cluster-ip-range 10.96.0.0/16 || true

# kwok as the kubelet. The API server serves pods/log and pods/portforward by calling the
# kubelet of the pod's node: https on the node's address (the first of Hostname, InternalDNS,
# InternalIP, ... it finds) and port status.daemonEndpoints.kubeletEndpoint.Port, which the
# node gets below. kwok's --server-address serves that API and answers it from its
# simulation objects, which it reads from --config files (no CRDs needed):
#  - ClusterLogs: every container of every pod logs $POD_LOGS, followed. kwok reads it with the
#    kubelet's CRI log reader, so lines must be CRI log lines ("<RFC 3339 time> stdout F <text>")
#    and the file must exist. It lives in a directory of its own because the reader wakes on
#    every write in the file's directory, and the state directory takes the control plane's logs.
#  - ClusterPortForward: container port 8080 of every pod is 127.0.0.1:$FORWARD_PORT, where a
#    test listens. Other ports have no target, so forwarding them fails.
#  - ClusterExec: exec into a container of a pod in namespace $EXEC_NS runs the command on
#    this machine, as user nobody (65534), in $EXEC_DIR, with TMPDIR=$EXEC_DIR: the sync
#    agent installs itself under $TMPDIR/.loop, and a test's live update syncs into a
#    directory it made for nobody. Exec into pods of other namespaces fails.
# TLS: kwok's own serving cert, self-signed with openssl. The API server checks kubelet certs
# only with --kubelet-certificate-authority, which it does not get.
KWOK_PORT=$((API_PORT + 3))
FORWARD_PORT=$((API_PORT + 5))
KWOK_STATE=$STATE/kwok
POD_LOGS=$KWOK_STATE/logs/pod-logs.log
mkdir -p "$(dirname "$POD_LOGS")"
EXEC_NS=loop-exec
EXEC_DIR=$KWOK_STATE/exec
mkdir -p "$EXEC_DIR"
chmod 1777 "$EXEC_DIR"
touch "$POD_LOGS"
# kwok reads its cert and config once: a new cert, a changed config or a kwok started with
# other flags (one from before kwok served the kubelet API) means a restart.
restart_kwok=false
if [[ ! -f $KWOK_STATE/tls.crt ]]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=kwok-node-0 \
		-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$KWOK_STATE/tls.key" -out "$KWOK_STATE/tls.crt" 2>/dev/null
	say "made kwok's serving cert in $KWOK_STATE"
	restart_kwok=true
fi
kwok_debug=$(
	cat <<YAML
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: loop-test-logs
spec:
  logs:
    - logsFile: $POD_LOGS
      follow: true
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterPortForward
metadata:
  name: loop-test-port-forward
spec:
  forwards:
    - ports: [8080]
      target:
        address: 127.0.0.1
        port: $FORWARD_PORT
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterExec
metadata:
  name: loop-test-exec
spec:
  selector:
    matchNamespaces: [$EXEC_NS]
  execs:
    - local:
        workDir: $EXEC_DIR
        envs: [{name: TMPDIR, value: $EXEC_DIR}]
        securityContext: {runAsUser: 65534, runAsGroup: 65534}
YAML
)
if [[ ! -f $KWOK_STATE/debug.yaml ]] || [[ $(<"$KWOK_STATE/debug.yaml") != "$kwok_debug" ]]; then
	printf '%s\n' "$kwok_debug" >"$KWOK_STATE/debug.yaml"
	restart_kwok=true
fi
# Only the fake node: managing every node, kwok would take the real one over and mark its pods
# Running with made-up IPs before the kubelet starts them.
kwok_cmd=("$KWOK_DIR/kwok" --kubeconfig "$KUBECONFIG_OUT"
	--manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
	--config "$KWOK_DIR/stages.yaml" --config "$KWOK_STATE/debug.yaml"
	--server-address "127.0.0.1:$KWOK_PORT" --node-ip 127.0.0.1 --node-name localhost --node-port "$KWOK_PORT"
	--tls-cert-file "$KWOK_STATE/tls.crt" --tls-private-key-file "$KWOK_STATE/tls.key")
if alive kwok && { $restart_kwok || ! cmp -s <(printf '%s\0' "${kwok_cmd[@]}") "/proc/$(cat "$STATE/kwok.pid")/cmdline"; }; then
	say "restarting kwok with the current config and flags"
	stop_wait kwok
fi

# One fake node; kwok gives it and every pod bound to it a status, and its kubelet address
# (see after the node is Ready).
if ! api /api/v1/nodes/kwok-node-0 >/dev/null; then
	api /api/v1/nodes -X POST -H 'Content-Type: application/json' -d '{
	  "apiVersion": "v1", "kind": "Node",
	  "metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake"},
	    "labels": {"kubernetes.io/hostname": "kwok-node-0", "type": "kwok"}},
	  "spec": {},
	  "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "500"},
	             "capacity": {"cpu": "32", "memory": "256Gi", "pods": "500"}}}' >/dev/null
	say "created node kwok-node-0"
fi
launch kwok "${kwok_cmd[@]}" || true

# kwok fakes the node and pod status but does not bind pods: the real scheduler does.
launch kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG_OUT" \
	--authentication-kubeconfig "$KUBECONFIG_OUT" --authorization-kubeconfig "$KUBECONFIG_OUT" \
	--leader-elect=false --bind-address 127.0.0.1 --secure-port $((API_PORT + 4)) || true
wait_for kube-controller-manager 60 api /api/v1/namespaces/default/serviceaccounts/default
# The API server pretty-prints for curl: fold the JSON before matching.
node_ready() { api /api/v1/nodes/kwok-node-0 | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'; }
wait_for kwok 60 node_ready || say "warning: node not Ready yet"
# The node's kubelet is kwok: addresses InternalIP 127.0.0.1 and Hostname localhost (the API
# server tries Hostname first), port $KWOK_PORT. kwok's node-initialize stage sets them from
# --node-ip/--node-name/--node-port, but only on a node that is not Ready, so a node from
# before kwok served the kubelet API is patched here. Both types, with a flag for each: the
# stage, finding a type missing and no flag for it, writes "addresses: null", deleting all.
kubelet_status='{"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
	"daemonEndpoints": {"kubeletEndpoint": {"Port": '$KWOK_PORT'}}}'
kubelet_set() {
	api /api/v1/nodes/kwok-node-0 | tr -d ' \n' | grep -qF "$(tr -d ' \n\t' <<<"$kubelet_status" | sed 's/^{//; s/}$//')"
}
if ! kubelet_set; then
	api /api/v1/nodes/kwok-node-0/status -X PATCH -H 'Content-Type: application/merge-patch+json' \
		-d '{"status": '"$kubelet_status"'}' >/dev/null
	say "pointed node kwok-node-0's kubelet at kwok (localhost/127.0.0.1:$KWOK_PORT)"
fi
wait_for kwok 30 curl -skf "https://127.0.0.1:$KWOK_PORT/healthz"
if ! api "/api/v1/namespaces/$EXEC_NS" >/dev/null; then
	api /api/v1/namespaces -X POST -H 'Content-Type: application/json' \
		-d '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "'$EXEC_NS'"}}' >/dev/null
	say "created namespace $EXEC_NS (exec runs on this machine, see ClusterExec)"
fi
# The cluster's image registry (internal/testregistry: go-containerregistry's registry, blobs
# in $STATE/registry), advertised with a KEP-1755 local-registry-hosting ConfigMap as a kind
# cluster with a local registry does: loop pushes built images there and names them from it in
# the manifests. The engine takes plain HTTP from a loopback registry without configuration.
# It also serves the real node's pause image, built here (internal/testregistry/pause).
REGISTRY_PORT=$((API_PORT + 6))
registry_cmd=("$STATE/bin/testregistry" -addr "127.0.0.1:$REGISTRY_PORT" -blobs "$STATE/registry"
	-image "$PAUSE_IMAGE=$STATE/bin/pause")
if alive registry && ! cmp -s <(printf '%s\0' "${registry_cmd[@]}") "/proc/$(cat "$STATE/registry.pid")/cmdline"; then
	say "restarting the registry with the current flags"
	stop_wait registry
fi
if ! alive registry; then
	(cd "$ROOT" && go build -o "$STATE/bin/testregistry" ./internal/testregistry &&
		CGO_ENABLED=0 go build -o "$STATE/bin/pause" ./internal/testregistry/pause)
	launch registry "${registry_cmd[@]}" || true
fi
wait_for registry 30 curl -sf "http://127.0.0.1:$REGISTRY_PORT/v2/"
hosting="host: 127.0.0.1:$REGISTRY_PORT\nhelp: scripts/test-cluster.sh\n" # \n: JSON newlines
if ! api /api/v1/namespaces/kube-public/configmaps/local-registry-hosting | grep -qF "127.0.0.1:$REGISTRY_PORT"; then
	api /api/v1/namespaces/kube-public/configmaps/local-registry-hosting -X DELETE >/dev/null || true
	api /api/v1/namespaces/kube-public/configmaps -X POST -H 'Content-Type: application/json' -d '{
	  "apiVersion": "v1", "kind": "ConfigMap",
	  "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"},
	  "data": {"localRegistryHosting.v1": "'"$hosting"'"}}' >/dev/null
	say "advertised the registry 127.0.0.1:$REGISTRY_PORT in kube-public/local-registry-hosting"
fi
if [[ $REAL_NODE != 0 ]]; then
	node_up
fi
say "cluster ready in $((SECONDS - start))s: export KUBECONFIG=$KUBECONFIG_OUT"
echo "$KUBECONFIG_OUT"
