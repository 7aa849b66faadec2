#!/usr/bin/env bash
# Runs the test/ folders of a tilt-extensions checkout under loop, through a `tilt` shim
# that maps `tilt ci` / `tilt down` / `tilt alpha tiltfile-result` onto loop's commands,
# and prints a Markdown table: extension, result, and the last error line of a failure.
#
#   scripts/tilt-extensions.sh CHECKOUT [EXTENSION...]
#
# CHECKOUT is a checkout of github.com/tilt-dev/tilt-extensions (it is not part of loop and is
# never copied into it). The tests run on a copy of it under $WORK (default a temp dir),
# with the extension store pointed at that copy; Kubernetes tests use $KUBECONFIG
# (default the test cluster's, /tmp/loop-test-cluster/kubeconfig). $LOOP is the loop
# binary (default: built from this checkout). Not run in CI: it needs the external
# checkout and, for most extensions, the test cluster.
set -uo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
	echo "usage: $0 TILT-EXTENSIONS-CHECKOUT [EXTENSION...]" >&2
	exit 2
fi
src=$(cd "$1" && pwd)
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${WORK:-$(mktemp -d /tmp/loop-tilt-extensions.XXXXXX)}
export KUBECONFIG=${KUBECONFIG:-/tmp/loop-test-cluster/kubeconfig}
per_test_timeout=${PER_TEST_TIMEOUT:-240}

if [ -z "${LOOP:-}" ]; then
	LOOP="$work/bin/loop"
	(cd "$repo" && go build -o "$LOOP" ./cmd/loop) || exit 1
fi

# localise rewrites the copy so that it can run with nothing pulled (the issue's "base
# images that cannot be pulled here replaced by local ones"):
#  - FROM lines naming a public base (busybox, alpine, debian, ubuntu, nginx) in test/
#    Dockerfiles and test Tiltfiles (dockerfile_contents=) become loop/busybox:latest
#    (scripts/busybox-image.sh);
#  - a test Tiltfile that loads its extension by path (load('../Tiltfile', ...)) loads it as
#    ext://NAME when loop has a built-in version of it (restart_process, helm_resource,
#    helm_remote), since the Starlark one needs a helper image or the helm CLI;
#  - helm_resource_local is made: helm_resource's test without its remote charts;
#  - with REAL_NODE=1, pod specs in test/ YAML files get the test cluster's real-node
#    placement and their public images become loop/busybox pushed to the cluster registry,
#    so Jobs that check something really run (on kwok's node every pod "succeeds").
localise() {
	"$repo/scripts/busybox-image.sh" >/dev/null || return 1
	local busy=loop/busybox:latest
	if [ "${REAL_NODE:-}" = 1 ]; then
		busy=${REGISTRY:-127.0.0.1:16449}/loop-tilt-extensions/busybox:latest
		docker tag loop/busybox:latest "$busy" && docker push -q "$busy" >/dev/null || return 1
	fi
	BUSY=$busy python3 - "$1" <<'PY'
import os, pathlib, re, sys
import yaml

root = pathlib.Path(sys.argv[1])
busy = os.environ["BUSY"]
public = re.compile(r"^(docker\.io/)?(library/)?(busybox|alpine|debian|ubuntu|nginx)(:[^\s@]*)?(@\S+)?$")
builtin = {"restart_process", "helm_resource", "helm_remote"}
for test in root.glob("*/test"):
    ext = test.parent.name
    for f in test.rglob("*"):
        if not f.is_file():
            continue
        if f.name.startswith("Dockerfile"):
            lines = f.read_text().splitlines(keepends=True)
            out = []
            for l in lines:
                m = re.match(r"(\s*FROM\s+)(\S+)(.*)", l, re.I)
                if m and public.match(m.group(2)):
                    l = m.group(1) + "loop/busybox:latest" + m.group(3) + ("\n" if l.endswith("\n") and not m.group(3).endswith("\n") else "")
                out.append(l)
            f.write_text("".join(out))
        elif f.name.endswith("Tiltfile"):
            text = f.read_text()
            if ext in builtin:
                text = text.replace("load('../Tiltfile'", "load('ext://%s'" % ext)
            # dockerfile_contents= in the Tiltfile
            text = re.sub(r"(?m)^(\s*FROM\s+)(\S+)", lambda m: m.group(1) + ("loop/busybox:latest" if public.match(m.group(2)) else m.group(2)), text)
            f.write_text(text)
        elif f.suffix in (".yaml", ".yml") and os.environ.get("REAL_NODE") == "1":
            try:
                docs = list(yaml.safe_load_all(f.read_text()))
            except yaml.YAMLError:
                continue
            changed = False
            for d in docs:
                if not isinstance(d, dict):
                    continue
                spec = d.get("spec") or {}
                if d.get("kind") == "Pod":
                    pod = spec
                else:
                    pod = ((spec.get("jobTemplate") or {}).get("spec") or spec).get("template", {}).get("spec")
                if not isinstance(pod, dict) or "containers" not in pod:
                    continue
                pod["nodeSelector"] = {"loop.dev/node": "real"}
                pod["tolerations"] = [{"key": "loop.dev/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}]
                for c in pod.get("containers", []) + pod.get("initContainers", []):
                    if public.match(str(c.get("image", ""))):
                        c["image"] = busy
                changed = True
            if changed:
                f.write_text(yaml.safe_dump_all(docs, sort_keys=False))

# helm_resource_local: helm_resource's test with its second half (helm_repo and the
# charts from https://helm.github.io/examples, which need the network) cut off, so
# that its local charts are checked on their own.
src = root / "helm_resource"
if (src / "test" / "Tiltfile").exists():
    import shutil
    dst = root / "helm_resource_local"
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)
    tf = dst / "test" / "Tiltfile"
    text = tf.read_text()
    tf.write_text(text[: text.index("helm_repo(")] if "helm_repo(" in text else text)
PY
}

# The tilt shim: only the verbs the tests use; anything else fails naming itself, so a
# test that needs a Tilt verb loop has no counterpart for shows that as its reason.
mkdir -p "$work/bin"
cat >"$work/bin/tilt" <<SHIM
#!/usr/bin/env bash
verb=\${1:-}; shift || true
case "\$verb" in
ci) exec "$LOOP" ci --timeout 180s "\$@" ;;
down)
	args=()
	for a in "\$@"; do
		# loop down removes what the Tiltfile deployed, namespaces included when it declared them.
		[ "\$a" = --delete-namespaces ] || args+=("\$a")
	done
	exec "$LOOP" down "\${args[@]}" ;;
up)
	# tilt up --stream: loop's headless daemon prints the same stream.
	args=()
	for a in "\$@"; do
		[ "\$a" = --stream ] || args+=("\$a")
	done
	exec "$LOOP" daemon "\${args[@]}" ;;
logs | trigger) exec "$LOOP" "\$verb" "\$@" ;;
alpha)
	if [ "\${1:-}" = tiltfile-result ]; then shift; exec "$LOOP" dump resources -o json "\$@"; fi ;;
esac
echo "tilt shim: no loop counterpart for: tilt \$verb \$*" >&2
exit 3
SHIM
chmod +x "$work/bin/tilt"

rm -rf "$work/tilt-extensions"
cp -a "$src" "$work/tilt-extensions"
localise "$work/tilt-extensions"
export LOOP_EXTENSIONS_DIR="$work/tilt-extensions"
export PATH="$work/bin:$PATH"

if [ $# -eq 0 ]; then
	set -- $(cd "$work/tilt-extensions" && ls -d -- */test/test.sh | cut -d/ -f1)
fi

echo "| extension | result | last error line |"
echo "|---|---|---|"
for ext in "$@"; do
	dir="$work/tilt-extensions/$ext/test"
	log="$work/$ext.log"
	if [ ! -x "$dir/test.sh" ]; then
		echo "| $ext | no test/test.sh | |"
		continue
	fi
	(cd "$dir" && timeout "$per_test_timeout" ./test.sh) >"$log" 2>&1
	rc=$?
	if [ $rc -ne 0 ] && [ -f "$dir/Tiltfile" ]; then
		# A test stopped half-way leaves its objects behind for the next one.
		(cd "$dir" && timeout 60 "$LOOP" down) >>"$log" 2>&1
	fi
	if [ $rc -eq 0 ]; then
		echo "| $ext | pass | |"
	else
		why=$(grep -iE 'error|fail|not found|no loop counterpart|timed out' "$log" | grep -v '^+' | tail -1 | tr '|' '/' | cut -c1-160)
		[ $rc -eq 124 ] && why="timed out after ${per_test_timeout}s; $why"
		echo "| $ext | fail (exit $rc) | ${why} |"
	fi
done
echo
echo "logs: $work/*.log" >&2
