/* Layer tarballs (plain, gzip, zstd) read with libarchive and applied to an
 * ext4 tree with OCI semantics: whiteouts, opaque dirs, replacement, hardlinks.
 * Entry paths are cleaned and resolved inside the image root only. */
#ifndef VMBOX_IMAGE_LAYER_H
#define VMBOX_IMAGE_LAYER_H

#include <stdint.h>

#include "../lib/err.h"
#include "ext4.h"

/* What a header-only pass over a layer finds, for sizing the filesystem. */
struct layer_stats {
  uint64_t entries;
  uint64_t dirs;
  uint64_t data_blocks; /* regular files and long symlinks, in 4 KiB blocks */
  uint64_t data_bytes;  /* declared file sizes */
  uint64_t dirent_bytes;
  uint64_t xattr_entries;
};

/* Bounds on what layers may expand to: beyond them a layer is rejected. */
struct layer_limits {
  uint64_t max_bytes;
  uint64_t max_entries;
  uint64_t entries; /* seen so far across layers (layer__apply counts) */
};

/* Adds the layer's numbers to *st; fails once the running totals pass lim. */
int layer__scan(const char *path, struct layer_stats *st, const struct layer_limits *lim,
                vmbox_error_t *err);
/* Cheap guess at the uncompressed tar size from the file's own header or
 * trailer (gzip ISIZE, zstd frame size, plain tar size), without decompressing.
 * Returns 0 and sets *bytes, or 1 when the format gives no trustworthy answer. */
int layer__estimate(const char *path, uint64_t *bytes, vmbox_error_t *err);
/* Applies layer number `layer` (1 = bottom) to fs. */
int layer__apply(struct ext4 *fs, const char *path, uint32_t layer, struct layer_limits *lim,
                 vmbox_error_t *err);

#endif
