#!/usr/bin/env python3
"""Build the crius test images as OCI image layouts.

Usage: build-layouts.py ROOTFS OUTDIR

ROOTFS is a staged busybox root filesystem (prepared by hack/test-registry.sh).
One OCI layout per image is written to OUTDIR/<image-name>, each tag recorded in
the layout's index.json under org.opencontainers.image.ref.name.

The layouts are written by hand rather than with umoci because we need full
control over a few things umoci cannot do or does not do reproducibly: an image
index with a foreign-architecture entry, fixed timestamps (so the busybox image
digest only changes when the busybox package or host libc changes), and reusing
exactly the same layer blob across several images.

Only the standard library is used so this runs on any python3.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

# Fixed timestamp for everything we create, so rebuilding gives the same digests.
EPOCH = 946684800  # 2000-01-01T00:00:00Z
CREATED = "2000-01-01T00:00:00Z"

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

LARGE_LAYERS = 8
LARGE_LAYER_BYTES = 8 * 1024 * 1024


def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    """A layer: uncompressed tar (for the diff_id) plus its gzip blob."""

    def __init__(self, tar_bytes, comment, level=9):
        self.diff_id = sha256(tar_bytes)
        # mtime=0 keeps the gzip header, and so the blob digest, reproducible.
        self.blob = gzip.compress(tar_bytes, compresslevel=level, mtime=0)
        self.comment = comment


def _normalize(info):
    # Ownership is kept numerically (e.g. /home/tester is 1000:1000); names and
    # times are dropped so the host's /etc/passwd and clock don't leak in.
    info.mtime = EPOCH
    info.uname = ""
    info.gname = ""
    return info


def tar_rootfs(rootfs):
    """Deterministic tar of a directory tree (sorted, fixed mtime)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(rootfs):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, rootfs)
            entries = sorted(filenames)
            if rel_dir != ".":
                tar.addfile(_normalize(tar.gettarinfo(dirpath, rel_dir)))
            for name in entries:
                path = os.path.join(dirpath, name)
                arcname = name if rel_dir == "." else os.path.join(rel_dir, name)
                info = _normalize(tar.gettarinfo(path, arcname))
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
            # Symlinks to directories show up in dirnames but are not walked
            # into; add them as plain symlink entries.
            for name in list(dirnames):
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    arcname = name if rel_dir == "." else os.path.join(rel_dir, name)
                    tar.addfile(_normalize(tar.gettarinfo(path, arcname)))
                    dirnames.remove(name)
    return buf.getvalue()


def tar_files(files):
    """Tar of in-memory files: list of (path, bytes, mode). Parent dirs added."""
    buf = io.BytesIO()
    seen_dirs = set()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data, mode in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(_normalize(info))
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = mode
            tar.addfile(_normalize(info), io.BytesIO(data))
    return buf.getvalue()


def tar_special(path, kind):
    """Tar holding one special file (tarfile.FIFOTYPE...) and its parents."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            info = tarfile.TarInfo("/".join(parts[:i]))
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(_normalize(info))
        info = tarfile.TarInfo(path)
        info.type = kind
        info.mode = 0o644
        tar.addfile(_normalize(info))
    return buf.getvalue()


class Layout:
    """Minimal writer for an OCI image layout directory."""

    def __init__(self, path):
        self.path = path
        self.refs = []
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')

    def blob(self, data, media_type):
        digest = sha256(data)
        path = os.path.join(self.path, "blobs", "sha256", digest.split(":", 1)[1])
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, layers, config, arch="amd64"):
        """Write config + manifest for `layers`; return the manifest descriptor."""
        image_config = {
            "created": CREATED,
            "architecture": arch,
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
            "history": [
                {"created": CREATED, "created_by": "crius hack/test-registry.sh: " + l.comment}
                for l in layers
            ],
        }
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": self.blob(canonical_json(image_config), MT_CONFIG),
            "layers": [self.blob(l.blob, MT_LAYER) for l in layers],
        }
        desc = self.blob(canonical_json(manifest), MT_MANIFEST)
        desc["platform"] = {"architecture": arch, "os": "linux"}
        return desc

    def index(self, manifests):
        """Write an image index over manifest descriptors; return its descriptor."""
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": manifests}
        return self.blob(canonical_json(index), MT_INDEX)

    def tag(self, desc, ref):
        entry = {k: v for k, v in desc.items() if k != "platform"}
        entry["annotations"] = {"org.opencontainers.image.ref.name": ref}
        self.refs.append(entry)

    def close(self):
        index = {"schemaVersion": 2, "manifests": self.refs}
        with open(os.path.join(self.path, "index.json"), "wb") as f:
            f.write(canonical_json(index))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    rootfs, outdir = sys.argv[1], sys.argv[2]

    base = Layer(tar_rootfs(rootfs), "busybox rootfs")
    base_config = {"Env": [PATH_ENV], "Cmd": ["sh"]}

    # busybox:latest and busybox:1.0 (same manifest).
    lay = Layout(os.path.join(outdir, "busybox"))
    desc = lay.image([base], base_config)
    lay.tag(desc, "latest")
    lay.tag(desc, "1.0")
    lay.close()

    # busybox-user: same layer, runs as the non-root `tester` user by name so
    # tests exercise user-name resolution through the image's /etc/passwd.
    lay = Layout(os.path.join(outdir, "busybox-user"))
    cfg = dict(base_config, User="tester", WorkingDir="/home/tester")
    lay.tag(lay.image([base], cfg), "latest")
    lay.close()

    # busybox-entrypoint: entrypoint/cmd merging, stop signal, image env.
    lay = Layout(os.path.join(outdir, "busybox-entrypoint"))
    cfg = {
        "Env": [PATH_ENV, "FOO=bar-from-image"],
        "Entrypoint": ["/bin/echo", "from-entrypoint"],
        "Cmd": ["default-cmd"],
        "StopSignal": "SIGUSR1",
    }
    lay.tag(lay.image([base], cfg), "latest")
    lay.close()

    # busybox-multiarch: an index with an amd64 and an arm64 entry. The arm64
    # one reuses the (amd64) busybox layer: it is only for platform selection,
    # never run. Each has a /ARCH layer and arch label so digests differ and a
    # test can tell which one it got.
    lay = Layout(os.path.join(outdir, "busybox-multiarch"))
    manifests = []
    for arch in ("amd64", "arm64"):
        arch_layer = Layer(tar_files([("ARCH", (arch + "\n").encode(), 0o644)]), "/ARCH " + arch)
        cfg = dict(base_config, Labels={"arch": arch})
        manifests.append(lay.image([base, arch_layer], cfg, arch=arch))
    lay.tag(lay.index(manifests), "latest")
    lay.close()

    # busybox-large: pull benchmark. Random data defeats compression so the
    # transferred size really is ~64 MiB. Level 1: compressing noise is wasted time.
    lay = Layout(os.path.join(outdir, "busybox-large"))
    layers = [base]
    with open("/dev/urandom", "rb") as rnd:
        for i in range(LARGE_LAYERS):
            data = rnd.read(LARGE_LAYER_BYTES)
            name = "data/layer-%d.bin" % i
            layers.append(Layer(tar_files([(name, data, 0o644)]), "/" + name, level=1))
    lay.tag(lay.image(layers, base_config), "latest")
    lay.close()

    # hostile-fifo-passwd: busybox whose /etc/passwd is replaced by a FIFO.
    # Resolving a user by name must refuse it, not block opening it.
    lay = Layout(os.path.join(outdir, "hostile-fifo-passwd"))
    fifo = Layer(tar_special("etc/passwd", tarfile.FIFOTYPE), "/etc/passwd as a fifo")
    lay.tag(lay.image([base, fifo], base_config), "latest")
    lay.close()


if __name__ == "__main__":
    main()
