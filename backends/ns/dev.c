/* The kernel-facing file systems of a box, as Docker sets them up: a fresh
 * /proc for the box's pid namespace with runc's masked and read-only paths,
 * a minimal nodev tmpfs /dev with the host's harmless nodes bound in and its
 * own devpts instance, and a read-only /sys. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

/* Readable host information or kernel knobs: hidden behind /dev/null
 * (files) or an empty read-only tmpfs (dirs). */
static const char *const masked[] = {
    "/proc/asound",      "/proc/acpi",          "/proc/interrupts", "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi",          "/sys/firmware",    "/sys/devices/virtual/powercap",
};
static const char *const read_only[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

/* Bound from the host's /dev rather than made with mknod: /dev itself is
 * nodev, so a node the box makes (it has CAP_MKNOD, as in Docker) opens
 * nothing, on hosts without a devices cgroup too. */
static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const char *const links[][2] = {
    {"fd", "/proc/self/fd"},       {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
    {"stderr", "/proc/self/fd/2"}, {"ptmx", "pts/ptmx"},         {"core", "/proc/kcore"},
};

static int mount_at(int rootfd, const char *src, const char *path, const char *type,
                    unsigned long flags, const char *data, vmbox_error_t *err)
{
  cleanup_close int fd = rootfs__mkpath(rootfd, path, true, err);
  char buf[32];
  if (fd < 0)
    return -1;
  if (mount(src, rootfs__fdpath(fd, buf), type, flags, data) < 0)
    return vmbox_error_sys(err, "mount %s on %s", type, path);
  return 0;
}

/* The box's own /dev/null: the host's would show the host's devtmpfs. */
static int mask_one(int rootfd, int nullfd, const char *path, vmbox_error_t *err)
{
  cleanup_close int fd = rootfs__open(rootfd, path);
  struct stat st;
  char buf[32], nbuf[32];
  if (fd < 0 || fstat(fd, &st) < 0)
    return 0; /* absent on this kernel: nothing to hide */
  unsigned long ro = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  int r = S_ISDIR(st.st_mode)
              ? mount("tmpfs", rootfs__fdpath(fd, buf), "tmpfs", ro, "size=0")
              : mount(rootfs__fdpath(nullfd, nbuf), rootfs__fdpath(fd, buf), NULL, MS_BIND, NULL);
  if (r < 0)
    return vmbox_error_sys(err, "mask %s", path);
  return 0;
}

static int ro_one(int rootfd, const char *path, vmbox_error_t *err)
{
  char buf[32];
  {
    cleanup_close int fd = rootfs__open(rootfd, path);
    if (fd < 0)
      return 0;
    if (mount(rootfs__fdpath(fd, buf), rootfs__fdpath(fd, buf), NULL, MS_BIND | MS_REC, NULL) < 0)
      return vmbox_error_sys(err, "bind %s", path);
  }
  /* Reopen: the fd above names the dentry under the new bind, not the bind. */
  cleanup_close int fd = rootfs__open(rootfd, path);
  unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (fd < 0 || mount(NULL, rootfs__fdpath(fd, buf), NULL, fl, NULL) < 0)
    return vmbox_error_sys(err, "make %s read-only", path);
  return 0;
}

static int bind_node(int devfd, const char *name, vmbox_error_t *err)
{
  int fd = openat(devfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    return vmbox_error_sys(err, "create /dev/%s", name);
  close(fd);
  cleanup_close int target = openat(devfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  cleanup_free char *src = util__fmt("/dev/%s", name);
  struct stat st;
  char buf[32];
  if (stat(src, &st) < 0 || !S_ISCHR(st.st_mode))
    return vmbox_error_set(err, ENODEV, "host %s is not a character device", src);
  if (target < 0 || mount(src, rootfs__fdpath(target, buf), NULL, MS_BIND, NULL) < 0)
    return vmbox_error_sys(err, "bind %s", src);
  return 0;
}

static int dev_populate(int devfd, vmbox_error_t *err)
{
  for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
    if (bind_node(devfd, nodes[i], err) < 0)
      return -1;
  for (size_t i = 0; i < ARRAY_SIZE(links); i++)
    if (symlinkat(links[i][1], devfd, links[i][0]) < 0)
      return vmbox_error_sys(err, "symlink /dev/%s", links[i][0]);
  const char *dirs[] = {"pts", "shm", "mqueue"};
  for (size_t i = 0; i < ARRAY_SIZE(dirs); i++)
    if (mkdirat(devfd, dirs[i], 0755) < 0)
      return vmbox_error_sys(err, "mkdir /dev/%s", dirs[i]);
  return 0;
}

static int mount_dev(int rootfd, vmbox_error_t *err)
{
  if (mount_at(rootfd, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME,
               "mode=755,size=65536k", err) < 0)
    return -1;
  cleanup_close int dev = rootfs__open(rootfd, "/dev");
  cleanup_close int devfd = dev < 0 ? -1 : openat(dev, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (devfd < 0)
    return vmbox_error_sys(err, "open /dev in the box");
  if (dev_populate(devfd, err) < 0)
    return -1;
  unsigned long nx = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  /* gid 5 (tty) is not mapped in a rootless box's user namespace. */
  if ((mount_at(rootfd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5", NULL) < 0 &&
       mount_at(rootfd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620", err) < 0) ||
      mount_at(rootfd, "shm", "/dev/shm", "tmpfs", nx, "mode=1777,size=65536k", err) < 0 ||
      mount_at(rootfd, "mqueue", "/dev/mqueue", "mqueue", nx, NULL, err) < 0)
    return -1;
  return 0;
}

int dev__mount_all(int rootfd, vmbox_error_t *err)
{
  unsigned long nx = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  if (mount_at(rootfd, "proc", "/proc", "proc", nx, NULL, err) < 0 || mount_dev(rootfd, err) < 0 ||
      mount_at(rootfd, "sysfs", "/sys", "sysfs", nx | MS_RDONLY, NULL, err) < 0)
    return -1;
  cleanup_close int nullfd = rootfs__open(rootfd, "/dev/null");
  if (nullfd < 0)
    return vmbox_error_sys(err, "open /dev/null in the box");
  for (size_t i = 0; i < ARRAY_SIZE(masked); i++)
    if (mask_one(rootfd, nullfd, masked[i], err) < 0)
      return -1;
  for (size_t i = 0; i < ARRAY_SIZE(read_only); i++)
    if (ro_one(rootfd, read_only[i], err) < 0)
      return -1;
  return 0;
}
