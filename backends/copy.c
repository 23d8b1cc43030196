/* Tree copies between two roots (see copy.h).
 *
 * A walker reads the source fd by fd (each entry opened O_PATH|O_NOFOLLOW
 * in its parent) and hands entries to a sink: the tree sink creates them in
 * the destination, again fd by fd; the tar sink writes them to a stream.
 * Paths given by the user are resolved once, with RESOLVE_IN_ROOT. */
#include "copy.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../lib/util.h"

#define RESOLVE_BOX (RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)

static int open_in(int root, const char *path, int flags)
{
  struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC), .resolve = RESOLVE_BOX};
  int fd;
  /* EAGAIN: a rename raced the lookup; the kernel asks us to retry. */
  do
    fd = (int)syscall(SYS_openat2, root, path, &how, sizeof(how));
  while (fd < 0 && errno == EAGAIN);
  return fd;
}

int copy__open_root(const char *path, vmbox_error_t *err)
{
  int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "open root %s", path);
  return fd;
}

/* ---- paths ---------------------------------------------------------------------- */

/* A user's path split as docker cp reads it: parent, last name ("" for the
 * root), a trailing "/" (must be a directory) or "/." (its contents). */
struct cpath {
  char *parent, *name;
  bool slash, dot;
};

static void cpath__split(const char *path, struct cpath *p)
{
  cleanup_free char *s = xstrdup(path);
  size_t n = strlen(s);
  p->dot = n >= 2 && strcmp(s + n - 2, "/.") == 0;
  if (p->dot)
    s[--n] = '\0';
  p->slash = n > 0 && s[n - 1] == '/';
  while (n > 1 && s[n - 1] == '/')
    s[--n] = '\0';
  char *last = strrchr(s, '/');
  p->name = xstrdup(last ? last + 1 : s);
  p->parent = last && last != s ? xstrndup(s, (size_t)(last - s)) : xstrdup("/");
  if (strcmp(p->name, "/") == 0)
    p->name[0] = '\0';
}

static void cpath__free(struct cpath *p)
{
  free(p->parent);
  free(p->name);
}

/* Opens REL (relative, '/'-separated) under dirfd one component at a time,
 * never through a symlink, creating missing directories when asked. */
static int open_dirs(int dirfd, const char *rel, bool create, vmbox_error_t *err)
{
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  cleanup_free char *s = xstrdup(rel);
  char *save = NULL;
  for (char *c = strtok_r(s, "/", &save); c && fd >= 0; c = strtok_r(NULL, "/", &save)) {
    if (strcmp(c, ".") == 0)
      continue;
    if (create && mkdirat(fd, c, 0755) < 0 && errno != EEXIST)
      break;
    int next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(fd);
    fd = next;
    errno = e;
  }
  if (fd < 0)
    return vmbox_error_sys(err, "open directory %s", rel);
  return fd;
}

/* ---- writing one entry (tree sink and tar input) ------------------------------ */

struct reader {
  ssize_t (*read)(void *ctx, char *buf, size_t n);
  void *ctx;
};

static ssize_t fd_read(void *ctx, char *buf, size_t n)
{
  ssize_t r;
  while ((r = read(*(int *)ctx, buf, n)) < 0 && errno == EINTR)
    ;
  return r;
}

static int write_content(int fd, const struct reader *rd, const char *name, vmbox_error_t *err)
{
  char buf[65536];
  for (;;) {
    ssize_t n = rd->read(rd->ctx, buf, sizeof(buf));
    if (n < 0)
      return vmbox_error_set(err, errno, "read %s", name);
    if (n == 0)
      return 0;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf + off, (size_t)(n - off));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0)
        return vmbox_error_sys(err, "write %s", name);
      off += w;
    }
  }
}

/* Mode, owner (archive) and times, on our temp name: never through a link. */
static int set_meta(int pfd, const char *tmp, const struct stat *st, const struct copy_opts *o)
{
  const struct timespec ts[2] = {st->st_atim, st->st_mtim};
  if (o->archive && fchownat(pfd, tmp, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
    return -1;
  if (!S_ISLNK(st->st_mode) && fchmodat(pfd, tmp, st->st_mode & 07777, AT_SYMLINK_NOFOLLOW) < 0)
    return -1;
  return utimensat(pfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
}

static int make_leaf(int pfd, const char *tmp, const struct stat *st, const char *link,
                     const struct reader *rd, const char *name, vmbox_error_t *err)
{
  if (link)
    return symlinkat(link, pfd, tmp) < 0 ? vmbox_error_sys(err, "create symlink %s", name) : 0;
  if (!S_ISREG(st->st_mode))
    return mknodat(pfd, tmp, st->st_mode & (S_IFMT | 07777), st->st_rdev) < 0
               ? vmbox_error_sys(err, "create %s", name)
               : 0;
  cleanup_close int fd =
      openat(pfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "create %s", name);
  return rd ? write_content(fd, rd, name, err) : 0;
}

/* A non-directory NAME in pfd: made under a temp name, then renamed over
 * whatever file or symlink was there (a directory there is an error). */
static int put_leaf(int pfd, const char *name, const struct stat *st, const char *link,
                    const struct reader *rd, const struct copy_opts *o, vmbox_error_t *err)
{
  static unsigned counter;
  char tmp[64];
  snprintf(tmp, sizeof(tmp), ".vmbox-cp.%d.%u", (int)getpid(), counter++);
  int r = make_leaf(pfd, tmp, st, link, rd, name, err);
  if (r == 0 && set_meta(pfd, tmp, st, o) < 0)
    r = vmbox_error_sys(err, "set owner, mode and times of %s", name);
  if (r == 0 && renameat(pfd, tmp, pfd, name) < 0) {
    r = errno == EISDIR ? vmbox_error_set(err, 0, "cannot overwrite directory %s %s with a file",
                                          name, o->dst_where)
                        : vmbox_error_sys(err, "rename into %s", name);
  }
  if (r < 0)
    unlinkat(pfd, tmp, 0);
  return r;
}

/* A directory NAME in pfd, created or reused; returns its fd. */
static int put_dir(int pfd, const char *name, const struct copy_opts *o, vmbox_error_t *err)
{
  if (mkdirat(pfd, name, 0700) < 0 && errno != EEXIST)
    return vmbox_error_sys(err, "create directory %s %s", name, o->dst_where);
  int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ENOTDIR || errno == ELOOP))
    return vmbox_error_set(err, 0, "cannot overwrite non-directory %s %s with a directory", name,
                           o->dst_where);
  if (fd < 0)
    return vmbox_error_sys(err, "open directory %s %s", name, o->dst_where);
  return fd;
}

/* NAME in pfd becomes a hard link to the file fd (O_PATH) is open on. */
static int put_link(int fd, int pfd, const char *name, vmbox_error_t *err)
{
  char tmp[64];
  snprintf(tmp, sizeof(tmp), ".vmbox-cp.%d.link", (int)getpid());
  if (linkat(fd, "", pfd, tmp, AT_EMPTY_PATH) < 0)
    return vmbox_error_sys(err, "hard link %s", name);
  if (renameat(pfd, tmp, pfd, name) < 0) {
    unlinkat(pfd, tmp, 0);
    return vmbox_error_sys(err, "hard link %s", name);
  }
  return 0;
}

static int dir_meta(int fd, const struct stat *st, const struct copy_opts *o, vmbox_error_t *err)
{
  const struct timespec ts[2] = {st->st_atim, st->st_mtim};
  if ((o->archive && fchown(fd, st->st_uid, st->st_gid) < 0) ||
      fchmod(fd, st->st_mode & 07777) < 0 || futimens(fd, ts) < 0)
    return vmbox_error_sys(err, "set owner, mode and times of a directory %s", o->dst_where);
  return 0;
}

/* ---- the walker ---------------------------------------------------------------- */

struct sink {
  /* A directory: *child is the handle its entries get as parent. */
  int (*dir_begin)(struct sink *k, void *parent, const char *name, const struct stat *st,
                   void **child, vmbox_error_t *err);
  /* After its entries; st NULL when they failed (only free then). */
  int (*dir_end)(struct sink *k, void *dir, const struct stat *st, vmbox_error_t *err);
  /* Anything else: fd is the content of a regular file, link a symlink's target. */
  int (*leaf)(struct sink *k, void *parent, const char *name, const struct stat *st, int fd,
              const char *link, vmbox_error_t *err);
  const struct copy_opts *o;
  struct archive *tar;
  struct seen *seen; /* tree sink: files with several links already copied */
  size_t n_seen;
};

/* A source file with st_nlink > 1 and the copy made of it: an O_PATH fd
 * (tree sink) or its path in the stream (tar sink). */
struct seen {
  dev_t dev;
  ino_t ino;
  int fd;
  char *path;
};

static int walk(struct sink *k, int fd, void *parent, const char *name, const struct stat *st,
                vmbox_error_t *err);

static int walk_children(struct sink *k, int pathfd, void *dir, vmbox_error_t *err)
{
  int dfd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (d == NULL) {
    if (dfd >= 0)
      close(dfd);
    return vmbox_error_sys(err, "read directory %s", k->o->src_where);
  }
  int r = 0;
  struct dirent *e;
  while (r == 0 && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    cleanup_close int cfd = openat(dfd, e->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat cst;
    if (cfd < 0 && errno == ENOENT)
      continue; /* removed while we copy */
    if (cfd < 0 || fstat(cfd, &cst) < 0)
      r = vmbox_error_sys(err, "open %s %s", e->d_name, k->o->src_where);
    else
      r = walk(k, cfd, dir, e->d_name, &cst, err);
  }
  closedir(d);
  return r;
}

static int walk_leaf(struct sink *k, int fd, void *parent, const char *name, const struct stat *st,
                     vmbox_error_t *err)
{
  char link[PATH_MAX];
  if (S_ISLNK(st->st_mode)) {
    ssize_t n = readlinkat(fd, "", link, sizeof(link) - 1);
    if (n < 0)
      return vmbox_error_sys(err, "read symlink %s %s", name, k->o->src_where);
    link[n] = '\0';
    return k->leaf(k, parent, name, st, -1, link, err);
  }
  if (!S_ISREG(st->st_mode))
    return k->leaf(k, parent, name, st, -1, NULL, err);
  /* Reopening our own O_PATH fd: the box has no say in /proc/self. */
  char p[64];
  snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
  cleanup_close int cfd = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (cfd < 0)
    return vmbox_error_sys(err, "open %s %s", name, k->o->src_where);
  return k->leaf(k, parent, name, st, cfd, NULL, err);
}

static int walk(struct sink *k, int fd, void *parent, const char *name, const struct stat *st,
                vmbox_error_t *err)
{
  if (S_ISSOCK(st->st_mode))
    return 0; /* as docker: sockets are not copied */
  if (!S_ISDIR(st->st_mode))
    return walk_leaf(k, fd, parent, name, st, err);
  void *child;
  if (k->dir_begin(k, parent, name, st, &child, err) < 0)
    return -1;
  int r = walk_children(k, fd, child, err);
  if (k->dir_end(k, child, r == 0 ? st : NULL, r == 0 ? err : NULL) < 0)
    r = -1;
  return r;
}

/* ---- the tree sink (parent handles are dir fds) ------------------------------- */

static int tree_dir_begin(struct sink *k, void *parent, const char *name, const struct stat *st,
                          void **child, vmbox_error_t *err)
{
  (void)st;
  int fd = put_dir((int)(intptr_t)parent, name, k->o, err);
  *child = (void *)(intptr_t)fd;
  return fd < 0 ? -1 : 0;
}

static int tree_dir_end(struct sink *k, void *dir, const struct stat *st, vmbox_error_t *err)
{
  int fd = (int)(intptr_t)dir;
  int r = st ? dir_meta(fd, st, k->o, err) : 0;
  close(fd);
  return r;
}

static const struct seen *seen_find(const struct sink *k, const struct stat *st)
{
  for (size_t i = 0; i < k->n_seen; i++)
    if (k->seen[i].dev == st->st_dev && k->seen[i].ino == st->st_ino)
      return &k->seen[i];
  return NULL;
}

static void seen_free(struct sink *k)
{
  for (size_t i = 0; i < k->n_seen; i++) {
    if (k->seen[i].fd >= 0)
      close(k->seen[i].fd);
    free(k->seen[i].path);
  }
  free(k->seen);
}

static void seen_add(struct sink *k, const struct stat *st, int fd, char *path)
{
  k->seen = xrealloc(k->seen, (k->n_seen + 1) * sizeof(*k->seen));
  k->seen[k->n_seen++] = (struct seen){st->st_dev, st->st_ino, fd, path};
}

/* Hard links inside the tree stay hard links, as in docker's tar. */
static int tree_leaf(struct sink *k, void *parent, const char *name, const struct stat *st, int fd,
                     const char *link, vmbox_error_t *err)
{
  int pfd = (int)(intptr_t)parent;
  bool multi = S_ISREG(st->st_mode) && st->st_nlink > 1;
  const struct seen *s = multi ? seen_find(k, st) : NULL;
  if (s)
    return put_link(s->fd, pfd, name, err);
  struct reader rd = {fd_read, &fd};
  if (put_leaf(pfd, name, st, link, fd >= 0 ? &rd : NULL, k->o, err) < 0)
    return -1;
  int copy = multi ? openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1;
  if (copy >= 0)
    seen_add(k, st, copy, NULL);
  return 0;
}

/* ---- SRC and DST as the user gave them ------------------------------------------ */

struct source {
  int fd; /* O_PATH */
  struct stat st;
  char *name;
  bool contents; /* "/." or the root: the directory's entries, not itself */
};

static int source__open(int root, const char *path, const struct copy_opts *o, struct source *s,
                        vmbox_error_t *err)
{
  struct cpath p;
  cpath__split(path, &p);
  bool follow = o->follow || p.slash || p.dot;
  s->fd = -1;
  s->name = steal_pointer(&p.name);
  s->contents = p.dot || s->name[0] == '\0';
  if (follow || s->name[0] == '\0') {
    s->fd = open_in(root, path, O_PATH);
  } else {
    cleanup_close int pfd = open_in(root, p.parent, O_PATH | O_DIRECTORY);
    s->fd = pfd < 0 ? -1 : openat(pfd, s->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  }
  cpath__free(&p);
  if (s->fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return vmbox_error_set(err, 0, "Could not find the file %s %s", path, o->src_where);
  if (s->fd < 0 || fstat(s->fd, &s->st) < 0)
    return vmbox_error_sys(err, "open %s %s", path, o->src_where);
  if ((p.slash || p.dot) && !S_ISDIR(s->st.st_mode))
    return vmbox_error_set(err, 0, "%s %s is not a directory", path, o->src_where);
  return 0;
}

static void source__free(struct source *s)
{
  if (s->fd >= 0)
    close(s->fd);
  free(s->name);
}

/* Where SRC lands: a parent dir fd and a name, or (merge) an existing dir. */
static int target_existing(int root, const char *dst, const struct cpath *d, int dfd,
                           const struct source *s, const struct copy_opts *o, int *pfd, char **name,
                           vmbox_error_t *err)
{
  struct stat st;
  if (fstat(dfd, &st) < 0)
    return vmbox_error_sys(err, "stat %s %s", dst, o->dst_where);
  bool src_dir = S_ISDIR(s->st.st_mode);
  if (S_ISDIR(st.st_mode)) {
    *pfd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *name = s->contents ? NULL : xstrdup(s->name);
    return *pfd < 0 ? vmbox_error_sys(err, "open %s %s", dst, o->dst_where) : 0;
  }
  if (src_dir)
    return vmbox_error_set(err, 0, "cannot copy a directory to %s %s: it is a file", dst,
                           o->dst_where);
  if (d->slash)
    return vmbox_error_set(err, 0, "%s %s is not a directory", dst, o->dst_where);
  *pfd = open_in(root, d->parent, O_RDONLY | O_DIRECTORY);
  *name = xstrdup(d->name);
  return *pfd < 0 ? vmbox_error_sys(err, "open %s %s", d->parent, o->dst_where) : 0;
}

static int target_open(int root, const char *dst, const struct source *s, const struct copy_opts *o,
                       int *pfd, char **name, vmbox_error_t *err)
{
  struct cpath d;
  cpath__split(dst, &d);
  int r;
  cleanup_close int dfd = open_in(root, dst, O_PATH);
  if (dfd >= 0) {
    r = target_existing(root, dst, &d, dfd, s, o, pfd, name, err);
  } else if (errno != ENOENT) {
    r = vmbox_error_sys(err, "open %s %s", dst, o->dst_where);
  } else if (d.slash && !S_ISDIR(s->st.st_mode)) {
    r = vmbox_error_set(err, 0, "the destination directory %s %s must exist", dst, o->dst_where);
  } else if ((*pfd = open_in(root, d.parent, O_RDONLY | O_DIRECTORY)) < 0) {
    r = errno == ENOENT || errno == ENOTDIR
            ? vmbox_error_set(err, 0, "Could not find the directory %s %s", d.parent, o->dst_where)
            : vmbox_error_sys(err, "open %s %s", d.parent, o->dst_where);
  } else {
    *name = xstrdup(d.name);
    r = 0;
  }
  cpath__free(&d);
  return r;
}

/* Our files get exactly the modes we ask for. */
struct umask_guard {
  mode_t old;
};
static void umask_restore(struct umask_guard *g)
{
  umask(g->old);
}
#define UMASK_ZERO                                                                                 \
  __attribute__((cleanup(umask_restore))) struct umask_guard _um = {umask(0)};                     \
  (void)_um

int copy__tree(int src_root, const char *src, int dst_root, const char *dst,
               const struct copy_opts *o, vmbox_error_t *err)
{
  UMASK_ZERO;
  struct source s;
  cleanup_free char *name = NULL;
  cleanup_close int pfd = -1;
  int r = source__open(src_root, src, o, &s, err);
  if (r == 0)
    r = target_open(dst_root, dst, &s, o, &pfd, &name, err);
  struct sink k = {tree_dir_begin, tree_dir_end, tree_leaf, o, NULL, NULL, 0};
  if (r == 0 && name)
    r = walk(&k, s.fd, (void *)(intptr_t)pfd, name, &s.st, err);
  else if (r == 0)
    r = walk_children(&k, s.fd, (void *)(intptr_t)pfd, err);
  seen_free(&k);
  source__free(&s);
  return r;
}

/* ---- tar out (parent handles are relative paths) ----------------------------- */

static int tar_fail(struct archive *a, vmbox_error_t *err)
{
  return vmbox_error_set(err, archive_errno(a) > 0 ? archive_errno(a) : 0, "tar stream: %s",
                         archive_error_string(a) ? archive_error_string(a) : "error");
}

static char *join(void *parent, const char *name)
{
  const char *p = parent;
  return *p ? util__fmt("%s/%s", p, name) : xstrdup(name);
}

/* hardlink: an earlier entry this one is a link to (no data follows). */
static int tar_header(struct sink *k, const char *path, const struct stat *st, const char *link,
                      const char *hardlink, vmbox_error_t *err)
{
  struct archive_entry *e = archive_entry_new();
  archive_entry_copy_stat(e, st);
  archive_entry_set_pathname(e, path);
  if (link)
    archive_entry_set_symlink(e, link);
  if (hardlink) {
    archive_entry_set_hardlink(e, hardlink);
    archive_entry_set_size(e, 0);
  }
  int r = archive_write_header(k->tar, e);
  archive_entry_free(e);
  return r < ARCHIVE_WARN ? tar_fail(k->tar, err) : 0;
}

static int tar_dir_begin(struct sink *k, void *parent, const char *name, const struct stat *st,
                         void **child, vmbox_error_t *err)
{
  char *path = join(parent, name);
  *child = path;
  return tar_header(k, path, st, NULL, NULL, err);
}

static int tar_dir_end(struct sink *k, void *dir, const struct stat *st, vmbox_error_t *err)
{
  (void)k, (void)st, (void)err;
  free(dir);
  return 0;
}

static int tar_leaf(struct sink *k, void *parent, const char *name, const struct stat *st, int fd,
                    const char *link, vmbox_error_t *err)
{
  cleanup_free char *path = join(parent, name);
  /* Hard links inside the tree stay hard links, as in docker's tar. */
  bool multi = S_ISREG(st->st_mode) && st->st_nlink > 1;
  const struct seen *s = multi ? seen_find(k, st) : NULL;
  if (s)
    return tar_header(k, path, st, NULL, s->path, err);
  if (tar_header(k, path, st, link, NULL, err) < 0)
    return -1;
  if (multi)
    seen_add(k, st, -1, xstrdup(path));
  char buf[65536];
  ssize_t n;
  while (fd >= 0 && (n = fd_read(&fd, buf, sizeof(buf))) != 0) {
    if (n < 0)
      return vmbox_error_sys(err, "read %s %s", path, k->o->src_where);
    if (archive_write_data(k->tar, buf, (size_t)n) < 0)
      return tar_fail(k->tar, err);
  }
  return 0;
}

int copy__to_tar(int src_root, const char *src, int out_fd, const struct copy_opts *o,
                 vmbox_error_t *err)
{
  struct source s;
  if (source__open(src_root, src, o, &s, err) < 0) {
    source__free(&s);
    return -1;
  }
  struct archive *a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  struct sink k = {tar_dir_begin, tar_dir_end, tar_leaf, o, a, NULL, 0};
  int r = archive_write_open_fd(a, out_fd) != ARCHIVE_OK ? tar_fail(a, err) : 0;
  if (r == 0 && s.contents)
    r = walk_children(&k, s.fd, "", err);
  else if (r == 0)
    r = walk(&k, s.fd, "", s.name, &s.st, err);
  if (archive_write_close(a) != ARCHIVE_OK && r == 0)
    r = tar_fail(a, err);
  archive_write_free(a);
  seen_free(&k);
  source__free(&s);
  return r;
}

/* ---- tar in ------------------------------------------------------------------------ */

static ssize_t tar_read(void *ctx, char *buf, size_t n)
{
  la_ssize_t r = archive_read_data(ctx, buf, n);
  if (r < 0)
    errno = archive_errno(ctx) > 0 ? archive_errno(ctx) : EIO;
  return (ssize_t)r;
}

/* "./a/b" -> "a/b"; NULL for a path that would leave DST. */
static char *tar_clean(const char *path)
{
  while (*path == '/' || (path[0] == '.' && path[1] == '/'))
    path += *path == '/' ? 1 : 2;
  cleanup_free char *s = xstrdup(path);
  char *save = NULL;
  for (char *c = strtok_r(s, "/", &save); c; c = strtok_r(NULL, "/", &save))
    if (strcmp(c, "..") == 0)
      return NULL;
  size_t n = strlen(path);
  while (n > 0 && path[n - 1] == '/')
    n--;
  return xstrndup(path, n);
}

/* A hard link entry: the target is an earlier entry of the same stream. */
static int tar_hardlink(int dfd, int pfd, const char *name, const char *target, vmbox_error_t *err)
{
  cleanup_free char *t = tar_clean(target);
  if (t == NULL || *t == '\0')
    return vmbox_error_set(err, 0, "tar stream: hard link %s leaves the destination", target);
  char *slash = strrchr(t, '/');
  cleanup_close int tp = open_dirs(dfd, slash ? (*slash = '\0', t) : "", false, err);
  if (tp < 0)
    return -1;
  cleanup_close int fd = openat(tp, slash ? slash + 1 : t, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "hard link %s to %s", name, target);
  return put_link(fd, pfd, name, err);
}

static int tar_entry(struct archive *a, struct archive_entry *e, int dfd, const struct copy_opts *o,
                     vmbox_error_t *err)
{
  cleanup_free char *path = tar_clean(archive_entry_pathname(e));
  if (path == NULL)
    return vmbox_error_set(err, 0, "tar stream: %s leaves the destination",
                           archive_entry_pathname(e));
  if (*path == '\0')
    return 0; /* "./": the destination itself */
  char *slash = strrchr(path, '/');
  const char *name = slash ? slash + 1 : path;
  cleanup_close int pfd = open_dirs(dfd, slash ? (*slash = '\0', path) : "", true, err);
  if (pfd < 0)
    return -1;
  const struct stat *st = archive_entry_stat(e);
  if (archive_entry_hardlink(e))
    return tar_hardlink(dfd, pfd, name, archive_entry_hardlink(e), err);
  if (S_ISDIR(st->st_mode)) {
    cleanup_close int fd = put_dir(pfd, name, o, err);
    return fd < 0 ? -1 : dir_meta(fd, st, o, err);
  }
  struct reader rd = {tar_read, a};
  return put_leaf(pfd, name, st, S_ISLNK(st->st_mode) ? archive_entry_symlink(e) : NULL,
                  S_ISREG(st->st_mode) ? &rd : NULL, o, err);
}

int copy__from_tar(int in_fd, int dst_root, const char *dst, const struct copy_opts *o,
                   vmbox_error_t *err)
{
  UMASK_ZERO;
  cleanup_close int dfd = open_in(dst_root, dst, O_RDONLY | O_DIRECTORY);
  if (dfd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return vmbox_error_set(err, 0, "the destination %s %s must be an existing directory", dst,
                           o->dst_where);
  if (dfd < 0)
    return vmbox_error_sys(err, "open %s %s", dst, o->dst_where);
  struct archive *a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  int r = archive_read_open_fd(a, in_fd, 65536) != ARCHIVE_OK ? tar_fail(a, err) : 0;
  struct archive_entry *e;
  while (r == 0) {
    int h = archive_read_next_header(a, &e);
    if (h == ARCHIVE_EOF)
      break;
    r = h < ARCHIVE_WARN ? tar_fail(a, err) : tar_entry(a, e, dfd, o, err);
  }
  archive_read_free(a);
  return r;
}
