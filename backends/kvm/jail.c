/* The VMM's jail; see jail.h.  Order matters in jail__enter: the seccomp
 * programs are compiled first (libseccomp needs nothing of the host but
 * memory), then the namespaces and the new root, then the credentials, last
 * no_new_privs.  Threads load their program themselves (jail__thread), so
 * each gets only its kind's list; the main thread loads its own after it
 * started every other (a filter is inherited by the threads created later,
 * and stacks with theirs). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "jail.h"
#include "vmm.h"

#define JAIL_NAMES 512       /* syscall numbers the SIGSYS handler can name */
#define JAIL_ROOT_MNT "/tmp" /* where the new root is built before the pivot */

struct jail_prog {
  struct sock_filter *insns;
  unsigned short len;
};

/* Set once by jail__enter (single-threaded), read-only afterwards. */
static struct {
  bool on;
  struct jail_prog prog[3]; /* by enum jail_thread */
  struct jail_spec spec;
  char names[JAIL_NAMES][24];
  long selftest_nr; /* VMBOX_JAIL_SELFTEST: -1 none */
  enum jail_thread selftest_kind;
} jail = {.selftest_nr = -1};

bool jail__enabled(void)
{
  const char *v = getenv("VMBOX_KVM_JAIL");
  return !(v && strcmp(v, "0") == 0);
}

pid_t jail__fork(void)
{
  if (jail__enabled() && geteuid() == 0) {
    /* A raw clone is a fork with flags; the caller is single-threaded,
     * so skipping glibc's atfork handlers is safe. */
    long pid = syscall(SYS_clone, (unsigned long)(CLONE_NEWPID | SIGCHLD), NULL, NULL, NULL, 0);
    if (pid >= 0)
      return (pid_t)pid;
    /* No pid namespace here (a container without CAP_SYS_ADMIN...):
     * jail__enter will say what fails. */
  }
  return fork();
}

/* --- the allowlists -------------------------------------------------------------- */

struct jail_rule {
  const char *name;
  unsigned arg; /* with op != 0: allowed only when the argument matches */
  enum scmp_compare op;
  uint64_t a, b;
};

#define ALLOW(n)                                                                                   \
  {                                                                                                \
    .name = (n)                                                                                    \
  }
#define ALLOW_NOEXEC(n)                                                                            \
  {                                                                                                \
    .name = (n), .arg = 2, .op = SCMP_CMP_MASKED_EQ, .a = PROT_EXEC, .b = 0                        \
  }
#define IOCTL(req)                                                                                 \
  {                                                                                                \
    .name = "ioctl", .arg = 1, .op = SCMP_CMP_MASKED_EQ, .a = 0xffffffffu, .b = (req)              \
  }
#define UNIX_SOCKET                                                                                \
  {                                                                                                \
    .name = "socket", .arg = 0, .op = SCMP_CMP_EQ, .a = AF_UNIX                                    \
  }

/* Every thread: memory (never executable: no code arrives after setup),
 * locks, time, its own fds, leaving.  sigaltstack and mremap for ASan. */
static const struct jail_rule jail_common[] = {
    ALLOW("futex"),
    ALLOW("exit"),
    ALLOW("exit_group"),
    ALLOW("rt_sigreturn"),
    ALLOW("rt_sigprocmask"),
    ALLOW("restart_syscall"),
    ALLOW("sigaltstack"),
    ALLOW("munmap"),
    ALLOW("madvise"),
    ALLOW("mremap"),
    ALLOW("brk"),
    ALLOW_NOEXEC("mmap"),
    ALLOW_NOEXEC("mprotect"),
    ALLOW("clock_gettime"),
    ALLOW("clock_nanosleep"),
    ALLOW("nanosleep"),
    ALLOW("gettimeofday"),
    ALLOW("sched_yield"),
    ALLOW("getpid"),
    ALLOW("gettid"),
    ALLOW("read"),
    ALLOW("readv"),
    ALLOW("write"),
    ALLOW("writev"),
    ALLOW("close"),
    ALLOW("fstat"),
    ALLOW("newfstatat"),
    ALLOW("lseek"),
    ALLOW("getrandom"),
    ALLOW("fcntl"),
    /* files in the jail dir: the disk map and timing (temp + rename,
     * fsync), console.log read back at the end */
    ALLOW("openat"),
    ALLOW("rename"),
    ALLOW("renameat"),
    ALLOW("unlink"),
    ALLOW("fsync"),
    ALLOW("fdatasync"),
    ALLOW("pread64"),
    ALLOW("pwrite64"),
};

/* vCPUs: KVM_RUN and what device handlers do on them: the disk, eventfd
 * and socket writes, IRQ lines, TAP offloads the guest negotiated. */
static const struct jail_rule jail_vcpu[] = {
    IOCTL(KVM_RUN),       IOCTL(KVM_GET_REGS), IOCTL(KVM_IRQ_LINE), IOCTL(KVM_SIGNAL_MSI),
    IOCTL(TUNSETOFFLOAD), ALLOW("preadv"),     ALLOW("pwritev"),    ALLOW("sendmsg"),
    ALLOW("sendto"),      ALLOW("recvmsg"),    ALLOW("recvfrom"),   ALLOW("epoll_ctl"),
    ALLOW("shutdown"),    ALLOW("connect"),    UNIX_SOCKET,
};

/* Device and I/O threads: an event loop over sockets, pipes, the TAP, the
 * pty of -t (its size). */
static const struct jail_rule jail_io[] = {
    IOCTL(KVM_IRQ_LINE), IOCTL(KVM_SIGNAL_MSI), IOCTL(FIONREAD),
    IOCTL(TIOCGWINSZ),   IOCTL(TUNSETOFFLOAD),  ALLOW("epoll_create1"),
    ALLOW("epoll_ctl"),  ALLOW("epoll_wait"),   ALLOW("epoll_pwait"),
    ALLOW("poll"),       ALLOW("ppoll"),        ALLOW("accept4"),
    ALLOW("connect"),    UNIX_SOCKET,           ALLOW("recvmsg"),
    ALLOW("recvfrom"),   ALLOW("sendmsg"),      ALLOW("sendto"),
    ALLOW("shutdown"),   ALLOW("getsockopt"),   ALLOW("setsockopt"),
    ALLOW("preadv"),     ALLOW("pwritev"),      ALLOW("eventfd2"),
};

/* The main thread waits, then tears down: joins, kicks, unmaps, flushes. */
static const struct jail_rule jail_main[] = {
    ALLOW("epoll_ctl"),
    ALLOW("shutdown"),
};

static const struct jail_rule *jail__rules(enum jail_thread kind, size_t *n)
{
  switch (kind) {
  case JAIL_THREAD_VCPU: *n = ARRAY_SIZE(jail_vcpu); return jail_vcpu;
  case JAIL_THREAD_IO: *n = ARRAY_SIZE(jail_io); return jail_io;
  default: *n = ARRAY_SIZE(jail_main); return jail_main;
  }
}

/* --- the seccomp programs ------------------------------------------------------ */

static int jail__add_rules(scmp_filter_ctx ctx, const struct jail_rule *r, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int nr = seccomp_syscall_resolve_name(r[i].name);
    if (nr == __NR_SCMP_ERROR)
      continue; /* not on this arch / unknown to this libseccomp */
    struct scmp_arg_cmp c = {.arg = r[i].arg, .op = r[i].op, .datum_a = r[i].a, .datum_b = r[i].b};
    int rc = r[i].op ? seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &c)
                     : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (rc < 0)
      return rc;
  }
  return 0;
}

/* libseccomp 2.5 exports to an fd only: a memfd, read back. */
static int jail__export(scmp_filter_ctx ctx, struct jail_prog *out, vmbox_error_t *err)
{
  cleanup_close int fd = memfd_create("vmbox-jail", MFD_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "seccomp: memfd");
  int r = seccomp_export_bpf(ctx, fd);
  if (r < 0)
    return vmbox_error_set(err, -r, "seccomp: export a filter");
  off_t len = lseek(fd, 0, SEEK_END);
  if (len <= 0 || len % (off_t)sizeof(struct sock_filter) || len / 8 > BPF_MAXINSNS)
    return vmbox_error_set(err, EINVAL, "seccomp: exported filter has a bad size");
  out->insns = xmalloc((size_t)len);
  out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
  if (pread(fd, out->insns, (size_t)len, 0) != len)
    return vmbox_error_sys(err, "seccomp: read the exported filter");
  return 0;
}

static int jail__compile(enum jail_thread kind, vmbox_error_t *err)
{
  /* TRAP, not KILL: the SIGSYS handler says which syscall, then ends the
   * VMM; a trapped syscall never runs either way. */
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  if (!ctx)
    return vmbox_error_set(err, ENOMEM, "seccomp: init");
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (r == 0)
    r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  size_t n;
  const struct jail_rule *rules = jail__rules(kind, &n);
  if (r == 0)
    r = jail__add_rules(ctx, jail_common, ARRAY_SIZE(jail_common));
  if (r == 0)
    r = jail__add_rules(ctx, rules, n);
  /* Signals to its own threads only (the vCPU kick, abort()). */
  if (r == 0)
    r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                         SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid()));
  if (r < 0) {
    seccomp_release(ctx);
    return vmbox_error_set(err, -r, "seccomp: build the VMM's filters");
  }
  r = jail__export(ctx, &jail.prog[kind], err);
  seccomp_release(ctx);
  return r;
}

/* --- a violation --------------------------------------------------------------- */

static size_t jail__utoa(char *p, unsigned long v)
{
  char t[24];
  size_t n = 0;
  do
    t[n++] = (char)('0' + v % 10);
  while ((v /= 10) && n < sizeof t);
  for (size_t i = 0; i < n; i++)
    p[i] = t[n - 1 - i];
  return n;
}

static void jail__sigsys(int sig, siginfo_t *si, void *uc)
{
  (void)sig, (void)uc;
  long nr = si->si_syscall;
  const char *name = nr >= 0 && nr < JAIL_NAMES && jail.names[nr][0] ? jail.names[nr] : "?";
  if (jail.spec.console_fd >= 0) {
    char line[128] = "\r\nvmbox-vmm: killed by its seccomp filter: syscall ";
    size_t n = strlen(line);
    n += jail__utoa(line + n, (unsigned long)nr);
    line[n++] = ' ', line[n++] = '(';
    for (const char *c = name; *c && n < sizeof line - 4; c++)
      line[n++] = *c;
    line[n++] = ')', line[n++] = '\r', line[n++] = '\n';
    ssize_t w = write(jail.spec.console_fd, line, n);
    (void)w;
  }
  if (jail.spec.violation)
    jail.spec.violation(jail.spec.opaque, nr, name);
  syscall(SYS_exit_group, EXIT_VMBOX_FAILED);
}

static void jail__names(void)
{
  for (int nr = 0; nr < JAIL_NAMES; nr++) {
    char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    if (s)
      snprintf(jail.names[nr], sizeof jail.names[nr], "%s", s);
    free(s);
  }
}

/* --- the compiled programs, cached ---------------------------------------------- */

/* Compiling the three programs and naming the syscalls costs ~10 ms of CPU
 * natively and much more nested, at every VM start; the result depends
 * only on this binary, libseccomp and the kernel (and the pid in the
 * tgkill rule: 1, in the VMM's pid namespace).  So it is cached as the ns
 * backend caches its profile: root's /run/vmbox, keyed by all of them. */
#define JAIL_CACHE_DIR "/run/vmbox/seccomp"
#define JAIL_CACHE_MAGIC "VMBOXJL1"

struct jail_cache_hdr {
  char magic[8];
  uint32_t len[3];
};

static char *jail__cache_path(void)
{
  struct stat st;
  struct utsname u;
  if (geteuid() != 0 || getpid() != 1 || stat("/proc/self/exe", &st) < 0 || uname(&u) < 0)
    return NULL;
  const struct scmp_version *v = seccomp_version();
  cleanup_free char *key =
      util__fmt("kvm-jail|%ju:%ju:%jd.%09ld:%jd|%u.%u.%u|%s %s", (uintmax_t)st.st_dev,
                (uintmax_t)st.st_ino, (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                (intmax_t)st.st_size, v->major, v->minor, v->micro, u.release, u.version);
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a: no secret, root's dir */
  for (const char *c = key; *c; c++)
    h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
  return util__fmt(JAIL_CACHE_DIR "/kvm-jail-%016" PRIx64 ".bin", h);
}

static int jail__cache_load(const char *path)
{
  char *buf = NULL;
  size_t len = 0, off = sizeof(struct jail_cache_hdr);
  if (!path || util__read_file(path, &buf, &len, NULL) < 0)
    return -1;
  struct jail_cache_hdr h;
  size_t need = off + sizeof jail.names;
  if (len >= off) {
    memcpy(&h, buf, sizeof h);
    for (int k = 0; k < 3; k++)
      need += (size_t)h.len[k] * sizeof(struct sock_filter);
  }
  if (len < off || len != need || memcmp(h.magic, JAIL_CACHE_MAGIC, 8)) {
    free(buf);
    return -1;
  }
  for (int k = 0; k < 3; k++) {
    size_t n = (size_t)h.len[k] * sizeof(struct sock_filter);
    jail.prog[k].insns = xmalloc(n ? n : 1);
    jail.prog[k].len = (unsigned short)h.len[k];
    memcpy(jail.prog[k].insns, buf + off, n);
    off += n;
  }
  memcpy(jail.names, buf + off, sizeof jail.names);
  free(buf);
  return 0;
}

static void jail__cache_store(const char *path)
{
  if (!path)
    return;
  struct jail_cache_hdr h = {.magic = JAIL_CACHE_MAGIC};
  size_t len = sizeof h + sizeof jail.names;
  for (int k = 0; k < 3; k++)
    len += jail.prog[k].len * sizeof(struct sock_filter);
  cleanup_free char *buf = xmalloc(len);
  size_t off = sizeof h;
  for (int k = 0; k < 3; k++) {
    h.len[k] = jail.prog[k].len;
    memcpy(buf + off, jail.prog[k].insns, jail.prog[k].len * sizeof(struct sock_filter));
    off += jail.prog[k].len * sizeof(struct sock_filter);
  }
  memcpy(buf, &h, sizeof h);
  memcpy(buf + off, jail.names, sizeof jail.names);
  vmbox_error_t e = NULL;
  if (util__mkdir_p(JAIL_CACHE_DIR, 0700, &e) == 0)
    util__write_file_replace(path, buf, len, 0600, &e);
  vmbox_error_free(&e);
}

static int jail__programs(vmbox_error_t *err)
{
  cleanup_free char *cache = jail__cache_path();
  if (jail__cache_load(cache) == 0)
    return 0;
  for (int k = JAIL_THREAD_VCPU; k <= JAIL_THREAD_MAIN; k++)
    if (jail__compile((enum jail_thread)k, err) < 0)
      return -1;
  jail__names();
  jail__cache_store(cache);
  return 0;
}

/* VMBOX_JAIL_SELFTEST=SYSCALL[@vcpu|@io|@main]: that thread kind (vcpu by
 * default) makes the syscall right after loading its filter, to see a
 * violation end the box cleanly.  Debugging and tests only. */
static int jail__selftest_parse(vmbox_error_t *err)
{
  const char *v = getenv("VMBOX_JAIL_SELFTEST");
  if (!v || !*v)
    return 0;
  cleanup_free char *s = xstrdup(v);
  char *at = strchr(s, '@');
  jail.selftest_kind = JAIL_THREAD_VCPU;
  if (at) {
    *at++ = '\0';
    if (strcmp(at, "io") == 0)
      jail.selftest_kind = JAIL_THREAD_IO;
    else if (strcmp(at, "main") == 0)
      jail.selftest_kind = JAIL_THREAD_MAIN;
    else if (strcmp(at, "vcpu") != 0)
      return vmbox_error_set(err, 0, "VMBOX_JAIL_SELFTEST=%s: the thread is vcpu, io or main", v);
  }
  int nr = seccomp_syscall_resolve_name(s);
  if (nr == __NR_SCMP_ERROR)
    return vmbox_error_set(err, 0, "VMBOX_JAIL_SELFTEST=%s: no such syscall", v);
  jail.selftest_nr = nr;
  return 0;
}

int jail__thread(enum jail_thread kind, vmbox_error_t *err)
{
  if (!jail.on)
    return 0;
  if ((unsigned)kind > JAIL_THREAD_MAIN)
    return vmbox_error_set(err, EINVAL, "jail: thread kind %d", (int)kind);
  struct sock_fprog p = {.len = jail.prog[kind].len, .filter = jail.prog[kind].insns};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p, 0, 0) < 0)
    return vmbox_error_sys(err, "jail: load the seccomp filter");
  if (jail.selftest_nr >= 0 && kind == jail.selftest_kind)
    syscall(jail.selftest_nr, 0, 0, 0, 0, 0, 0);
  return 0;
}

/* --- namespaces and the new root ----------------------------------------------- */

static int jail__write(const char *path, const char *s, vmbox_error_t *err)
{
  cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, s, strlen(s)) != (ssize_t)strlen(s))
    return vmbox_error_sys(err, "write %s", path);
  return 0;
}

/* Rootless: a user namespace where we keep our own ids and get the
 * capabilities to mount in the new mount namespace. */
static int jail__userns(vmbox_error_t *err)
{
  uid_t uid = geteuid();
  gid_t gid = getegid();
  if (unshare(CLONE_NEWUSER) < 0) {
    vmbox_error_sys(err, "unshare a user namespace");
    return vmbox_error_hint(err, "the rootless VMM jail needs unprivileged user namespaces; "
                                 "VMBOX_KVM_JAIL=0 runs the VMM unconfined");
  }
  /* Our /proc/self files must be ours to write the maps: a process that
   * changed its uid is not dumpable, which makes them root's. */
  (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  char map[64];
  snprintf(map, sizeof map, "%u %u 1", (unsigned)uid, (unsigned)uid);
  if (jail__write("/proc/self/setgroups", "deny", err) < 0 ||
      jail__write("/proc/self/uid_map", map, err) < 0)
    return -1;
  snprintf(map, sizeof map, "%u %u 1", (unsigned)gid, (unsigned)gid);
  return jail__write("/proc/self/gid_map", map, err);
}

/* mkdir -p of an absolute path below base (base exists). */
static int jail__mkdirs(const char *base, const char *path, vmbox_error_t *err)
{
  cleanup_free char *p = util__fmt("%s%s", base, path);
  for (char *s = p + strlen(base) + 1;; s++) {
    if (*s != '/' && *s)
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
      return vmbox_error_sys(err, "mkdir %s", p);
    if (!c)
      return 0;
    *s = c;
  }
}

/* The dirs, bound at their own paths on a fresh tmpfs.  They are opened
 * (O_PATH) before the tmpfs hides anything, and bound through the fd. */
static int jail__build_root(const struct jail_spec *s, vmbox_error_t *err)
{
  int fds[8];
  size_t n = 0;
  for (; s->dirs && s->dirs[n]; n++) {
    if (n == ARRAY_SIZE(fds) || s->dirs[n][0] != '/')
      return vmbox_error_set(err, EINVAL, "bad dir list");
    fds[n] = open(s->dirs[n], O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[n] < 0)
      return vmbox_error_sys(err, "open %s", s->dirs[n]);
  }
  int r = 0;
  if (mount("vmbox-jail", JAIL_ROOT_MNT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
            "mode=0755,size=64k,nr_inodes=256") < 0)
    r = vmbox_error_sys(err, "mount a tmpfs on " JAIL_ROOT_MNT);
  for (size_t i = 0; i < n; i++) {
    char src[32];
    snprintf(src, sizeof src, "/proc/self/fd/%d", fds[i]);
    cleanup_free char *dst = util__fmt(JAIL_ROOT_MNT "%s", s->dirs[i]);
    if (r == 0)
      r = jail__mkdirs(JAIL_ROOT_MNT, s->dirs[i], err);
    if (r == 0 && mount(src, dst, NULL, MS_BIND, NULL) < 0)
      r = vmbox_error_sys(err, "bind %s", s->dirs[i]);
    if (r == 0 &&
        mount(NULL, dst, NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
      r = vmbox_error_sys(err, "remount %s", s->dirs[i]);
    close(fds[i]);
  }
  return r;
}

/* pivot_root, or, where the root is the initramfs (pivot_root refuses
 * rootfs), switch_root's move + chroot: the old root is out of reach
 * either way once the capabilities are gone. */
static int jail__pivot(vmbox_error_t *err)
{
  if (chdir(JAIL_ROOT_MNT) < 0)
    return vmbox_error_sys(err, "chdir " JAIL_ROOT_MNT);
  if (syscall(SYS_pivot_root, ".", ".") == 0) {
    if (umount2(".", MNT_DETACH) < 0)
      return vmbox_error_sys(err, "detach the old root");
  } else if (errno == EINVAL) {
    if (mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0)
      return vmbox_error_sys(err, "move the new root onto /");
  } else {
    return vmbox_error_sys(err, "pivot_root");
  }
  if (chdir("/") < 0)
    return vmbox_error_sys(err, "chdir /");
  if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
            NULL) < 0)
    return vmbox_error_sys(err, "make the new root read-only");
  return 0;
}

static int jail__namespaces(const struct jail_spec *s, vmbox_error_t *err)
{
  if (geteuid() != 0 && jail__userns(err) < 0)
    return -1;
  /* net: the VMM's only network is its TAP, an fd opened before.  Unix
   * sockets by path (vsock) are not per namespace. */
  if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
    return vmbox_error_sys(err, "unshare mount/net/ipc/uts namespaces");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return vmbox_error_sys(err, "make the mounts private");
  if (jail__build_root(s, err) < 0 || jail__pivot(err) < 0)
    return -1;
  return 0;
}

/* --- credentials ------------------------------------------------------------------ */

/* The bounding set while CAP_SETPCAP is still there; the rest after the
 * uid change (which cleared them already when we were root). */
static int jail__drop_bounding(vmbox_error_t *err)
{
  for (int c = 0; c <= CAP_LAST_CAP; c++)
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
      return vmbox_error_sys(err, "drop capability %d from the bounding set", c);
  (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  return 0;
}

static int jail__drop_caps(vmbox_error_t *err)
{
  struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
  struct __user_cap_data_struct d[2] = {{0}};
  if (syscall(SYS_capset, &h, d) < 0)
    return vmbox_error_sys(err, "clear the capabilities");
  return 0;
}

static int jail__share(const char *path, vmbox_error_t *err)
{
  struct stat st;
  if (lstat(path, &st) < 0 && errno == ENOENT)
    return 0;
  if (S_ISLNK(st.st_mode))
    return vmbox_error_set(err, ELOOP, "%s is a symlink", path);
  mode_t mode = S_ISDIR(st.st_mode) ? (S_ISVTX | 0770) : ((st.st_mode & 07777) | 0060);
  if (lchown(path, (uid_t)-1, JAIL_GID) < 0 || chmod(path, mode) < 0)
    return vmbox_error_sys(err, "hand %s to the VMM's group", path);
  return 0;
}

static int jail__creds(const struct jail_spec *s, vmbox_error_t *err)
{
  if (jail__drop_bounding(err) < 0)
    return -1;
  if (geteuid() == 0) {
    for (size_t i = 0; s->shared && s->shared[i]; i++)
      if (jail__share(s->shared[i], err) < 0)
        return -1;
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 || setgroups(0, NULL) < 0 ||
        setresgid(JAIL_GID, JAIL_GID, JAIL_GID) < 0 || setresuid(JAIL_UID, JAIL_UID, JAIL_UID) < 0)
      return vmbox_error_sys(err, "switch to uid/gid %d", JAIL_UID);
  }
  if (jail__drop_caps(err) < 0)
    return -1;
  struct rlimit none = {0, 0}, files;
  if (setrlimit(RLIMIT_CORE, &none) < 0)
    return vmbox_error_sys(err, "RLIMIT_CORE");
  /* No more fds than it has now (one per vsock connection). */
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_max = files.rlim_cur;
    if (setrlimit(RLIMIT_NOFILE, &files) < 0)
      return vmbox_error_sys(err, "RLIMIT_NOFILE");
  }
  /* Not dumpable: no other process of this uid may ptrace it or read its
   * memory through /proc (rootless: the user's other processes). */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return vmbox_error_sys(err, "no_new_privs");
  return 0;
}

int jail__enter(const struct jail_spec *spec, vmbox_error_t *err)
{
  if (!jail__enabled())
    return 0;
  jail.spec = *spec;
  if (jail__selftest_parse(err) < 0)
    return -1;
  if (jail__programs(err) < 0)
    return -1;
  struct sigaction sa = {.sa_sigaction = jail__sigsys, .sa_flags = SA_SIGINFO};
  sigfillset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, NULL) < 0)
    return vmbox_error_sys(err, "SIGSYS handler");
  if (jail__namespaces(spec, err) < 0 || jail__creds(spec, err) < 0)
    return -1;
  jail.on = true;
  return 0;
}
