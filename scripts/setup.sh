#!/usr/bin/env bash
# make setup: everything a fresh Debian machine needs to build and test loop.
# Installs Debian's docker.io and starts dockerd when no Docker engine answers,
# busybox-static (test and example base images), tmux (terminal tests), etcd-server
# (the test Kubernetes control plane), containerd, runc, containernetworking-plugins and
# iptables (the test cluster's real node, scripts/test-node.sh),
# then downloads the Go modules. It prints each thing it does.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
[ -x /bin/busybox ] || need_pkgs+=(busybox-static)
command -v tmux >/dev/null 2>&1 || need_pkgs+=(tmux)
command -v etcd >/dev/null 2>&1 || need_pkgs+=(etcd-server) # the test Kubernetes control plane (scripts/test-cluster.sh)
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
# The test cluster's real node: a containerd of its own (Debian's 1.6, not the one inside
# the Docker engine), runc, the CNI plugins (bridge, host-local, loopback, portmap).
command -v containerd >/dev/null 2>&1 || need_pkgs+=(containerd)
command -v runc >/dev/null 2>&1 || need_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
command -v iptables >/dev/null 2>&1 || need_pkgs+=(iptables)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v git >/dev/null 2>&1 || need_pkgs+=(git) # loop fetch clones extension repositories
command -v ssh-agent >/dev/null 2>&1 || need_pkgs+=(openssh-client) # docker_build(ssh=) is tested with an agent
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if docker version >/dev/null 2>&1 || { [ -S /var/run/docker.sock ] && curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; }; then
  say "a Docker engine answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}"
else
  say "no Docker engine answers: starting dockerd (log: /var/log/loop-dockerd.log)"
  $SUDO sh -c 'nohup dockerd >/var/log/loop-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do
    if curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1; then break; fi
    sleep 0.5
  done
  curl -fsS --unix-socket /var/run/docker.sock http://d/_ping >/dev/null 2>&1 || {
    say "dockerd did not answer within 30s; last log lines:"; tail -20 /var/log/loop-dockerd.log; exit 1; }
  say "dockerd is up"
fi

bash "$(dirname "$0")/busybox-image.sh"

say "downloading Go modules"
go mod download
say "done"
