/* Image mounts that outlive boxes.  Each image's ext4 stays mounted in a
 * mount namespace of vmbox's own, kept alive by a bind of its nsfs file
 * (as `ip netns` keeps network namespaces), and invisible to the host's
 * mount table.  A box gets a detached clone of that mount (open_tree
 * OPEN_TREE_CLONE) for its overlay's lower layer.
 *
 * Why: when a box's mount namespace held the image's only mount, the box's
 * PID 1 tore the ext4 superblock down and autoclear detached the loop
 * device as it exited — 20 ms to a second under load, before the monitor
 * even saw the exit — and the next box attached and mounted it again.
 *
 * Layout (tmpfs: gone at reboot, as the namespace and loop devices are):
 *   /run/vmbox/ns       a private bind of itself (a shared parent would
 *                       propagate the nsfs bind into the namespace itself)
 *   /run/vmbox/ns/img   the namespace
 *   /run/vmbox/img/DEV-INO       mount point, mounted inside it only
 *   /run/vmbox/img/DEV-INO.path  the image's path, for garbage collection
 *   /run/vmbox/img.lock          serialises all of the above */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

#define IMG_NS_DIR "/run/vmbox/ns"
#define IMG_NS IMG_NS_DIR "/img"
#define IMG_MNT "/run/vmbox/img"
#define IMG_LOCK "/run/vmbox/img.lock"
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
enum { LOOP_MAJOR_NR = 7 };

static bool is_mount_root(const char *path)
{
  struct statx st;
  return statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &st) == 0 &&
         (st.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) &&
         (st.stx_attributes & STATX_ATTR_MOUNT_ROOT);
}

static int private_dir(vmbox_error_t *err)
{
  if (util__mkdir_p(IMG_NS_DIR, 0700, err) < 0)
    return -1;
  if (!is_mount_root(IMG_NS_DIR) && mount(IMG_NS_DIR, IMG_NS_DIR, NULL, MS_BIND, NULL) < 0)
    return vmbox_error_sys(err, "bind %s", IMG_NS_DIR);
  if (mount(NULL, IMG_NS_DIR, NULL, MS_PRIVATE, NULL) < 0)
    return vmbox_error_sys(err, "make %s private", IMG_NS_DIR);
  return 0;
}

static bool holder_alive(void)
{
  struct statfs sf;
  return statfs(IMG_NS, &sf) == 0 && (unsigned long)sf.f_type == NSFS_MAGIC;
}

/* A child unshares a mount namespace and waits while we bind it. */
static int holder_create(vmbox_error_t *err)
{
  if (private_dir(err) < 0)
    return -1;
  int f = open(IMG_NS, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (f < 0)
    return vmbox_error_sys(err, "create %s", IMG_NS);
  close(f);
  int up[2], go[2];
  if (pipe2(up, O_CLOEXEC) < 0)
    return vmbox_error_sys(err, "pipe");
  if (pipe2(go, O_CLOEXEC) < 0) {
    close(up[0]), close(up[1]);
    return vmbox_error_sys(err, "pipe");
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(up[0]);
    close(go[1]); /* else our own copy keeps the read below from ever ending */
    char c = 0;
    if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
      c = 1;
    if (write(up[1], &c, 1) == 1)
      while (read(go[0], &c, 1) < 0 && errno == EINTR)
        ;
    _exit(0);
  }
  close(up[1]);
  close(go[0]);
  char c = 0;
  int r = pid > 0 && read(up[0], &c, 1) == 1 && c == 1 ? 0 : -1;
  if (r == 0) {
    cleanup_free char *ns = util__fmt("/proc/%d/ns/mnt", (int)pid);
    r = mount(ns, IMG_NS, NULL, MS_BIND, NULL);
  }
  int e = errno;
  close(go[1]);
  close(up[0]);
  if (pid > 0)
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
  return r < 0 ? vmbox_error_set(err, e, "keep the image mount namespace at %s", IMG_NS) : 0;
}

/* Is the mount at DIR still the image (dev, ino)?  Its device is a loop
 * device; the file behind it must be that very image. */
static bool mount_serves(const char *dir, const struct stat *img)
{
  struct statx st;
  if (statx(AT_FDCWD, dir, 0, STATX_BASIC_STATS, &st) < 0 || st.stx_dev_major != LOOP_MAJOR_NR)
    return false;
  cleanup_free char *dev = util__fmt("/dev/loop%u", st.stx_dev_minor);
  cleanup_close int fd = open(dev, O_RDONLY | O_CLOEXEC);
  struct loop_info64 li;
  return fd >= 0 && ioctl(fd, LOOP_GET_STATUS64, &li) == 0 && li.lo_device == img->st_dev &&
         li.lo_inode == img->st_ino;
}

/* Mounts whose image is gone (rmi, a store removed) are unmounted, so their
 * loop devices and file space go too.  Only when a new image is mounted. */
static void gc_stale(void)
{
  DIR *d = opendir(IMG_MNT);
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    size_t n = strlen(e->d_name);
    if (n < 6 || strcmp(e->d_name + n - 5, ".path") != 0)
      continue;
    cleanup_free char *pathf = util__fmt(IMG_MNT "/%s", e->d_name);
    cleanup_free char *dir = util__fmt(IMG_MNT "/%.*s", (int)(n - 5), e->d_name);
    char img[4096];
    cleanup_close int fd = open(pathf, O_RDONLY | O_CLOEXEC);
    ssize_t len = fd >= 0 ? read(fd, img, sizeof(img) - 1) : -1;
    img[len > 0 ? len : 0] = '\0';
    struct stat st;
    if (len > 0 && stat(img, &st) == 0 && mount_serves(dir, &st))
      continue;
    umount2(dir, MNT_DETACH);
    rmdir(dir);
    unlink(pathf);
  }
  if (d)
    closedir(d);
}

static int mount_image(const char *image, const char *dir, vmbox_error_t *err)
{
  gc_stale();
  if (util__mkdir_p(dir, 0700, err) < 0)
    return -1;
  cleanup_free char *dev = NULL;
  cleanup_close int lfd = -1;
  if (rootfs__loop_attach(image, &dev, &lfd, err) < 0)
    return -1;
  if (mount(dev, dir, "ext4", MS_RDONLY | MS_NODEV, "") < 0)
    return vmbox_error_sys(err, "mount image %s (%s, ext4, read-only)", image, dev);
  cleanup_free char *pathf = util__fmt("%s.path", dir);
  return util__write_file_replace(pathf, image, strlen(image), 0600, err);
}

/* Inside the image namespace: mount if needed, clone. */
static int clone_in_ns(const char *image, vmbox_error_t *err)
{
  struct stat st;
  if (stat(image, &st) < 0)
    return vmbox_error_sys(err, "image %s", image);
  cleanup_free char *dir =
      util__fmt(IMG_MNT "/%ju-%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
  if (is_mount_root(dir) && !mount_serves(dir, &st))
    umount2(dir, MNT_DETACH);
  if (!is_mount_root(dir) && mount_image(image, dir, err) < 0)
    return -1;
  int fd = open_tree(AT_FDCWD, dir, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "clone the mount of image %s", image);
  return fd;
}

/* Runs fn inside the image namespace, under its lock, and comes back. */
static int in_image_ns(int (*fn)(const char *image, vmbox_error_t *err), const char *image,
                       bool create, vmbox_error_t *err)
{
  cleanup_close int lock = util__lock_file(IMG_LOCK, true, err);
  if (lock < 0)
    return -1;
  if (!holder_alive() && (!create || holder_create(err) < 0))
    return create ? -1 : 0;
  cleanup_close int ns = open(IMG_NS, O_RDONLY | O_CLOEXEC);
  cleanup_close int self = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
  cleanup_close int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (ns < 0 || self < 0 || cwd < 0)
    return vmbox_error_sys(err, "open mount namespaces");
  if (setns(ns, CLONE_NEWNS) < 0)
    return vmbox_error_sys(err, "enter the image mount namespace");
  int r = fn(image, err);
  /* Back home whatever happened: every later path depends on it. */
  if (setns(self, CLONE_NEWNS) < 0 || fchdir(cwd) < 0)
    abort(); /* cannot go on in the wrong mount namespace */
  return r;
}

int imgmnt__clone(const char *image, vmbox_error_t *err)
{
  return in_image_ns(clone_in_ns, image, true, err);
}

static int gc_in_ns(const char *image, vmbox_error_t *err)
{
  (void)image, (void)err;
  gc_stale();
  return 0;
}

void imgmnt__gc(void)
{
  vmbox_error_t err = NULL;
  if (geteuid() == 0)
    in_image_ns(gc_in_ns, NULL, false, &err);
  vmbox_error_free(&err);
}
