/* Rootless boxes: a non-root user gets a box in its own user namespace,
 * where the user is root (uid and gid 0).  With ranges for the user in
 * /etc/subuid and /etc/subgid (and shadow's setuid newuidmap/newgidmap),
 * ids 1..n of the box map there, as podman does, and images keep their
 * owners; without, nothing else is mapped (the single-uid map).  Root in
 * the box has every capability over the box's own namespaces and over
 * files of mapped owners, and none over the host's (unmapped: nobody).
 *
 * The monitor writes the maps of its freshly cloned child before letting it
 * go, and opens the child's namespaces then, while the child is still
 * dumpable: once it is not, only CAP_SYS_PTRACE in the host's user
 * namespace could open them, and exec needs them. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pwd.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

#define NEWUIDMAP "/usr/bin/newuidmap"
#define NEWGIDMAP "/usr/bin/newgidmap"

/* In setns order: the user namespace first, so joining the others is
 * allowed by the capabilities it gives. */
static const char *const ns_names[NS_FDS] = {"user", "mnt", "pid", "ipc", "uts", "net"};

/* The first "NAME:START:COUNT" (or "UID:START:COUNT") line for the user. */
static bool sub_range(const char *file, const char *name, unsigned id, uint32_t *start,
                      uint32_t *count)
{
  cleanup_free char *buf = NULL;
  char ids[16];
  snprintf(ids, sizeof(ids), "%u", id);
  if (util__read_file(file, &buf, NULL, NULL) < 0)
    return false;
  for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
    char who[256];
    unsigned long s, c;
    if (sscanf(l, "%255[^:]:%lu:%lu", who, &s, &c) != 3 || c == 0 || s > UINT32_MAX ||
        c > UINT32_MAX - s)
      continue;
    if (strcmp(who, name) == 0 || strcmp(who, ids) == 0) {
      *start = (uint32_t)s;
      *count = (uint32_t)c;
      return true;
    }
  }
  return false;
}

void userns__plan(struct idmap *m)
{
  memset(m, 0, sizeof(*m));
  m->active = geteuid() != 0;
  m->uid = geteuid();
  m->gid = getegid();
  if (!m->active || access(NEWUIDMAP, X_OK) < 0 || access(NEWGIDMAP, X_OK) < 0)
    return;
  struct passwd *pw = getpwuid(m->uid);
  const char *name = pw ? pw->pw_name : "";
  if (!sub_range("/etc/subuid", name, m->uid, &m->subuid, &m->nsubuid) ||
      !sub_range("/etc/subgid", name, m->uid, &m->subgid, &m->nsubgid))
    m->nsubuid = m->nsubgid = 0;
}

static int write_proc(pid_t pid, const char *file, const char *body, vmbox_error_t *err)
{
  cleanup_free char *path = util__fmt("/proc/%d/%s", (int)pid, file);
  cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, body, strlen(body)) != (ssize_t)strlen(body))
    return vmbox_error_sys(err, "write %s", path);
  return 0;
}

/* newuidmap PID 0 ID 1 1 START COUNT; its stderr becomes the message. */
static int run_map_tool(const char *tool, pid_t pid, unsigned id, uint32_t start, uint32_t count,
                        vmbox_error_t *err)
{
  char a[4][16];
  snprintf(a[0], 16, "%d", (int)pid), snprintf(a[1], 16, "%u", id);
  snprintf(a[2], 16, "%u", start), snprintf(a[3], 16, "%u", count);
  char *argv[] = {(char *)tool, a[0], "0", a[1], "1", "1", a[2], a[3], NULL};
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0)
    return vmbox_error_sys(err, "pipe");
  pid_t c = fork();
  if (c == 0) {
    dup2(ep[1], 2);
    execv(tool, argv);
    _exit(127);
  }
  close(ep[1]);
  char msg[256] = "";
  ssize_t n = c < 0 ? 0 : read(ep[0], msg, sizeof(msg) - 1);
  close(ep[0]);
  msg[n > 0 ? n : 0] = '\0';
  msg[strcspn(msg, "\n")] = '\0';
  int st = 0;
  while (c > 0 && waitpid(c, &st, 0) < 0 && errno == EINTR)
    ;
  if (c < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return vmbox_error_set(err, 0, "%s %s: %s", tool, a[0], msg[0] ? msg : "failed");
  return 0;
}

static int write_sub_maps(const struct idmap *m, pid_t pid, vmbox_error_t *err)
{
  if (run_map_tool(NEWUIDMAP, pid, m->uid, m->subuid, m->nsubuid, err) < 0 ||
      run_map_tool(NEWGIDMAP, pid, m->gid, m->subgid, m->nsubgid, err) < 0)
    return vmbox_error_hint(err, "check your lines in /etc/subuid and /etc/subgid (or remove "
                                 "them for the single-uid map)");
  return 0;
}

int userns__write_maps(const struct idmap *m, pid_t pid, vmbox_error_t *err)
{
  if (m->nsubuid)
    return write_sub_maps(m, pid, err) < 0 ? vmbox_error_wrap(err, "rootless box: id map") : 0;
  char uid_map[64], gid_map[64];
  snprintf(uid_map, sizeof(uid_map), "0 %u 1\n", (unsigned)m->uid);
  snprintf(gid_map, sizeof(gid_map), "0 %u 1\n", (unsigned)m->gid);
  /* An unprivileged writer may map only its own gid, and only once
   * setgroups(2) is off for good: else the box could drop a group the host
   * uses to deny it something. */
  if (write_proc(pid, "setgroups", "deny", err) < 0 ||
      write_proc(pid, "uid_map", uid_map, err) < 0 ||
      write_proc(pid, "gid_map", gid_map, err) < 0) {
    vmbox_error_wrap(err, "rootless box: user namespace id map");
    return vmbox_error_hint(err, "check that user namespaces are enabled "
                                 "(sysctl user.max_user_namespaces)");
  }
  return 0;
}

/* The child of userns__run: new user ns, wait for its maps, run fn. */
static void run_child(int sync, int report, int (*fn)(void *, vmbox_error_t *), void *arg)
{
  vmbox_error_t err = NULL;
  char c = 'u';
  if (unshare(CLONE_NEWUSER) < 0)
    vmbox_error_sys(&err, "new user namespace");
  else if (write(sync, &c, 1) != 1 || read(sync, &c, 1) != 1)
    vmbox_error_set(&err, 0, "user namespace: the parent gave up");
  else
    fn(arg, &err);
  if (err)
    init__fail(report, &err);
  _exit(0);
}

int userns__run(const struct idmap *m, int (*fn)(void *arg, vmbox_error_t *err), void *arg,
                vmbox_error_t *err)
{
  if (!m->active || m->nsubuid == 0)
    return fn(arg, err); /* everything is the user's already */
  int sync[2], rep[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0)
    return vmbox_error_sys(err, "socketpair");
  if (pipe2(rep, O_CLOEXEC) < 0) {
    close(sync[0]), close(sync[1]);
    return vmbox_error_sys(err, "pipe");
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(sync[0]), close(rep[0]);
    run_child(sync[1], rep[1], fn, arg);
  }
  close(sync[1]), close(rep[1]);
  char c;
  int r = pid < 0 ? vmbox_error_sys(err, "fork") : 0;
  /* Maps once it has its namespace; if it died, its report says why. */
  if (r == 0 && read(sync[0], &c, 1) == 1 && (r = write_sub_maps(m, pid, err)) == 0)
    (void)!write(sync[0], "g", 1);
  if (r == 0)
    r = launch__read_report(rep[0], "rootless", err);
  close(sync[0]), close(rep[0]);
  int st = 0;
  while (pid > 0 && waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (r == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
    r = vmbox_error_set(err, 0, "rootless: the user namespace helper died (status %d)", st);
  return r;
}

static int rm_fn(void *path, vmbox_error_t *err)
{
  return util__rm_rf(path, err);
}

int userns__rm_rf(const struct idmap *m, const char *path, vmbox_error_t *err)
{
  return userns__run(m, rm_fn, (void *)path, err);
}

static int own_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st, (void)flag, (void)ftw;
  return lchown(path, 0, 0) < 0 && errno != ENOENT ? -1 : 0;
}

static int give_back_fn(void *path, vmbox_error_t *err)
{
  if (nftw(path, own_cb, 32, FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
    return vmbox_error_sys(err, "chown %s", (const char *)path);
  return 0;
}

int userns__give_back(const struct idmap *m, const char *path, vmbox_error_t *err)
{
  if (!m->active || m->nsubuid == 0)
    return 0;
  return userns__run(m, give_back_fn, (void *)path, err);
}

int userns__open_all(pid_t pid, int fds[NS_FDS], vmbox_error_t *err)
{
  for (int i = 0; i < NS_FDS; i++) {
    cleanup_free char *path = util__fmt("/proc/%d/ns/%s", (int)pid, ns_names[i]);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0)
      return vmbox_error_sys(err, "open %s", path);
  }
  return 0;
}

int userns__join_all(const int fds[NS_FDS], vmbox_error_t *err)
{
  for (int i = 0; i < NS_FDS; i++)
    if (setns(fds[i], 0) < 0)
      return vmbox_error_sys(err, "join the box's %s namespace", ns_names[i]);
  return 0;
}

void userns__close_all(int fds[NS_FDS])
{
  for (int i = 0; i < NS_FDS; i++)
    if (fds[i] >= 0)
      close(fds[i]), fds[i] = -1;
}
