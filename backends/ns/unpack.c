/* The root of a rootless box.  Only real root may mount a block file
 * system, so a rootless box cannot mount the cached ext4 image.  Instead
 * the image is unpacked once, with libext2fs, into a directory next to it
 * (ROOT/ext4/HEX.rootfs) that every rootless box of that image then binds
 * read-only as the overlay's lower layer: the per-box cost stays O(1).
 *
 * With a subuid range the unpack runs as root of a user namespace with the
 * boxes' map, so files keep the image's owners as the box sees them; with
 * the single-uid map they are all the user's (root in the box).  Modes and
 * times are the image's.  Device nodes are skipped: nobody can make them in
 * a user namespace, and the box's /dev is bound from the host.  Extended
 * attributes (file capabilities) are not kept.
 *
 * Concurrent first runs: an exclusive flock on HEX.rootfs.lock around the
 * unpack into a temp dir renamed into place.  Each box then keeps the lock
 * shared while it lives, so a prune cannot remove a tree in use. */
#include <dirent.h>
#include <errno.h>
#include <ext2fs/ext2fs.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "ns.h"

enum { COPY_BUF = 1 << 16 };

struct unpack {
  ext2_filsys fs;
  int rootfd; /* the tree being written */
  bool chown; /* keep the image's owners (subuid map) */
  char *buf;
  struct hardlink {
    ext2_ino_t ino;
    char *path; /* relative to the tree's root */
  } * links;
  size_t n_links;
};

struct dents {
  ext2_ino_t *ino;
  char **name;
  size_t n;
};

static int collect(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset, int blocksize,
                   char *buf, void *priv)
{
  (void)dir, (void)entry, (void)offset, (void)blocksize, (void)buf;
  struct dents *d = priv;
  int len = ext2fs_dirent_name_len(de);
  if ((len == 1 && de->name[0] == '.') || (len == 2 && de->name[0] == '.' && de->name[1] == '.'))
    return 0;
  if ((d->n & (d->n - 1)) == 0) { /* grow at powers of two */
    d->ino = xrealloc(d->ino, (d->n ? 2 * d->n : 1) * sizeof(*d->ino));
    d->name = xrealloc(d->name, (d->n ? 2 * d->n : 1) * sizeof(*d->name));
  }
  d->ino[d->n] = de->inode;
  d->name[d->n++] = xstrndup(de->name, (size_t)len);
  return 0;
}

static int ext2_err(vmbox_error_t *err, errcode_t e, const char *what, const char *path)
{
  return vmbox_error_set(err, 0, "%s %s in the image: %s", what, path, error_message(e));
}

/* Owner, mode and times from the image; after the contents, as a read-only
 * dir would refuse them, and the mode after the owner, as chown clears
 * set-id bits. */
static int set_meta(const struct unpack *u, int dfd, const char *name, const struct ext2_inode *in,
                    bool link, vmbox_error_t *err)
{
  struct timespec ts[2] = {{.tv_sec = in->i_atime}, {.tv_sec = in->i_mtime}};
  unsigned uid = inode_uid(*in), gid = inode_gid(*in);
  if (u->chown && fchownat(dfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
    vmbox_error_sys(err, "chown %s to %u:%u", name, uid, gid);
    return errno == EINVAL ? vmbox_error_hint(err, "the image uses ids beyond your range in "
                                                   "/etc/subuid or /etc/subgid: widen it")
                           : -1;
  }
  if (!link && fchmodat(dfd, name, in->i_mode & 07777, 0) < 0)
    return vmbox_error_sys(err, "chmod %s", name);
  if (utimensat(dfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return vmbox_error_sys(err, "set the times of %s", name);
  return 0;
}

static int write_all(int fd, const char *buf, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, buf, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    buf += w, n -= (size_t)w;
  }
  return 0;
}

static int copy_data(struct unpack *u, ext2_ino_t ino, struct ext2_inode *in, int fd,
                     const char *path, vmbox_error_t *err)
{
  ext2_file_t f = NULL;
  errcode_t e = ext2fs_file_open2(u->fs, ino, in, 0, &f);
  if (e)
    return ext2_err(err, e, "open", path);
  int r = 0;
  for (;;) {
    unsigned int got = 0;
    if ((e = ext2fs_file_read(f, u->buf, COPY_BUF, &got))) {
      r = ext2_err(err, e, "read", path);
      break;
    }
    if (got == 0)
      break;
    if (write_all(fd, u->buf, got) < 0) {
      r = vmbox_error_sys(err, "write %s", path);
      break;
    }
  }
  ext2fs_file_close(f);
  return r;
}

static int unpack_reg(struct unpack *u, int dfd, const char *path, const char *name, ext2_ino_t ino,
                      struct ext2_inode *in, vmbox_error_t *err)
{
  for (size_t i = 0; in->i_links_count > 1 && i < u->n_links; i++)
    if (u->links[i].ino == ino) {
      if (linkat(u->rootfd, u->links[i].path, dfd, name, 0) < 0)
        return vmbox_error_sys(err, "link %s to %s", path, u->links[i].path);
      return 0;
    }
  cleanup_close int fd =
      openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "create %s", path);
  if (copy_data(u, ino, in, fd, path, err) < 0 || set_meta(u, dfd, name, in, false, err) < 0)
    return -1;
  if (in->i_links_count > 1) {
    u->links = xrealloc(u->links, (u->n_links + 1) * sizeof(*u->links));
    u->links[u->n_links++] = (struct hardlink){ino, xstrdup(path + 1)};
  }
  return 0;
}

static int unpack_symlink(struct unpack *u, int dfd, const char *path, const char *name,
                          ext2_ino_t ino, struct ext2_inode *in, vmbox_error_t *err)
{
  size_t len = (size_t)EXT2_I_SIZE(in);
  if (len == 0 || len >= COPY_BUF)
    return vmbox_error_set(err, 0, "symlink %s in the image: bad target length", path);
  cleanup_free char *target = xcalloc(1, len + 1);
  if (ext2fs_is_fast_symlink(in)) {
    memcpy(target, in->i_block, len < sizeof(in->i_block) ? len : sizeof(in->i_block));
  } else {
    ext2_file_t f = NULL;
    unsigned int got = 0;
    errcode_t e = ext2fs_file_open2(u->fs, ino, in, 0, &f);
    if (!e)
      e = ext2fs_file_read(f, target, (unsigned int)len, &got);
    if (f)
      ext2fs_file_close(f);
    if (e)
      return ext2_err(err, e, "read symlink", path);
  }
  if (symlinkat(target, dfd, name) < 0)
    return vmbox_error_sys(err, "symlink %s", path);
  return set_meta(u, dfd, name, in, true, err);
}

static int unpack_dir(struct unpack *u, int dfd, const char *path, ext2_ino_t dino,
                      vmbox_error_t *err);

static int unpack_subdir(struct unpack *u, int dfd, const char *path, const char *name,
                         ext2_ino_t ino, struct ext2_inode *in, vmbox_error_t *err)
{
  if (mkdirat(dfd, name, 0700) < 0)
    return vmbox_error_sys(err, "mkdir %s", path);
  cleanup_close int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0)
    return vmbox_error_sys(err, "open %s", path);
  if (unpack_dir(u, sub, path, ino, err) < 0)
    return -1;
  return set_meta(u, dfd, name, in, false, err);
}

static int unpack_entry(struct unpack *u, int dfd, const char *dir, const char *name,
                        ext2_ino_t ino, vmbox_error_t *err)
{
  cleanup_free char *path = util__fmt("%s/%s", dir, name);
  if (name[0] == '\0' || strchr(name, '/'))
    return vmbox_error_set(err, 0, "bad file name in the image under %s/", dir);
  struct ext2_inode in;
  errcode_t e = ext2fs_read_inode(u->fs, ino, &in);
  if (e)
    return ext2_err(err, e, "read inode of", path);
  switch (in.i_mode & LINUX_S_IFMT) {
  case LINUX_S_IFDIR: return unpack_subdir(u, dfd, path, name, ino, &in, err);
  case LINUX_S_IFREG: return unpack_reg(u, dfd, path, name, ino, &in, err);
  case LINUX_S_IFLNK: return unpack_symlink(u, dfd, path, name, ino, &in, err);
  case LINUX_S_IFIFO:
  case LINUX_S_IFSOCK:
    if (mknodat(dfd, name, in.i_mode & (S_IFMT | 0600), 0) < 0)
      return vmbox_error_sys(err, "mknod %s", path);
    return set_meta(u, dfd, name, &in, false, err);
  default: log__debug("rootless: skipping device node %s", path); return 0;
  }
}

static int unpack_dir(struct unpack *u, int dfd, const char *path, ext2_ino_t dino,
                      vmbox_error_t *err)
{
  struct dents d = {0};
  errcode_t e = ext2fs_dir_iterate2(u->fs, dino, 0, NULL, collect, &d);
  int r = e ? ext2_err(err, e, "list", path[0] ? path : "/") : 0;
  for (size_t i = 0; i < d.n; i++) {
    if (r == 0)
      r = unpack_entry(u, dfd, path, d.name[i], d.ino[i], err);
    free(d.name[i]);
  }
  free(d.name);
  free(d.ino);
  return r;
}

struct job {
  const char *image, *dest;
  bool chown;
};

/* Unpacks the image into the empty dir dest (userns__run's fn). */
static int unpack_image(void *arg, vmbox_error_t *err)
{
  const struct job *j = arg;
  const char *image = j->image, *dest = j->dest;
  struct unpack u = {.rootfd = -1, .chown = j->chown};
  errcode_t e = ext2fs_open(image, 0, 0, 0, unix_io_manager, &u.fs);
  if (e)
    return vmbox_error_set(err, 0, "open image %s: %s", image, error_message(e));
  struct ext2_inode root;
  int r = -1;
  u.rootfd = open(dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  u.buf = xmalloc(COPY_BUF);
  if (u.rootfd < 0)
    vmbox_error_sys(err, "open %s", dest);
  else if ((e = ext2fs_read_inode(u.fs, EXT2_ROOT_INO, &root)))
    ext2_err(err, e, "read", "/");
  else if (unpack_dir(&u, u.rootfd, "", EXT2_ROOT_INO, err) == 0)
    r = set_meta(&u, u.rootfd, ".", &root, false, err);
  for (size_t i = 0; i < u.n_links; i++)
    free(u.links[i].path);
  free(u.links);
  free(u.buf);
  if (u.rootfd >= 0)
    close(u.rootfd);
  ext2fs_close_free(&u.fs);
  return r;
}

/* Temp dirs of unpacks of this image that died (the lock is ours: none
 * runs), and trees the store's prune renamed HEX.rootfs.tmp.gc.* but could
 * not remove (files of subuid owners are not the user's to remove). */
static void sweep_stale(const char *tree, const struct idmap *m)
{
  cleanup_free char *dir = xstrndup(tree, (size_t)(strrchr(tree, '/') - tree));
  cleanup_free char *prefix = util__fmt("%s.tmp.", strrchr(tree, '/') + 1);
  DIR *d = opendir(dir);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL)
    if (util__has_prefix(e->d_name, prefix) || strstr(e->d_name, ".rootfs.tmp.gc.")) {
      cleanup_free char *p = util__fmt("%s/%s", dir, e->d_name);
      userns__rm_rf(m, p, NULL);
    }
  if (d)
    closedir(d);
}

static int unpack_locked(const char *image, const char *tree, const struct idmap *m,
                         vmbox_error_t *err)
{
  struct stat st;
  if (stat(tree, &st) == 0 && S_ISDIR(st.st_mode))
    return 0;
  sweep_stale(tree, m);
  cleanup_free char *tmp = util__fmt("%s.tmp.XXXXXX", tree);
  if (mkdtemp(tmp) == NULL)
    return vmbox_error_sys(err, "mkdir %s", tmp);
  uint64_t t0 = util__now_ns();
  struct job job = {image, tmp, m->nsubuid > 0};
  if (userns__run(m, unpack_image, &job, err) < 0 || rename(tmp, tree) < 0) {
    if (err && *err == NULL)
      vmbox_error_sys(err, "rename %s", tmp);
    userns__rm_rf(m, tmp, NULL);
    vmbox_error_wrap(err, "unpack the image for a rootless box");
    return vmbox_error_hint(err, "rootless boxes need the image unpacked once beside it: "
                                 "check the free space under the vmbox root");
  }
  cleanup_free char *dir = xstrndup(tree, (size_t)(strrchr(tree, '/') - tree));
  util__fsync_dir(dir);
  log__debug("rootless: unpacked %s in %.0f ms", image, (double)(util__now_ns() - t0) / 1e6);
  return 0;
}

int unpack__tree(const char *image, const struct idmap *m, char **tree_out, int *lock_out,
                 vmbox_error_t *err)
{
  size_t n = strlen(image);
  if (util__has_suffix(image, ".ext4"))
    n -= strlen(".ext4");
  cleanup_free char *tree = util__fmt("%.*s.rootfs", (int)n, image);
  cleanup_free char *lock = util__fmt("%s.lock", tree);
  int fd = util__lock_file(lock, true, err);
  if (fd < 0) {
    vmbox_error_wrap(err, "rootless box");
    return vmbox_error_hint(err, "rootless boxes unpack the image beside it: its directory "
                                 "must be writable by you (the store in your home is)");
  }
  if (unpack_locked(image, tree, m, err) < 0) {
    close(fd);
    return -1;
  }
  /* Shared while the box lives: unpacks and prunes want it exclusive. */
  while (flock(fd, LOCK_SH) < 0 && errno == EINTR)
    ;
  *lock_out = fd;
  *tree_out = steal_pointer(&tree);
  return 0;
}
