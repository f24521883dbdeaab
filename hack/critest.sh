#!/usr/bin/env bash
# Runs critest, the CRI validation suite of cri-tools, against a crius of
# this tree, as a new user would meet it: images pulled by their upstream
# names (registry.k8s.io/e2e-test-images/*, gcr.io/k8s-staging-cri-tools/*,
# public.ecr.aws/docker/library/busybox) and served by look-alikes in the
# local test registry, through a registries.conf that rewrites those hosts
# to it; pods on a bridge conflist without the `loopback` plugin, as Calico, Flannel or Cilium ship.
#
#   hack/critest.sh [critest flags...]     e.g.  hack/critest.sh -ginkgo.focus=Streaming
#   hack/critest.sh -benchmark -benchmarking-params-file hack/critest-benchmark.yaml
#
# Needs root, `critest` and `crictl` on PATH (or CRITEST / CRICTL set): build
# them from the cri-tools repository (v1.32); they are never part of this
# tree. Everything lives in a temp dir; the pod bridge crius-crit0
# (10.88.60.0/24) and the registries are removed at the end. CRIUS_BIN picks
# the daemon (default: a release build of this tree).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "critest: must run as root" >&2; exit 1; }
CRITEST=${CRITEST:-$(command -v critest || true)}
CRICTL=${CRICTL:-$(command -v crictl || true)}
[ -x "$CRITEST" ] || { echo "critest: no critest binary (PATH or CRITEST)" >&2; exit 1; }
[ -x "$CRICTL" ] || { echo "critest: no crictl binary (PATH or CRICTL)" >&2; exit 1; }
if [ -z "${CRIUS_BIN:-}" ]; then
    cargo build --release --bin crius
    CRIUS_BIN=$PWD/target/release/crius
fi

work=$(mktemp -d /tmp/crius-critest.XXXXXX)
registry_state=$work/registry
bridge=crius-crit0
crius_pid=
cleanup() {
    local status=$?
    if [ -n "$crius_pid" ]; then
        # critest removes what it makes; a run cut short leaves pods, which
        # must go through the daemon (CNI DEL, unmounts) before it stops.
        "$CRICTL" -r "unix://$work/crius.sock" rmp -fa >/dev/null 2>&1 || true
        "$CRICTL" -r "unix://$work/crius.sock" rmi -a >/dev/null 2>&1 || true
        kill "$crius_pid" 2>/dev/null || true
        wait "$crius_pid" 2>/dev/null || true
    fi
    hack/test-registry.sh down "$registry_state" >/dev/null 2>&1 || true
    ip link del "$bridge" 2>/dev/null || true
    if [ "$status" -ne 0 ] && [ -f "$work/crius.log" ]; then
        echo "critest: crius log kept in $work/crius.log" >&2
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

eval "$(hack/test-registry.sh up "$registry_state")"

cat >"$work/registries.conf" <<EOF
[[registry]]
prefix = "registry.k8s.io"
location = "$CRIUS_TEST_REGISTRY"
insecure = true

[[registry]]
prefix = "gcr.io"
location = "$CRIUS_TEST_REGISTRY"
insecure = true

[[registry]]
prefix = "public.ecr.aws"
location = "$CRIUS_TEST_REGISTRY"
insecure = true
EOF

mkdir -p "$work/net.d"
: >"$work/crius.toml"   # defaults only, whatever /etc/crius holds
cat >"$work/net.d/10-critest.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "crius-critest",
  "plugins": [
    {
      "type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$work/ipam",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "10.88.60.0/24" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF

"$CRIUS_BIN" --config "$work/crius.toml" --root "$work/root" --runroot "$work/run" \
    --listen "$work/crius.sock" --cni-config-dir "$work/net.d" \
    --registries-conf "$work/registries.conf" >"$work/crius.log" 2>&1 &
crius_pid=$!
for _ in $(seq 100); do
    [ -S "$work/crius.sock" ] && break
    kill -0 "$crius_pid" 2>/dev/null || { tail -n 20 "$work/crius.log" >&2; exit 1; }
    sleep 0.1
done

"$CRITEST" --runtime-endpoint "unix://$work/crius.sock" \
    --image-endpoint "unix://$work/crius.sock" "$@"
