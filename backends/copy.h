/* `vmbox cp` for backends that can open a box's root on the host (ns): a
 * copy between two roots given as directory fds (the host's "/" and the
 * box's root), with docker cp's rules for SRC and DST.
 *
 * The box is hostile: every path is resolved with openat2(RESOLVE_IN_ROOT)
 * and every entry is then read or created relative to its parent's fd with
 * O_NOFOLLOW, so no symlink in the box -- even one swapped in while we copy --
 * makes us read or write outside its root. */
#ifndef VMBOX_BACKENDS_COPY_H
#define VMBOX_BACKENDS_COPY_H

#include <stdbool.h>

#include "../lib/err.h"

struct copy_opts {
  bool follow;           /* -L: follow SRC itself when it is a symlink */
  bool archive;          /* -a: keep uid/gid (mode and times are always kept) */
  const char *src_where; /* for messages: "in box NAME", "on the host" */
  const char *dst_where;
};

/* Opens a root for the functions below; "/" for the host. */
int copy__open_root(const char *path, vmbox_error_t *err);

/* SRC (absolute in src_root) to DST (absolute in dst_root):
 *   file -> missing or file: DST is written; -> dir: DST/basename(SRC)
 *   dir  -> missing: created as DST; -> dir: DST/basename(SRC), or with a
 *           "/." suffix on SRC, SRC's contents merged into DST; -> file: error
 *   DST ending in "/" must be a directory (a dir SRC creates it).
 * Files are written to a temp name and renamed: a reader of DST sees the
 * old file or the new one. */
int copy__tree(int src_root, const char *src, int dst_root, const char *dst,
               const struct copy_opts *o, vmbox_error_t *err);
/* SRC as a tar stream on out_fd (`vmbox cp BOX:SRC -`). */
int copy__to_tar(int src_root, const char *src, int out_fd, const struct copy_opts *o,
                 vmbox_error_t *err);
/* A tar stream from in_fd unpacked into the existing directory DST
 * (`vmbox cp - BOX:DST`).  Entries may not leave DST. */
int copy__from_tar(int in_fd, int dst_root, const char *dst, const struct copy_opts *o,
                   vmbox_error_t *err);

#endif
