/* Layer reader: libarchive in, ext4 tree out (see layer.h). */
#include "layer.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "../lib/util.h"

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define WH_META ".wh..wh." /* aufs bookkeeping (.wh..wh.plnk...): never content */
#define MAX_SYMLINK_FOLLOWS 40
#define NAME_MAX_EXT4 255

static int layer_open(const char *path, struct archive **out, vmbox_error_t *err)
{
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_empty(a);
  if (archive_read_open_filename(a, path, 1 << 20) != ARCHIVE_OK) {
    vmbox_error_set(err, archive_errno(a) > 0 ? archive_errno(a) : 0, "open layer %s: %s", path,
                    archive_error_string(a));
    archive_read_free(a);
    return -1;
  }
  *out = a;
  return 0;
}

/* --- paths --------------------------------------------------------------------- */

struct comp {
  const char *s;
  size_t len;
};

struct path {
  struct comp *c;
  size_t n;
};

/* Cleans an entry name lexically: leading "/", "", "." are dropped and ".."
 * pops, never above the root, so "../../etc/x" and "/etc/x" land on /etc/x
 * inside the image (as securejoin does for umoci). */
static int path_split(const char *name, struct path *p, vmbox_error_t *err)
{
  p->n = 0;
  for (const char *s = name; *s;) {
    while (*s == '/')
      s++;
    const char *e = strchrnul(s, '/');
    size_t len = (size_t)(e - s);
    if (len == 0 || (len == 1 && s[0] == '.')) {
    } else if (len == 2 && s[0] == '.' && s[1] == '.') {
      if (p->n > 0)
        p->n--;
    } else if (len > NAME_MAX_EXT4) {
      return vmbox_error_set(err, ENAMETOOLONG, "name component of %zu bytes (max %d)", len,
                             NAME_MAX_EXT4);
    } else {
      p->c[p->n++] = (struct comp){s, len};
    }
    s = e;
  }
  return 0;
}

struct walker {
  struct ext4 *fs;
  uint32_t layer;
  bool create; /* make missing directories (0755, as Docker does) */
  int follows; /* symlinks followed for this path: bounded in total, as in the
                  kernel, so nested links cannot make the walk exponential */
};

static int walk(struct walker *w, struct ext4_node *dir, const char *path, struct ext4_node **out,
                vmbox_error_t *err);

/* Steps into one component of a directory path, following symlinks inside the
 * image: an absolute target restarts at the image root, never the host's. */
static int step(struct walker *w, struct ext4_node *dir, struct comp c, struct ext4_node **out,
                vmbox_error_t *err)
{
  struct ext4_node *n = ext4__lookup(w->fs, dir, c.s, c.len);
  if (!n && !w->create) {
    *out = NULL;
    return 0;
  }
  if (!n) {
    struct ext4_meta m = {.mode = S_IFDIR | 0755};
    if (ext4__mkdir(w->fs, dir, c.s, c.len, &m, w->layer, &n, err) < 0)
      return -1;
  }
  if (S_ISLNK(n->mode)) {
    if (++w->follows > MAX_SYMLINK_FOLLOWS)
      return vmbox_error_set(err, ELOOP, "resolve %.*s", (int)c.len, c.s);
    struct ext4_node *start = n->target[0] == '/' ? ext4__root(w->fs) : dir, *to;
    if (walk(w, start, n->target, &to, err) < 0)
      return -1;
    if (!to) {
      *out = NULL;
      return 0;
    }
    n = to;
  }
  /* A lookup through a non-directory finds nothing: umoci treats a whiteout
   * under a path a later entry turned into a file as a no-op, and so do we. */
  if (!S_ISDIR(n->mode) && !w->create) {
    *out = NULL;
    return 0;
  }
  if (!S_ISDIR(n->mode))
    return vmbox_error_set(err, ENOTDIR, "parent %.*s is not a directory", (int)c.len, c.s);
  if (n->layer != EXT4_LAYER_KEEP)
    n->layer = w->layer;
  *out = n;
  return 0;
}

/* Resolves a symlink target as a directory: ".." here is the tree's parent. */
static int walk(struct walker *w, struct ext4_node *dir, const char *path, struct ext4_node **out,
                vmbox_error_t *err)
{
  for (const char *s = path; *s && dir;) {
    while (*s == '/')
      s++;
    const char *e = strchrnul(s, '/');
    size_t len = (size_t)(e - s);
    if (len == 2 && s[0] == '.' && s[1] == '.')
      dir = dir->parent;
    else if (len > 0 && !(len == 1 && s[0] == '.') &&
             step(w, dir, (struct comp){s, len}, &dir, err) < 0)
      return -1;
    s = e;
  }
  *out = dir;
  return 0;
}

/* The directory holding the last component of p (NULL if missing, !create). */
static int parent_of(struct walker *w, const struct path *p, struct ext4_node **out,
                     vmbox_error_t *err)
{
  struct ext4_node *dir = ext4__root(w->fs);
  w->follows = 0;
  for (size_t i = 0; i + 1 < p->n && dir; i++)
    if (step(w, dir, p->c[i], &dir, err) < 0)
      return -1;
  *out = dir;
  return 0;
}

/* --- applying entries ---------------------------------------------------------- */

struct applier {
  struct walker w;
  struct archive *a;
  struct layer_limits *lim;
  struct ext4_xattr *xattrs;
  size_t n_xattrs, cap_xattrs;
};

static void entry_meta(struct applier *ap, struct archive_entry *e, struct ext4_meta *m)
{
  memset(m, 0, sizeof(*m));
  m->mode = archive_entry_mode(e);
  m->uid = (uint32_t)archive_entry_uid(e);
  m->gid = (uint32_t)archive_entry_gid(e);
  m->mtime = archive_entry_mtime(e);
  m->mtime_ns = archive_entry_mtime_nsec(e);
  m->atime = m->mtime, m->atime_ns = m->mtime_ns;
  m->ctime = m->mtime, m->ctime_ns = m->mtime_ns;
  if (archive_entry_atime_is_set(e))
    m->atime = archive_entry_atime(e), m->atime_ns = archive_entry_atime_nsec(e);
  if (archive_entry_ctime_is_set(e))
    m->ctime = archive_entry_ctime(e), m->ctime_ns = archive_entry_ctime_nsec(e);
  m->rdev_major = (uint32_t)archive_entry_rdevmajor(e);
  m->rdev_minor = (uint32_t)archive_entry_rdevminor(e);
  m->target = archive_entry_symlink(e);
  /* Linux symlinks are always 0777 (symlink(2) takes no mode), as under Docker. */
  if (S_ISLNK(m->mode))
    m->mode = S_IFLNK | 0777;
  /* PAX SCHILY.xattr.* records: security.capability among them. */
  ap->n_xattrs = 0;
  archive_entry_xattr_reset(e);
  const char *name;
  const void *value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (ap->n_xattrs == ap->cap_xattrs) {
      ap->cap_xattrs = ap->cap_xattrs ? ap->cap_xattrs * 2 : 8;
      ap->xattrs = xrealloc(ap->xattrs, ap->cap_xattrs * sizeof(*ap->xattrs));
    }
    ap->xattrs[ap->n_xattrs++] = (struct ext4_xattr){name, value, size};
  }
  m->xattrs = ap->xattrs;
  m->n_xattrs = ap->n_xattrs;
}

static ssize_t archive_reader(void *ctx, void *buf, size_t len, vmbox_error_t *err)
{
  struct archive *a = ctx;
  la_ssize_t r = archive_read_data(a, buf, len);
  if (r < 0)
    return vmbox_error_set(err, 0, "read data: %s", archive_error_string(a));
  return r;
}

/* Hides everything lower layers put under dir, keeping this layer's entries
 * wherever they came in the tar relative to the marker. */
static int make_opaque(struct applier *ap, struct ext4_node *dir, vmbox_error_t *err)
{
  struct ext4_node *c = dir->first, *next;
  for (; c; c = next) {
    next = c->next;
    if (c->layer != ap->w.layer && c->layer != EXT4_LAYER_KEEP) {
      if (ext4__remove(ap->w.fs, c, err) < 0)
        return -1;
    } else if (S_ISDIR(c->mode) && make_opaque(ap, c, err) < 0) {
      return -1;
    }
  }
  return 0;
}

static int apply_whiteout(struct applier *ap, const struct path *p, vmbox_error_t *err)
{
  struct comp base = p->c[p->n - 1];
  struct ext4_node *dir;
  ap->w.create = false;
  if (parent_of(&ap->w, p, &dir, err) < 0)
    return -1;
  if (!dir)
    return 0;
  if (base.len == strlen(WH_OPAQUE) && !memcmp(base.s, WH_OPAQUE, base.len))
    return make_opaque(ap, dir, err);
  if (base.len >= strlen(WH_META) && !memcmp(base.s, WH_META, strlen(WH_META)))
    return 0;
  size_t skip = strlen(WH_PREFIX);
  struct ext4_node *victim = ext4__lookup(ap->w.fs, dir, base.s + skip, base.len - skip);
  /* A whiteout hides lower layers only, never its own layer's entries. */
  if (!victim || victim->layer == ap->w.layer || victim->layer == EXT4_LAYER_KEEP)
    return 0;
  return ext4__remove(ap->w.fs, victim, err);
}

static int apply_hardlink(struct applier *ap, struct ext4_node *dir, struct comp base,
                          const char *target, vmbox_error_t *err)
{
  cleanup_free struct comp *c = xcalloc(strlen(target) / 2 + 2, sizeof(*c));
  struct path tp = {c, 0};
  struct ext4_node *tdir = NULL, *t = NULL;
  if (path_split(target, &tp, err) < 0)
    return vmbox_error_wrap(err, "hardlink target %s", target);
  ap->w.create = false;
  if (tp.n > 0 && parent_of(&ap->w, &tp, &tdir, err) < 0)
    return vmbox_error_wrap(err, "hardlink target %s", target);
  if (tdir)
    t = ext4__lookup(ap->w.fs, tdir, tp.c[tp.n - 1].s, tp.c[tp.n - 1].len);
  if (!t)
    return vmbox_error_set(err, ENOENT, "hardlink target %s does not exist", target);
  return ext4__link(ap->w.fs, dir, base.s, base.len, t, ap->w.layer, err);
}

static int check_bounds(struct applier *ap, struct archive_entry *e, vmbox_error_t *err)
{
  struct layer_limits *lim = ap->lim;
  if (++lim->entries > lim->max_entries)
    return vmbox_error_set(err, 0, "image has more than %llu entries",
                           (unsigned long long)lim->max_entries);
  uint64_t size = archive_entry_size_is_set(e) ? (uint64_t)archive_entry_size(e) : 0;
  if (ext4__bytes_written(ap->w.fs) + size > lim->max_bytes)
    return vmbox_error_set(err, EFBIG, "image content exceeds %llu bytes",
                           (unsigned long long)lim->max_bytes);
  return 0;
}

static int apply_entry(struct applier *ap, struct archive_entry *e, struct path *p,
                       vmbox_error_t *err)
{
  if (check_bounds(ap, e, err) < 0 || path_split(archive_entry_pathname(e), p, err) < 0)
    return -1;
  struct ext4_meta m;
  entry_meta(ap, e, &m);
  struct ext4_node *dir, *n;
  if (p->n == 0) { /* "./": the root's own metadata */
    if (!S_ISDIR(m.mode))
      return vmbox_error_set(err, 0, "the root must be a directory");
    return ext4__mkdir(ap->w.fs, ext4__root(ap->w.fs), "", 0, &m, ap->w.layer, &n, err);
  }
  struct comp base = p->c[p->n - 1];
  if (base.len >= strlen(WH_PREFIX) && !memcmp(base.s, WH_PREFIX, strlen(WH_PREFIX)))
    return apply_whiteout(ap, p, err);
  ap->w.create = true;
  if (parent_of(&ap->w, p, &dir, err) < 0)
    return -1;
  const char *hl = archive_entry_hardlink(e);
  if (hl)
    return apply_hardlink(ap, dir, base, hl, err);
  if (S_ISDIR(m.mode))
    return ext4__mkdir(ap->w.fs, dir, base.s, base.len, &m, ap->w.layer, &n, err);
  if (S_ISLNK(m.mode) && !m.target)
    return vmbox_error_set(err, 0, "symlink without a target");
  return ext4__mknod(ap->w.fs, dir, base.s, base.len, &m, ap->w.layer, archive_reader, ap->a, err);
}

int layer__apply(struct ext4 *fs, const char *path, uint32_t layer, struct layer_limits *lim,
                 vmbox_error_t *err)
{
  struct applier ap = {.w = {.fs = fs, .layer = layer}, .lim = lim};
  if (layer_open(path, &ap.a, err) < 0)
    return -1;
  struct path p = {NULL, 0};
  size_t cap = 0;
  int ret = 0;
  for (;;) {
    struct archive_entry *e;
    int r = archive_read_next_header(ap.a, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      ret = vmbox_error_set(err, 0, "read layer %s: %s", path, archive_error_string(ap.a));
      break;
    }
    const char *name = archive_entry_pathname(e);
    if (!name) {
      ret = vmbox_error_set(err, 0, "read layer %s: entry without a name", path);
      break;
    }
    if (strlen(name) / 2 + 2 > cap) {
      cap = strlen(name) / 2 + 2;
      p.c = xrealloc(p.c, cap * sizeof(*p.c));
    }
    if (apply_entry(&ap, e, &p, err) < 0) {
      ret = vmbox_error_wrap(err, "layer %s: entry %s", path, name);
      break;
    }
  }
  free(p.c);
  free(ap.xattrs);
  archive_read_free(ap.a);
  return ret;
}

/* --- the sizing pass -------------------------------------------------------------- */

static int scan_entry(struct archive_entry *e, struct layer_stats *st,
                      const struct layer_limits *lim, vmbox_error_t *err)
{
  const char *name = archive_entry_pathname(e);
  const char *base = name ? strrchr(name, '/') : NULL;
  size_t blen = base ? strlen(base + 1) : (name ? strlen(name) : 0);
  mode_t mode = archive_entry_filetype(e);
  st->entries++;
  st->dirent_bytes += 8 + ((blen + 3) & ~(size_t)3);
  if (S_ISDIR(mode))
    st->dirs++;
  if (S_ISREG(mode) && !archive_entry_hardlink(e) && archive_entry_size(e) > 0) {
    uint64_t size = (uint64_t)archive_entry_size(e);
    st->data_bytes += size;
    /* + one extent-tree block per 128 MiB: files are rarely that fragmented */
    st->data_blocks += (size + 4095) / 4096 + size / (128 << 20);
  }
  if (S_ISLNK(mode) && archive_entry_symlink(e) && strlen(archive_entry_symlink(e)) >= 60)
    st->data_blocks++;
  if (archive_entry_xattr_count(e) > 0)
    st->xattr_entries++;
  if (st->entries > lim->max_entries)
    return vmbox_error_set(err, 0, "image has more than %llu entries",
                           (unsigned long long)lim->max_entries);
  if (st->data_bytes > lim->max_bytes)
    return vmbox_error_set(err, EFBIG, "image content exceeds %llu bytes",
                           (unsigned long long)lim->max_bytes);
  return 0;
}

int layer__scan(const char *path, struct layer_stats *st, const struct layer_limits *lim,
                vmbox_error_t *err)
{
  struct archive *a;
  if (layer_open(path, &a, err) < 0)
    return -1;
  int ret = 0;
  for (;;) {
    struct archive_entry *e;
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF)
      break;
    if (r < ARCHIVE_WARN) {
      ret = vmbox_error_set(err, 0, "read layer %s: %s", path, archive_error_string(a));
      break;
    }
    if (scan_entry(e, st, lim, err) < 0) {
      ret = vmbox_error_wrap(err, "layer %s", path);
      break;
    }
  }
  archive_read_free(a);
  return ret;
}

/* --- the cheap estimate ------------------------------------------------------------ */

int layer__estimate(const char *path, uint64_t *bytes, vmbox_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return vmbox_error_sys(err, "open layer %s", path);
  unsigned char head[512];
  ssize_t n = pread(fd, head, sizeof(head), 0);
  if (n < 0)
    return vmbox_error_sys(err, "read layer %s", path);
  uint64_t size = (uint64_t)st.st_size, guess;
  if (n >= 18 && head[0] == 0x1f && head[1] == 0x8b) {
    unsigned char t[4];
    if (pread(fd, t, 4, st.st_size - 4) != 4)
      return vmbox_error_sys(err, "read layer %s", path);
    guess = (uint64_t)t[0] | (uint64_t)t[1] << 8 | (uint64_t)t[2] << 16 | (uint64_t)t[3] << 24;
  } else if (n >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd) {
    unsigned long long c = ZSTD_getFrameContentSize(head, (size_t)n);
    if (c == ZSTD_CONTENTSIZE_UNKNOWN || c == ZSTD_CONTENTSIZE_ERROR)
      return 1;
    guess = c;
  } else if (n == 512 && !memcmp(head + 257, "ustar", 5)) {
    guess = size;
  } else if (size == 0) {
    guess = 0;
  } else {
    return 1;
  }
  /* ISIZE is modulo 4 GiB and covers only the last gzip member, a frame size
   * only the first zstd frame.  Compression hardly ever grows a tar, so an
   * uncompressed size below the compressed one means one of those cases. */
  if (guess < size - size / 16)
    return 1;
  *bytes = guess;
  return 0;
}
