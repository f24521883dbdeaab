#!/usr/bin/env bash
# Local OCI registries with test images for crius' image and e2e tests.
#
#   hack/test-registry.sh up   [STATE_DIR]   # default /tmp/crius-test-registry
#   hack/test-registry.sh down [STATE_DIR]
#
# The plain registry also holds hostile images (hostile-*: tar header and
# size bombs) for the e2e tests that check layers are bounded.
#
# `up` starts two Debian docker-registry (distribution 2.8) instances on free
# loopback ports -- a plain one holding all test images, and one requiring
# basic auth (crius / crius-pass) holding `busybox` -- then prints the
# connection settings as `export X=Y` lines on stdout (also saved to
# STATE_DIR/env). Everything else goes to stderr, so callers can do
#   eval "$(hack/test-registry.sh up)"
# Running `up` again while the registries are alive just re-prints the env.
#
# The plain registry also holds look-alikes of the images critest pulls, under
# their upstream repository names (e2e-test-images/*, k8s-staging-cri-tools/*;
# see hack/images/critest-layouts.py), for hack/critest.sh.
#
# Images are built locally from Debian's dynamically linked busybox so that no
# image is ever fetched from the internet. The dynamic build matters: the
# static one runs applets inside its own shell, which would hide exec bugs.
#
# Needs: docker-registry skopeo apache2-utils curl python3 gcc (and apt access to
# download the busybox .deb once per STATE_DIR).
set -euo pipefail
umask 022

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
DEFAULT_STATE_DIR=/tmp/crius-test-registry
AUTH_USER=crius
AUTH_PASSWORD=crius-pass
# Written by `up` into STATE_DIR; `down` refuses to `rm -rf` a directory
# without it, so a mistyped path can't wipe someone's data.
MARKER=.crius-test-registry
PYTHON=${PYTHON:-python3}

# stdout is reserved for the env lines; route everything else to stderr.
exec 3>&1 1>&2

# Everything we talk to is on loopback; never let a proxy setting divert it.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

log() { echo "test-registry: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    echo "usage: $0 up|down [STATE_DIR]   (default STATE_DIR: $DEFAULT_STATE_DIR)" >&2
    exit 2
}

# --- process helpers ---------------------------------------------------------

# True if process $1 exists and is not a zombie.
pid_running() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# True if the pid in $1 is alive and is a registry serving config $2. Checking
# the command line guards against a recycled pid after a reboot or crash.
registry_alive() {
    local pidfile=$1 config=$2 pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    # A zombie has an empty cmdline and so counts as dead.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "docker-registry serve $config"
}

stop_registry() {
    local pidfile=$1 config=$2 pid i
    if registry_alive "$pidfile" "$config"; then
        pid=$(<"$pidfile")
        log "stopping registry pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            registry_alive "$pidfile" "$config" || break
            sleep 0.1
        done
        if registry_alive "$pidfile" "$config"; then
            log "registry pid $pid ignored SIGTERM, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                registry_alive "$pidfile" "$config" || break
                sleep 0.1
            done
            ! registry_alive "$pidfile" "$config" || die "registry pid $pid does not exit"
        fi
    fi
    rm -f "$pidfile"
}

# Print a port that is free on 127.0.0.1 right now. There is a window before
# the registry binds it; start_registry retries if it loses that race.
free_port() {
    "$PYTHON" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# write_config CONFIG PORT STORAGE [HTPASSWD]
write_config() {
    local config=$1 port=$2 storage=$3 htpasswd=${4:-}
    # Deliberately absent: proxy (pull-through cache), notifications,
    # reporting (bugsnag/newrelic), redis and the debug listener, so the
    # registry never opens a connection or a port of its own beyond $port.
    cat >"$config" <<EOF
version: 0.1
log:
  level: info
  fields:
    service: crius-test-registry
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
  secret: $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    if [[ -n $htpasswd ]]; then
        cat >>"$config" <<EOF
auth:
  htpasswd:
    realm: crius-test
    path: $htpasswd
EOF
    fi
}

# start_registry NAME HTPASSWD(or "") -> prints the port it listens on.
# Files: STATE_DIR/{config,registry}[-auth].{yml,log,pid}, storage[-auth]/.
start_registry() {
    local name=$1 htpasswd=$2 suffix="" expect=200
    if [[ -n $htpasswd ]]; then suffix=-auth; expect=401; fi
    local config=$STATE_DIR/config$suffix.yml
    local logf=$STATE_DIR/registry$suffix.log
    local pidfile=$STATE_DIR/registry$suffix.pid
    local storage=$STATE_DIR/storage$suffix
    local attempt port pid i code offset
    mkdir -p "$storage"

    for ((attempt = 1; attempt <= 5; attempt++)); do
        port=$(free_port)
        write_config "$config" "$port" "$storage" "$htpasswd"
        # The log is appended to across restarts; only look at this run's part.
        offset=$(($(stat -c %s "$logf" 2>/dev/null || echo 0) + 1))
        # setsid: detach from the caller's session/process group, so the
        # registry outlives `up` and isn't hit by signals aimed at the caller.
        # Closing fds 3 (our real stdout) and 9 (the state lock) matters: an
        # inherited copy would make `$(... up)` hang and hold the lock forever.
        setsid docker-registry serve "$config" >>"$logf" 2>&1 </dev/null 3>&- 9>&- &
        pid=$!
        echo "$pid" >"$pidfile"
        for ((i = 0; i < 150; i++)); do
            # Not registry_alive: right after the fork the child's cmdline is
            # still bash's, not docker-registry's.
            pid_running "$pid" || break
            code=$(curl --noproxy '*' -s -o /dev/null -w '%{http_code}' \
                --max-time 2 "http://127.0.0.1:$port/v2/" || true)
            if [[ $code == "$expect" ]]; then
                log "$name registry up on 127.0.0.1:$port (pid $pid)"
                echo "$port"
                return 0
            fi
            sleep 0.1
        done
        if pid_running "$pid"; then
            kill -KILL "$pid" 2>/dev/null || true
            rm -f "$pidfile"
            die "$name registry did not answer GET /v2/ with $expect (last: ${code:-none}); see $logf"
        fi
        if tail -c "+$offset" "$logf" | grep -q 'address already in use'; then
            log "port $port was taken meanwhile, retrying"
            continue
        fi
        tail -c "+$offset" "$logf" | tail -n 20 >&2 || true
        die "$name registry exited; see $logf"
    done
    die "$name registry: could not get a free port"
}

# --- image building ----------------------------------------------------------

# Applets the tests rely on; all of Debian's applets get installed, but these
# are checked so a change in Debian's busybox config fails loudly here.
REQUIRED_APPLETS=(sh sleep echo cat wget nc httpd id ls ps env true false kill
    mkdir touch rm stty head tail grep hostname date dd yes top whoami seq wc
    tr printf test ping ip)

# Stage the busybox root filesystem in $1.
stage_rootfs() {
    local rootfs=$1 deb extract bb lib applet
    deb=$(compgen -G "$STATE_DIR/busybox_*.deb" | head -n1 || true)
    if [[ -z $deb ]]; then
        log "downloading Debian busybox package"
        # Sandbox user root: apt's _apt user can't write into STATE_DIR.
        (cd "$STATE_DIR" && apt-get download -o APT::Sandbox::User=root busybox >&2) ||
            die "apt-get download busybox failed (run 'apt-get update' first?)"
        deb=$(compgen -G "$STATE_DIR/busybox_*.deb" | head -n1)
    fi
    log "using $(basename "$deb")"

    extract=$STATE_DIR/build/busybox-deb
    dpkg-deb -x "$deb" "$extract"
    bb=$extract/bin/busybox
    [[ -x $bb ]] || die "no bin/busybox in $deb"

    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,run,var,root,home/tester,tmp}
    cp "$bb" "$rootfs/bin/busybox"
    chmod 0755 "$rootfs/bin/busybox"

    # Copy the exact shared objects the binary resolves to on this host,
    # dereferenced, at the same paths (ldd prints them; the loader is the one
    # line without "=>"). The busybox .deb is built against this Debian's libc.
    local libs
    libs=$(ldd "$bb" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') ||
        die "ldd failed on $bb"
    [[ -n $libs ]] || die "$bb is not dynamically linked"
    for lib in $libs; do
        mkdir -p "$rootfs$(dirname "$lib")"
        cp -L "$lib" "$rootfs$lib"
    done

    # Applet links at Debian's own locations (bin/, sbin/, usr/bin/, usr/sbin/).
    while read -r applet; do
        # linuxrc is the initrd init applet; it would only clutter `ls /`.
        [[ $applet == bin/busybox || $applet == linuxrc ]] && continue
        mkdir -p "$rootfs/$(dirname "$applet")"
        ln -sf /bin/busybox "$rootfs/$applet"
    done < <("$bb" --list-full)
    for applet in "${REQUIRED_APPLETS[@]}"; do
        compgen -G "$rootfs/*bin/$applet" >/dev/null || compgen -G "$rootfs/usr/*bin/$applet" >/dev/null ||
            die "busybox lacks required applet '$applet'"
    done

    cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
tester:x:1000:1000:tester:/home/tester:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
tester:x:1000:
extra:x:2000:tester
nogroup:x:65534:
EOF
    # Dynamic busybox resolves users/hosts through glibc NSS; say "files"
    # explicitly rather than relying on glibc's built-in defaults.
    cat >"$rootfs/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
shadow: files
hosts: files dns
EOF
    chmod 1777 "$rootfs/tmp"
    chmod 0700 "$rootfs/root"
    chown 1000:1000 "$rootfs/home/tester"
}

# Build all OCI layouts into STATE_DIR/layouts unless already there. The
# directory only appears once complete (built aside, then renamed).
build_layouts() {
    local layouts=$STATE_DIR/layouts build=$STATE_DIR/build stamp
    # Layouts built by older image scripts lack newer images.
    stamp=$(cat "$SCRIPT_DIR/images/build-layouts.py" "$SCRIPT_DIR/images/critest-layouts.py" \
        "$SCRIPT_DIR"/images/critest/*.c | sha256sum | cut -d' ' -f1)
    if [[ -d $layouts && $(cat "$layouts/.built-by" 2>/dev/null) == "$stamp" ]]; then
        log "reusing image layouts in $layouts"
        return 0
    fi
    rm -rf "$layouts"
    log "building image layouts"
    rm -rf "$build"
    mkdir -p "$build"
    stage_rootfs "$build/rootfs"
    "$PYTHON" "$SCRIPT_DIR/images/build-layouts.py" "$build/rootfs" "$build/layouts"
    "$PYTHON" "$SCRIPT_DIR/images/critest-layouts.py" "$build/rootfs" "$build/layouts"
    echo "$stamp" >"$build/layouts/.built-by"
    mv "$build/layouts" "$layouts"
    rm -rf "$build"
}

# Hostile images (layer bombs, see hack/images/hostile-layouts.py) into
# STATE_DIR/hostile-layouts, kept apart so that an existing STATE_DIR gains
# them without rebuilding the busybox layouts.
build_hostile_layouts() {
    local layouts=$STATE_DIR/hostile-layouts build=$STATE_DIR/build-hostile
    if [[ -d $layouts ]]; then
        log "reusing hostile image layouts in $layouts"
        return 0
    fi
    log "building hostile image layouts"
    rm -rf "$build"
    "$PYTHON" "$SCRIPT_DIR/images/hostile-layouts.py" "$build"
    mv "$build" "$layouts"
}

HOSTILE_IMAGES=(hostile-longname hostile-longlink hostile-pax hostile-sparse
    hostile-zeros hostile-entries)

# push SRC_LAYOUT_REF DEST_REF [extra skopeo args...]
# SRC is looked up in STATE_DIR/layouts, or in LAYOUTS if set.
push() {
    local src=$1 dest=$2
    shift 2
    log "pushing $dest"
    # --insecure-policy: the host's containers policy is irrelevant to
    # pushing our own local images. --preserve-digests: tests may compare
    # digests with the layouts, so skopeo must not rewrite manifests.
    skopeo --insecure-policy copy --quiet --preserve-digests \
        --dest-tls-verify=false "$@" "oci:${LAYOUTS:-$STATE_DIR/layouts}/$src" "docker://$dest" >&2
}

push_images() {
    local reg=$1 auth_reg=$2
    push busybox:latest "$reg/busybox:latest"
    push busybox:1.0 "$reg/busybox:1.0"
    push busybox-user:latest "$reg/busybox-user:latest"
    push busybox-entrypoint:latest "$reg/busybox-entrypoint:latest"
    push busybox-multiarch:latest "$reg/busybox-multiarch:latest" --all
    push busybox-large:latest "$reg/busybox-large:latest"
    push hostile-fifo-passwd:latest "$reg/hostile-fifo-passwd:latest"
    push busybox:latest "$auth_reg/busybox:latest" --dest-creds "$AUTH_USER:$AUTH_PASSWORD"
    # critest's images, under their upstream repository names (see
    # hack/images/critest-layouts.py and hack/critest.sh).
    local layout repository tag image
    while read -r layout repository tag; do
        push "$layout:$tag" "$reg/$repository:$tag" --all
    done <"$STATE_DIR/layouts/critest-images.txt"
    for image in "${HOSTILE_IMAGES[@]}"; do
        LAYOUTS=$STATE_DIR/hostile-layouts push "$image:latest" "$reg/$image:latest"
    done
}

# --- commands ----------------------------------------------------------------

cmd_up() {
    local start=$SECONDS port auth_port
    if [[ -d $STATE_DIR && ! -f $STATE_DIR/$MARKER ]] &&
        [[ -n $(ls -A "$STATE_DIR") ]]; then
        die "$STATE_DIR exists, is not empty and was not made by this script"
    fi
    mkdir -p "$STATE_DIR"
    STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
    touch "$STATE_DIR/$MARKER"
    # Serialize concurrent `up`/`down` on the same state dir.
    exec 9>"$STATE_DIR/.lock"
    flock 9

    # The env file is written last, so its presence means both registries
    # were started and fully populated.
    if [[ -f $STATE_DIR/env ]] &&
        registry_alive "$STATE_DIR/registry.pid" "$STATE_DIR/config.yml" &&
        registry_alive "$STATE_DIR/registry-auth.pid" "$STATE_DIR/config-auth.yml"; then
        log "registries already running"
        cat "$STATE_DIR/env" >&3
        return 0
    fi
    # Half-up state (one died, or a push failed): start over, keeping the
    # storage and layouts so this is quick.
    rm -f "$STATE_DIR/env"
    stop_registry "$STATE_DIR/registry.pid" "$STATE_DIR/config.yml"
    stop_registry "$STATE_DIR/registry-auth.pid" "$STATE_DIR/config-auth.yml"

    build_layouts
    build_hostile_layouts

    # Only bcrypt (-B) is accepted by distribution's htpasswd auth.
    htpasswd -Bbn "$AUTH_USER" "$AUTH_PASSWORD" >"$STATE_DIR/htpasswd"
    port=$(start_registry plain "")
    auth_port=$(start_registry auth "$STATE_DIR/htpasswd")

    push_images "127.0.0.1:$port" "127.0.0.1:$auth_port"

    cat >"$STATE_DIR/env.tmp" <<EOF
export CRIUS_TEST_REGISTRY=127.0.0.1:$port
export CRIUS_TEST_AUTH_REGISTRY=127.0.0.1:$auth_port
export CRIUS_TEST_AUTH_USER=$AUTH_USER
export CRIUS_TEST_AUTH_PASSWORD=$AUTH_PASSWORD
EOF
    mv "$STATE_DIR/env.tmp" "$STATE_DIR/env"
    log "ready in $((SECONDS - start))s"
    cat "$STATE_DIR/env" >&3
}

cmd_down() {
    if [[ ! -e $STATE_DIR ]]; then
        log "nothing to do: $STATE_DIR does not exist"
        return 0
    fi
    [[ -d $STATE_DIR ]] || die "$STATE_DIR is not a directory"
    STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
    [[ $STATE_DIR != / ]] || die "refusing to remove /"
    [[ -f $STATE_DIR/$MARKER ]] || die "$STATE_DIR was not made by this script; not removing it"
    exec 9>"$STATE_DIR/.lock"
    flock 9
    stop_registry "$STATE_DIR/registry.pid" "$STATE_DIR/config.yml"
    stop_registry "$STATE_DIR/registry-auth.pid" "$STATE_DIR/config-auth.yml"
    rm -rf -- "$STATE_DIR"
    log "removed $STATE_DIR"
}

[[ $# -ge 1 && $# -le 2 ]] || usage
# ${2-...} (no colon): an explicit empty STATE_DIR is an error, not the default.
STATE_DIR=${2-$DEFAULT_STATE_DIR}
[[ -n $STATE_DIR ]] || die "empty STATE_DIR"
case $1 in
up) cmd_up ;;
down) cmd_down ;;
*) usage ;;
esac
