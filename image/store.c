/* The content store: layout, locks, crash clean-up, blobs and prune.  The
 * image index (images.json) lives in index.c.  Layout and guarantees are
 * described in store.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/log.h"
#include "../lib/util.h"
#include "lookup.h"
#include "manifest.h"
#include "store_priv.h"

/* A resumable download untouched for this long is abandoned. */
#define PARTIAL_MAX_AGE (24 * 3600)

/* ---- opening, and sweeping up after dead processes -------------------------- */

static bool pid_alive(long pid)
{
  if (pid <= 0 || pid > 0x3fffffff)
    return false;
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* PID of a temp file named "....tmp.PID[...]", or 0 if the name has none. */
static long tmp_owner(const char *name)
{
  const char *p = strstr(name, ".tmp.");
  if (p == NULL)
    return 0;
  const char *q;
  while ((q = strstr(p + 1, ".tmp.")) != NULL)
    p = q;
  char *end;
  long pid = strtol(p + 5, &end, 10);
  return end == p + 5 ? 0 : pid;
}

static bool older_than(int dfd, const char *name, time_t age)
{
  struct stat st;
  return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mtime + age < time(NULL);
}

/* A .partial is abandoned when it is old and no writer holds its flock. */
static bool partial_abandoned(int dfd, const char *name)
{
  if (!older_than(dfd, name, PARTIAL_MAX_AGE))
    return false;
  int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
  close(fd);
  return free_;
}

/* Removes temp files in DIR whose names contain MARK and whose owner is dead. */
static void sweep_dir(const char *dir, const char *mark, bool partials)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    bool stale = false;
    if (strstr(e->d_name, mark)) {
      long pid = tmp_owner(e->d_name);
      stale = pid ? !pid_alive(pid) : older_than(dirfd(d), e->d_name, PARTIAL_MAX_AGE);
    } else if (partials && util__has_suffix(e->d_name, ".partial")) {
      stale = partial_abandoned(dirfd(d), e->d_name);
    }
    if (stale && unlinkat(dirfd(d), e->d_name, 0) == 0)
      log__debug("store: removed stale %s/%s", dir, e->d_name);
  }
  closedir(d);
}

static void store__sweep(struct store *s)
{
  cleanup_free char *tmp = util__fmt("%s/tmp", s->root);
  cleanup_free char *ext4 = util__fmt("%s/ext4", s->root);
  sweep_dir(tmp, ".tmp.", true);
  sweep_dir(ext4, ".tmp.", false);
  sweep_dir(s->root, "images.json.tmp.", false);
}

int store__open(const char *root, struct store **out, vmbox_error_t *err)
{
  static const char *const subdirs[] = {"blobs/sha256", "tmp", "ext4"};
  if (root == NULL || *root == '\0')
    return vmbox_error_set(err, 0, "no store root given");
  for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
    cleanup_free char *p = util__fmt("%s/%s", root, subdirs[i]);
    if (util__mkdir_p(p, 0700, err) < 0)
      return vmbox_error_wrap(err, "open store %s", root);
  }
  cleanup_free char *lock = util__fmt("%s/lock", root);
  int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "open store lock %s", lock);
  close(fd);
  struct store *s = xcalloc(1, sizeof(*s));
  s->root = xstrdup(root);
  s->lock_fd = s->gc_fd = -1;
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
  pthread_mutex_init(&s->mu, &a);
  pthread_mutexattr_destroy(&a);
  pthread_mutex_init(&s->gc_mu, NULL);
  store__sweep(s);
  *out = s;
  return 0;
}

void store__close(struct store *s)
{
  if (s == NULL)
    return;
  if (s->lock_fd >= 0)
    close(s->lock_fd);
  if (s->gc_fd >= 0)
    close(s->gc_fd);
  pthread_mutex_destroy(&s->mu);
  pthread_mutex_destroy(&s->gc_mu);
  free(s->root);
  free(s);
}

const char *store__root(const struct store *s)
{
  return s->root;
}

char *store__dir(struct store *s, const char *sub, vmbox_error_t *err)
{
  char *p = util__fmt("%s/%s", s->root, sub);
  if (util__mkdir_p(p, 0700, err) < 0) {
    free(p);
    return NULL;
  }
  return p;
}

/* ---- locks ------------------------------------------------------------------ */

int store__lock(struct store *s, bool exclusive, vmbox_error_t *err)
{
  pthread_mutex_lock(&s->mu);
  if (s->lock_depth > 0 && (s->lock_excl || !exclusive)) {
    s->lock_depth++;
    return 0;
  }
  if (s->lock_depth > 0) {
    /* Upgrade shared -> exclusive on the same open file. */
    if (flock(s->lock_fd, LOCK_EX) < 0) {
      pthread_mutex_unlock(&s->mu);
      return vmbox_error_sys(err, "lock %s/lock", s->root);
    }
    s->lock_excl = true;
    s->lock_depth++;
    return 0;
  }
  cleanup_free char *path = util__fmt("%s/lock", s->root);
  int fd = util__lock_file(path, exclusive, err);
  if (fd < 0) {
    pthread_mutex_unlock(&s->mu);
    return -1;
  }
  s->lock_fd = fd;
  s->lock_excl = exclusive;
  s->lock_depth = 1;
  return 0;
}

void store__unlock(struct store *s)
{
  if (s->lock_depth <= 0)
    return;
  if (--s->lock_depth == 0) {
    close(s->lock_fd);
    s->lock_fd = -1;
    s->lock_excl = false;
  }
  pthread_mutex_unlock(&s->mu);
}

/* Lock order is gc.lock, then ROOT/lock (prune's order).  A blob write under
 * an index lock would invert it, so then we do not wait: a prune holds it. */
static int gc_open_shared(struct store *s, vmbox_error_t *err)
{
  cleanup_free char *path = util__fmt("%s/gc.lock", s->root);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "open %s", path);
  int r;
  while ((r = flock(fd, LOCK_SH | (s->lock_depth > 0 ? LOCK_NB : 0))) < 0 && errno == EINTR)
    ;
  if (r == 0)
    return fd;
  int e = errno;
  close(fd);
  if (e == EWOULDBLOCK)
    return vmbox_error_set(err, 0, "another vmbox is pruning the store %s; try again", s->root);
  return vmbox_error_set(err, e, "lock %s", path);
}

int store__gc_hold(struct store *s, vmbox_error_t *err)
{
  pthread_mutex_lock(&s->gc_mu);
  int r = 0;
  if (s->gc_fd < 0) {
    s->gc_fd = gc_open_shared(s, err);
    r = s->gc_fd < 0 ? -1 : 0;
  }
  pthread_mutex_unlock(&s->gc_mu);
  return r;
}

void store__gc_release(struct store *s)
{
  pthread_mutex_lock(&s->gc_mu);
  /* Blobs written under an outer store__lock are not referenced until it ends. */
  if (s->gc_fd >= 0 && s->lock_depth == 0) {
    close(s->gc_fd);
    s->gc_fd = -1;
  }
  pthread_mutex_unlock(&s->gc_mu);
}

/* ---- blobs ------------------------------------------------------------------ */

char *store__blob_path(const struct store *s, const char *digest)
{
  const char *hex = util__digest_hex(digest);
  if (hex == NULL)
    return NULL;
  return util__fmt("%s/blobs/sha256/%s", s->root, hex);
}

bool store__has_blob(const struct store *s, const char *digest)
{
  cleanup_free char *p = store__blob_path(s, digest);
  return p && access(p, F_OK) == 0;
}

int store__read_blob(struct store *s, const char *digest, char **buf, size_t *len,
                     vmbox_error_t *err)
{
  cleanup_free char *p = store__blob_path(s, digest);
  if (p == NULL)
    return vmbox_error_set(err, 0, "invalid digest '%s'", digest ? digest : "(null)");
  if (util__read_file(p, buf, len, err) < 0)
    return vmbox_error_wrap(err, "read blob %s", digest);
  return 0;
}

static int disk_full(vmbox_error_t *err, const struct store *s, const char *what)
{
  vmbox_error_set(err, 0, "disk full writing %s under %s", what, s->root);
  return vmbox_error_hint(err, "free some space (`vmbox image prune` deletes unused blobs) "
                               "and try again");
}

int store__put_blob(struct store *s, const void *buf, size_t len, char **digest_out,
                    vmbox_error_t *err)
{
  cleanup_free char *digest = util__sha256_digest(buf, len);
  if (!store__has_blob(s, digest)) {
    struct blob_writer *w;
    if (store__blob_begin(s, NULL, &w, err) < 0)
      return -1;
    if (blob_writer__write(w, buf, len, err) < 0) {
      blob_writer__abort(w, false);
      return -1;
    }
    if (blob_writer__commit(w, NULL, err) < 0)
      return -1;
  } else if (store__gc_hold(s, err) < 0) {
    return -1;
  }
  if (digest_out)
    *digest_out = steal_pointer(&digest);
  return 0;
}

/* ---- streaming writer ------------------------------------------------------- */

struct blob_writer {
  struct store *s;
  char *expected; /* NULL: digest decided at commit */
  char *path;     /* the temp or .partial file */
  bool resumable; /* path is the shared ROOT/tmp/HEX.partial */
  int fd;
  EVP_MD_CTX *md;
  uint64_t off;
};

static void writer_free(struct blob_writer *w)
{
  if (w->fd >= 0)
    close(w->fd);
  EVP_MD_CTX_free(w->md);
  free(w->expected);
  free(w->path);
  free(w);
}

/* Hashes what a previous attempt left in the partial file. */
static int writer_rehash(struct blob_writer *w, vmbox_error_t *err)
{
  char buf[65536];
  ssize_t n;
  if (lseek(w->fd, 0, SEEK_SET) < 0)
    return vmbox_error_sys(err, "seek %s", w->path);
  while ((n = read(w->fd, buf, sizeof(buf))) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vmbox_error_sys(err, "read %s", w->path);
    EVP_DigestUpdate(w->md, buf, (size_t)n);
    w->off += (uint64_t)n;
  }
  return 0;
}

/* Opens ROOT/tmp/HEX.partial locked, so two processes never append to the
 * same partial.  Returns 1 if another process holds it (caller uses a private
 * temp file instead), 0 when opened, -1 on error. */
static int writer_open_partial(struct blob_writer *w, vmbox_error_t *err)
{
  for (int tries = 0; tries < 10; tries++) {
    int fd = open(w->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
      return vmbox_error_sys(err, "create %s", w->path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
      close(fd);
      return 1;
    }
    /* The previous holder may have renamed it into blobs/ meanwhile. */
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(w->path, &b) == 0 && a.st_ino == b.st_ino &&
        a.st_dev == b.st_dev) {
      w->fd = fd;
      return 0;
    }
    close(fd);
  }
  return 1;
}

static char *writer_private_path(struct store *s, const char *hex)
{
  static unsigned counter;
  return util__fmt("%s/tmp/%s.%u.tmp.%d", s->root, hex ? hex : "blob",
                   __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED), (int)getpid());
}

static int writer_open(struct blob_writer *w, const char *hex, vmbox_error_t *err)
{
  if (hex) {
    w->path = util__fmt("%s/tmp/%s.partial", w->s->root, hex);
    int r = writer_open_partial(w, err);
    if (r < 0)
      return -1;
    if (r == 0) {
      w->resumable = true;
      return writer_rehash(w, err);
    }
    free(w->path);
  }
  w->path = writer_private_path(w->s, hex);
  w->fd = open(w->path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  if (w->fd < 0)
    return vmbox_error_sys(err, "create %s", w->path);
  return 0;
}

int store__blob_begin(struct store *s, const char *expected_digest, struct blob_writer **out,
                      vmbox_error_t *err)
{
  const char *hex = NULL;
  if (expected_digest && (hex = util__digest_hex(expected_digest)) == NULL)
    return vmbox_error_set(err, 0, "invalid digest '%s'", expected_digest);
  if (store__gc_hold(s, err) < 0)
    return -1;
  struct blob_writer *w = xcalloc(1, sizeof(*w));
  w->s = s;
  w->fd = -1;
  w->expected = expected_digest ? xstrdup(expected_digest) : NULL;
  w->md = EVP_MD_CTX_new();
  if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
    writer_free(w);
    return vmbox_error_set(err, 0, "sha256 unavailable in libcrypto");
  }
  if (writer_open(w, hex, err) < 0) {
    if (w->path && !w->resumable)
      unlink(w->path);
    writer_free(w);
    return -1;
  }
  *out = w;
  return 0;
}

uint64_t blob_writer__offset(const struct blob_writer *w)
{
  return w->off;
}

int blob_writer__write(struct blob_writer *w, const void *buf, size_t len, vmbox_error_t *err)
{
  const char *p = buf;
  EVP_DigestUpdate(w->md, buf, len);
  while (len > 0) {
    ssize_t n = write(w->fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      if (errno == ENOSPC || errno == EDQUOT) {
        /* A partial that cannot grow only wastes the space the user needs back. */
        (void)!ftruncate(w->fd, 0);
        unlink(w->path);
        return disk_full(err, w->s, w->expected ? w->expected : "a blob");
      }
      return vmbox_error_sys(err, "write %s", w->path);
    }
    p += n;
    len -= (size_t)n;
    w->off += (uint64_t)n;
  }
  return 0;
}

int blob_writer__restart(struct blob_writer *w, vmbox_error_t *err)
{
  if (ftruncate(w->fd, 0) < 0)
    return vmbox_error_sys(err, "truncate %s", w->path);
  w->off = 0;
  if (EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
    return vmbox_error_set(err, 0, "sha256 reset failed");
  return 0;
}

static char *writer_digest(struct blob_writer *w)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(w->md, md, &n);
  char *d = xmalloc(7 + 2 * n + 1);
  strcpy(d, "sha256:");
  for (unsigned i = 0; i < n; i++)
    sprintf(d + 7 + 2 * i, "%02x", md[i]);
  return d;
}

static int writer_finish(struct blob_writer *w, const char *digest, vmbox_error_t *err)
{
  if (w->expected && strcmp(digest, w->expected) != 0) {
    unlink(w->path);
    vmbox_error_set(err, 0,
                    "digest mismatch for %s: got %s (the registry sent corrupt data; "
                    "try again)",
                    w->expected, digest);
    return -1;
  }
  if (fsync(w->fd) < 0) {
    int e = errno;
    unlink(w->path);
    if (e == ENOSPC || e == EDQUOT)
      return disk_full(err, w->s, digest);
    return vmbox_error_set(err, e, "write %s", w->path);
  }
  cleanup_free char *dst = store__blob_path(w->s, digest);
  if (rename(w->path, dst) < 0) {
    int e = errno;
    unlink(w->path);
    return vmbox_error_set(err, e, "store blob %s", digest);
  }
  cleanup_free char *dir = util__fmt("%s/blobs/sha256", w->s->root);
  util__fsync_dir(dir);
  return 0;
}

int blob_writer__commit(struct blob_writer *w, char **digest_out, vmbox_error_t *err)
{
  cleanup_free char *digest = writer_digest(w);
  int r = writer_finish(w, digest, err);
  writer_free(w);
  if (r == 0 && digest_out)
    *digest_out = steal_pointer(&digest);
  return r;
}

void blob_writer__abort(struct blob_writer *w, bool keep_partial)
{
  if (w == NULL)
    return;
  /* Only the shared HEX.partial is worth keeping; private temps cannot be resumed. */
  if (!(keep_partial && w->resumable))
    unlink(w->path);
  writer_free(w);
}

/* ---- prune ------------------------------------------------------------------ */

static bool strv_contains(char *const *v, const char *s)
{
  for (; v && *v; v++)
    if (strcmp(*v, s) == 0)
      return true;
  return false;
}

/* Digest hexes every image needs: manifest, config, layers.  A manifest that
 * cannot be read still protects the image's config (its id). */
static void collect_refs(struct store *s, const struct image_record *v, size_t n, char ***hexes,
                         char ***manifests)
{
  for (size_t i = 0; i < n; i++) {
    const char *mh = util__digest_hex(v[i].manifest_digest);
    const char *ch = util__digest_hex(v[i].id);
    if (mh) {
      strv_push(hexes, mh);
      strv_push(manifests, mh);
    }
    if (ch)
      strv_push(hexes, ch);
    cleanup_free char *buf = NULL;
    size_t len;
    struct manifest m = {0};
    vmbox_error_t e = NULL;
    if (mh && store__read_blob(s, v[i].manifest_digest, &buf, &len, &e) == 0 &&
        manifest__parse(buf, len, NULL, &m, &e) == 0) {
      if (util__digest_hex(m.config.digest))
        strv_push(hexes, util__digest_hex(m.config.digest));
      for (size_t j = 0; j < m.n_layers; j++)
        if (util__digest_hex(m.layers[j].digest))
          strv_push(hexes, util__digest_hex(m.layers[j].digest));
      manifest__free(&m);
    }
    if (e)
      log__warn("image %s: %s (keeping its blobs)", v[i].id, e->msg);
    vmbox_error_free(&e);
  }
}

static void prune_dir(const char *dir, char **keep, const char *suffix, uint64_t *bytes,
                      size_t *count)
{
  DIR *d = opendir(dir);
  if (d == NULL)
    return;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name), sl = strlen(suffix);
    if (l != 64 + sl || strcmp(e->d_name + 64, suffix) != 0)
      continue; /* not ours: temp files, foreign names */
    cleanup_free char *hex = xstrndup(e->d_name, 64);
    struct stat st;
    if (strv_contains(keep, hex) || fstatat(dirfd(d), e->d_name, &st, 0) < 0)
      continue;
    if (unlinkat(dirfd(d), e->d_name, 0) == 0) {
      *bytes += (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size ? (uint64_t)st.st_blocks * 512
                                                                    : (uint64_t)st.st_size;
      if (count)
        (*count)++;
    }
  }
  closedir(d);
}

/* HEX.rootfs: the ns backend's unpacked image for rootless boxes.  A box
 * holds HEX.rootfs.lock shared while it runs on the tree: skip it then.
 * Renamed first: files of subuid owners may resist the user's rm, and the
 * backend removes HEX.rootfs.tmp.gc.* from its user namespace later. */
static void prune_trees(const char *dir, char **keep)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    if (strlen(e->d_name) != 64 + strlen(".rootfs") || strcmp(e->d_name + 64, ".rootfs") != 0)
      continue;
    cleanup_free char *hex = xstrndup(e->d_name, 64);
    if (strv_contains(keep, hex))
      continue;
    cleanup_free char *tree = util__fmt("%s/%s", dir, e->d_name);
    cleanup_free char *lock = util__fmt("%s.lock", tree);
    cleanup_close int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
      continue;
    cleanup_free char *gc = util__fmt("%s.tmp.gc.%d", tree, (int)getpid());
    if (rename(tree, gc) == 0 && util__rm_rf(gc, NULL) == 0)
      unlink(lock);
  }
  if (d)
    closedir(d);
}

static int prune_locked(struct store *s, uint64_t *freed, size_t *nblobs, vmbox_error_t *err)
{
  struct image_record *v = NULL;
  size_t n = 0;
  if (index__load(s, &v, &n, err) < 0)
    return -1;
  cleanup_strv char **hexes = NULL, **manifests = NULL;
  collect_refs(s, v, n, &hexes, &manifests);
  image_record__list_free(v, n);
  cleanup_free char *blobs = util__fmt("%s/blobs/sha256", s->root);
  cleanup_free char *ext4 = util__fmt("%s/ext4", s->root);
  prune_dir(blobs, hexes, "", freed, nblobs);
  prune_dir(ext4, manifests, ".ext4", freed, NULL);
  prune_trees(ext4, manifests);
  /* flatten's per-manifest locks: safe to drop, as no flatten of an unindexed
   * manifest can run while we hold gc.lock exclusively. */
  prune_dir(ext4, manifests, ".lock", freed, NULL);
  return 0;
}

/* Takes gc.lock exclusively on the store's own gc fd, so a process that holds
 * it shared (it wrote blobs) converts instead of deadlocking on itself.
 * Returns 1 (nowait) when another process holds it. */
static int gc_exclusive(struct store *s, bool *opened, bool nowait, vmbox_error_t *err)
{
  pthread_mutex_lock(&s->gc_mu);
  *opened = s->gc_fd < 0;
  if (*opened) {
    cleanup_free char *path = util__fmt("%s/gc.lock", s->root);
    s->gc_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->gc_fd < 0) {
      pthread_mutex_unlock(&s->gc_mu);
      return vmbox_error_sys(err, "open %s", path);
    }
  }
  int r;
  while ((r = flock(s->gc_fd, LOCK_EX | (nowait ? LOCK_NB : 0))) < 0 && errno == EINTR)
    ;
  int e = errno;
  if (r < 0) {
    if (*opened) {
      close(s->gc_fd);
      s->gc_fd = -1;
    } else {
      flock(s->gc_fd, LOCK_SH); /* a failed conversion may have dropped it */
    }
    r = e == EWOULDBLOCK ? 1 : vmbox_error_set(err, e, "lock %s/gc.lock", s->root);
  }
  pthread_mutex_unlock(&s->gc_mu);
  return r;
}

static void gc_exclusive_end(struct store *s, bool opened)
{
  pthread_mutex_lock(&s->gc_mu);
  if (opened) {
    close(s->gc_fd);
    s->gc_fd = -1;
  } else {
    while (flock(s->gc_fd, LOCK_SH) < 0 && errno == EINTR)
      ;
  }
  pthread_mutex_unlock(&s->gc_mu);
}

static int prune(struct store *s, bool nowait, uint64_t *freed_bytes, size_t *freed_blobs,
                 vmbox_error_t *err)
{
  uint64_t bytes = 0;
  size_t count = 0;
  bool opened;
  if (freed_bytes)
    *freed_bytes = 0;
  if (freed_blobs)
    *freed_blobs = 0;
  /* Exclusive gc lock: waits for imports and pulls whose blobs are not yet indexed. */
  int g = gc_exclusive(s, &opened, nowait, err);
  if (g != 0)
    return g;
  int r = store__lock(s, true, err);
  if (r == 0) {
    r = prune_locked(s, &bytes, &count, err);
    store__unlock(s);
  }
  gc_exclusive_end(s, opened);
  if (freed_bytes)
    *freed_bytes = bytes;
  if (freed_blobs)
    *freed_blobs = count;
  return r;
}

int store__prune(struct store *s, uint64_t *freed_bytes, size_t *freed_blobs, vmbox_error_t *err)
{
  return prune(s, false, freed_bytes, freed_blobs, err);
}

int store__prune_nowait(struct store *s, uint64_t *freed_bytes, size_t *freed_blobs,
                        vmbox_error_t *err)
{
  return prune(s, true, freed_bytes, freed_blobs, err);
}
