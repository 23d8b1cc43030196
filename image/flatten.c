/* Image -> ext4 (see flatten.h): a header-only pass sizes the filesystem, then
 * every layer streams through libarchive into a fresh ext4 written with
 * libext2fs under a temp name, renamed into place once complete. */
#include "flatten.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "ext4.h"
#include "layer.h"
#include "manifest.h"

#define MiB (1024ull * 1024)
#define GiB (1024 * MiB)
#define MAX_CONTENT (64 * GiB) /* "a layer that expands beyond a sane bound" */
#define MAX_ENTRIES (8u << 20) /* ~2 GiB of inode tables */
#define MIN_SIZE (64 * MiB)
#define INODE_SIZE 256

struct scan_job {
  const char *path;
  struct layer_limits lim;
  struct layer_stats st;
  vmbox_error_t err;
  int ret;
};

static void *scan_thread(void *arg)
{
  struct scan_job *j = arg;
  j->ret = layer__scan(j->path, &j->st, &j->lim, &j->err);
  return NULL;
}

/* Layers are scanned in parallel: the pass costs one decompression of the
 * largest layer rather than of all of them. */
static int scan_layers(const char *const *paths, size_t n, const struct layer_limits *lim,
                       struct layer_stats *total, vmbox_error_t *err)
{
  struct scan_job *jobs = xcalloc(n, sizeof(*jobs));
  pthread_t *th = xcalloc(n, sizeof(*th));
  bool *started = xcalloc(n, sizeof(*started));
  for (size_t i = 0; i < n; i++) {
    jobs[i].path = paths[i];
    jobs[i].lim = *lim;
    started[i] = pthread_create(&th[i], NULL, scan_thread, &jobs[i]) == 0;
    if (!started[i])
      scan_thread(&jobs[i]);
  }
  int ret = 0;
  memset(total, 0, sizeof(*total));
  for (size_t i = 0; i < n; i++) {
    if (started[i])
      pthread_join(th[i], NULL);
    if (jobs[i].ret < 0 && ret == 0) {
      *err = jobs[i].err;
      jobs[i].err = NULL;
      ret = -1;
    }
    vmbox_error_free(&jobs[i].err);
    total->entries += jobs[i].st.entries;
    total->dirs += jobs[i].st.dirs;
    total->data_blocks += jobs[i].st.data_blocks;
    total->data_bytes += jobs[i].st.data_bytes;
    total->dirent_bytes += jobs[i].st.dirent_bytes;
    total->xattr_entries += jobs[i].st.xattr_entries;
  }
  free(jobs);
  free(th);
  free(started);
  if (ret == 0 && total->entries > lim->max_entries)
    return vmbox_error_set(err, 0, "image has more than %llu entries",
                           (unsigned long long)lim->max_entries);
  if (ret == 0 && total->data_bytes > lim->max_bytes)
    return vmbox_error_set(err, EFBIG, "image content of %llu bytes exceeds %llu bytes",
                           (unsigned long long)total->data_bytes,
                           (unsigned long long)lim->max_bytes);
  return ret;
}

struct fs_size {
  uint64_t bytes; /* filesystem size */
  uint64_t inodes;
  uint64_t need; /* the least that holds the content */
};

/* The sizing rule: content in blocks + directory blocks + xattr blocks +
 * inode tables + ~1% group metadata, then 20% + 64 MiB of headroom so the box
 * can write; the journal comes on top.  Inodes: entries + 25% + 4096. */
static void choose_size(const struct layer_stats *st, uint64_t disk_size, struct fs_size *out)
{
  uint64_t inodes = st->entries + st->entries / 4 + 4096;
  if (inodes < 16384)
    inodes = 16384;
  uint64_t data =
      st->data_blocks * 4096 + st->dirs * 4096 + st->dirent_bytes * 2 + st->xattr_entries * 4096;
  uint64_t meta = inodes * INODE_SIZE + data / 100 + 4 * MiB;
  out->need = data + meta;
  uint64_t size = disk_size;
  if (!size) {
    size = out->need + out->need / 5 + MIN_SIZE;
    size += ext4__journal_bytes(size);
    size = (size + MiB - 1) / MiB * MiB;
  }
  out->need += ext4__journal_bytes(size);
  if (disk_size && inodes * INODE_SIZE > disk_size / 4) /* keep tables < 1/4 of a tight disk */
    inodes = disk_size / 4 / INODE_SIZE;
  out->bytes = size;
  out->inodes = inodes;
}

static int build(const char *const *paths, size_t n, const char *tmp, const struct fs_size *sz,
                 struct layer_limits *lim, vmbox_error_t *err)
{
  struct ext4 *fs;
  if (ext4__create(tmp, sz->bytes, sz->inodes, &fs, err) < 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (layer__apply(fs, paths[i], (uint32_t)(i + 1), lim, err) < 0) {
      ext4__abort(fs);
      return -1;
    }
  }
  if (ext4__finish(fs, err) < 0)
    return -1;
  uint64_t t0 = util__now_ns();
  cleanup_close int fd = open(tmp, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) < 0)
    return vmbox_error_sys(err, "sync %s", tmp);
  log__debug("flatten: fsync %.3fs", (double)(util__now_ns() - t0) / 1e9);
  return 0;
}

/* Sizes from the estimate alone: tar bytes stand in for content, +25% for
 * the last partial block of small files, and one inode per 4 KiB of tar.  A
 * layer of many tiny files outgrows that; the caller then scans and retries. */
static bool estimate_layers(const char *const *paths, size_t n, struct layer_stats *st)
{
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t b = 0;
    vmbox_error_t e = NULL;
    int r = layer__estimate(paths[i], &b, &e);
    vmbox_error_free(&e);
    if (r != 0)
      return false;
    total += b;
  }
  memset(st, 0, sizeof(*st));
  st->entries = total / 4096;
  st->dirs = st->entries / 16;
  st->dirent_bytes = st->entries * 32;
  st->data_bytes = total;
  st->data_blocks = total / 4096 + total / 4096 / 4;
  return true;
}

/* Picks the size: from the cheap estimate when `guess`, else from a header
 * pass over every layer (which also enforces the content bounds early). */
static int plan(const char *const *paths, size_t n, uint64_t disk_size, bool guess,
                const struct layer_limits *lim, struct fs_size *sz, bool *guessed,
                vmbox_error_t *err)
{
  struct layer_stats st;
  uint64_t t0 = util__now_ns();
  *guessed = guess && estimate_layers(paths, n, &st);
  if (*guessed && disk_size) {
    choose_size(&st, disk_size, sz);
    *guessed = sz->need <= disk_size; /* looks too big: let the exact pass decide */
  }
  if (!*guessed && scan_layers(paths, n, lim, &st, err) < 0)
    return -1;
  choose_size(&st, disk_size, sz);
  log__debug("flatten: %s %.3fs: %llu entries, %llu bytes; ext4 %llu bytes, %llu inodes",
             *guessed ? "estimate" : "scan", (double)(util__now_ns() - t0) / 1e9,
             (unsigned long long)st.entries, (unsigned long long)st.data_bytes,
             (unsigned long long)sz->bytes, (unsigned long long)sz->inodes);
  if (disk_size && sz->need > disk_size) {
    char have[32], want[32];
    util__human_size(disk_size, have, sizeof(have));
    util__human_size(sz->need, want, sizeof(want));
    vmbox_error_set(err, ENOSPC, "disk size %s is too small for this image (needs %s)", have, want);
    return vmbox_error_hint(err, "pass a --disk-size of at least %llu MiB, or none",
                            (unsigned long long)((sz->need + MiB - 1) / MiB));
  }
  return 0;
}

static int build_tmp(const char *const *paths, size_t n, const char *out_path,
                     const struct fs_size *sz, struct layer_limits *lim, vmbox_error_t *err)
{
  cleanup_free char *tmp = util__fmt("%s.tmp.%d", out_path, (int)getpid());
  unlink(tmp);
  lim->entries = 0;
  if (build(paths, n, tmp, sz, lim, err) < 0) {
    unlink(tmp);
    return -1;
  }
  if (rename(tmp, out_path) < 0) {
    vmbox_error_sys(err, "rename %s to %s", tmp, out_path);
    unlink(tmp);
    return -1;
  }
  cleanup_free char *dir = xstrdup(out_path);
  util__fsync_dir(dirname(dir));
  return 0;
}

int flatten__layers(const char *const *layer_paths, size_t n_layers, const char *out_path,
                    const struct flatten_opts *opts, vmbox_error_t *err)
{
  uint64_t disk_size = opts ? opts->disk_size & ~4095ull : 0; /* whole blocks */
  struct layer_limits lim = {.max_bytes = disk_size ? disk_size : MAX_CONTENT,
                             .max_entries = MAX_ENTRIES};
  uint64_t t0 = util__now_ns();
  struct fs_size sz;
  bool guessed;
  int r = plan(layer_paths, n_layers, disk_size, true, &lim, &sz, &guessed, err);
  if (r == 0)
    r = build_tmp(layer_paths, n_layers, out_path, &sz, &lim, err);
  if (r < 0 && guessed && err && *err && (*err)->errno_ == ENOSPC) {
    /* The estimate was short (many tiny files): size it exactly and redo. */
    log__debug("flatten: estimate too small (%s); scanning", (*err)->msg);
    vmbox_error_free(err);
    r = plan(layer_paths, n_layers, disk_size, false, &lim, &sz, &guessed, err);
    if (r == 0)
      r = build_tmp(layer_paths, n_layers, out_path, &sz, &lim, err);
  }
  if (r < 0 && disk_size && *err && ((*err)->errno_ == EFBIG || (*err)->errno_ == ENOSPC) &&
      !(*err)->hint)
    vmbox_error_hint(err, "the image does not fit in --disk-size %llu MiB; pass a larger one",
                     (unsigned long long)(disk_size / MiB));
  if (r == 0)
    log__debug("flatten: %s in %.3fs", out_path, (double)(util__now_ns() - t0) / 1e9);
  return r;
}

/* --- the per-image cache ------------------------------------------------------ */

static int layer_paths(struct store *s, const char *manifest_digest, char ***out,
                       vmbox_error_t *err)
{
  cleanup_free char *json = NULL;
  size_t len = 0;
  if (store__read_blob(s, manifest_digest, &json, &len, err) < 0)
    return -1;
  struct manifest m;
  memset(&m, 0, sizeof(m));
  if (manifest__parse(json, len, NULL, &m, err) < 0)
    return -1;
  int ret = 0;
  if (m.kind != MANIFEST_IMAGE)
    ret = vmbox_error_set(err, 0, "%s is an index, not an image manifest", manifest_digest);
  char **v = xcalloc(m.n_layers + 1, sizeof(*v));
  for (size_t i = 0; ret == 0 && i < m.n_layers; i++) {
    if (!manifest__layer_supported(m.layers[i].media_type))
      ret = vmbox_error_set(err, 0, "layer %s: unsupported media type %s", m.layers[i].digest,
                            m.layers[i].media_type);
    else if (!store__has_blob(s, m.layers[i].digest))
      ret = vmbox_error_set(err, ENOENT, "layer %s is missing from the store", m.layers[i].digest);
    else
      v[i] = store__blob_path(s, m.layers[i].digest);
  }
  manifest__free(&m);
  if (ret < 0) {
    strv_free(v);
    return vmbox_error_hint(err, "pull the image again");
  }
  *out = v;
  return 0;
}

/* A cached disk serves any caller without an explicit size, and one with the
 * same explicit size; a different --disk-size rebuilds it in place (prune only
 * knows HEX.ext4 names). */
static bool cached(const char *path, uint64_t size)
{
  struct stat st;
  return stat(path, &st) == 0 && (size == 0 || (uint64_t)st.st_size == (size & ~4095ull));
}

int flatten__image(struct store *s, const struct image_record *img, const struct flatten_opts *opts,
                   char **path_out, vmbox_error_t *err)
{
  const char *hex = util__digest_hex(img->manifest_digest);
  if (!hex)
    return vmbox_error_set(err, 0, "bad manifest digest %s", img->manifest_digest);
  cleanup_free char *dir = store__dir(s, "ext4", err);
  if (!dir)
    return -1;
  uint64_t size = opts ? opts->disk_size : 0;
  cleanup_free char *path = util__fmt("%s/%s.ext4", dir, hex);
  if (cached(path, size)) {
    *path_out = steal_pointer(&path);
    return 0;
  }
  cleanup_free char *lockpath = util__fmt("%s/%s.lock", dir, hex);
  cleanup_close int lock = util__lock_file(lockpath, true, err);
  if (lock < 0)
    return -1;
  /* Another process may have built it while we waited for the lock. */
  if (!cached(path, size)) {
    cleanup_strv char **layers = NULL;
    if (layer_paths(s, img->manifest_digest, &layers, err) < 0 ||
        flatten__layers((const char *const *)layers, strv_len(layers), path, opts, err) < 0)
      return vmbox_error_wrap(err, "flatten %s", img->manifest_digest);
  }
  *path_out = steal_pointer(&path);
  return 0;
}
