#!/usr/bin/env python3
"""compare_trees.py [options] EXPECTED ACTUAL

Compares two directory trees file by file and prints every difference:
type, permission bits (incl. setuid/setgid/sticky), uid/gid, size, content
(sha256), symlink target, device numbers, xattrs (every namespace, including
security.capability), mtime of non-directories, and hardlink structure (which
paths share an inode, and the link count).  `lost+found` at either root is
ignored (mke2fs makes one).  Exit 0 if equal, 1 if not, 2 on usage errors.
"""
import argparse
import hashlib
import os
import stat
import sys

TYPES = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "char", stat.S_IFBLK: "block", stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def xattrs(path, ignore):
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for n in names:
        if n in ignore:
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            out[n] = "<error %s>" % e.strerror
    return out


def scan(root, args):
    """Returns {relpath: info} and {relpath: inode key}."""
    entries, inodes = {}, {}
    root = os.path.abspath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == ".":
            dirnames[:] = [d for d in dirnames if d != "lost+found"]
            filenames = [f for f in filenames if f != "lost+found"]
        names = list(dirnames) + list(filenames)
        if rel_dir == ".":
            names.append(".")
        for name in names:
            full = dirpath if name == "." else os.path.join(dirpath, name)
            rel = "." if name == "." else os.path.normpath(os.path.join(rel_dir, name))
            st = os.lstat(full)
            fmt = stat.S_IFMT(st.st_mode)
            info = {
                "type": TYPES.get(fmt, "unknown(%o)" % fmt),
                "mode": "%04o" % stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "xattrs": xattrs(full, args.ignore_xattr),
            }
            if fmt == stat.S_IFREG:
                info["size"] = st.st_size
                info["sha256"] = sha256(full)
            if fmt == stat.S_IFLNK:
                info["target"] = os.readlink(full)
            if fmt in (stat.S_IFCHR, stat.S_IFBLK):
                info["rdev"] = "%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
            if fmt != stat.S_IFDIR:
                info["nlink"] = st.st_nlink
                inodes[rel] = (st.st_dev, st.st_ino)
                if not args.ignore_mtime and fmt != stat.S_IFLNK:
                    info["mtime"] = int(st.st_mtime)
            elif args.dir_mtime:
                info["mtime"] = int(st.st_mtime)
            if rel == "." and args.ignore_root_meta:
                info = {"type": info["type"]}
            entries[rel] = info
    return entries, inodes


def link_groups(inodes):
    by_ino = {}
    for rel, key in inodes.items():
        by_ino.setdefault(key, []).append(rel)
    return {rel: tuple(sorted(by_ino[key])) for rel, key in inodes.items()}


def fmt_val(v):
    if isinstance(v, dict):
        return "{" + ", ".join("%s=%r" % (k, v[k]) for k in sorted(v)) + "}"
    return repr(v)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("expected")
    p.add_argument("actual")
    p.add_argument("--ignore-xattr", action="append", default=["security.selinux"],
                   help="xattr name to ignore (repeatable)")
    p.add_argument("--ignore-mtime", action="store_true", help="do not compare mtimes")
    p.add_argument("--dir-mtime", action="store_true", help="compare directory mtimes too")
    p.add_argument("--ignore-root-meta", action="store_true",
                   help="ignore mode/owner/xattrs of the root directory")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    args = p.parse_args()
    for d in (args.expected, args.actual):
        if not os.path.isdir(d):
            print("compare_trees: %s is not a directory" % d, file=sys.stderr)
            return 2

    exp, exp_ino = scan(args.expected, args)
    act, act_ino = scan(args.actual, args)
    diffs = []
    for rel in sorted(set(exp) | set(act)):
        if rel not in act:
            diffs.append("missing in actual: %s (%s)" % (rel, exp[rel]["type"]))
            continue
        if rel not in exp:
            diffs.append("extra in actual: %s (%s)" % (rel, act[rel]["type"]))
            continue
        e, a = exp[rel], act[rel]
        for key in sorted(set(e) | set(a)):
            if e.get(key) != a.get(key):
                diffs.append("%s: %s expected %s, got %s" % (rel, key, fmt_val(e.get(key)),
                                                            fmt_val(a.get(key))))
    eg, ag = link_groups(exp_ino), link_groups(act_ino)
    for rel in sorted(set(eg) & set(ag)):
        if eg[rel] != ag[rel]:
            diffs.append("%s: hardlinked with %s expected, got %s" % (rel, list(eg[rel]),
                                                                  list(ag[rel])))
    for d in diffs if not args.quiet else []:
        print(d)
    print("compare_trees: %d entries expected, %d actual, %d differences"
          % (len(exp), len(act), len(diffs)))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
