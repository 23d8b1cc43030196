/* The box's root: the cached ext4 image attached read-only to a loop device
 * (one per image, shared by its boxes: see rootfs__loop_attach) and mounted
 * in each box's mount namespace, with an overlay whose upper/work live in
 * the box's state dir.  O(1) in the image size, and nothing written ever reaches the
 * image or another box.
 *
 * Every mount target inside the root is opened with RESOLVE_IN_ROOT so a
 * symlink in an image (/etc -> /host/etc) cannot steer a mount outside. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

static int loop_configure(int ctl, int img, char **dev_out, int *fd_out, vmbox_error_t *err)
{
  /* Another process may take the free device between GET_FREE and
   * CONFIGURE: that shows as EBUSY, and we ask again. */
  for (int tries = 0; tries < 64; tries++) {
    int n = ioctl(ctl, LOOP_CTL_GET_FREE);
    if (n < 0)
      return vmbox_error_sys(err, "loop: no free loop device");
    cleanup_free char *dev = util__fmt("/dev/loop%d", n);
    int fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && mknod(dev, S_IFBLK | 0660, makedev(7, n)) == 0)
      fd = open(dev, O_RDWR | O_CLOEXEC);
    if (fd < 0)
      return vmbox_error_sys(err, "loop: open %s", dev);
    struct loop_config cfg = {.fd = (unsigned)img};
    cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
    if (ioctl(fd, LOOP_CONFIGURE, &cfg) == 0) {
      *dev_out = steal_pointer(&dev);
      *fd_out = fd;
      return 0;
    }
    int e = errno;
    close(fd);
    if (e != EBUSY)
      return vmbox_error_set(err, e, "loop: attach to %s", dev);
  }
  return vmbox_error_set(err, EBUSY, "loop: every free loop device was taken");
}

/* One loop device per image, shared by its boxes: each box still mounts the
 * ext4 in its own mount namespace, but the kernel finds the superblock
 * already set up for that device and skips the ext4 mount proper (and the
 * attach).  The host's mount table sees nothing, and crashes leak nothing:
 * the kernel counts the device's users (mounts, open fds) and autoclear
 * detaches it after the last.  LOOP_RECORDS/DEV-INO (tmpfs: gone at reboot,
 * as loop devices are) names the device; its flock makes find-or-attach
 * atomic, and the device is only trusted after LOOP_GET_STATUS64 shows it
 * still bound to that very file, read-only and autoclear. */
#define LOOP_RECORDS "/run/vmbox/loop"

/* The locked record for the image, or -1: then the box gets its own device. */
static int loop_record_lock(const struct stat *img)
{
  vmbox_error_t e = NULL;
  if (util__mkdir_p(LOOP_RECORDS, 0700, &e) < 0) {
    vmbox_error_free(&e);
    return -1;
  }
  cleanup_free char *p =
      util__fmt(LOOP_RECORDS "/%ju-%ju", (uintmax_t)img->st_dev, (uintmax_t)img->st_ino);
  int fd = util__lock_file(p, true, &e);
  vmbox_error_free(&e);
  return fd;
}

/* Opens the recorded device if it still serves IMG; holding the fd keeps
 * it bound until the box has mounted it. */
static int loop_reuse(int rec, const struct stat *img, char **dev_out, int *fd_out)
{
  char name[32] = "";
  ssize_t n = pread(rec, name, sizeof(name) - 1, 0);
  if (n <= 0 || strncmp(name, "/dev/loop", 9) != 0 || name[n - 1] != '\n')
    return -1;
  name[n - 1] = '\0';
  /* Read-only: a mounted device refuses writers. */
  int fd = open(name, O_RDONLY | O_CLOEXEC);
  struct loop_info64 li;
  if (fd < 0 || ioctl(fd, LOOP_GET_STATUS64, &li) < 0 || li.lo_device != img->st_dev ||
      li.lo_inode != img->st_ino || li.lo_offset != 0 || li.lo_sizelimit != 0 ||
      (li.lo_flags & (LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR)) !=
          (LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR)) {
    if (fd >= 0)
      close(fd);
    return -1;
  }
  *dev_out = xstrdup(name);
  *fd_out = fd;
  return 0;
}

static void loop_record_write(int rec, const char *dev)
{
  cleanup_free char *line = util__fmt("%s\n", dev);
  if (ftruncate(rec, 0) < 0 || pwrite(rec, line, strlen(line), 0) < 0)
    return; /* the next box attaches its own device */
}

/* Records outlive their images (rmi, a store removed with rm -rf): past
 * LOOP_RECORDS_KEEP, a fresh attach drops those whose device no longer
 * serves their file.  Each under its lock, never waiting: ours and busy
 * ones are skipped, and a creator that opened a record just before we
 * unlink it merely goes without sharing. */
enum { LOOP_RECORDS_KEEP = 64 };

static void loop_records_gc(void)
{
  DIR *d = opendir(LOOP_RECORDS);
  struct dirent *e;
  size_t n = 0;
  while (d && (e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  if (d && n > LOOP_RECORDS_KEEP)
    rewinddir(d);
  while (d && n > LOOP_RECORDS_KEEP && (e = readdir(d)) != NULL) {
    uintmax_t dev, ino;
    if (sscanf(e->d_name, "%ju-%ju", &dev, &ino) != 2)
      continue;
    struct stat img = {.st_dev = (dev_t)dev, .st_ino = (ino_t)ino};
    cleanup_close int rec = openat(dirfd(d), e->d_name, O_RDWR | O_CLOEXEC);
    if (rec < 0 || flock(rec, LOCK_EX | LOCK_NB) < 0)
      continue;
    cleanup_free char *name = NULL;
    cleanup_close int fd = -1;
    if (loop_reuse(rec, &img, &name, &fd) < 0)
      unlinkat(dirfd(d), e->d_name, 0);
  }
  if (d)
    closedir(d);
}

int rootfs__loop_attach(const char *image, char **dev_out, int *fd_out, vmbox_error_t *err)
{
  cleanup_close int img = open(image, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (img < 0 || fstat(img, &st) < 0)
    return vmbox_error_sys(err, "open image %s", image);
  cleanup_close int rec = loop_record_lock(&st);
  if (rec >= 0 && loop_reuse(rec, &st, dev_out, fd_out) == 0)
    return 0;
  cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0) {
    vmbox_error_sys(err, "open /dev/loop-control");
    return vmbox_error_hint(err, "the ns backend needs root and the loop module (modprobe loop)");
  }
  if (loop_configure(ctl, img, dev_out, fd_out, err) < 0)
    return vmbox_error_wrap(err, "image %s", image);
  if (rec >= 0) {
    loop_record_write(rec, *dev_out);
    loop_records_gc();
  }
  return 0;
}

static int mount_lower(int lower_fd, const char *loop_dev, const char *tree, vmbox_error_t *err)
{
  if (lower_fd >= 0) {
    if (move_mount(lower_fd, "", AT_FDCWD, "lower", MOVE_MOUNT_F_EMPTY_PATH) < 0)
      return vmbox_error_sys(err, "attach the image mount");
    return 0;
  }
  if (tree) {
    /* mount_setattr only adds flags: a remount would have to repeat the
     * host mount's locked ones (nosuid, noexec) or fail in a user ns. */
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV};
    if (mount(tree, "lower", NULL, MS_BIND, NULL) < 0 ||
        mount_setattr(AT_FDCWD, "lower", 0, &attr, sizeof(attr)) < 0)
      return vmbox_error_sys(err, "bind the unpacked image %s read-only", tree);
    return 0;
  }
  if (mount(loop_dev, "lower", "ext4", MS_RDONLY | MS_NODEV, "") < 0) {
    vmbox_error_sys(err, "mount image (%s, ext4, read-only)", loop_dev);
    return errno == EINVAL ? vmbox_error_hint(err, "the image must be a clean ext4 file system")
                           : -1;
  }
  return 0;
}

/* Always an overlay, --read-only too: mount points and /etc files need a
 * writable layer; the root is remounted read-only after pivot_root.
 * Rootless (TREE set), the overlay keeps its metadata in user.* xattrs: a
 * user namespace may not write trusted.* ones. */
int rootfs__mount(int lower_fd, const char *loop_dev, const char *tree, vmbox_error_t *err)
{
  if (mount_lower(lower_fd, loop_dev, tree, err) < 0)
    return -1;
  /* The overlay's root takes the upper dir's owner and mode: the image's. */
  struct stat st;
  if (stat("lower", &st) < 0 || chown("upper", st.st_uid, st.st_gid) < 0 ||
      chmod("upper", st.st_mode & 07777) < 0)
    return vmbox_error_sys(err, "give the overlay the image root's owner and mode");
  /* Relative paths: the kernel resolves them from our cwd, the state dir,
   * so its path may hold the ',' and ':' that overlay options cannot. */
  if (mount("overlay", "rootfs", "overlay", MS_NODEV,
            tree ? "lowerdir=lower,upperdir=upper,workdir=work,userxattr"
                 : "lowerdir=lower,upperdir=upper,workdir=work") < 0) {
    vmbox_error_sys(err, "mount overlay on the image");
    return vmbox_error_hint(err, "the state dir must be on a local file system (ext4, xfs, "
                                 "tmpfs), not on overlayfs or NFS");
  }
  int fd = open("rootfs", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "open rootfs");
  return fd;
}

const char *rootfs__fdpath(int fd, char buf[static 32])
{
  snprintf(buf, 32, "/proc/self/fd/%d", fd);
  return buf;
}

int rootfs__open(int rootfd, const char *path)
{
  struct open_how how = {
      .flags = O_PATH | O_CLOEXEC,
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

static int create_last(int rootfd, const char *prefix, bool dir, vmbox_error_t *err)
{
  const char *name = strrchr(prefix, '/') + 1;
  cleanup_free char *parent = xstrndup(prefix, (size_t)(name - prefix));
  cleanup_close int pfd = rootfs__open(rootfd, parent[0] ? parent : "/");
  if (pfd < 0)
    return vmbox_error_sys(err, "open %s in the box", parent);
  cleanup_close int dfd = openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return vmbox_error_sys(err, "open %s in the box", parent);
  int r;
  if (dir) {
    r = mkdirat(dfd, name, 0755);
  } else {
    r = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (r >= 0)
      close(r);
  }
  if (r < 0 && errno != EEXIST)
    return vmbox_error_sys(err, "create %s in the box", prefix);
  return 0;
}

int rootfs__mkpath(int rootfd, const char *path, bool is_dir, vmbox_error_t *err)
{
  if (path[0] != '/')
    return vmbox_error_set(err, 0, "%s: path in the box must be absolute", path);
  cleanup_free char *p = xstrdup(path);
  size_t n = strlen(p);
  while (n > 1 && p[n - 1] == '/')
    p[--n] = '\0';
  int fd = -1;
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (s[-1] != '/') {
      if (fd >= 0)
        close(fd);
      fd = rootfs__open(rootfd, p);
      if (fd < 0 && errno == ENOENT) {
        if (create_last(rootfd, p, c != '\0' || is_dir, err) < 0)
          return -1;
        fd = rootfs__open(rootfd, p);
      }
      if (fd < 0)
        return vmbox_error_sys(err, "open %s in the box", p);
    }
    *s = c;
    if (c == '\0')
      break;
  }
  return fd >= 0 ? fd : rootfs__open(rootfd, "/");
}

static int bind_one(int rootfd, const struct box_mount *m, vmbox_error_t *err)
{
  struct stat st;
  if (stat(m->source, &st) < 0) {
    /* docker run -v creates a missing host dir */
    if (errno != ENOENT || util__mkdir_p(m->source, 0755, err) < 0 || stat(m->source, &st) < 0)
      return vmbox_error_sys(err, "volume source %s", m->source);
  }
  cleanup_close int tree =
      open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0)
    return vmbox_error_sys(err, "bind %s", m->source);
  /* nodev: the box may mknod (CAP_MKNOD) but its nodes must open nothing. */
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_NODEV | (m->read_only ? MOUNT_ATTR_RDONLY : 0)};
  if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
    return vmbox_error_sys(err, "set nodev%s on %s", m->read_only ? ",ro" : "", m->source);
  cleanup_close int target = rootfs__mkpath(rootfd, m->target, S_ISDIR(st.st_mode), err);
  if (target < 0)
    return -1;
  if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
    return vmbox_error_sys(err, "mount %s on %s", m->source, m->target);
  return 0;
}

int rootfs__user_mounts(int rootfd, const struct box_spec *s, vmbox_error_t *err)
{
  for (size_t i = 0; i < s->n_mounts; i++)
    if (bind_one(rootfd, &s->mounts[i], err) < 0)
      return vmbox_error_wrap(err, "volume %s:%s", s->mounts[i].source, s->mounts[i].target);
  for (size_t i = 0; i < s->n_tmpfs; i++) {
    const struct box_tmpfs *t = &s->tmpfs[i];
    cleanup_close int target = rootfs__mkpath(rootfd, t->target, true, err);
    char buf[32];
    if (target < 0)
      return vmbox_error_wrap(err, "tmpfs %s", t->target);
    if (mount("tmpfs", rootfs__fdpath(target, buf), "tmpfs", MS_NOSUID | MS_NODEV,
              t->options ? t->options : "mode=1777") < 0)
      return vmbox_error_sys(err, "mount tmpfs on %s", t->target);
  }
  return 0;
}

int rootfs__pivot(int rootfd, bool read_only, vmbox_error_t *err)
{
  /* pivot_root(".", ".") stacks the old root under the new one; detaching
   * "." then drops it without needing a directory for it in the image. */
  if (fchdir(rootfd) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
    return vmbox_error_sys(err, "pivot_root");
  if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
    return vmbox_error_sys(err, "detach the host root");
  if (read_only && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NODEV, NULL) < 0)
    return vmbox_error_sys(err, "remount / read-only");
  return 0;
}
