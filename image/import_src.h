/* What `vmbox import` reads from: a directory, a tar file (any compression
 * libarchive knows) or a tar in memory (the built-in busybox).  Members are
 * addressed by their path inside the archive ("index.json",
 * "blobs/sha256/HEX"); tars are re-read from the start for each member, which
 * keeps memory flat for multi-GB archives. */
#ifndef VMBOX_IMAGE_IMPORT_SRC_H
#define VMBOX_IMAGE_IMPORT_SRC_H

#include <stdbool.h>
#include <stddef.h>

#include "../lib/err.h"

struct isrc {
  char *path; /* what the user gave; NULL for memory */
  bool is_dir;
  const void *mem; /* tar in memory */
  size_t mem_len;
  char **members; /* tar only: normalized member names, in order */
  char **links;   /* tar only: per member, symlink/hardlink target or "" */
};

/* Opens PATH; for a tar, reads it through once so a truncated or garbage file
 * fails here, before anything is stored. */
int isrc__open_path(const char *path, struct isrc *out, vmbox_error_t *err);
int isrc__open_mem(const void *buf, size_t len, struct isrc *out, vmbox_error_t *err);
void isrc__close(struct isrc *src);

bool isrc__has(const struct isrc *src, const char *member);
/* Reads a member of at most max bytes (JSON documents). */
int isrc__read(const struct isrc *src, const char *member, size_t max, char **buf, size_t *len,
               vmbox_error_t *err);

typedef int (*isrc_sink)(const void *buf, size_t len, void *opaque, vmbox_error_t *err);
/* Streams a member's bytes to sink. */
int isrc__stream(const struct isrc *src, const char *member, isrc_sink sink, void *opaque,
                 vmbox_error_t *err);
/* Streams the archive file itself (raw=true: its bytes as stored; false:
 * decompressed).  Only for tar sources. */
int isrc__stream_whole(const struct isrc *src, bool raw, isrc_sink sink, void *opaque,
                       vmbox_error_t *err);
/* First bytes of the archive file, for sniffing the compression. */
int isrc__magic(const struct isrc *src, unsigned char *buf, size_t len);

#endif
