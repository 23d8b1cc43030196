#!/usr/bin/env python3
"""Crafts OCI layer tarballs, including hostile ones, for the flatten suites.

usage: mktar.py OUT.tar|OUT.tar.gz < SPEC

SPEC has one entry per line, `TYPE PATH [key=value ...]` (shell quoting):
  file PATH [content=TEXT] [zeros=BYTES]     regular file (zeros: streamed)
  dir PATH
  symlink PATH target=T
  hardlink PATH target=T
  chr|blk PATH major=N minor=N
  fifo PATH
  whiteout PATH        -> DIR/.wh.NAME
  opaque DIR           -> DIR/.wh..wh..opq
  bigdecl PATH size=N  a header claiming N bytes with no data after it
Common keys: mode=0644 (octal) uid= gid= mtime= (seconds) xattr.NAME=HEX
Entry names are written exactly as given (.., /abs, ./ all allowed).
"""
import gzip
import io
import shlex
import sys
import tarfile

TYPES = {
    "file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE, "whiteout": tarfile.REGTYPE, "opaque": tarfile.REGTYPE,
    "bigdecl": tarfile.REGTYPE,
}


class Zeros(io.RawIOBase):
    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left)
        b[:n] = bytes(n)
        self.left -= n
        return n


def entry(kind, path, opts):
    name = path
    if kind == "whiteout":
        d, _, base = path.rpartition("/")
        name = (d + "/" if d else "") + ".wh." + base
    elif kind == "opaque":
        name = path.rstrip("/") + "/.wh..wh..opq"
    ti = tarfile.TarInfo(name)
    ti.type = TYPES[kind]
    ti.mode = int(opts.get("mode", "755" if kind == "dir" else "644"), 8)
    ti.uid = int(opts.get("uid", 0))
    ti.gid = int(opts.get("gid", 0))
    ti.mtime = int(opts.get("mtime", 1700000000))
    ti.linkname = opts.get("target", "")
    ti.devmajor = int(opts.get("major", 0))
    ti.devminor = int(opts.get("minor", 0))
    for k, v in opts.items():
        if k.startswith("xattr."):
            val = bytes.fromhex(v).decode("utf-8", "surrogateescape")
            ti.pax_headers["SCHILY.xattr." + k[6:]] = val
    data = None
    if kind == "file" and "zeros" in opts:
        ti.size = int(opts["zeros"])
        data = io.BufferedReader(Zeros(ti.size), 1 << 20)
    elif kind == "file":
        raw = opts.get("content", "").encode()
        ti.size = len(raw)
        data = io.BytesIO(raw)
    elif kind == "bigdecl":
        ti.size = int(opts["size"])
    return ti, data


def main():
    out = sys.argv[1]
    raw = open(out, "wb")
    f = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if out.endswith(".gz") else raw
    tf = tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT)
    for line in sys.stdin:
        words = shlex.split(line, comments=True)
        if not words:
            continue
        kind, path = words[0], words[1]
        opts = dict(w.split("=", 1) for w in words[2:])
        ti, data = entry(kind, path, opts)
        if kind == "bigdecl":
            # Header only: the archive ends where its data should be.
            f.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            f.close()
            if f is not raw:
                raw.close()
            return
        tf.addfile(ti, data)
    tf.close()
    if f is not raw:
        f.close()
        raw.close()


if __name__ == "__main__":
    main()
