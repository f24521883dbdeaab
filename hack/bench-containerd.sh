#!/usr/bin/env bash
# Runs a CRI benchmark -- the pod sandbox one (e2e/src/bin/sandbox-bench.rs)
# or the container lifecycle one (e2e/src/bin/container-bench.rs) -- against
# containerd on this machine, for comparison with crius. containerd needs a
# pause image; nothing may be pulled from the internet, so a stand-in is
# built locally: static busybox running `sleep` as PID 1 (containerd stops
# sandboxes with SIGKILL, so a signal-ignoring PID 1 is fine).
#
# Everything lives in a temp dir (containerd root/state/socket, CNI config,
# host-local leases); the bridge crius-bench1 on 10.88.251.0/24 is deleted at
# the end. Needs root, Debian packages containerd, busybox-static,
# containernetworking-plugins, python3, and `cargo build --release`.
#
# Images other than the pause stand-in come from the local test registry:
# with CRIUS_TEST_REGISTRY set (eval "$(hack/test-registry.sh up)"),
# containerd's CRI is told to reach it over plain HTTP, so container-bench's
# PullImage of $CRIUS_TEST_REGISTRY/busybox works as it does against crius.
#
# Usage: hack/bench-containerd.sh [sandbox-bench|container-bench] [bench flags...]
#        (the default bench is sandbox-bench)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "bench-containerd: must run as root" >&2; exit 1; }
for tool in containerd ctr python3 ip; do
    command -v "$tool" >/dev/null || { echo "bench-containerd: $tool is required" >&2; exit 1; }
done
bench_name=sandbox-bench
case "${1:-}" in
sandbox-bench | container-bench) bench_name=$1; shift ;;
esac
bench=target/release/$bench_name
[ -x "$bench" ] || { echo "bench-containerd: build $bench first (cargo build --release -p crius-e2e)" >&2; exit 1; }

# containerd 1.6 also uses two fixed host paths: /run/containerd/s (shim
# sockets) and /run/netns (made a bind mount of itself). Undo them at the end
# if this script is what created them.
had_run_containerd=$([ -e /run/containerd ] && echo 1 || true)
had_run_netns=$([ -e /run/netns ] && echo 1 || true)
work=$(mktemp -d /tmp/crius-bench-containerd.XXXXXX)
bridge=crius-bench1
containerd_pid=
# Shims of this run: containerd-shim-* processes whose command line names
# this run's socket.
shim_pids() {
    local d
    for d in /proc/[0-9]*; do
        [[ $(cat "$d/comm" 2>/dev/null) == containerd-shim* ]] || continue
        tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "-address $work/containerd.sock" && echo "${d#/proc/}"
    done
    return 0
}
cleanup() {
    status=$?
    if [ "$status" -ne 0 ] && [ -f "$work/containerd.log" ]; then
        echo "----- containerd log (tail) -----" >&2
        tail -n 40 "$work/containerd.log" >&2
    fi
    if [ -n "$containerd_pid" ]; then
        kill "$containerd_pid" 2>/dev/null || true
        wait "$containerd_pid" 2>/dev/null || true
    fi
    # A bench that failed half-way leaves containers and their shims (which
    # outlive containerd): delete the containers in this run's runc root, then
    # end the shims that serve this run's socket, by PID.
    if [ -d "$work/runc/k8s.io" ]; then
        for id in $(runc --root "$work/runc/k8s.io" list -q 2>/dev/null); do
            runc --root "$work/runc/k8s.io" delete --force "$id" 2>/dev/null || true
        done
    fi
    for pid in $(shim_pids); do kill "$pid" 2>/dev/null || true; done
    # Lazily unmount whatever containerd left under the work dir, deepest first.
    # (grep finds nothing when containerd cleaned up; pipefail must not end
    # the trap there.)
    { grep -o " $work[^ ]*" /proc/self/mounts || true; } | sort -r | while read -r m; do umount -l "$m" || true; done
    ip link del "$bridge" 2>/dev/null || true
    if [ -z "$had_run_netns" ] && [ -e /run/netns ]; then
        umount /run/netns 2>/dev/null || true
        rmdir /run/netns 2>/dev/null || true
    fi
    [ -n "$had_run_containerd" ] || rm -rf /run/containerd
    if [ "${KEEP_WORK:-}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# The stand-in pause image as an OCI archive.
python3 - "$work/pause.tar" <<'EOF'
import hashlib, io, json, sys, tarfile
def blob(files, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    files["blobs/sha256/" + digest[7:]] = data
    return {"digest": digest, "size": len(data)}
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    d = tarfile.TarInfo("bin"); d.type = tarfile.DIRTYPE; d.mode = 0o755; t.addfile(d)
    t.add("/bin/busybox", arcname="bin/busybox")
    s = tarfile.TarInfo("bin/sleep"); s.type = tarfile.SYMTYPE; s.linkname = "busybox"; t.addfile(s)
layer = layer.getvalue()
files = {}
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = json.dumps({"architecture": "amd64", "os": "linux",
    "config": {"Entrypoint": ["/bin/sleep", "2147483647"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(blob(files, config), mediaType="application/vnd.oci.image.config.v1+json"),
    "layers": [dict(blob(files, layer), mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode()
m = dict(blob(files, manifest), mediaType="application/vnd.oci.image.manifest.v1+json")
m["annotations"] = {"io.containerd.image.name": "registry.k8s.io/pause:3.6",
                    "org.opencontainers.image.ref.name": "3.6"}
files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [m]}).encode()
files["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
with tarfile.open(sys.argv[1], "w") as out:
    for name, data in files.items():
        info = tarfile.TarInfo(name); info.size = len(data)
        out.addfile(info, io.BytesIO(data))
EOF

mkdir -p "$work/net.d"
cat > "$work/net.d/10-bench.conflist" <<EOF
{"cniVersion":"1.0.0","name":"crius-bench","plugins":[
 {"type":"bridge","bridge":"$bridge","isGateway":true,"ipMasq":true,
  "ipam":{"type":"host-local","dataDir":"$work/ipam","routes":[{"dst":"0.0.0.0/0"}],
          "ranges":[[{"subnet":"10.88.251.0/24"}]]}},
 {"type":"portmap","capabilities":{"portMappings":true}},
 {"type":"loopback"}]}
EOF
cat > "$work/config.toml" <<EOF
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$work/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  # Sandboxes get oom_score_adj -998, which needs CAP_SYS_RESOURCE; without
  # it (as in some VMs and containers) runc fails with "can't get final
  # child's PID from pipe". Clamp to our own value instead.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/net.d"
$(if [ -n "${CRIUS_TEST_REGISTRY:-}" ]; then cat <<MIRROR
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$CRIUS_TEST_REGISTRY"]
    endpoint = ["http://$CRIUS_TEST_REGISTRY"]
MIRROR
fi)
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      Root = "$work/runc"
EOF

containerd --config "$work/config.toml" --log-level "${CONTAINERD_LOG_LEVEL:-warn}" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do [ -S "$work/containerd.sock" ] && break; sleep 0.1; done
[ -S "$work/containerd.sock" ] || { cat "$work/containerd.log"; exit 1; }
ctr --address "$work/containerd.sock" -n k8s.io images import --all-platforms "$work/pause.tar" >/dev/null
# containerd refuses a CNI config until it has loaded one; give it a moment.
sleep 2

"$bench" --socket "$work/containerd.sock" --pid "$containerd_pid" \
    --helpers "-address $work/containerd.sock" --label "containerd $(containerd --version | awk '{print $3}')" "$@"
