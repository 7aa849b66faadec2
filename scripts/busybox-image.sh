#!/usr/bin/env bash
# Imports loop/busybox:latest from Debian's busybox-static (/bin/busybox plus a
# symlink per applet), the base image the examples build on: nothing is pulled.
set -euo pipefail
ref=${1:-loop/busybox:latest}
if docker image inspect "$ref" >/dev/null 2>&1; then
  echo "setup: image $ref is present"; exit 0
fi
root=$(mktemp -d); trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,etc,tmp,www,root,var}
chmod 1777 "$root/tmp"
cp /bin/busybox "$root/bin/busybox"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"; done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$root/etc/passwd"
tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - "$ref" >/dev/null
echo "setup: imported $ref from /bin/busybox"
