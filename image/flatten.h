/* Image -> ext4: streams every layer through libarchive straight into an ext4
 * file written with libext2fs (no extraction on the host, no root), applying
 * whiteouts, opaque dirs, hardlinks, devices, xattrs, ownership and sparseness.
 * The result is cached per manifest digest under ROOT/ext4/. */
#ifndef VMBOX_IMAGE_FLATTEN_H
#define VMBOX_IMAGE_FLATTEN_H

#include <stdint.h>

#include "../lib/err.h"
#include "store.h"

struct flatten_opts {
  uint64_t disk_size; /* 0: automatic (content + metadata + headroom) */
};

/* Returns the cached ext4 path for the image, building it if needed.  Safe
 * against concurrent callers (lock per manifest) and kill -9 (temp+rename). */
int flatten__image(struct store *s, const struct image_record *img, const struct flatten_opts *opts,
                   char **path_out, vmbox_error_t *err);

/* Lower-level entry for tests and benches: layer blob paths (bottom first)
 * into a new ext4 file at out_path. */
int flatten__layers(const char *const *layer_paths, size_t n_layers, const char *out_path,
                    const struct flatten_opts *opts, vmbox_error_t *err);

#endif
