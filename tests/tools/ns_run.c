/* ns_run: runs one box through the backend interface (create, start, wait,
 * delete), the way the per-box monitor will, and exits with the box's
 * status.  The test harness of tests/ns.bats.
 *
 *   ns_run --image IMG.ext4 --state DIR [--id ID] [--backend NAME]
 *          [--memory 64m] [--pids N] [--cpus 1.5] [--read-only] [--timeout S]
 *          [-v HOST:GUEST[:ro]]... [--tmpfs GUEST]... [-e K=V]... [-w DIR]
 *          [-u UID[:GID[:G1,G2]]] [--hostname H] [--exec 'SH CMD']... [--stats]
 *          [--signal SIG@MS] [-t] [--time] [--keep] -- CMD [ARG...]
 *   ns_run --cleanup --id ID --state DIR
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../backends/backend.h"
#include "../../lib/util.h"

struct opts {
  struct box_spec spec;
  struct box_mount mounts[16];
  struct box_tmpfs tmpfs[16];
  gid_t groups[16];
  char **env;
  char **execs;
  const char *backend;
  bool time, keep, stats, cleanup;
  int signal, signal_ms; /* --signal SIG@MS: ops->signal after MS */
};

static int usage(void)
{
  fprintf(stderr, "usage: ns_run --image IMG --state DIR [options] -- CMD [ARG...]\n");
  return 2;
}

static int parse_user(struct opts *o, const char *s)
{
  char *end;
  o->spec.proc.uid = (uid_t)strtoul(s, &end, 10);
  o->spec.proc.gid = o->spec.proc.uid;
  if (*end == ':')
    o->spec.proc.gid = (gid_t)strtoul(end + 1, &end, 10);
  while (*end == ':' || *end == ',') {
    if (o->spec.proc.n_groups == ARRAY_SIZE(o->groups))
      return -1;
    o->groups[o->spec.proc.n_groups++] = (gid_t)strtoul(end + 1, &end, 10);
  }
  o->spec.proc.groups = o->groups;
  return *end ? -1 : 0;
}

static int parse_volume(struct opts *o, char *s)
{
  if (o->spec.n_mounts == ARRAY_SIZE(o->mounts))
    return -1;
  struct box_mount *m = &o->mounts[o->spec.n_mounts++];
  char *c1 = strchr(s, ':');
  if (c1 == NULL)
    return -1;
  *c1 = '\0';
  char *c2 = strchr(c1 + 1, ':');
  if (c2) {
    *c2 = '\0';
    m->read_only = strcmp(c2 + 1, "ro") == 0;
  }
  m->source = s;
  m->target = c1 + 1;
  o->spec.mounts = o->mounts;
  return 0;
}

static int parse_limit(struct opts *o, int c, const char *v, vmbox_error_t *err)
{
  if (c == 'm')
    return util__parse_size(v, &o->spec.limits.memory, err);
  if (c == 'p')
    o->spec.limits.pids = strtoll(v, NULL, 10);
  if (c == 'c')
    o->spec.limits.cpu_millis = (uint64_t)(strtod(v, NULL) * 1000);
  return 0;
}

static int parse(struct opts *o, int argc, char **argv, vmbox_error_t *err)
{
  static const struct option lo[] = {
      {"image", 1, 0, 'I'},     {"state", 1, 0, 'S'},   {"id", 1, 0, 'i'},
      {"memory", 1, 0, 'm'},    {"pids", 1, 0, 'p'},    {"cpus", 1, 0, 'c'},
      {"read-only", 0, 0, 'r'}, {"tmpfs", 1, 0, 'T'},   {"hostname", 1, 0, 'h'},
      {"exec", 1, 0, 'x'},      {"time", 0, 0, 'M'},    {"keep", 0, 0, 'k'},
      {"stats", 0, 0, 's'},     {"cleanup", 0, 0, 'C'}, {"timeout", 1, 0, 'o'},
      {"backend", 1, 0, 'b'},   {"signal", 1, 0, 'g'},  {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "+v:e:w:u:t", lo, NULL)) != -1) {
    switch (c) {
    case 'I': o->spec.image = optarg; break;
    case 'S': o->spec.state_dir = optarg; break;
    case 'i': o->spec.id = optarg; break;
    case 'm':
    case 'p':
    case 'c':
      if (parse_limit(o, c, optarg, err) < 0)
        return -1;
      break;
    case 'r': o->spec.read_only = true; break;
    case 'h': o->spec.hostname = optarg; break;
    case 'x': strv_push(&o->execs, optarg); break;
    case 'M': o->time = true; break;
    case 'k': o->keep = true; break;
    case 's': o->stats = true; break;
    case 'C': o->cleanup = true; break;
    case 'o': o->spec.timeout_sec = (unsigned)atoi(optarg); break;
    case 'b': o->backend = optarg; break;
    case 'g':
      if (sscanf(optarg, "%d@%d", &o->signal, &o->signal_ms) != 2)
        return vmbox_error_set(err, 0, "bad --signal %s (want SIG@MS)", optarg);
      break;
    case 'e': strv_push(&o->env, optarg); break;
    case 't': o->spec.proc.tty = true; break;
    case 'w': o->spec.proc.cwd = optarg; break;
    case 'T':
      if (o->spec.n_tmpfs == ARRAY_SIZE(o->tmpfs))
        return vmbox_error_set(err, 0, "too many --tmpfs");
      o->tmpfs[o->spec.n_tmpfs++].target = optarg;
      o->spec.tmpfs = o->tmpfs;
      break;
    case 'u':
      if (parse_user(o, optarg) < 0)
        return vmbox_error_set(err, 0, "bad -u %s", optarg);
      break;
    case 'v':
      if (parse_volume(o, optarg) < 0)
        return vmbox_error_set(err, 0, "bad -v");
      break;
    default: return vmbox_error_set(err, 0, "bad option");
    }
  }
  o->spec.proc.argv = argv + optind;
  return 0;
}

static void default_env(struct opts *o)
{
  char **env = NULL;
  strv_push(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  strv_push(&env, "HOME=/root");
  for (size_t i = 0; o->env && o->env[i]; i++)
    strv_push(&env, o->env[i]);
  strv_free(o->env);
  o->env = env;
  o->spec.proc.env = env;
  o->spec.proc.stdio = (struct box_stdio){0, 1, 2};
}

static int run_execs(const struct backend_ops *ops, struct box *b, struct opts *o,
                     vmbox_error_t *err)
{
  for (size_t i = 0; o->execs && o->execs[i]; i++) {
    char *argv[] = {"/bin/sh", "-c", o->execs[i], NULL};
    struct box_process p = o->spec.proc;
    p.argv = argv;
    struct box_proc *bp = NULL;
    struct box_exit e;
    if (ops->exec(b, &p, &bp, NULL, err) < 0)
      return -1;
    ops->exec_wait(bp, &e, err);
    ops->exec_free(bp);
    printf("exec %zu: exit %d\n", i, e.code);
    fflush(stdout);
  }
  if (o->signal) {
    usleep((useconds_t)o->signal_ms * 1000);
    if (ops->signal(b, o->signal, err) < 0)
      return -1;
  }
  if (o->stats) {
    struct box_stats st;
    if (ops->stats(b, &st, err) < 0)
      return -1;
    printf("stats: cpu_ns=%llu mem=%llu limit=%llu pids=%llu\n", (unsigned long long)st.cpu_ns,
           (unsigned long long)st.mem_bytes, (unsigned long long)st.mem_limit,
           (unsigned long long)st.pids);
    fflush(stdout);
  }
  return 0;
}

/* With -t: the box's output arrives on the pty master; copy it out until
 * the last holder of the slave side is gone (EIO). */
static void pump_pty(int master)
{
  char buf[4096];
  ssize_t n;
  while ((n = read(master, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
    if (n > 0 && write(1, buf, (size_t)n) < 0)
      break;
  close(master);
}

static int run(const struct backend_ops *ops, struct opts *o, vmbox_error_t *err)
{
  struct box *b = NULL;
  struct box_exit e = {0};
  uint64_t t0 = util__now_ns();
  if (ops->create(&o->spec, &b, err) < 0)
    return -1;
  uint64_t t1 = util__now_ns();
  struct box_proc_io io = {.pty_master = -1};
  int r = ops->start(b, &io, err);
  uint64_t t2 = util__now_ns();
  if (io.pty_master >= 0)
    pump_pty(io.pty_master);
  if (r == 0 && run_execs(ops, b, o, err) == 0)
    r = ops->wait(b, &e, err);
  else
    r = -1;
  uint64_t t3 = util__now_ns();
  if (o->keep)
    ops->release(b);
  else if (ops->delete (b, r < 0 ? NULL : err) < 0)
    r = -1;
  uint64_t t4 = util__now_ns();
  if (o->time)
    fprintf(stderr,
            "ns_run: create %.2f ms, start %.2f ms, wait %.2f ms, delete %.2f ms, total %.2f ms\n",
            (t1 - t0) / 1e6, (t2 - t1) / 1e6, (t3 - t2) / 1e6, (t4 - t3) / 1e6, (t4 - t0) / 1e6);
  if (r < 0)
    return -1;
  if (e.oom)
    fprintf(stderr, "ns_run: oom\n");
  if (e.timed_out)
    fprintf(stderr, "ns_run: timed out\n");
  return e.code;
}

int main(int argc, char **argv)
{
  struct opts o = {0};
  vmbox_error_t err = NULL;
  const struct backend_ops *ops = NULL;
  o.spec.id = "nsrun";
  o.backend = "ns";
  if (parse(&o, argc, argv, &err) < 0 || backend__lookup(o.backend, &ops, &err) < 0) {
    strv_free(o.env);
    strv_free(o.execs);
    return vmbox_error_report(&err);
  }
  int code;
  if (o.cleanup) {
    code = o.spec.state_dir ? ops->cleanup(o.spec.id, o.spec.state_dir, &err) : usage();
  } else if (!o.spec.image || !o.spec.state_dir || !o.spec.proc.argv[0]) {
    code = usage();
  } else {
    default_env(&o);
    code = run(ops, &o, &err);
  }
  strv_free(o.env);
  strv_free(o.execs);
  return code < 0 ? vmbox_error_report(&err) : code;
}
