/* Box limits through cgroups: v2 when /sys/fs/cgroup is cgroup2, otherwise
 * v1 per controller.  On hybrid hosts (cgroup2 at /sys/fs/cgroup/unified)
 * the controllers are bound to v1, so the limits must go there.  Each box
 * gets vmbox/<id> in every hierarchy it uses. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/log.h"
#include "../../lib/util.h"
#include "ns.h"

#define CG_ROOT "/sys/fs/cgroup"
static const char *const v1_ctrls[] = {"memory", "pids", "cpu", "cpuacct"};

static bool is_fs(const char *path, long magic)
{
  struct statfs sf;
  return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

static int cg_write(const char *dir, const char *file, const char *val, vmbox_error_t *err)
{
  cleanup_free char *p = util__fmt("%s/%s", dir, file);
  cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, val, strlen(val)) < 0)
    return vmbox_error_sys(err, "cgroup: write %s to %s", val, p);
  return 0;
}

static uint64_t cg_read_u64(const char *dir, const char *file, const char *key)
{
  cleanup_free char *p = util__fmt("%s/%s", dir, file);
  cleanup_free char *buf = NULL;
  if (util__read_file(p, &buf, NULL, NULL) < 0)
    return 0;
  if (key == NULL)
    return strtoull(buf, NULL, 10);
  size_t kl = strlen(key);
  for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (strncmp(l, key, kl) == 0 && l[kl] == ' ')
      return strtoull(l + kl + 1, NULL, 10);
  return 0;
}

static const char *cg_dir(const struct cgroup *cg, const char *ctrl)
{
  if (cg->v2)
    return cg->n ? cg->dirs[0] : NULL;
  for (size_t i = 0; i < cg->n; i++)
    if (strcmp(cg->ctrl[i], ctrl) == 0)
      return cg->dirs[i];
  return NULL;
}

void cgroup__locate(struct cgroup *cg, const char *id)
{
  memset(cg, 0, sizeof(*cg));
  cg->v2 = is_fs(CG_ROOT, CGROUP2_SUPER_MAGIC);
  if (cg->v2) {
    cg->dirs[cg->n++] = util__fmt(CG_ROOT "/vmbox/%s", id);
    return;
  }
  for (size_t i = 0; i < ARRAY_SIZE(v1_ctrls); i++) {
    cleanup_free char *top = util__fmt(CG_ROOT "/%s", v1_ctrls[i]);
    if (!is_fs(top, CGROUP_SUPER_MAGIC))
      continue;
    cg->ctrl[cg->n] = xstrdup(v1_ctrls[i]);
    cg->dirs[cg->n++] = util__fmt("%s/vmbox/%s", top, id);
  }
  /* Hybrid: no controllers in the unified tree, but a box there still gets
   * its own cgroup namespace view and cgroup.kill, as systemd does. */
  if (is_fs(CG_ROOT "/unified", CGROUP2_SUPER_MAGIC)) {
    cg->ctrl[cg->n] = xstrdup("unified");
    cg->dirs[cg->n++] = util__fmt(CG_ROOT "/unified/vmbox/%s", id);
  }
}

/* v2 only hands controllers to children that the parent enabled. */
static int v2_enable(vmbox_error_t *err)
{
  if (util__mkdir_p(CG_ROOT "/vmbox", 0755, err) < 0)
    return -1;
  /* Best effort: a missing controller shows when a limit needs its file. */
  const char *want[] = {"+memory", "+pids", "+cpu"};
  for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
    cg_write(CG_ROOT, "cgroup.subtree_control", want[i], NULL);
    cg_write(CG_ROOT "/vmbox", "cgroup.subtree_control", want[i], NULL);
  }
  return 0;
}

static int v2_limits(const char *dir, const struct box_limits *l, vmbox_error_t *err)
{
  char v[64];
  if (l->memory) {
    snprintf(v, sizeof(v), "%" PRIu64, l->memory);
    if (cg_write(dir, "memory.max", v, err) < 0)
      return -1;
    cg_write(dir, "memory.swap.max", "0", NULL); /* absent without swap accounting */
  }
  if (l->pids) {
    snprintf(v, sizeof(v), "%" PRId64, l->pids);
    if (cg_write(dir, "pids.max", v, err) < 0)
      return -1;
  }
  if (l->cpu_millis) {
    snprintf(v, sizeof(v), "%" PRIu64 " 100000", l->cpu_millis * 100);
    if (cg_write(dir, "cpu.max", v, err) < 0)
      return -1;
  }
  return 0;
}

static int v1_limits(const struct cgroup *cg, const struct box_limits *l, vmbox_error_t *err)
{
  char v[64];
  const char *mem = cg_dir(cg, "memory"), *pids = cg_dir(cg, "pids"), *cpu = cg_dir(cg, "cpu");
  if ((l->memory && !mem) || (l->pids && !pids) || (l->cpu_millis && !cpu))
    return vmbox_error_set(err, 0, "cgroup: a controller for the requested limits is missing");
  if (l->memory) {
    snprintf(v, sizeof(v), "%" PRIu64, l->memory);
    if (cg_write(mem, "memory.limit_in_bytes", v, err) < 0)
      return -1;
    /* No swap on top of the limit, as with a v2 memory.swap.max of 0. */
    cg_write(mem, "memory.memsw.limit_in_bytes", v, NULL);
  }
  if (l->pids) {
    snprintf(v, sizeof(v), "%" PRId64, l->pids);
    if (cg_write(pids, "pids.max", v, err) < 0)
      return -1;
  }
  if (l->cpu_millis) {
    snprintf(v, sizeof(v), "%" PRIu64, l->cpu_millis * 100);
    if (cg_write(cpu, "cpu.cfs_period_us", "100000", err) < 0 ||
        cg_write(cpu, "cpu.cfs_quota_us", v, err) < 0)
      return -1;
  }
  return 0;
}

int cgroup__create(struct cgroup *cg, const char *id, const struct box_limits *l,
                   vmbox_error_t *err)
{
  cgroup__locate(cg, id);
  if (cg->n == 0)
    return vmbox_error_set(err, 0, "cgroup: no usable cgroup hierarchy under " CG_ROOT);
  if (cg->v2 && v2_enable(err) < 0)
    return -1;
  for (size_t i = 0; i < cg->n; i++) {
    cleanup_free char *parent = xstrndup(cg->dirs[i], strrchr(cg->dirs[i], '/') - cg->dirs[i]);
    if (util__mkdir_p(parent, 0755, err) < 0)
      return vmbox_error_wrap(err, "cgroup");
    /* Exclusive: another box with this id must not share (or lose) it. */
    if (mkdir(cg->dirs[i], 0755) < 0) {
      int e = errno;
      while (i > 0)
        rmdir(cg->dirs[--i]);
      cgroup__free(cg);
      vmbox_error_set(err, e, "cgroup vmbox/%s", id);
      return e == EEXIST ? vmbox_error_hint(err, "a box with this id exists or was not cleaned up")
                         : -1;
    }
  }
  if (cg->v2 ? v2_limits(cg->dirs[0], l, err) : v1_limits(cg, l, err))
    return vmbox_error_wrap(err, "box %s: limits", id);
  return 0;
}

int cgroup__enter(const struct cgroup *cg, pid_t pid, vmbox_error_t *err)
{
  char v[32];
  snprintf(v, sizeof(v), "%d", (int)pid);
  for (size_t i = 0; i < cg->n; i++)
    if (cg_write(cg->dirs[i], "cgroup.procs", v, err) < 0)
      return -1;
  return 0;
}

uint64_t cgroup__oom_kills(const struct cgroup *cg)
{
  const char *mem = cg_dir(cg, "memory");
  if (mem == NULL)
    return 0;
  if (cg->v2)
    return cg_read_u64(mem, "memory.events", "oom_kill");
  return cg_read_u64(mem, "memory.oom_control", "oom_kill");
}

int cgroup__stats(const struct cgroup *cg, struct box_stats *st, vmbox_error_t *err)
{
  (void)err;
  memset(st, 0, sizeof(*st));
  if (cg->v2) {
    const char *d = cg->dirs[0];
    st->cpu_ns = cg_read_u64(d, "cpu.stat", "usage_usec") * 1000;
    st->mem_bytes = cg_read_u64(d, "memory.current", NULL);
    st->mem_limit = cg_read_u64(d, "memory.max", NULL); /* "max" reads as 0 */
    st->pids = cg_read_u64(d, "pids.current", NULL);
    return 0;
  }
  const char *d;
  if ((d = cg_dir(cg, "cpuacct")))
    st->cpu_ns = cg_read_u64(d, "cpuacct.usage", NULL);
  if ((d = cg_dir(cg, "memory"))) {
    st->mem_bytes = cg_read_u64(d, "memory.usage_in_bytes", NULL);
    st->mem_limit = cg_read_u64(d, "memory.limit_in_bytes", NULL);
    if (st->mem_limit >= (1ULL << 62)) /* v1 "unlimited" is PAGE_COUNTER_MAX */
      st->mem_limit = 0;
  }
  if ((d = cg_dir(cg, "pids")))
    st->pids = cg_read_u64(d, "pids.current", NULL);
  return 0;
}

/* SIGKILLs every task listed; returns how many there were. */
static int kill_tasks(const char *dir)
{
  cleanup_free char *p = util__fmt("%s/cgroup.procs", dir);
  cleanup_free char *buf = NULL;
  if (util__read_file(p, &buf, NULL, NULL) < 0)
    return 0;
  int n = 0;
  for (char *s = buf, *end; *s; s = end) {
    long pid = strtol(s, &end, 10);
    if (end == s)
      break;
    if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
      n++;
  }
  return n;
}

static int remove_dir(const char *dir, vmbox_error_t *err)
{
  /* Tasks take a moment to leave after SIGKILL; rmdir says EBUSY meanwhile. */
  for (int tries = 0; tries < 500; tries++) {
    if (rmdir(dir) == 0 || errno == ENOENT)
      return 0;
    if (errno != EBUSY)
      break;
    kill_tasks(dir);
    nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
  }
  return vmbox_error_sys(err, "cgroup: remove %s", dir);
}

int cgroup__destroy(struct cgroup *cg, vmbox_error_t *err)
{
  int ret = 0;
  /* cgroup.kill (v2, 5.14+) also gets tasks forking while we read procs. */
  for (size_t i = 0; i < cg->n; i++)
    if (cg->v2 || (cg->ctrl[i] && strcmp(cg->ctrl[i], "unified") == 0))
      cg_write(cg->dirs[i], "cgroup.kill", "1", NULL);
  for (size_t i = 0; i < cg->n; i++)
    kill_tasks(cg->dirs[i]);
  for (size_t i = 0; i < cg->n; i++)
    if (remove_dir(cg->dirs[i], err) < 0)
      ret = -1;
  return ret;
}

void cgroup__free(struct cgroup *cg)
{
  for (size_t i = 0; i < cg->n; i++) {
    free(cg->dirs[i]);
    free(cg->ctrl[i]);
  }
  memset(cg, 0, sizeof(*cg));
}
