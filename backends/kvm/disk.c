/* The box disk: read-only base + copy-on-write overlay; see disk.h.
 *
 * Map file (little endian), checksummed so a torn or foreign file is
 * refused instead of silently mixing base and overlay granules:
 *   0  "VMBOXMAP"   8  u32 version (1)   12 u32 granule (4096)
 *   16 u64 disk size   24 u64 bitmap bytes   32 bitmap   then sha256(all before) */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "disk.h"

#define MAP_MAGIC "VMBOXMAP"
#define MAP_VERSION 1
#define MAP_HDR 32

struct disk {
  int base_fd, ovl_fd; /* ovl_fd -1: no overlay */
  uint64_t size, ngran;
  uint8_t *map; /* ngran bits */
  size_t map_len;
  bool read_only, dirty;
  char *base_path, *ovl_path, *map_path;
};

static bool map_get(const struct disk *d, uint64_t g)
{
  return d->ovl_fd >= 0 && (d->map[g / 8] >> (g % 8)) & 1;
}

static void map_set(struct disk *d, uint64_t g)
{
  d->map[g / 8] |= 1u << (g % 8);
  d->dirty = true;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
  uint8_t *p = buf;
  while (len) {
    ssize_t r = pread(fd, p, len, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      return -EIO; /* the file shrank under us */
    p += r, len -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
  const uint8_t *p = buf;
  while (len) {
    ssize_t r = pwrite(fd, p, len, (off_t)off);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    p += r, len -= (size_t)r, off += (uint64_t)r;
  }
  return 0;
}

static bool in_range(const struct disk *d, size_t len, uint64_t off)
{
  return off <= d->size && len <= d->size - off;
}

uint64_t disk__size(const struct disk *d)
{
  return d->size;
}
bool disk__read_only(const struct disk *d)
{
  return d->read_only;
}

/* Reads in runs of granules that live in the same file. */
int disk__read(struct disk *d, void *buf, size_t len, uint64_t off)
{
  if (!in_range(d, len, off))
    return -EINVAL;
  uint8_t *p = buf;
  while (len) {
    uint64_t g = off / DISK_GRANULE;
    bool ovl = map_get(d, g);
    uint64_t end = (g + 1) * DISK_GRANULE;
    while (end < off + len && map_get(d, end / DISK_GRANULE) == ovl)
      end += DISK_GRANULE;
    size_t n = end - off < len ? end - off : len;
    int r = pread_full(ovl ? d->ovl_fd : d->base_fd, p, n, off);
    if (r < 0)
      return r;
    p += n, len -= n, off += n;
  }
  return 0;
}

/* A write covering only part of a granule not yet in the overlay: the rest
 * of that granule comes from the base first. */
static int disk__write_partial(struct disk *d, const uint8_t *p, size_t n, uint64_t off)
{
  uint64_t g = off / DISK_GRANULE, start = g * DISK_GRANULE;
  size_t glen = d->size - start < DISK_GRANULE ? d->size - start : DISK_GRANULE;
  uint8_t tmp[DISK_GRANULE];
  int r = pread_full(d->base_fd, tmp, glen, start);
  if (r < 0)
    return r;
  memcpy(tmp + (off - start), p, n);
  if ((r = pwrite_full(d->ovl_fd, tmp, glen, start)) < 0)
    return r;
  map_set(d, g);
  return 0;
}

int disk__write(struct disk *d, const void *buf, size_t len, uint64_t off)
{
  if (d->read_only)
    return -EROFS;
  if (!in_range(d, len, off))
    return -EINVAL;
  const uint8_t *p = buf;
  while (len) {
    uint64_t g = off / DISK_GRANULE, start = g * DISK_GRANULE;
    uint64_t gend = start + DISK_GRANULE < d->size ? start + DISK_GRANULE : d->size;
    size_t n = gend - off < len ? gend - off : len;
    int r;
    if (off == start && off + n == gend) {
      /* Whole granules (the disk's last one may be short): one pwrite for
       * the run, whatever their bits said before. */
      uint64_t end = off + len == d->size ? d->size : (off + len) / DISK_GRANULE * DISK_GRANULE;
      n = end - off;
      if ((r = pwrite_full(d->ovl_fd, p, n, off)) < 0)
        return r;
      for (uint64_t i = g; i * DISK_GRANULE < end; i++)
        map_set(d, i);
    } else if (map_get(d, g)) {
      if ((r = pwrite_full(d->ovl_fd, p, n, off)) < 0)
        return r;
    } else if ((r = disk__write_partial(d, p, n, off)) < 0) {
      return r;
    }
    p += n, len -= n, off += n;
  }
  return 0;
}

static uint8_t *map__encode(const struct disk *d, size_t *len)
{
  size_t n = MAP_HDR + d->map_len + SHA256_DIGEST_LENGTH;
  uint8_t *b = xcalloc(1, n);
  uint32_t v32;
  uint64_t v64;
  memcpy(b, MAP_MAGIC, 8);
  v32 = htole32(MAP_VERSION), memcpy(b + 8, &v32, 4);
  v32 = htole32(DISK_GRANULE), memcpy(b + 12, &v32, 4);
  v64 = htole64(d->size), memcpy(b + 16, &v64, 8);
  v64 = htole64(d->map_len), memcpy(b + 24, &v64, 8);
  memcpy(b + MAP_HDR, d->map, d->map_len);
  SHA256(b, MAP_HDR + d->map_len, b + MAP_HDR + d->map_len);
  *len = n;
  return b;
}

int disk__flush(struct disk *d)
{
  if (d->read_only)
    return 0;
  if (fdatasync(d->ovl_fd) < 0)
    return -errno;
  if (!d->dirty)
    return 0;
  size_t len;
  cleanup_free uint8_t *b = map__encode(d, &len);
  vmbox_error_t err = NULL;
  if (util__write_file_atomic(d->map_path, b, len, 0600, &err) < 0) {
    int e = err->errno_ ? err->errno_ : EIO;
    vmbox_error_free(&err);
    return -e;
  }
  d->dirty = false;
  return 0;
}

/* Loads an existing map; a missing one means nothing was flushed yet. */
static int map__load(struct disk *d, vmbox_error_t *err)
{
  cleanup_close int fd = open(d->map_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return 0;
  if (fd < 0)
    return vmbox_error_sys(err, "open disk map %s", d->map_path);
  size_t want = MAP_HDR + d->map_len + SHA256_DIGEST_LENGTH;
  cleanup_free uint8_t *b = xmalloc(want + 1);
  ssize_t n = read(fd, b, want + 1); /* one more, to notice a longer file */
  if (n < 0)
    return vmbox_error_sys(err, "read disk map %s", d->map_path);
  uint32_t ver, gran;
  uint64_t size, mlen;
  uint8_t sum[SHA256_DIGEST_LENGTH];
  const char *why = NULL;
  if ((size_t)n != want || memcmp(b, MAP_MAGIC, 8))
    why = "wrong length or magic";
  if (!why) {
    memcpy(&ver, b + 8, 4), memcpy(&gran, b + 12, 4);
    memcpy(&size, b + 16, 8), memcpy(&mlen, b + 24, 8);
    SHA256(b, MAP_HDR + d->map_len, sum);
    if (le32toh(ver) != MAP_VERSION || le32toh(gran) != DISK_GRANULE)
      why = "unknown version or granule";
    else if (le64toh(size) != d->size || le64toh(mlen) != d->map_len)
      why = "made for a disk of another size";
    else if (memcmp(sum, b + MAP_HDR + d->map_len, sizeof(sum)))
      why = "checksum mismatch";
  }
  if (why) {
    vmbox_error_set(err, 0, "disk map %s is corrupt (%s)", d->map_path, why);
    return vmbox_error_hint(err, "the box's disk state is damaged; remove the box and create "
                                 "it again");
  }
  memcpy(d->map, b + MAP_HDR, d->map_len);
  return 0;
}

static int disk__open_base(struct disk *d, vmbox_error_t *err)
{
  d->base_fd = open(d->base_path, O_RDONLY | O_CLOEXEC);
  if (d->base_fd < 0)
    return vmbox_error_sys(err, "open disk image %s", d->base_path);
  off_t end = lseek(d->base_fd, 0, SEEK_END);
  if (end < 0)
    return vmbox_error_sys(err, "size of disk image %s", d->base_path);
  if (end < (off_t)DISK_SECTOR)
    return vmbox_error_set(err, 0, "disk image %s is empty or shorter than one sector",
                           d->base_path);
  d->size = (uint64_t)end;
  d->ngran = (d->size + DISK_GRANULE - 1) / DISK_GRANULE;
  d->map_len = (d->ngran + 7) / 8;
  d->map = xcalloc(1, d->map_len);
  return 0;
}

/* The overlay: created sparse on first use, locked so two VMs never write
 * the same one, and checked to belong to a base of this size. */
static int disk__open_overlay(struct disk *d, vmbox_error_t *err)
{
  int flags = d->read_only ? O_RDONLY : O_RDWR | O_CREAT;
  d->ovl_fd = open(d->ovl_path, flags | O_CLOEXEC, 0600);
  if (d->ovl_fd < 0)
    return vmbox_error_sys(err, "open disk overlay %s", d->ovl_path);
  if (flock(d->ovl_fd, (d->read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      return vmbox_error_set(err, 0, "disk overlay %s is in use by a running box", d->ovl_path);
    return vmbox_error_sys(err, "lock disk overlay %s", d->ovl_path);
  }
  struct stat ob, bb;
  if (fstat(d->ovl_fd, &ob) < 0 || fstat(d->base_fd, &bb) < 0)
    return vmbox_error_sys(err, "stat disk overlay %s", d->ovl_path);
  if (ob.st_dev == bb.st_dev && ob.st_ino == bb.st_ino)
    return vmbox_error_set(err, 0, "disk overlay %s is the base image itself", d->ovl_path);
  if (ob.st_size == 0 && !d->read_only && access(d->map_path, F_OK) < 0) {
    if (ftruncate(d->ovl_fd, (off_t)d->size) < 0)
      return vmbox_error_sys(err, "size disk overlay %s", d->ovl_path);
  } else if ((uint64_t)ob.st_size != d->size) {
    return vmbox_error_set(err, 0, "disk overlay %s is %llu bytes but image %s is %llu",
                           d->ovl_path, (unsigned long long)ob.st_size, d->base_path,
                           (unsigned long long)d->size);
  }
  return map__load(d, err);
}

int disk__open(struct disk **out, const char *base, const char *overlay, const char *map,
               bool read_only, vmbox_error_t *err)
{
  struct disk *d = xcalloc(1, sizeof(*d));
  d->base_fd = d->ovl_fd = -1;
  d->read_only = read_only || !overlay;
  d->base_path = xstrdup(base);
  if (overlay) {
    d->ovl_path = xstrdup(overlay);
    d->map_path = map ? xstrdup(map) : util__fmt("%s.map", overlay);
  }
  if (disk__open_base(d, err) < 0 || (overlay && disk__open_overlay(d, err) < 0)) {
    disk__close(d, NULL);
    return -1;
  }
  *out = d;
  return 0;
}

int disk__close(struct disk *d, vmbox_error_t *err)
{
  if (!d)
    return 0;
  int r = 0;
  if (d->ovl_fd >= 0 && !d->read_only && (r = disk__flush(d)) < 0)
    vmbox_error_set(err, -r, "flush disk overlay %s", d->ovl_path);
  if (d->base_fd >= 0)
    close(d->base_fd);
  if (d->ovl_fd >= 0)
    close(d->ovl_fd);
  free(d->map);
  free(d->base_path);
  free(d->ovl_path);
  free(d->map_path);
  free(d);
  return r < 0 ? -1 : 0;
}
