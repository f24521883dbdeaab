#!/usr/bin/env bash
# Installs every system package crius needs to build, run and test on a
# fresh Debian 12 machine. Idempotent: packages already present are kept.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: must run as root (apt-get install)" >&2
    exit 1
fi

packages=(
    # build: k8s-cri generates the CRI types with protoc
    protobuf-compiler
    # runtime: OCI runtime, container monitor, CNI plugins, pod networking
    runc conmon containernetworking-plugins iptables iproute2 util-linux
    # tests: local registry, image tools, htpasswd for the auth registry
    docker-registry skopeo umoci busybox-static apache2-utils curl python3
    # tests: inspecting namespaces and processes; a TLS certificate for the
    # streaming server's TLS test
    procps openssl
    # tests: the no_new_privs critest case builds a static setuid program
    gcc libc6-dev
    # packaging (hack/deb.sh): shared-library dependencies for cargo-deb,
    # systemd-analyze to verify the unit (runs without systemd as init)
    dpkg-dev systemd
)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
    echo "install-deps: all packages present" >&2
fi

# test-registry.sh fetches Debian's dynamic busybox with `apt-get download`,
# which needs package lists even when nothing above was missing.
if ! apt-cache show busybox >/dev/null 2>&1; then
    apt-get update -q
fi

# The docker-registry package starts a system registry on :5000; tests run
# their own on free loopback ports, so keep the system one from competing.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
fi
