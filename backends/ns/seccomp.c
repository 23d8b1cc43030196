/* The default seccomp profile: Docker's (moby profiles/seccomp/default.json,
 * v25+) as an allowlist, for the capabilities a box gets (caps.c).
 *
 * - Anything not listed fails with EPERM, Docker's defaultErrnoRet.
 * - Syscalls newer than any this libseccomp knows fail with ENOSYS, as runc
 *   does: libc then falls back to the old call (glibc's fchmodat2, clone3)
 *   instead of reporting EPERM.  A stub in front of libseccomp's program.
 * - Argument filters as Docker's: personality only with the values programs
 *   use, clone without namespace flags, clone3 ENOSYS (its flags are in
 *   memory seccomp cannot read, so libc falls back to clone), no AF_VSOCK.
 * - Capability groups: of Docker's conditional groups only CAP_SYS_CHROOT's
 *   (chroot) and the kernel >= 4.8 one (ptrace, process_vm_*) apply; the
 *   rest need capabilities a box never has (mount, unshare, setns, reboot,
 *   kexec, modules, bpf, perf, clocks, keys, NUMA policy, swap...).
 * - Unlike Docker, io_uring is refused: its operations bypass seccomp.
 *   (Docker dropped it from the default profile in v25 too.)
 * - Native arch only, where Docker also allows i386 and x32: a 32-bit entry
 *   point is a second syscall table and a classic way around filters, and a
 *   sandbox for untrusted code does not need it.  Such a call kills the
 *   process (SIGSYS, exit 159) rather than failing quietly, so a 32-bit
 *   binary stops with a clear "Bad system call". */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

/* Docker's unconditional list, minus io_uring_*; plus its conditional
 * groups that apply to a box (see above).  Names this libseccomp does not
 * know, or that do not exist on this arch (the *32 and time64 variants),
 * are skipped. */
static const char *const allowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64",
    "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep",
    "clock_nanosleep_time64", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait",
    "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat",
    "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64", "fallocate",
    "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate",
    "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv",
    "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid", "getegid32",
    "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom",
    "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list",
    "getrusage", "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getuid32", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64", "ioprio_get", "ioprio_set", "io_setup", "io_submit", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
    "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "map_shadow_stack", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock",
    "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink",
    "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2",
    "prlimit64", "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recv", "recvfrom",
    "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename",
    "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending",
    "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget",
    "semop", "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32",
    "setgroups", "setgroups32", "setitimer", "setpgid", "setpriority", "setregid", "setregid32",
    "setresgid", "setresgid32", "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setuid32", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack",
    "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall", "socketpair", "splice",
    "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname",
    "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice",
    "wait4", "waitid", "waitpid", "write", "writev",
    /* amd64/x32 only in Docker's list */
    "arch_prctl", "modify_ldt",
    /* kernel >= 4.8: ptrace no longer bypasses seccomp */
    "ptrace", "process_vm_readv", "process_vm_writev",
    /* CAP_SYS_CHROOT is one of Docker's default capabilities */
    "chroot"};

/* The namespace flags of clone(2); Docker allows clone only without them
 * when CAP_SYS_ADMIN is absent.  (CLONE_NEWTIME has no clone(2) bit, and
 * unshare is refused altogether, as in Docker.) */
#define NS_CLONE_FLAGS                                                                             \
  (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |       \
   CLONE_NEWCGROUP)

struct arg_rule {
  const char *name;
  uint32_t action;
  struct scmp_arg_cmp cmp; /* op 0: no argument test */
};

#define ALLOW_A0(syscall, op_, v)                                                                  \
  {                                                                                                \
    .name = syscall, .action = SCMP_ACT_ALLOW, .cmp = {.op = op_, .datum_a = v }                   \
  }

static const struct arg_rule arg_rules[] = {
    /* The execution domains programs ask for: Linux, linux32 (PER_LINUX32),
     * UNAME26 and both, and the 0xffffffff query. */
    ALLOW_A0("personality", SCMP_CMP_EQ, 0x0),
    ALLOW_A0("personality", SCMP_CMP_EQ, 0x8),
    ALLOW_A0("personality", SCMP_CMP_EQ, 0x20000),
    ALLOW_A0("personality", SCMP_CMP_EQ, 0x20008),
    ALLOW_A0("personality", SCMP_CMP_EQ, 0xffffffff),
    /* A new user namespace is the usual first step of a kernel exploit. */
    {"clone", SCMP_ACT_ALLOW, {.arg = 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = NS_CLONE_FLAGS}},
    {"clone3", SCMP_ACT_ERRNO(ENOSYS), {.op = 0}},
    /* vsock reaches the hypervisor's host side. */
    ALLOW_A0("socket", SCMP_CMP_NE, AF_VSOCK),
};

static int add_allowed(scmp_filter_ctx ctx, int *max_nr)
{
  for (size_t i = 0; i < ARRAY_SIZE(allowed); i++) {
    int nr = seccomp_syscall_resolve_name(allowed[i]);
    if (nr == __NR_SCMP_ERROR)
      continue; /* newer than this libseccomp: the ENOSYS stub covers it */
    if (nr > *max_nr)
      *max_nr = nr;
    int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (r < 0)
      return r;
  }
  return 0;
}

static int add_arg_rules(scmp_filter_ctx ctx)
{
  for (size_t i = 0; i < ARRAY_SIZE(arg_rules); i++) {
    const struct arg_rule *a = &arg_rules[i];
    int nr = seccomp_syscall_resolve_name(a->name);
    if (nr == __NR_SCMP_ERROR)
      continue;
    int r = a->cmp.op ? seccomp_rule_add_array(ctx, a->action, nr, 1, &a->cmp)
                      : seccomp_rule_add(ctx, a->action, nr, 0);
    if (r < 0)
      return r;
  }
  return 0;
}

enum { STUB_LEN = 6 };

/* runc's answer to new syscalls: numbers above the newest one we know fail
 * with ENOSYS, so libc falls back.  x32 numbers (bit 30) and foreign arches
 * go on to libseccomp's program, which kills them. */
static size_t enosys_stub(struct sock_filter *out, int max_nr)
{
  const struct sock_filter stub[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, seccomp_arch_native(), 0, 4),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 2, 0),
      BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)max_nr, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
  };
  _Static_assert(ARRAY_SIZE(stub) == STUB_LEN, "STUB_LEN");
  memcpy(out, stub, sizeof(stub));
  return ARRAY_SIZE(stub);
}

/* libseccomp's program, read back from the memfd it exports to (2.5 has no
 * in-memory export), after room for the stub. */
static int export_after_stub(scmp_filter_ctx ctx, struct sock_fprog *out, vmbox_error_t *err)
{
  cleanup_close int fd = memfd_create("vmbox-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "seccomp: memfd");
  int r = seccomp_export_bpf(ctx, fd);
  if (r < 0)
    return vmbox_error_set(err, -r, "seccomp: export the filter");
  off_t len = lseek(fd, 0, SEEK_END);
  if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0)
    return vmbox_error_set(err, EINVAL, "seccomp: exported filter has a bad size");
  size_t n = (size_t)len / sizeof(struct sock_filter) + STUB_LEN;
  if (n > BPF_MAXINSNS)
    return vmbox_error_set(err, E2BIG, "seccomp: filter too long (%zu instructions)", n);
  struct sock_filter *insns = xcalloc(n, sizeof(*insns));
  if (pread(fd, insns + STUB_LEN, (size_t)len, 0) != len) {
    free(insns);
    return vmbox_error_sys(err, "seccomp: read the exported filter");
  }
  out->filter = insns;
  out->len = (unsigned short)n;
  return 0;
}

static int build(scmp_filter_ctx ctx, struct sock_fprog *out, vmbox_error_t *err)
{
  int max_nr = 0;
  int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  /* Binary tree: denied and argument-checked calls do not walk the whole
   * list (allowed ones the kernel caches anyway). */
  if (r == 0)
    r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
  if (r == 0)
    r = add_allowed(ctx, &max_nr);
  if (r == 0)
    r = add_arg_rules(ctx);
  if (r < 0)
    return vmbox_error_set(err, -r, "seccomp: build the default profile");
  if (export_after_stub(ctx, out, err) < 0)
    return -1;
  enosys_stub(out->filter, max_nr);
  return 0;
}

/* Compiling is ~10% of the CPU a `run` takes (libseccomp builds and
 * optimizes a tree of ~370 rules, mostly in malloc).  The program depends
 * only on this binary (the profile is code), the libseccomp that compiles
 * it and the kernel it asks about, so it is cached under a key of all
 * three: the executable's dev/inode/mtime/size (a rebuild is a new key),
 * seccomp_version() and the kernel's release and build.  /run is tmpfs
 * (gone with the kernel) and /run/vmbox root's alone (0700); a cache that
 * cannot be read or written only means compiling, as before. */
#define SECCOMP_CACHE "/run/vmbox/seccomp"

static char *cache_path(void)
{
  struct stat st;
  struct utsname u;
  if (stat("/proc/self/exe", &st) < 0 || uname(&u) < 0)
    return NULL;
  const struct scmp_version *v = seccomp_version();
  cleanup_free char *key =
      util__fmt("%ju:%ju:%jd.%09ld:%jd|libseccomp %u.%u.%u|%s %s", (uintmax_t)st.st_dev,
                (uintmax_t)st.st_ino, (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
                (intmax_t)st.st_size, v->major, v->minor, v->micro, u.release, u.version);
  /* FNV-1a, not sha256: OpenSSL's first use initializes it, costing more
   * than the compile we save; and the key needs no secrecy (root's dir). */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const char *c = key; *c; c++)
    h = (h ^ (unsigned char)*c) * 0x100000001b3ULL;
  return util__fmt(SECCOMP_CACHE "/%016" PRIx64 ".bpf", h);
}

static int cache_load(const char *path, struct sock_fprog *out)
{
  char *buf = NULL;
  size_t len = 0;
  if (util__read_file(path, &buf, &len, NULL) < 0)
    return -1;
  size_t n = len / sizeof(struct sock_filter);
  if (len % sizeof(struct sock_filter) != 0 || n <= STUB_LEN || n > BPF_MAXINSNS) {
    free(buf);
    return -1;
  }
  out->filter = (struct sock_filter *)buf; /* malloc'ed: aligned for any type */
  out->len = (unsigned short)n;
  return 0;
}

/* Every rebuild of vmbox is a new key: past a few entries, a miss drops the
 * others (a binary still in use just compiles once more). */
static void cache_prune(const char *keep)
{
  DIR *d = opendir(SECCOMP_CACHE);
  struct dirent *e;
  size_t n = 0;
  while (d && (e = readdir(d)) != NULL)
    n += e->d_name[0] != '.';
  if (d && n > 16) {
    rewinddir(d);
    while ((e = readdir(d)) != NULL)
      if (e->d_name[0] != '.' && strcmp(e->d_name, strrchr(keep, '/') + 1) != 0)
        unlinkat(dirfd(d), e->d_name, 0);
  }
  if (d)
    closedir(d);
}

static void cache_store(const char *path, const struct sock_fprog *prog)
{
  cache_prune(path);
  vmbox_error_t e = NULL;
  if (util__mkdir_p(SECCOMP_CACHE, 0700, &e) == 0)
    util__write_file_replace(path, prog->filter, prog->len * sizeof(struct sock_filter), 0600, &e);
  vmbox_error_free(&e);
}

int seccomp__compile_default(struct sock_fprog *out, vmbox_error_t *err)
{
  cleanup_free char *cache = cache_path();
  if (cache && cache_load(cache, out) == 0)
    return 0;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (ctx == NULL)
    return vmbox_error_set(err, ENOMEM, "seccomp: init");
  int r = build(ctx, out, err);
  seccomp_release(ctx);
  if (r == 0 && cache)
    cache_store(cache, out);
  return r;
}

int seccomp__load(const struct sock_fprog *prog, vmbox_error_t *err)
{
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
    return vmbox_error_sys(err, "seccomp: load the default profile");
  return 0;
}
