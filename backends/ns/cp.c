/* vmbox cp on the ns backend.  A running box's root is its PID 1's root as
 * the host sees it, /proc/PID/root.  A stopped box gets its file system
 * back in a child process, in a private mount namespace: the image
 * loop-mounted read-only with the box's kept writes (<state_dir>/upper) on
 * top -- as read-only layers to copy out, as a writable overlay to copy in.
 * The copy itself (and its symlink safety) is backends/copy.c. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../copy.h"
#include "ns.h"

/* True when the process is PID 1 of a pid namespace below ours. */
static bool is_box_init(long pid)
{
  cleanup_free char *path = util__fmt("/proc/%ld/status", pid);
  cleanup_free char *buf = NULL;
  if (util__read_file(path, &buf, NULL, NULL) < 0)
    return false;
  char *l = strstr(buf, "\nNSpid:");
  if (l == NULL)
    return false;
  char *end = strchr(l + 1, '\n');
  if (end)
    *end = '\0';
  char *last = strrchr(l, '\t');
  return last && last != strchr(l, '\t') && strcmp(last + 1, "1") == 0;
}

/* The box's PID 1, found through its cgroup (no pid file to go stale). */
static pid_t find_init(const char *id)
{
  struct cgroup cg;
  cgroup__locate(&cg, id);
  pid_t found = 0;
  for (size_t i = 0; i < cg.n && !found; i++) {
    cleanup_free char *p = util__fmt("%s/cgroup.procs", cg.dirs[i]);
    cleanup_fclose FILE *f = fopen(p, "re");
    long pid;
    while (f && !found && fscanf(f, "%ld", &pid) == 1)
      if (is_box_init(pid))
        found = (pid_t)pid;
  }
  cgroup__free(&cg);
  return found;
}

static int copy(int box, const struct box_cp *c, bool in, vmbox_error_t *err)
{
  cleanup_free char *where = util__fmt("in box %s", c->name);
  struct copy_opts o = {c->follow, c->archive, in ? "on the host" : where,
                        in ? where : "on the host"};
  if (c->host_path == NULL)
    return in ? copy__from_tar(c->tar_fd, box, c->box_path, &o, err)
              : copy__to_tar(box, c->box_path, c->tar_fd, &o, err);
  cleanup_close int host = copy__open_root("/", err);
  if (host < 0)
    return -1;
  return in ? copy__tree(host, c->host_path, box, c->box_path, &o, err)
            : copy__tree(box, c->box_path, host, c->host_path, &o, err);
}

static int cp_running(pid_t pid, const struct box_cp *c, bool in, vmbox_error_t *err)
{
  cleanup_free char *p = util__fmt("/proc/%d/root", (int)pid);
  cleanup_close int box = copy__open_root(p, err);
  struct stat bs, hs;
  if (box < 0 || fstat(box, &bs) < 0 || stat("/", &hs) < 0)
    return vmbox_error_sys(err, "box %s: open its root", c->name);
  /* Before its pivot_root, PID 1 still sees the host's root. */
  if (bs.st_dev == hs.st_dev && bs.st_ino == hs.st_ino) {
    vmbox_error_set(err, 0, "box %s is still starting", c->name);
    return vmbox_error_hint(err, "try again in a moment");
  }
  return copy(box, c, in, err);
}

/* ---- a stopped box ------------------------------------------------------------ */

/* In the child, cwd = a fresh dir in the state dir with lower/ work/ root/. */
static int mount_stopped(const struct box_cp *c, bool in, bool has_upper, vmbox_error_t *err)
{
  cleanup_free char *dev = NULL;
  cleanup_close int lfd = -1;
  if (rootfs__loop_attach(c->image, &dev, &lfd, err) < 0)
    return -1;
  if (mount(dev, "lower", "ext4", MS_RDONLY | MS_NODEV, "") < 0)
    return vmbox_error_sys(err, "mount image %s", c->image);
  struct stat st;
  if (in && (stat("lower", &st) < 0 || chown("../upper", st.st_uid, st.st_gid) < 0 ||
             (!has_upper && chmod("../upper", st.st_mode & 07777) < 0)))
    return vmbox_error_sys(err, "give the box's upper dir the image root's owner");
  /* Relative paths: the state dir's own path may hold ',' or ':'. */
  const char *opts =
      in ? "lowerdir=lower,upperdir=../upper,workdir=work" : "lowerdir=../upper:lower";
  if ((in || has_upper) &&
      mount("overlay", "root", "overlay", MS_NODEV | (in ? 0 : MS_RDONLY), opts) < 0)
    return vmbox_error_sys(err, "mount the box's writes over its image");
  int fd = open(in || has_upper ? "root" : "lower", O_PATH | O_DIRECTORY | O_CLOEXEC);
  return fd < 0 ? vmbox_error_sys(err, "open the box's root") : fd;
}

static void __attribute__((noreturn))
stopped_child(const char *tmp, const struct box_cp *c, bool in, bool has_upper, int report)
{
  vmbox_error_t err = NULL;
  int box = -1;
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    vmbox_error_sys(&err, "private mount namespace");
  else if (chdir(tmp) < 0)
    vmbox_error_sys(&err, "chdir %s", tmp);
  else if ((box = mount_stopped(c, in, has_upper, &err)) >= 0)
    copy(box, c, in, &err);
  if (err == NULL)
    _exit(0);
  cleanup_free char *msg = vmbox_error_string(err);
  dprintf(report, "%s\t%s", msg, err->hint ? err->hint : "");
  _exit(1);
}

static int read_report(int fd, vmbox_error_t *err)
{
  char buf[4096];
  size_t n = 0;
  ssize_t r;
  while (n < sizeof(buf) - 1 && (r = read(fd, buf + n, sizeof(buf) - 1 - n)) != 0) {
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  char *hint = strchr(buf, '\t');
  if (hint)
    *hint++ = '\0';
  vmbox_error_set(err, 0, "%s", buf[0] ? buf : "the copy failed");
  return hint && *hint ? vmbox_error_hint(err, "%s", hint) : -1;
}

static int run_child(const char *tmp, const struct box_cp *c, bool in, bool has_upper,
                     vmbox_error_t *err)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return vmbox_error_sys(err, "pipe");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    stopped_child(tmp, c, in, has_upper, p[1]);
  }
  close(p[1]);
  int st = 0, r = pid < 0 ? vmbox_error_sys(err, "fork") : 0;
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    r = read_report(p[0], err);
  close(p[0]);
  return r;
}

static int cp_stopped(const char *state_dir, const struct box_cp *c, bool in, vmbox_error_t *err)
{
  if (c->image == NULL || c->image[0] != '/')
    return vmbox_error_set(err, 0, "box %s: no image to mount", c->name);
  /* <state>/ns lives as long as the box: a second overlay on its upper dir
   * while it runs would corrupt it.  (A rootless box has no cgroup in which
   * find_init could see its PID 1.) */
  cleanup_free char *live = util__fmt("%s/ns", state_dir);
  if (access(live, F_OK) == 0) {
    vmbox_error_set(err, 0, "box %s is running, but its init process cannot be found", c->name);
    return vmbox_error_hint(err, "cp into running rootless boxes is not supported yet; stop the "
                                 "box first");
  }
  /* Two overlays on one upper dir at once would corrupt it. */
  cleanup_free char *lp = util__fmt("%s/cp.lock", state_dir);
  cleanup_close int lock = util__lock_file(lp, in, err);
  if (lock < 0)
    return -1;
  cleanup_free char *upper = util__fmt("%s/upper", state_dir);
  struct stat st;
  bool has_upper = stat(upper, &st) == 0;
  if (in && !has_upper && mkdir(upper, 0755) < 0)
    return vmbox_error_sys(err, "create %s", upper);
  cleanup_free char *tmp = util__fmt("%s/cp.XXXXXX", state_dir);
  if (mkdtemp(tmp) == NULL)
    return vmbox_error_sys(err, "create a temp dir in %s", state_dir);
  static const char *const sub[] = {"lower", "work", "root"};
  int r = 0;
  for (size_t i = 0; i < ARRAY_SIZE(sub) && r == 0; i++) {
    cleanup_free char *d = util__fmt("%s/%s", tmp, sub[i]);
    if (mkdir(d, 0700) < 0)
      r = vmbox_error_sys(err, "create %s", d);
  }
  if (r == 0)
    r = run_child(tmp, c, in, has_upper, err);
  util__rm_rf(tmp, NULL); /* its mounts died with the child's namespace */
  return r;
}

static int ns_cp(const char *id, const char *state_dir, const struct box_cp *c, bool in,
                 vmbox_error_t *err)
{
  if (geteuid() != 0) {
    vmbox_error_set(err, 0, "cp on the ns backend needs root");
    return vmbox_error_hint(err, "run vmbox as root");
  }
  pid_t pid = find_init(id);
  return pid > 0 ? cp_running(pid, c, in, err) : cp_stopped(state_dir, c, in, err);
}

int ns__cp_out(const char *id, const char *state_dir, const struct box_cp *c, vmbox_error_t *err)
{
  return ns_cp(id, state_dir, c, false, err);
}

int ns__cp_in(const char *id, const char *state_dir, const struct box_cp *c, vmbox_error_t *err)
{
  return ns_cp(id, state_dir, c, true, err);
}
