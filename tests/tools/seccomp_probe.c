/* seccomp_probe: makes one system call per probe, each in a fresh child, and
 * prints how it went: "ok", an errno name (EPERM) or the signal that killed
 * the child (SIGSYS).  The harness of tests/seccomp.bats.
 *
 *   seccomp_probe compare PROBE...   on the host, as root: each probe twice,
 *                                    "PROBE bare=X filtered=Y", the second
 *                                    under the ns backend's default profile.
 *                                    Root with every capability: what the
 *                                    filter refuses, the kernel would allow,
 *                                    so "filtered" shows the filter's work.
 *   seccomp_probe run PROBE...       "PROBE X" as is (inside a box, where
 *                                    the box's filter is already loaded).
 *   seccomp_probe direct PROBE       makes the call in this very process and
 *                                    exits with its errno (a kill is ours).
 *   seccomp_probe time               compile time of the profile, in us.
 *
 * Probes use arguments that make the call harmless on the host (paths that
 * do not exist, bad magic numbers, children that exit at once). */
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../backends/ns/ns.h"
#include "../../lib/util.h"

#define NOPE "/nonexistent/vmbox-seccomp-probe"

static long r_errno(long r)
{
  return r < 0 ? errno : 0;
}

/* A raw clone(2) with FLAGS; the child exits at once. */
static long do_clone(unsigned long flags)
{
  long pid = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
  if (pid == 0)
    _exit(0);
  if (pid < 0)
    return errno;
  waitpid((pid_t)pid, NULL, 0);
  return 0;
}

/* Attaches to a child of ours (Docker allows ptrace on kernels >= 4.8). */
static long ptrace_child(void)
{
  pid_t c = fork();
  if (c == 0) {
    pause();
    _exit(0);
  }
  long r = r_errno(ptrace(PTRACE_SEIZE, c, NULL, NULL));
  kill(c, SIGKILL);
  waitpid(c, NULL, 0);
  return r;
}

static long i386_getpid(void)
{
  long r;
  /* The 32-bit entry point from a 64-bit process: still the i386 table. */
  __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
  return r < 0 ? -r : 0;
}

static long probe(const char *name)
{
  struct timespec ts = {0, 0};
  if (strncmp(name, "clone:", 6) == 0)
    return do_clone(strtoul(name + 6, NULL, 0));
  if (strncmp(name, "unshare:", 8) == 0)
    return r_errno(unshare((int)strtoul(name + 8, NULL, 0)));
  if (strncmp(name, "personality:", 12) == 0)
    return r_errno(syscall(SYS_personality, strtoul(name + 12, NULL, 0)));
  if (strncmp(name, "nr:", 3) == 0) /* a bare syscall number, no arguments */
    return r_errno(syscall(strtol(name + 3, NULL, 0), 0, 0, 0, 0, 0, 0));
    /* One line per probe: name, call. */
#define P(n, expr)                                                                                 \
  if (strcmp(name, n) == 0)                                                                        \
    return expr;
  P("getpid", r_errno(syscall(SYS_getpid)))
  P("mount", r_errno(mount("none", NOPE, "tmpfs", 0, NULL)))
  P("umount2", r_errno(umount2(NOPE, 0)))
  P("pivot_root", r_errno(syscall(SYS_pivot_root, NOPE, NOPE)))
  P("fsopen", r_errno(syscall(SYS_fsopen, "vmbox-nosuchfs", 0)))
  P("swapon", r_errno(swapon(NOPE, 0)))
  P("swapoff", r_errno(swapoff(NOPE)))
  P("reboot", r_errno(syscall(SYS_reboot, 0xdead, 0xbeef, 0, NULL)))
  P("kexec_load", r_errno(syscall(SYS_kexec_load, 0, 0, NULL, 0x100UL)))
  P("init_module", r_errno(syscall(SYS_init_module, NULL, 0, "")))
  P("acct", r_errno(syscall(SYS_acct, NOPE)))
  P("add_key",
    r_errno(syscall(SYS_add_key, "user", "vmbox-probe", "x", 1, KEY_SPEC_PROCESS_KEYRING)))
  P("keyctl", r_errno(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_PROCESS_KEYRING, 1)))
  P("setns", r_errno(setns(-1, 0)))
  P("clone3", r_errno(syscall(SYS_clone3, NULL, 0)))
  P("socket_vsock", r_errno(socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)))
  P("socket_inet", r_errno(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)))
  P("bpf", r_errno(syscall(SYS_bpf, -1, NULL, 0)))
  P("perf_event_open", r_errno(syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0)))
  P("io_uring_setup", r_errno(syscall(SYS_io_uring_setup, 0, NULL)))
  P("syslog", r_errno(syscall(SYS_syslog, 10, NULL, 0)))
  P("clock_settime", r_errno(clock_settime(CLOCK_MONOTONIC, &ts)))
  P("open_by_handle_at", r_errno(syscall(SYS_open_by_handle_at, -1, NULL, 0)))
  P("userfaultfd", r_errno(syscall(SYS_userfaultfd, O_CLOEXEC)))
  P("chroot", r_errno(chroot("/")))
  P("fchmodat2", r_errno(syscall(452, AT_FDCWD, NOPE, 0755, 0)))
  P("ptrace_child", ptrace_child())
  P("ptrace_pid1", r_errno(ptrace(PTRACE_SEIZE, 1, NULL, NULL)))
  P("x32_getpid", r_errno(syscall(SYS_getpid | 0x40000000L)))
  P("i386_getpid", i386_getpid())
#undef P
  fprintf(stderr, "seccomp_probe: unknown probe %s\n", name);
  exit(2);
}

/* Runs the probe in a child (after loading FILTER when given) and prints
 * its outcome. */
static void outcome(const char *name, const struct sock_fprog *filter)
{
  fflush(stdout);
  pid_t c = fork();
  if (c == 0) {
    vmbox_error_t err = NULL;
    if (filter && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp__load(filter, &err) < 0))
      _exit(255);
    _exit((int)probe(name));
  }
  int st = 0;
  waitpid(c, &st, 0);
  if (WIFSIGNALED(st))
    printf("SIG%s", sigabbrev_np(WTERMSIG(st)));
  else if (WEXITSTATUS(st) == 0)
    printf("ok");
  else if (WEXITSTATUS(st) == 255)
    printf("load-failed");
  else
    printf("%s", strerrorname_np(WEXITSTATUS(st)) ?: "?");
}

int main(int argc, char **argv)
{
  if (argc < 2)
    return fprintf(stderr, "usage: seccomp_probe compare|run|direct|time [PROBE...]\n"), 2;
  if (strcmp(argv[1], "direct") == 0 && argc == 3)
    return (int)probe(argv[2]);
  struct sock_fprog prog = {0};
  vmbox_error_t err = NULL;
  bool compare = strcmp(argv[1], "compare") == 0;
  if (compare || strcmp(argv[1], "time") == 0) {
    uint64_t t0 = util__now_ns();
    if (seccomp__compile_default(&prog, &err) < 0)
      return vmbox_error_report(&err);
    if (!compare) {
      printf("%llu us, %u instructions\n", (unsigned long long)(util__now_ns() - t0) / 1000,
             prog.len);
      free(prog.filter);
      return 0;
    }
  }
  for (int i = 2; i < argc; i++) {
    printf("%s ", argv[i]);
    if (compare) {
      printf("bare=");
      outcome(argv[i], NULL);
      printf(" filtered=");
    }
    outcome(argv[i], compare ? &prog : NULL);
    printf("\n");
  }
  free(prog.filter);
  return 0;
}
