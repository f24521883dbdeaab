#!/usr/bin/env bash
# Builds the crius .deb (cargo-deb, metadata in server/Cargo.toml) and
# checks it on this machine: installs it with dpkg, checks the installed
# binary, files, conffiles, dependencies and systemd unit, then removes and
# purges it and checks that nothing is left. Run as root on Debian 12.
#
#   hack/deb.sh             build target/release/crius, package, check
#   hack/deb.sh --no-build  package the target/release/crius already built
#   hack/deb.sh --fast      lighter compression (CI: 10 s instead of 2 min)
#
# The package lands in target/debian/ with the debug symbols apart in a
# crius-dbgsym .ddeb (not installed here).
#
# It refuses to run if crius is installed or any file the package ships is
# already there, since removing the package would take those with it.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
FILES=(
    /usr/bin/crius
    /etc/crius/crius.toml
    /etc/cni/net.d/10-crius-bridge.conflist
    /lib/systemd/system/crius.service
    /usr/share/doc/crius/README.md
    /usr/share/doc/crius/kubernetes.md
)
CONFFILES=(/etc/crius/crius.toml /etc/cni/net.d/10-crius-bridge.conflist)
DEPENDS=(runc conmon containernetworking-plugins iptables)

say() { echo "deb: $*" >&2; }
fail() {
    say "FAILED: $*"
    exit 1
}

build=1
deb_flags=()
for arg in "$@"; do
    case "$arg" in
        --no-build) build=0 ;;
        --fast) deb_flags+=(--fast) ;;
        *) fail "unknown argument ${arg}; usage: hack/deb.sh [--no-build] [--fast]" ;;
    esac
done

[ "$(id -u)" -eq 0 ] || fail "must run as root (it installs and removes the package)"
for tool in dpkg dpkg-deb dpkg-query dpkg-shlibdeps systemd-analyze objdump strip objcopy; do
    command -v "$tool" >/dev/null || fail "$tool not found (hack/install-deps.sh installs it)"
done
if dpkg-query -W -f='${Status}' crius 2>/dev/null | grep -qv "not-installed"; then
    fail "a crius package is already on this machine ($(dpkg-query -W -f='${Status}' crius)); remove it first"
fi
for f in "${FILES[@]}"; do
    [ ! -e "$f" ] || fail "$f already exists; installing and removing the package would replace it"
done
# Directories the package creates go again with the purge.
new_dirs=()
for d in /etc/crius /etc/cni/net.d /etc/cni /usr/share/doc/crius; do
    [ -e "$d" ] || new_dirs+=("$d")
done
for dep in "${DEPENDS[@]}"; do
    dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q "install ok installed" ||
        fail "dependency $dep is not installed (hack/install-deps.sh installs it)"
done

if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    start=$SECONDS
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
    say "cargo-deb installed in $((SECONDS - start)) s"
fi

start=$SECONDS
if [ "$build" = 1 ]; then
    cargo build --release -p crius --bin crius
fi
[ -x target/release/crius ] || fail "target/release/crius is missing; run without --no-build"
# cargo-deb prints the paths of the .deb and the dbgsym .ddeb on stdout.
deb=$(cargo deb -p crius --no-build "${deb_flags[@]}" | grep '\.deb$' | tail -n 1)
[ -f "$deb" ] || fail "cargo deb did not produce a package (got ${deb@Q})"
say "built $deb in $((SECONDS - start)) s"

tmp=$(mktemp -d /tmp/crius-deb.XXXXXX)
installed=0
cleanup() {
    if [ "$installed" = 1 ]; then
        say "purging crius after a failure"
        dpkg --purge crius >/dev/null 2>&1 || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# The package as built.
dpkg-deb --field "$deb" Package | grep -qx crius || fail "package name is not crius"
depends=$(dpkg-deb --field "$deb" Depends)
for dep in "${DEPENDS[@]}"; do
    grep -qE "(^|, )$dep( |,|$)" <<<"$depends" || fail "Depends lacks $dep: $depends"
done

say "installing $deb"
installed=1
dpkg -i "$deb"
dpkg-query -W -f='${Status}' crius | grep -qx "install ok installed" ||
    fail "crius is not installed after dpkg -i: $(dpkg-query -W -f='${Status}' crius)"

for f in "${FILES[@]}"; do
    [ -f "$f" ] || fail "$f is not installed"
done
[ -x /usr/bin/crius ] || fail "/usr/bin/crius is not executable"
# Stripped: the debug symbols are in the dbgsym package.
sections=$(objdump -h /usr/bin/crius) || fail "objdump cannot read /usr/bin/crius"
if grep -qE '\.debug_(info|line)' <<<"$sections"; then
    fail "/usr/bin/crius carries debug info"
fi
conffiles=$(dpkg-query -W -f='${Conffiles}' crius)
for f in "${CONFFILES[@]}"; do
    grep -qF " $f " <<<"$conffiles" || fail "$f is not a conffile: $conffiles"
done

# The installed binary is the one built, and its config is the defaults.
version=$(/usr/bin/crius --version)
[ "$version" = "$(target/release/crius --version)" ] ||
    fail "installed crius --version says ${version@Q}"
/usr/bin/crius version >"$tmp/version" || fail "crius version failed"
grep -q "^crius version " "$tmp/version" || fail "crius version printed: $(cat "$tmp/version")"
/usr/bin/crius config >"$tmp/config" || fail "crius config of the installed package failed"
cmp -s "$tmp/config" /etc/crius/crius.toml ||
    fail "crius config differs from /etc/crius/crius.toml: $(diff "$tmp/config" /etc/crius/crius.toml)"
/usr/bin/crius config --default | cmp -s - /etc/crius/crius.toml ||
    fail "/etc/crius/crius.toml is not crius config --default"
cmp -s /etc/cni/net.d/10-crius-bridge.conflist hack/cni/10-crius-bridge.conflist ||
    fail "/etc/cni/net.d/10-crius-bridge.conflist is not hack/cni/10-crius-bridge.conflist"

# The unit, as installed (verify needs its ExecStart binary to exist).
# systemd-analyze exits 0 on many problems it only warns about, so any
# output is a failure.
systemd-analyze verify /lib/systemd/system/crius.service >"$tmp/verify" 2>&1 ||
    fail "systemd-analyze verify failed: $(cat "$tmp/verify")"
[ ! -s "$tmp/verify" ] || fail "systemd-analyze verify warns: $(cat "$tmp/verify")"
say "installed and checked: $version"

say "removing"
dpkg -r crius
dpkg-query -W -f='${Status}' crius | grep -qx "deinstall ok config-files" ||
    fail "after dpkg -r: $(dpkg-query -W -f='${Status}' crius)"
for f in /usr/bin/crius /lib/systemd/system/crius.service /usr/share/doc/crius; do
    [ ! -e "$f" ] || fail "$f is left after dpkg -r"
done
for f in "${CONFFILES[@]}"; do
    [ -f "$f" ] || fail "conffile $f went with dpkg -r (only a purge removes it)"
done

say "purging"
dpkg --purge crius
installed=0
if dpkg-query -W -f='${Status}' crius 2>/dev/null | grep -qv "not-installed"; then
    fail "dpkg still knows crius after purge: $(dpkg-query -W -f='${Status}' crius)"
fi
for f in "${FILES[@]}" "${new_dirs[@]}"; do
    [ ! -e "$f" ] || fail "$f is left after purge"
done
left=$(find /var/lib/systemd/deb-systemd-helper-enabled /etc/systemd/system \
    -name 'crius.service*' 2>/dev/null || true)
[ -z "$left" ] || fail "systemd state left after purge: $left"
say "ok: built, installed, checked, removed and purged $(basename "$deb")"
