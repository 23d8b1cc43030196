/* The ns backend's ops table and the life of a box.
 *
 * start: clone(2) into new mount/pid/ipc/uts/net namespaces; the monitor
 * puts the child in the box's cgroups, then lets it go; the child enters a
 * new cgroup namespace (rooted at its box cgroup), builds the root, pivots,
 * and becomes PID 1 (init.c).  A CLOEXEC pipe carries any failure, from
 * the setup or the command's execve, back to start(): EOF means exec'd.
 *
 * State: the backend owns <state_dir>/ns/ (overlay upper/work, mount points,
 * the /etc files) and vmbox/<id> cgroups; delete removes both. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "ns.h"

static const char *const subdirs[] = {"lower", "upper", "work", "rootfs"};

/* A mount destination: absolute, and not the root itself. */
static bool valid_target(const char *path)
{
  return path && path[0] == '/' && path[strspn(path, "/")] != '\0';
}

static int check_mounts(const struct box_spec *s, vmbox_error_t *err)
{
  for (size_t i = 0; i < s->n_mounts; i++) {
    const struct box_mount *m = &s->mounts[i];
    if (m->source == NULL || m->source[0] != '/' || !valid_target(m->target))
      return vmbox_error_set(err, 0, "volume %s:%s: want /HOST/PATH:/BOX/PATH (not /)",
                             m->source ? m->source : "", m->target ? m->target : "");
  }
  for (size_t i = 0; i < s->n_tmpfs; i++)
    if (!valid_target(s->tmpfs[i].target))
      return vmbox_error_set(err, 0, "tmpfs %s: want an absolute path other than /",
                             s->tmpfs[i].target ? s->tmpfs[i].target : "");
  return 0;
}

/* A rootless box runs without a cgroup of its own: limits need one the user
 * may write, and a delegated cgroup v2 is not used yet. */
static int check_rootless(const struct box_spec *s, vmbox_error_t *err)
{
  const struct box_limits *l = &s->limits;
  const char *flag = l->memory       ? "--memory"
                     : l->cpu_millis ? "--cpus"
                     : l->pids       ? "--pids-limit"
                                     : NULL;
  if (flag == NULL)
    return 0;
  vmbox_error_set(err, 0, "%s needs a cgroup, and rootless boxes run without one", flag);
  return vmbox_error_hint(err, "run vmbox as root, or drop --memory/--cpus/--pids-limit "
                               "(delegated cgroup v2 for rootless boxes is not supported yet)");
}

static int check_spec(const struct box_spec *s, vmbox_error_t *err)
{
  if (s->id == NULL || !backend__valid_id(s->id))
    return vmbox_error_set(err, 0, "invalid box id '%s'", s->id ? s->id : "");
  if (s->image == NULL || s->image[0] != '/')
    return vmbox_error_set(err, 0, "box %s: the image path must be absolute", s->id);
  if (s->state_dir == NULL || s->state_dir[0] != '/')
    return vmbox_error_set(err, 0, "box %s: the state dir must be absolute", s->id);
  if (s->proc.argv == NULL || s->proc.argv[0] == NULL)
    return vmbox_error_set(err, 0, "box %s: no command to run", s->id);
  if (check_mounts(s, err) < 0)
    return vmbox_error_wrap(err, "box %s", s->id);
  if (s->net.mode == BOX_NET_TAP) {
    vmbox_error_set(err, 0,
                    "tap networking needs --backend kvm; ns boxes get networking with the "
                    "bridge mode");
    return vmbox_error_hint(err, "use --backend kvm, or --net none");
  }
  if (s->net.mode != BOX_NET_NONE)
    return vmbox_error_set(err, 0, "box %s: only --network none is supported yet", s->id);
  if (geteuid() != 0)
    return check_rootless(s, err);
  return 0;
}

static int ns__delete(struct box *b, vmbox_error_t *err);

static int prepare(struct box *b, vmbox_error_t *err)
{
  const struct box_spec *s = b->spec;
  for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
    cleanup_free char *d = util__fmt("%s/%s", b->dir, subdirs[i]);
    if (util__mkdir_p(d, 0700, err) < 0)
      return -1;
  }
  if (seccomp__compile_default(&b->seccomp, err) < 0)
    return -1;
  if (b->map.active) /* no mount of ext4, no cgroup: see check_rootless */
    return unpack__tree(s->image, &b->map, &b->tree, &b->tree_lock, err);
  if (cgroup__create(&b->cg, s->id, &s->limits, err) < 0)
    return -1;
  /* Where the image namespace cannot be had (no /run, a restricted
   * container), each box mounts the image itself, as before. */
  vmbox_error_t e = NULL;
  b->lower_fd = imgmnt__clone(s->image, &e);
  vmbox_error_free(&e);
  if (b->lower_fd >= 0)
    return 0;
  return rootfs__loop_attach(s->image, &b->loop_dev, &b->loop_fd, err);
}

static int ns__create(const struct box_spec *spec, struct box **out, vmbox_error_t *err)
{
  if (check_spec(spec, err) < 0)
    return -1;
  struct box *b = xcalloc(1, sizeof(*b));
  b->spec = backend__spec_dup(spec);
  b->lower_fd = b->loop_fd = b->pidfd = b->tree_lock = -1;
  for (int i = 0; i < NS_FDS; i++)
    b->nsfd[i] = -1;
  userns__plan(&b->map);
  int r = backend__own_dir(spec, "ns", &b->dir, err);
  if (r == 0)
    r = prepare(b, err);
  if (r < 0) {
    vmbox_error_wrap(err, "create box %s", spec->id);
    ns__delete(b, NULL);
    return -1;
  }
  *out = b;
  return 0;
}

/* The box side of start, up to PID 1.  Never returns. */
static void box_child(struct box *b, struct launch *l)
{
  const struct box_spec *s = b->spec;
  vmbox_error_t err = NULL;
  int report_fd = l->report[1];
  launch__wait_go(l);
  umask(0);
  char host[13];
  snprintf(host, sizeof(host), "%s", s->id);
  if (unshare(CLONE_NEWCGROUP) < 0)
    vmbox_error_sys(&err, "new cgroup namespace");
  else if (chdir(b->dir) < 0)
    vmbox_error_sys(&err, "chdir %s", b->dir);
  else if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    vmbox_error_sys(&err, "make mounts private");
  if (err)
    init__fail(report_fd, &err);
  const char *hn = s->hostname ? s->hostname : host;
  int rootfd = rootfs__mount(b->lower_fd, b->loop_dev, b->tree, &err);
  if (rootfd < 0 || dev__mount_all(rootfd, &err) < 0 || etc__install(rootfd, hn, &err) < 0 ||
      rootfs__user_mounts(rootfd, s, &err) < 0)
    init__fail(report_fd, &err);
  if (sethostname(hn, strlen(hn)) < 0)
    vmbox_error_sys(&err, "sethostname %s", hn);
  if (err || etc__lo_up(&err) < 0 || rootfs__pivot(rootfd, s->read_only, &err) < 0)
    init__fail(report_fd, &err);
  close(rootfd);
  close(b->loop_fd);
  close(b->lower_fd);
  init__hide_cmdline();
  struct ns_exec x = {&s->proc, report_fd, l->console[1], &b->seccomp};
  init__run(&x);
}

/* fork-like clone: the child runs on a copy of our stack, no new stack. */
static pid_t clone_box(const struct box *b)
{
  unsigned long fl = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET;
  /* One clone: the other namespaces then belong to the new user ns. */
  if (b->map.active)
    fl |= CLONE_NEWUSER;
  return (pid_t)syscall(SYS_clone, fl | SIGCHLD, NULL, NULL, NULL, NULL);
}

static void reap(struct box *b)
{
  int st = 0;
  while (waitpid(b->pid, &st, 0) < 0 && errno == EINTR)
    ;
  init__decode_status(st, &b->exit);
  b->exit.oom = cgroup__oom_kills(&b->cg) > 0;
  b->state = BOX_EXITED;
}

static int ns__start(struct box *b, struct box_proc_io *io, vmbox_error_t *err)
{
  struct launch l;
  if (io)
    io->pty_master = -1;
  if (b->state != BOX_CREATED)
    return vmbox_error_set(err, 0, "box %s: already started", b->spec->id);
  if (launch__open(&l, b->spec->proc.tty, err) < 0)
    return -1;
  b->pid = clone_box(b);
  if (b->pid == 0) {
    launch__side(&l, true);
    box_child(b, &l);
  }
  int e = errno;
  launch__side(&l, false);
  if (b->pid < 0) {
    launch__close(&l);
    vmbox_error_set(err, e, "box %s: clone new namespaces", b->spec->id);
    if (b->map.active && (e == EPERM || e == ENOSPC))
      vmbox_error_hint(err, "rootless boxes need unprivileged user namespaces: check sysctl "
                            "user.max_user_namespaces and kernel.unprivileged_userns_clone");
    return -1;
  }
  b->state = BOX_RUNNING;
  b->pidfd = (int)syscall(SYS_pidfd_open, b->pid, 0);
  if (b->spec->timeout_sec)
    b->deadline_ns = util__now_ns() + (uint64_t)b->spec->timeout_sec * 1000000000ULL;
  int r = b->pidfd < 0 ? vmbox_error_sys(err, "box %s: pidfd", b->spec->id) : 0;
  if (r == 0 && b->map.active)
    r = userns__write_maps(&b->map, b->pid, err) < 0 ? -1 : userns__open_all(b->pid, b->nsfd, err);
  if (r == 0)
    r = cgroup__enter(&b->cg, b->pid, err);
  if (r == 0)
    r = launch__go(&l, b->spec->id, io, err);
  launch__close(&l);
  if (r < 0) {
    kill(b->pid, SIGKILL);
    reap(b);
    return -1;
  }
  /* Mounted in the box now: the loop device lives as long as that mount. */
  close(steal_fd(&b->loop_fd));
  close(steal_fd(&b->lower_fd));
  return 0;
}

static int ns__wait(struct box *b, struct box_exit *out, vmbox_error_t *err)
{
  if (b->state == BOX_CREATED)
    return vmbox_error_set(err, 0, "box %s: not started", b->spec->id);
  bool timed_out = false;
  while (b->state == BOX_RUNNING && b->deadline_ns) {
    uint64_t now = util__now_ns();
    int ms = now >= b->deadline_ns ? 0 : (int)((b->deadline_ns - now) / 1000000 + 1);
    struct pollfd pfd = {.fd = b->pidfd, .events = POLLIN};
    int r = poll(&pfd, 1, ms);
    if (r > 0)
      break;
    if (r == 0) {
      timed_out = true;
      kill(b->pid, SIGKILL);
      break;
    }
    if (errno != EINTR)
      return vmbox_error_sys(err, "box %s: wait", b->spec->id);
  }
  if (b->state == BOX_RUNNING)
    reap(b);
  if (timed_out) {
    b->exit.timed_out = true;
    b->exit.code = 137;
    b->exit.signal = SIGKILL;
  }
  *out = b->exit;
  return 0;
}

static int ns__wait_fd(struct box *b)
{
  return b->pidfd;
}

static int ns__signal(struct box *b, int sig, vmbox_error_t *err)
{
  if (b->state != BOX_RUNNING)
    return vmbox_error_set(err, ESRCH, "box %s: not running", b->spec->id);
  if (syscall(SYS_pidfd_send_signal, b->pidfd, sig, NULL, 0) < 0)
    return vmbox_error_sys(err, "box %s: signal %d", b->spec->id, sig);
  return 0;
}

static int ns__stats(struct box *b, struct box_stats *out, vmbox_error_t *err)
{
  return cgroup__stats(&b->cg, out, err);
}

static void ns__release(struct box *b)
{
  if (b->pidfd >= 0)
    close(b->pidfd);
  if (b->loop_fd >= 0)
    close(b->loop_fd);
  if (b->lower_fd >= 0)
    close(b->lower_fd);
  if (b->tree_lock >= 0)
    close(b->tree_lock);
  userns__close_all(b->nsfd);
  free(b->tree);
  cgroup__free(&b->cg);
  free(b->seccomp.filter);
  backend__spec_free(b->spec);
  free(b->loop_dev);
  free(b->dir);
  free(b);
}

/* The box's writes outlive it, as a stopped docker container's do: `vmbox
 * cp` reads them (cp.c) until the caller removes the state dir. */
static void keep_upper(const char *state_dir, const struct idmap *m)
{
  cleanup_free char *from = util__fmt("%s/ns/upper", state_dir);
  cleanup_free char *to = util__fmt("%s/upper", state_dir);
  if (rename(from, to) < 0 && errno != ENOENT)
    log__debug("keep the writes of %s: %s", state_dir, strerror(errno));
  /* Rootless: the CLI removes them later without a user namespace. */
  else if (userns__give_back(m, to, NULL) < 0)
    log__debug("give the writes of %s back to the user", state_dir);
}

static int ns__delete(struct box *b, vmbox_error_t *err)
{
  int ret = 0;
  if (b->state == BOX_RUNNING) {
    kill(b->pid, SIGKILL);
    reap(b);
  }
  if (b->cg.n && cgroup__destroy(&b->cg, err) < 0)
    ret = -1;
  if (b->dir[0])
    keep_upper(b->spec->state_dir, &b->map);
  /* Rootless with a subuid range, the box's files may have subuid owners. */
  if (b->dir[0] && userns__rm_rf(&b->map, b->dir, ret ? NULL : err) < 0)
    ret = -1;
  ns__release(b);
  return ret;
}

static int ns__cleanup(const char *id, const char *state_dir, vmbox_error_t *err)
{
  struct cgroup cg;
  cgroup__locate(&cg, id);
  int r = cgroup__destroy(&cg, err);
  cgroup__free(&cg);
  cleanup_free char *dir = util__fmt("%s/ns", state_dir);
  struct idmap map;
  userns__plan(&map);
  keep_upper(state_dir, &map);
  if (userns__rm_rf(&map, dir, r ? NULL : err) < 0)
    r = -1;
  return r;
}

const struct backend_ops ns__backend = {
    .name = "ns",
    .create = ns__create,
    .start = ns__start,
    .wait = ns__wait,
    .wait_fd = ns__wait_fd,
    .exec = ns__exec,
    .exec_wait = ns__exec_wait,
    .exec_free = ns__exec_free,
    .signal = ns__signal,
    .stats = ns__stats,
    .delete = ns__delete,
    .release = ns__release,
    .cleanup = ns__cleanup,
    .snapshot = NULL,
    .restore = NULL,
    .cp_out = ns__cp_out,
    .cp_in = ns__cp_in,
    .images_gone = imgmnt__gc,
};
