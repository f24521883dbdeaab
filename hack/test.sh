#!/usr/bin/env bash
# The whole test suite: unit tests, then e2e tests against the real binary,
# runc, conmon, CNI plugins and a local registry. Must run as root; e2e
# tests fail (never skip) without it.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test: must run as root (e2e tests start crius, runc and CNI plugins)" >&2
    exit 1
fi

cargo build --workspace --bins

state_dir=$(mktemp -d /tmp/crius-test-registry.XXXXXX)
rmdir "$state_dir"   # test-registry.sh creates it with its marker
cleanup() { hack/test-registry.sh down "$state_dir" || true; }
trap cleanup EXIT
eval "$(hack/test-registry.sh up "$state_dir")"
export CRIUS_TEST_REGISTRY CRIUS_TEST_AUTH_REGISTRY CRIUS_TEST_AUTH_USER CRIUS_TEST_AUTH_PASSWORD

export CRIUS_BIN="$PWD/target/debug/crius"
cargo test --workspace "$@"
