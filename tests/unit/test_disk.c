/* backends/kvm/disk.c: the box disk (read-only base + copy-on-write overlay),
 * checked against an in-memory model of what the disk should contain. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../backends/kvm/disk.h"
#include "../../lib/err.h"
#include "../../lib/util.h"
#include "tap.h"

/* Not a multiple of the 4 KiB granule: the last granule is short. */
#define BASE_SIZE (256 * 1024 + 1536)

static char dir[] = "/tmp/vmbox-test-disk-XXXXXX";
static char *base_path, *ovl_a, *map_a, *ovl_b, *map_b;
static uint8_t *base_data;
static uint32_t rng = 12345;

static uint32_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}

static char *file_sha(const char *path)
{
  char *buf = NULL;
  size_t len = 0;
  if (util__read_file(path, &buf, &len, NULL) < 0)
    return xstrdup("?");
  char *d = util__sha256_digest(buf, len);
  free(buf);
  return d;
}

static void make_base(void)
{
  base_data = xmalloc(BASE_SIZE);
  for (size_t i = 0; i < BASE_SIZE; i++)
    base_data[i] = rnd();
  if (util__write_file_atomic(base_path, base_data, BASE_SIZE, 0444, NULL) < 0)
    abort();
}

static bool disk_equals(struct disk *d, const uint8_t *model)
{
  uint8_t *buf = xmalloc(BASE_SIZE);
  bool ok = disk__read(d, buf, BASE_SIZE, 0) == 0 && memcmp(buf, model, BASE_SIZE) == 0;
  free(buf);
  return ok;
}

/* Writes through the disk and into the model, returning disk__write's result. */
static int wr(struct disk *d, uint8_t *model, uint64_t off, size_t len, uint8_t seed)
{
  uint8_t *buf = xmalloc(len ? len : 1);
  for (size_t i = 0; i < len; i++)
    buf[i] = seed + i * 7;
  int r = disk__write(d, buf, len, off);
  if (r == 0)
    memcpy(model + off, buf, len);
  free(buf);
  return r;
}

static void test_basic(uint8_t *model)
{
  struct disk *d = NULL;
  vmbox_error_t err = NULL;
  TAP_OK(disk__open(&d, base_path, ovl_a, map_a, false, &err) == 0, "open base + new overlay");
  vmbox_error_free(&err);
  if (!d)
    return;
  struct stat st;
  TAP_OK(stat(ovl_a, &st) == 0 && st.st_size == BASE_SIZE && st.st_blocks < 16,
         "overlay created sparse with the base's size (%lld blocks)", (long long)st.st_blocks);
  TAP_OK(disk__size(d) == BASE_SIZE && !disk__read_only(d), "size and writable");
  TAP_OK(disk_equals(d, model), "fresh disk reads as the base");
  TAP_OK(wr(d, model, 8192, 4096, 1) == 0 && disk_equals(d, model), "aligned granule write");
  TAP_OK(wr(d, model, 20000, 100, 2) == 0 && disk_equals(d, model),
         "partial granule write keeps the rest of the granule from the base");
  TAP_OK(wr(d, model, 4000, 10000, 3) == 0 && disk_equals(d, model),
         "unaligned write across granules (head, full, tail)");
  TAP_OK(wr(d, model, 20010, 10, 4) == 0 && disk_equals(d, model),
         "second partial write into a granule already in the overlay");
  TAP_OK(wr(d, model, BASE_SIZE - 1536, 1536, 5) == 0 && disk_equals(d, model),
         "write of the short last granule");
  TAP_OK(wr(d, model, BASE_SIZE - 5000, 5000, 6) == 0 && disk_equals(d, model),
         "run of whole granules ending at the disk's end");
  TAP_OK(wr(d, model, BASE_SIZE - 1, 1, 7) == 0 && disk_equals(d, model), "last byte");
  TAP_OK(disk__write(d, "x", 1, BASE_SIZE) == -EINVAL, "write past the end: -EINVAL");
  TAP_OK(disk__write(d, "xy", 2, BASE_SIZE - 1) == -EINVAL, "write straddling the end: -EINVAL");
  uint8_t b;
  TAP_OK(disk__read(d, &b, 1, UINT64_MAX) == -EINVAL, "read at 2^64-1: -EINVAL, no wrap");
  TAP_OK(disk__read(d, &b, 0, BASE_SIZE) == 0, "zero-length read at the end is fine");
  int bad = 0;
  for (int i = 0; i < 400; i++) {
    uint64_t off = rnd() % BASE_SIZE;
    size_t len = rnd() % 9000;
    if (len > BASE_SIZE - off)
      len = BASE_SIZE - off;
    bad += wr(d, model, off, len, (uint8_t)i) != 0;
    if (i % 50 == 0)
      bad += disk__flush(d) != 0;
  }
  TAP_OK(bad == 0 && disk_equals(d, model), "400 random writes and flushes match the model");
  TAP_OK(disk__close(d, &err) == 0, "close flushes");
  vmbox_error_free(&err);
}

static void test_reopen(const uint8_t *model)
{
  struct disk *d = NULL, *d2 = NULL;
  vmbox_error_t err = NULL;
  TAP_OK(disk__open(&d, base_path, ovl_a, map_a, false, &err) == 0 && disk_equals(d, model),
         "reopen: the map brings every write back");
  vmbox_error_free(&err);
  TAP_OK(disk__open(&d2, base_path, ovl_a, map_a, false, &err) < 0 && err &&
             strstr(err->msg, ovl_a) && strstr(err->msg, "in use"),
         "a second writer of the same overlay is refused (%s)", err ? err->msg : "");
  vmbox_error_free(&err);
  disk__close(d, NULL);
  d = NULL;
  TAP_OK(disk__open(&d, base_path, ovl_a, map_a, true, &err) == 0 && disk_equals(d, model) &&
             disk__read_only(d) && disk__write(d, "x", 1, 0) == -EROFS,
         "read-only view of base + overlay: merged reads, writes -EROFS");
  vmbox_error_free(&err);
  disk__close(d, NULL);
}

static void test_second_overlay(const uint8_t *model_a)
{
  uint8_t *model_b = xmalloc(BASE_SIZE);
  memcpy(model_b, base_data, BASE_SIZE);
  struct disk *a = NULL, *b = NULL;
  vmbox_error_t err = NULL;
  TAP_OK(disk__open(&b, base_path, ovl_b, map_b, false, &err) == 0 && disk_equals(b, model_b),
         "second overlay on the same base starts from the base");
  vmbox_error_free(&err);
  if (b) {
    wr(b, model_b, 0, 70000, 99);
    disk__close(b, NULL);
  }
  TAP_OK(disk__open(&a, base_path, ovl_a, map_a, true, &err) == 0 && disk_equals(a, model_a),
         "writes through overlay B do not show through overlay A");
  vmbox_error_free(&err);
  disk__close(a, NULL);
  TAP_OK(disk__open(&b, base_path, ovl_b, map_b, true, &err) == 0 && disk_equals(b, model_b),
         "overlay B keeps its own writes");
  vmbox_error_free(&err);
  disk__close(b, NULL);
  free(model_b);
}

static void test_read_only_base(void)
{
  struct disk *d = NULL;
  vmbox_error_t err = NULL;
  TAP_OK(disk__open(&d, base_path, NULL, NULL, false, &err) == 0 && disk__read_only(d) &&
             disk_equals(d, base_data),
         "no overlay: read-only disk reading the base");
  vmbox_error_free(&err);
  if (d)
    TAP_OK(disk__write(d, "x", 1, 0) == -EROFS && disk__flush(d) == 0,
           "no overlay: write is -EROFS, flush a no-op");
  disk__close(d, NULL);
}

static void expect_open_error(const char *what, const char *base, const char *ovl, const char *map,
                              const char *needle)
{
  struct disk *d = NULL;
  vmbox_error_t err = NULL;
  int r = disk__open(&d, base, ovl, map, false, &err);
  TAP_OK(r < 0 && !d && err && strstr(err->msg, needle), "%s (%s)", what, err ? err->msg : "");
  vmbox_error_free(&err);
  disk__close(d, NULL);
}

static void test_errors(void)
{
  cleanup_free char *missing = util__fmt("%s/nope.ext4", dir);
  expect_open_error("missing base names the file", missing, ovl_a, map_a, missing);
  cleanup_free char *small = util__fmt("%s/small", dir), *smap = util__fmt("%s/small.map", dir);
  util__write_file_atomic(small, "abc", 3, 0600, NULL);
  expect_open_error("overlay of another size names the file", base_path, small, smap, small);
  /* A map with one flipped bit in its bitmap fails its checksum. */
  char *buf = NULL;
  size_t len = 0;
  util__read_file(map_a, &buf, &len, NULL);
  cleanup_free char *bad = util__fmt("%s/bad.map", dir), *bad_ovl = util__fmt("%s/bad.ovl", dir);
  buf[40] ^= 1;
  util__write_file_atomic(bad, buf, len, 0600, NULL);
  cleanup_free char *cmd = util__fmt("cp --sparse=always %s %s", ovl_a, bad_ovl);
  TAP_OK(system(cmd) == 0, "copy overlay");
  expect_open_error("corrupt map names the map", base_path, bad_ovl, bad, bad);
  util__write_file_atomic(bad, buf, len - 1, 0600, NULL);
  expect_open_error("truncated map is refused", base_path, bad_ovl, bad, "corrupt");
  free(buf);
  expect_open_error("overlay = base refused", base_path, base_path, map_b, "base image itself");
}

int main(void)
{
  if (!mkdtemp(dir))
    return 1;
  base_path = util__fmt("%s/base.ext4", dir);
  ovl_a = util__fmt("%s/a.overlay", dir);
  map_a = util__fmt("%s/a.map", dir);
  ovl_b = util__fmt("%s/b.overlay", dir);
  map_b = util__fmt("%s/b.map", dir);
  make_base();
  char *sha_before = file_sha(base_path);
  uint8_t *model = xmalloc(BASE_SIZE);
  memcpy(model, base_data, BASE_SIZE);
  test_basic(model);
  test_reopen(model);
  test_second_overlay(model);
  test_read_only_base();
  test_errors();
  char *sha_after = file_sha(base_path);
  TAP_OK(strcmp(sha_before, sha_after) == 0, "base unchanged (%s)", sha_after);
  free(sha_before);
  free(sha_after);
  free(model);
  free(base_data);
  util__rm_rf(dir, NULL);
  free(base_path), free(ovl_a), free(map_a), free(ovl_b), free(map_b);
  return tap__done();
}
