# The test cluster's real node: a kubelet on a containerd of its own (CRI plugin, runc, CNI), so
# pods run real containers. Sourced by scripts/test-cluster.sh, which defines STATE, API_PORT,
# REGISTRY_PORT, BIN, KUBECONFIG_OUT and the helpers say, alive, launch, stop_wait, wait_for, api.
#   node_up     start (or reuse) containerd and the kubelet; restart a dead or outdated one
#   node_down   stop them, kill what the node ran, undo the host changes (see below)
#
# What it needs (make setup): Debian's containerd (1.6), runc, containernetworking-plugins,
# iptables. Everything lives under $STATE/node except what the kubelet and CNI must change on
# the host, which node_down puts back:
#  - /etc/hosts maps the node's name to 127.0.0.1. The API server reaches a kubelet through the
#    node's first address, its Hostname, and --node-ip refuses loopback; "localhost" is kwok's.
#  - a cgroup root in every cgroup hierarchy (this machine has cgroup v1; the kubelet's
#    cgroupRoot must exist, and cpuset needs cpus and mems before anything can join it).
#  - the bridge $NODE_BRIDGE with the pods' subnet (never docker0), no masquerade: pods talk to
#    this machine and to each other, not beyond.
#  - the sysctls the kubelet sets (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops),
#    saved before its first start and restored.
#  - the iptables chains it makes (KUBE-FIREWALL, KUBE-KUBELET-CANARY, ...; there is no
#    kube-proxy, so every KUBE-* chain is the kubelet's) and the bind mount of its root dir.
# Only one kubelet can run on a machine (sysctls, iptables, cgroups are the machine's):
# $NODE_LOCK names the cluster whose node runs, and a second cluster refuses to start one.
#
# The node is tainted $NODE_TAINT:NoSchedule and labelled $NODE_LABEL: pods land there only when
# they tolerate the taint (and select the label to avoid kwok's fake node); everything else
# still goes to kwok. Its pause image is built here and served by the test registry.

NODE_DIR=$STATE/node
NODE_NAME=${LOOP_TEST_NODE_NAME:-loop-node-0}
NODE_BRIDGE=${LOOP_TEST_NODE_BRIDGE:-loop-cni0}
POD_SUBNET=${LOOP_TEST_POD_SUBNET:-10.244.0.0/24}
NODE_LABEL=loop.dev/node=real
NODE_TAINT=loop.dev/node=real
NODE_LOCK=/run/loop-test-node
CGROUP_ROOT=/$(basename "$STATE")
CONTAINERD_SOCK=$NODE_DIR/containerd/containerd.sock
KUBELET_PORT=$((API_PORT + 7))
KUBELET_HEALTHZ_PORT=$((API_PORT + 8))
PAUSE_IMAGE=loop-test/pause:1
HOSTS_MARK="# loop test node of $STATE"
NODE_SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)

node_need() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	command -v ctr >/dev/null || missing+=(containerd)
	[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v ip >/dev/null || missing+=(iproute2)
	if ((${#missing[@]})); then
		say "the real node needs ${missing[*]}: run make setup"
		return 1
	fi
}

# node_cgroups: the cgroup root in every hierarchy; cpuset gets its parent's cpus and mems.
node_cgroups() {
	local h
	for h in /sys/fs/cgroup/*/; do
		mountpoint -q "$h" || continue
		mkdir -p "${h%/}$CGROUP_ROOT"
		if [[ -f ${h}cpuset.cpus ]]; then
			[[ -n $(<"${h%/}$CGROUP_ROOT/cpuset.cpus") ]] || cat "${h}cpuset.cpus" >"${h%/}$CGROUP_ROOT/cpuset.cpus"
			[[ -n $(<"${h%/}$CGROUP_ROOT/cpuset.mems") ]] || cat "${h}cpuset.mems" >"${h%/}$CGROUP_ROOT/cpuset.mems"
		fi
	done
}

# node_procs: every process in the node's cgroups (the pods' containers and sandboxes).
node_procs() {
	local h
	for h in /sys/fs/cgroup/*/; do
		[[ -d ${h%/}$CGROUP_ROOT ]] || continue
		find "${h%/}$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null || true
	done | sort -u
}

# node_shims: the containerd shims of this node's containerd (they outlive it).
node_shims() {
	local p
	for p in /proc/[0-9]*; do
		if { tr '\0' '\n' <"$p/cmdline"; } 2>/dev/null | grep -qxF -- "$CONTAINERD_SOCK"; then echo "${p#/proc/}"; fi
	done
}

# node_write FILE CONTENT: write FILE when it differs; status 0 means it changed.
node_write() {
	if [[ -f $1 ]] && [[ $(<"$1") == "$2" ]]; then return 1; fi
	printf '%s\n' "$2" >"$1"
}

node_up() {
	node_need || return 1
	if [[ -f $NODE_LOCK ]] && [[ $(<"$NODE_LOCK") != "$STATE" ]]; then
		local other
		other=$(<"$NODE_LOCK")
		if [[ -f $other/kubelet.pid ]] && kill -0 "$(cat "$other/kubelet.pid")" 2>/dev/null; then
			say "the test cluster in $other runs this machine's one real node; stop it first (LOOP_TEST_CLUSTER_DIR=$other scripts/test-cluster.sh stop)"
			return 1
		fi
	fi
	echo "$STATE" >"$NODE_LOCK"
	mkdir -p "$NODE_DIR"/{containerd/certs.d/127.0.0.1:$REGISTRY_PORT,cni/net.d,cni/ipam,kubelet,pod-logs,runc}

	# The pause image the sandboxes start from: served by the test registry (see -image there).
	local registry="127.0.0.1:$REGISTRY_PORT"
	local restart_containerd=false
	node_write "$NODE_DIR/containerd/config.toml" "$(
		cat <<TOML
version = 2
root = "$NODE_DIR/containerd/root"
state = "$NODE_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$CONTAINERD_SOCK"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$NODE_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/$PAUSE_IMAGE"
  # Without it runc fails in this machine's containers: "nsexec: failed to update
  # /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$NODE_DIR/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$NODE_DIR/containerd/certs.d"
TOML
	)" && restart_containerd=true
	# The test registry speaks plain HTTP.
	node_write "$NODE_DIR/containerd/certs.d/$registry/hosts.toml" "$(
		cat <<TOML
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
TOML
	)" && restart_containerd=true
	node_write "$NODE_DIR/cni/net.d/10-loop.conflist" "$(
		cat <<JSON
{
  "cniVersion": "0.4.0",
  "name": "loop-test",
  "plugins": [
    {"type": "bridge", "bridge": "$NODE_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]], "dataDir": "$NODE_DIR/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
	)" || true
	node_cgroups
	if ! grep -qF "$HOSTS_MARK" /etc/hosts; then
		# Not sed -i: /etc/hosts may be a bind mount, which a rename would not replace.
		printf '127.0.0.1 %s %s\n' "$NODE_NAME" "$HOSTS_MARK" >>/etc/hosts
		say "mapped $NODE_NAME to 127.0.0.1 in /etc/hosts"
	fi

	if alive containerd && $restart_containerd; then
		say "restarting containerd with its new config"
		stop_wait containerd
	fi
	launch containerd containerd --config "$NODE_DIR/containerd/config.toml" || true
	wait_for containerd 30 ctr --address "$CONTAINERD_SOCK" version

	local restart_kubelet=false
	node_write "$NODE_DIR/kubelet.yaml" "$(
		cat <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only.
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
podLogsDir: $NODE_DIR/pod-logs
registerWithTaints:
  - {key: ${NODE_TAINT%%=*}, value: ${NODE_TAINT#*=}, effect: NoSchedule}
# A test machine's disk and memory are shared: never evict, never collect images.
evictionHard: {memory.available: "1Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
YAML
	)" && restart_kubelet=true
	local kubelet_cmd=("$BIN/kubelet" --config "$NODE_DIR/kubelet.yaml" --kubeconfig "$KUBECONFIG_OUT"
		--root-dir "$NODE_DIR/kubelet" --hostname-override "$NODE_NAME" --node-labels "$NODE_LABEL")
	if alive kubelet && { $restart_kubelet || ! cmp -s <(printf '%s\0' "${kubelet_cmd[@]}") "/proc/$(cat "$STATE/kubelet.pid")/cmdline"; }; then
		say "restarting the kubelet with the current config and flags"
		stop_wait kubelet
	fi
	if ! alive kubelet && [[ ! -f $NODE_DIR/sysctl.saved ]]; then
		for s in "${NODE_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$NODE_DIR/sysctl.saved"
	fi
	launch kubelet "${kubelet_cmd[@]}" || true
	wait_for kubelet 90 real_node_ready
}

real_node_ready() {
	api "/api/v1/nodes/$NODE_NAME" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'
}

node_down() {
	stop_wait kubelet
	# What the pods ran: killed where it runs (its cgroups), then the shims that held it.
	local pids n
	for n in $(seq 1 40); do
		pids=$(node_procs)
		[[ -z $pids ]] && break
		# shellcheck disable=SC2086 # one pid a word
		kill -9 $pids 2>/dev/null || true
		sleep 0.25
	done
	pids=$(node_shims)
	# shellcheck disable=SC2086
	[[ -z $pids ]] || kill -9 $pids 2>/dev/null || true
	stop_wait containerd
	# Every mount under the state dir: the kubelet's bind mount of its root, pod volumes,
	# sandbox network namespaces, container root filesystems. Deepest first.
	local m
	findmnt -rn -o TARGET | grep -F "$STATE/" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done || true
	if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then ip link delete "$NODE_BRIDGE" || true; fi
	local ipt t rule chain owner=""
	[[ -f $NODE_LOCK ]] && owner=$(<"$NODE_LOCK")
	for ipt in iptables ip6tables; do
		# The chains are the machine's: leave them to the cluster whose node runs.
		[[ -z $owner || $owner == "$STATE" ]] || break
		command -v "$ipt" >/dev/null || continue
		for t in filter nat mangle; do
			$ipt -t "$t" -S 2>/dev/null | grep -E -- '^-A [A-Z]+ .*-j KUBE-' | grep -vE '^-A KUBE-' | sed 's/^-A/-D/' |
				while read -r rule; do eval "$ipt -t $t $rule" 2>/dev/null || true; done || true
			for chain in $($ipt -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do $ipt -t "$t" -F "$chain" 2>/dev/null || true; done
			for chain in $($ipt -t "$t" -S 2>/dev/null | awk '/^-N KUBE-/ {print $2}'); do $ipt -t "$t" -X "$chain" 2>/dev/null || true; done
		done
	done
	if [[ -f $NODE_DIR/sysctl.saved ]]; then
		while IFS= read -r kv; do sysctl -q -w "$kv" || true; done <"$NODE_DIR/sysctl.saved"
	fi
	if grep -qF "$HOSTS_MARK" /etc/hosts; then
		local hosts
		hosts=$(grep -vF "$HOSTS_MARK" /etc/hosts)
		printf '%s\n' "$hosts" >/etc/hosts
	fi
	local h
	for h in /sys/fs/cgroup/*/; do
		if [[ -d ${h%/}$CGROUP_ROOT ]]; then find "${h%/}$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
	done
	if [[ -f $NODE_LOCK ]] && [[ $(<"$NODE_LOCK") == "$STATE" ]]; then rm -f "$NODE_LOCK"; fi
	return 0
}
