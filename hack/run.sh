#!/usr/bin/env bash
# The newcomer's one command: install dependencies, build crius, give it a
# working default setup, and run it in the foreground on
# /run/crius/crius.sock (Ctrl-C stops it). Extra arguments go to crius.
set -euo pipefail
cd "$(dirname "$0")/.."

hack/install-deps.sh
cargo build --release --bin crius

# A default pod network (bridge crius0 on 10.85.0.0/16, CRI-O's default
# subnet; podman's 10.88.0.0/16 and flannel's cni0 bridge are left alone),
# unless the node already has a CNI config.
if ! ls /etc/cni/net.d/*.conf* /etc/cni/net.d/*.json >/dev/null 2>&1; then
    install -D -m 0644 hack/cni/10-crius-bridge.conflist /etc/cni/net.d/10-crius-bridge.conflist
    echo "run: installed /etc/cni/net.d/10-crius-bridge.conflist" >&2
fi

exec target/release/crius "$@"
