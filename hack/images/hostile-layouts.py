#!/usr/bin/env python3
"""Build hostile test images (layer bombs) as OCI image layouts.

Usage: hostile-layouts.py OUTDIR

Each image has one gzip layer that a careless unpacker would buffer or write
without bound, while its blob stays small (about 1 MB):

  hostile-longname   a GNU long-name ('L') entry of 1 GiB of zeros
  hostile-longlink   a GNU long-link ('K') entry of 1 GiB of zeros
  hostile-pax        a PAX extended header ('x') of 1 GiB of zeros
  hostile-sparse     a GNU sparse file whose real size is 1 TiB
  hostile-zeros      a regular file of 1 GiB of zeros
  hostile-entries    5000 empty files (for a test that lowers the entry limit)

The gigabyte of zeros is never held in memory: it is compressed once as its
own gzip member and reused (a gzip stream may be a series of members).

Only the standard library is used.
"""

import gzip
import hashlib
import importlib.util
import io
import os
import sys
import tarfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("build_layouts", os.path.join(HERE, "build-layouts.py"))
build_layouts = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_layouts)

GIB = 1 << 30
TIB = 1 << 40
CHUNK = 1 << 20
BLOCK = 512


def octal(value, width):
    """A NUL-terminated octal tar field."""
    return ("%0*o" % (width - 1, value)).encode() + b"\0"


def base256(value, width):
    """GNU's binary numeric field, for values too large for octal."""
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def header(name, typeflag, size, sparse=None, realsize=None):
    """One 512-byte GNU header (magic "ustar  ")."""
    h = bytearray(BLOCK)
    h[0:len(name)] = name.encode()
    h[100:108] = octal(0o644, 8)
    h[108:116] = octal(0, 8)
    h[116:124] = octal(0, 8)
    h[124:136] = octal(size, 12)
    h[136:148] = octal(build_layouts.EPOCH, 12)
    h[156:157] = typeflag
    h[257:263] = b"ustar "
    h[263:265] = b" \0"
    if sparse is not None:
        for i, (offset, numbytes) in enumerate(sparse):
            at = 386 + 24 * i
            h[at:at + 12] = base256(offset, 12)
            h[at + 12:at + 24] = octal(numbytes, 12)
        h[483:495] = base256(realsize, 12)
    h[148:156] = b" " * 8
    h[148:156] = ("%06o\0 " % sum(h)).encode()
    return bytes(h)


def end_of_archive():
    return b"\0" * (2 * BLOCK)


class ZerosMember:
    """A gzip member of N zero bytes, compressed once, plus the bytes' hash."""

    def __init__(self, n):
        self.n = n
        comp = zlib.compressobj(9, zlib.DEFLATED, 31)
        out = io.BytesIO()
        zeros = b"\0" * CHUNK
        for _ in range(n // CHUNK):
            out.write(comp.compress(zeros))
        out.write(comp.compress(b"\0" * (n % CHUNK)))
        out.write(comp.flush())
        self.member = out.getvalue()


class StreamLayer:
    """A layer made of byte strings and runs of zeros (ZerosMember)."""

    def __init__(self, parts, comment):
        diff = hashlib.sha256()
        blob = io.BytesIO()
        zeros = b"\0" * CHUNK
        for part in parts:
            if isinstance(part, ZerosMember):
                for _ in range(part.n // CHUNK):
                    diff.update(zeros)
                diff.update(b"\0" * (part.n % CHUNK))
                blob.write(part.member)
            else:
                diff.update(part)
                blob.write(gzip.compress(part, compresslevel=9, mtime=0))
        self.diff_id = "sha256:" + diff.hexdigest()
        self.blob = blob.getvalue()
        self.comment = comment


def image(outdir, name, layer):
    lay = build_layouts.Layout(os.path.join(outdir, name))
    lay.tag(lay.image([layer], {"Env": [build_layouts.PATH_ENV], "Cmd": ["sh"]}), "latest")
    lay.close()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    gib_zeros = ZerosMember(GIB)
    after = header("after", b"0", 0) + end_of_archive()

    for name, typeflag in (("longname", b"L"), ("longlink", b"K"), ("pax", b"x")):
        layer = StreamLayer(
            [header("././@LongLink", typeflag, GIB), gib_zeros, after],
            "1 GiB %s header" % name,
        )
        image(outdir, "hostile-" + name, layer)

    # One 512-byte data block at the very end of a 1 TiB file: the rest is a
    # hole that an unpacker reading the entry gets as zeros.
    sparse = header("sparse", b"S", BLOCK, sparse=[(TIB - BLOCK, BLOCK)], realsize=TIB)
    image(outdir, "hostile-sparse",
          StreamLayer([sparse, b"\1" * BLOCK, end_of_archive()], "1 TiB sparse file"))

    image(outdir, "hostile-zeros",
          StreamLayer([header("zeros", b"0", GIB), gib_zeros, end_of_archive()],
                      "1 GiB file of zeros"))

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(5000):
            info = tarfile.TarInfo("f%05d" % i)
            info.mtime = build_layouts.EPOCH
            tar.addfile(info, io.BytesIO(b""))
    image(outdir, "hostile-entries", StreamLayer([buf.getvalue()], "5000 empty files"))


if __name__ == "__main__":
    main()
