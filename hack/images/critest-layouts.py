#!/usr/bin/env python3
"""Build look-alikes of the images critest (cri-tools) pulls, as OCI layouts.

Usage: critest-layouts.py ROOTFS OUTDIR

critest pulls from registry.k8s.io/e2e-test-images and
gcr.io/k8s-staging-cri-tools (and, with -benchmark, from
public.ecr.aws/docker/library). Nothing may be fetched from the internet, so
hack/test-registry.sh pushes these look-alikes to the local registry and
hack/critest.sh points crius at it through a registries.conf that rewrites
those hosts. Each image keeps what critest checks of the original:

- names and tags, and a multi-arch index where upstream has one;
- the image user (uid, name, group) of the test-image-user-* images, and the
  www-data (33) entry of busybox's /etc/passwd;
- the groups of test-image-predefined-group (default-user 1000 in group
  group-defined-in-image 50000);
- distinct images for test-image-1..3, one image under test-image-tags:1..3;
- `ipcs` and `pgrep` (util-linux's and procps's: Debian's busybox lacks
  those applets);
- applets as hard links to busybox, as in the busybox image (masking
  /bin/ls must not mask the shell);
- an nginx that answers 200 on / (port 80; hostnet-nginx on 12003), writes
  /var/run/nginx.pid, is named nginx and titled "nginx: master process"
  (critest/nginx.c), and an httpd that logs a line naming "httpd", as the
  multi-container specs read it;
- a setuid-root program printing its effective uid (nonewprivs,
  critest/nnp.c).

The two C programs are built here with gcc -static. test-image-digest cannot
be matched: critest pulls it by its upstream digest, which no local build can
reproduce.

One layout per image, OUTDIR/critest-<name>; tags are recorded in index.json
as build-layouts.py does, and hack/test-registry.sh pushes each under the
repository named in REPOSITORIES.
"""

import importlib.util
import io
import os
import subprocess
import sys
import tarfile
import tempfile

_spec = importlib.util.spec_from_file_location(
    "build_layouts", os.path.join(os.path.dirname(os.path.abspath(__file__)), "build-layouts.py")
)
bl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bl)

ARCHES = ("amd64", "arm64")

# busybox's own /etc/passwd and /etc/group (the upstream image's entries that
# critest relies on: root, www-data 33, nobody).
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
"""

# layout name -> (repository in the local registry, tags)
REPOSITORIES = {}


def etc_layer(passwd, group, comment):
    return bl.Layer(
        bl.tar_files([("etc/passwd", passwd.encode(), 0o644), ("etc/group", group.encode(), 0o644)]),
        comment,
    )


def write(outdir, name, repository, tags, layers, config, multiarch=True):
    """One layout holding one image (an index over ARCHES if multiarch)."""
    lay = bl.Layout(os.path.join(outdir, "critest-" + name))
    if multiarch:
        # The foreign entries reuse the amd64 layers: they are there for
        # platform selection, never run; an arch label keeps digests apart.
        manifests = [
            lay.image(layers, dict(config, Labels={"arch": arch}), arch=arch) for arch in ARCHES
        ]
        desc = lay.index(manifests)
    else:
        desc = lay.image(layers, config)
    for tag in tags:
        lay.tag(desc, tag)
    lay.close()
    REPOSITORIES["critest-" + name] = (repository, tags)


def hardlink_applets(tar_bytes):
    """The rootfs tar with every symlink to /bin/busybox made a hard link."""
    src = tarfile.open(fileobj=io.BytesIO(tar_bytes))
    members = src.getmembers()
    # A hard link's target must come before it in the tar.
    members.sort(key=lambda info: info.name != "bin/busybox")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        for info in members:
            if info.issym() and info.linkname == "/bin/busybox":
                info.type = tarfile.LNKTYPE
                info.linkname = "bin/busybox"
                info.mode = 0o755
            dst.addfile(info, src.extractfile(info) if info.isreg() else None)
    return out.getvalue()


def compile_static(name):
    """gcc -static of critest/NAME.c; returns the binary."""
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "critest", name + ".c")
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, name)
        subprocess.run(["gcc", "-static", "-Os", "-o", binary, source], check=True)
        with open(binary, "rb") as f:
            return f.read()


def host_programs_layer(*programs):
    """A layer with host programs and the shared objects they load, at the
    same paths (as hack/test-registry.sh stages busybox)."""
    paths = []
    for program in programs:
        out = subprocess.run(["ldd", program], check=True, capture_output=True, text=True).stdout
        paths.append(program)
        for line in out.splitlines():
            words = line.split()
            if len(words) >= 3 and words[1] == "=>" and words[2].startswith("/"):
                paths.append(words[2])
            elif words and words[0].startswith("/"):
                paths.append(words[0])
    files = []
    for p in dict.fromkeys(paths):
        with open(os.path.realpath(p), "rb") as f:
            files.append((p.lstrip("/"), f.read(), 0o755))
    return bl.Layer(bl.tar_files(files), " ".join(programs) + " from the host")


def web_layer(root, index_html, script=None):
    files = [(root.lstrip("/") + "/index.html", index_html.encode(), 0o644)]
    if script is not None:
        files.append(script)
    return bl.Layer(bl.tar_files(files), "web root " + root)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rootfs, outdir = sys.argv[1], sys.argv[2]

    base = bl.Layer(hardlink_applets(bl.tar_rootfs(rootfs)), "busybox rootfs, hard-linked applets")
    etc = etc_layer(PASSWD, GROUP, "busybox /etc/passwd and /etc/group")
    # Debian's busybox has neither the ipcs nor the pgrep applet; the HostIpc
    # specs run `ipcs -m`, the execSync timeout spec `pgrep sleep`.
    busybox = [base, etc, host_programs_layer("/usr/bin/ipcs", "/usr/bin/pgrep")]
    cfg = {"Env": [bl.PATH_ENV], "Cmd": ["sh"]}
    e2e = "e2e-test-images/"
    cri = "k8s-staging-cri-tools/"

    write(outdir, "busybox", e2e + "busybox", ["1.29-2"], busybox, cfg)

    nginx_html = "<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n"
    nginx = bl.Layer(
        bl.tar_files([
            ("usr/share/nginx/html/index.html", nginx_html.encode(), 0o644),
            ("usr/sbin/nginx", compile_static("nginx"), 0o755),
        ]),
        "nginx look-alike",
    )
    nginx_cfg = dict(cfg, Cmd=["nginx", "-g", "daemon off;"], StopSignal="SIGQUIT")
    write(
        outdir,
        "nginx",
        e2e + "nginx",
        ["1.14-2"],
        busybox + [nginx],
        dict(nginx_cfg, Env=[bl.PATH_ENV, "LISTEN_PORT=80"], ExposedPorts={"80/tcp": {}}),
    )
    write(
        outdir,
        "hostnet-nginx",
        cri + "hostnet-nginx-amd64",
        ["latest"],
        busybox + [nginx],
        dict(nginx_cfg, Env=[bl.PATH_ENV, "LISTEN_PORT=12003"], ExposedPorts={"12003/tcp": {}}),
        multiarch=False,
    )

    nnp = bl.Layer(bl.tar_files([("usr/local/bin/nnp", compile_static("nnp"), 0o4755)]), "nnp")
    write(
        outdir,
        "nonewprivs",
        e2e + "nonewprivs",
        ["1.3"],
        busybox + [nnp],
        {"Env": [bl.PATH_ENV], "Entrypoint": ["/usr/local/bin/nnp"]},
    )

    # Apache's image logs "AH00558: httpd: ..." on start; the multi-container
    # spec waits for "httpd" in the container log.
    foreground = (
        "usr/local/bin/httpd-foreground",
        b"#!/bin/sh\necho 'httpd: serving /usr/local/apache2/htdocs on port 80' >&2\n"
        b"exec httpd -f -p 80 -h /usr/local/apache2/htdocs\n",
        0o755,
    )
    httpd = web_layer(
        "/usr/local/apache2/htdocs", "<html><body><h1>It works!</h1></body></html>\n", foreground
    )
    write(
        outdir,
        "httpd",
        e2e + "httpd",
        ["2.4.39-4"],
        busybox + [httpd],
        dict(cfg, Cmd=["httpd-foreground"], ExposedPorts={"80/tcp": {}}),
    )

    users = {
        "test-image-user-uid": "1002",
        "test-image-user-username": "www-data",
        "test-image-user-uid-group": "1003:1004",
        "test-image-user-username-group": "www-data:1004",
    }
    for name, user in users.items():
        write(outdir, name, cri + name, ["latest"], busybox, dict(cfg, User=user))

    predefined = etc_layer(
        PASSWD + "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n",
        GROUP + "default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n",
        "adduser default-user, addgroup group-defined-in-image",
    )
    write(
        outdir,
        "test-image-predefined-group",
        cri + "test-image-predefined-group",
        ["latest"],
        busybox + [predefined],
        dict(cfg, User="1000"),
    )

    # image-test: busybox plus an empty file named after the image, so every
    # name is a distinct image; test-image-tags is one image under three tags.
    tagged = {
        "test-image-1": ["latest"],
        "test-image-2": ["latest"],
        "test-image-3": ["latest"],
        "test-image-latest": ["latest"],
        "test-image-digest": ["latest"],
        "test-image-tag": ["test", "all"],
    }
    for name, tags in tagged.items():
        marker = bl.Layer(bl.tar_files([(name, b"", 0o644)]), "ADD " + name)
        write(outdir, name, cri + name, tags, busybox + [marker], cfg)
    same = bl.Layer(bl.tar_files([("same-image", b"", 0o644)]), "ADD same-image")
    write(outdir, "test-image-tags", cri + "test-image-tags", ["1", "2", "3"], busybox + [same], cfg)

    # critest -benchmark: the pulling and listing benchmarks name busybox
    # under five tags of public.ecr.aws/docker/library/busybox.
    write(
        outdir,
        "library-busybox",
        "docker/library/busybox",
        ["1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl"],
        busybox,
        cfg,
    )

    # What hack/test-registry.sh pushes: "LAYOUT REPOSITORY TAG" lines.
    with open(os.path.join(outdir, "critest-images.txt"), "w") as f:
        for layout, (repository, tags) in sorted(REPOSITORIES.items()):
            for tag in tags:
                f.write("%s %s %s\n" % (layout, repository, tag))


if __name__ == "__main__":
    main()
