/* The box disk: a read-only base image plus a copy-on-write overlay, so a box
 * gets a writable disk in O(1) without copying its image (the block-level
 * twin of the ns backend's overlayfs).
 *
 *   base     opened O_RDONLY, never written
 *   overlay  sparse file of the base's size holding the granules written
 *   map      one bit per 4 KiB granule: 1 = the granule lives in the overlay.
 *            Saved (temp + rename) at every flush and at close, so a stopped
 *            box's disk can be reopened later (vmbox cp).  Data written after
 *            the last flush may be lost on a crash, as on a real disk.
 *
 * Not thread-safe: the owner (virtio-blk) serialises calls. */
#ifndef VMBOX_KVM_DISK_H
#define VMBOX_KVM_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../lib/err.h"

#define DISK_GRANULE 4096u
#define DISK_SECTOR 512u

struct disk;

/* overlay NULL: a read-only view of base.  read_only with an overlay: the
 * merged disk, nothing written (the overlay must exist then).  map NULL
 * defaults to OVERLAY.map.  The overlay is locked (flock) against a second
 * writer. */
int disk__open(struct disk **out, const char *base, const char *overlay, const char *map,
               bool read_only, vmbox_error_t *err);
/* Flushes (when writable), then frees.  NULL is fine. */
int disk__close(struct disk *d, vmbox_error_t *err);

uint64_t disk__size(const struct disk *d);
bool disk__read_only(const struct disk *d);

/* 0 or -errno.  [off, off+len) must lie inside the disk (-EINVAL else);
 * writes on a read-only disk give -EROFS. */
int disk__read(struct disk *d, void *buf, size_t len, uint64_t off);
int disk__write(struct disk *d, const void *buf, size_t len, uint64_t off);
/* fdatasync(overlay), then the map atomically when it changed.  0 or -errno. */
int disk__flush(struct disk *d);

#endif
