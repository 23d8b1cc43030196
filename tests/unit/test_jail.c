/* backends/kvm/jail.c without KVM: a child jails itself as the VMM does,
 * then waits on a pipe while the parent looks at it through /proc, then
 * writes in its dir and makes a forbidden syscall.  Needs root (as the
 * suites); the rootless path runs as uid 65534 in a second child. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../backends/kvm/jail.h"
#include "../../backends/kvm/vmm.h"
#include "../../lib/util.h"
#include "tap.h"

static char dir[] = "/tmp/vmbox-test-jail-XXXXXX";
static int report[2]; /* child -> parent: violation line, results */

static void on_violation(void *opaque, long nr, const char *name)
{
  (void)opaque;
  dprintf(report[1], "violation %ld %s\n", nr, name);
}

/* The child: jail, say so, wait for the go, write a file, then getuid
 * (on no list): the handler must end it with 125. */
static void __attribute__((noreturn)) child(int go, uid_t uid)
{
  if (uid &&
      (setgroups(0, NULL) < 0 || setresgid(uid, uid, uid) < 0 || setresuid(uid, uid, uid) < 0))
    _exit(90);
  const char *dirs[] = {dir, NULL};
  const char *shared[] = {dir, NULL};
  struct jail_spec s = {
      .dirs = dirs, .shared = shared, .console_fd = -1, .violation = on_violation};
  vmbox_error_t err = NULL;
  if (jail__enter(&s, &err) < 0 || jail__thread(JAIL_THREAD_MAIN, &err) < 0) {
    dprintf(report[1], "enter failed: %s | %s\n", err->msg, err->hint ? err->hint : "");
    _exit(91);
  }
  dprintf(report[1], "jailed\n");
  char c;
  if (read(go, &c, 1) != 1)
    _exit(92);
  cleanup_free char *p = util__fmt("%s/written", dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  dprintf(report[1], "write %s\n", fd >= 0 ? "ok" : "failed");
  syscall(SYS_getuid);
  _exit(93); /* not reached */
}

static char *status_field(pid_t pid, const char *name)
{
  cleanup_free char *p = util__fmt("/proc/%d/status", (int)pid), *s = NULL;
  if (util__read_file(p, &s, NULL, NULL) < 0)
    return xstrdup("?");
  cleanup_free char *key = util__fmt("\n%s:\t", name);
  char *f = strstr(s, key);
  if (!f)
    return xstrdup("?");
  f += strlen(key);
  return strndup(f, strcspn(f, "\n"));
}

static bool ns_differs(pid_t pid, const char *ns)
{
  char a[64] = "", b[64] = "";
  cleanup_free char *pa = util__fmt("/proc/self/ns/%s", ns);
  cleanup_free char *pb = util__fmt("/proc/%d/ns/%s", (int)pid, ns);
  return readlink(pa, a, sizeof a - 1) > 0 && readlink(pb, b, sizeof b - 1) > 0 && strcmp(a, b);
}

static void check_jailed(pid_t pid, const char *who, const char *uid_line)
{
  cleanup_free char *uid = status_field(pid, "Uid"), *cap = status_field(pid, "CapEff");
  cleanup_free char *bnd = status_field(pid, "CapBnd"), *sc = status_field(pid, "Seccomp");
  cleanup_free char *nnp = status_field(pid, "NoNewPrivs");
  TAP_OK(strcmp(uid, uid_line) == 0, "%s: uid %s", who, uid);
  TAP_OK(strcmp(cap, "0000000000000000") == 0 && strcmp(bnd, cap) == 0, "%s: no capabilities", who);
  TAP_OK(strcmp(sc, "2") == 0 && strcmp(nnp, "1") == 0, "%s: seccomp filter, no_new_privs", who);
  TAP_OK(ns_differs(pid, "mnt") && ns_differs(pid, "net") && ns_differs(pid, "ipc") &&
             ns_differs(pid, "uts"),
         "%s: own mount, net, ipc, uts namespaces", who);
  cleanup_free char *r = util__fmt("/proc/%d/root/etc", (int)pid);
  cleanup_free char *d = util__fmt("/proc/%d/root%s", (int)pid, dir);
  struct stat st;
  TAP_OK(stat(r, &st) < 0 && stat(d, &st) == 0, "%s: its root holds %s, not /etc", who, dir);
}

/* Reads the child's lines until EOF into buf. */
static void drain(char *buf, size_t cap)
{
  size_t n = 0;
  ssize_t r;
  while (n + 1 < cap && (r = read(report[0], buf + n, cap - 1 - n)) > 0)
    n += (size_t)r;
  buf[n] = '\0';
}

static void run_case(const char *who, uid_t uid, const char *uid_line)
{
  int go[2];
  if (pipe(report) < 0 || pipe(go) < 0)
    exit(1);
  uint64_t t0 = util__now_ns();
  pid_t pid = uid ? fork() : jail__fork();
  if (pid == 0) {
    close(report[0]), close(go[1]);
    child(go[0], uid);
  }
  close(report[1]), close(go[0]);
  char line[512] = "";
  ssize_t n = read(report[0], line, sizeof line - 1);
  line[n > 0 ? n : 0] = '\0';
  line[strcspn(line, "\n")] = '\0';
  bool jailed = strcmp(line, "jailed") == 0;
  printf("# %s: fork to jailed in %.1f ms\n", who, (double)(util__now_ns() - t0) / 1e6);
  /* Rootless needs unprivileged user namespaces: without them, a clear
   * error that names the way out. */
  if (!jailed && uid)
    TAP_OK(strstr(line, "user namespace") && strstr(line, "VMBOX_KVM_JAIL=0"),
           "%s: no user namespaces here, and it says so: %s", who, line);
  else
    TAP_OK(jailed, "%s: jail__enter: %s", who, line);
  if (jailed)
    check_jailed(pid, who, uid_line);
  if (write(go[1], "g", 1) != 1)
    exit(1);
  char rest[512];
  drain(rest, sizeof rest);
  for (char *c = rest; (c = strchr(c, '\n'));)
    *c = ' ';
  int st = 0;
  waitpid(pid, &st, 0);
  close(report[0]), close(go[1]);
  if (!jailed)
    return;
  TAP_OK(strstr(rest, "write ok"), "%s: writes in its dir: %s", who, rest);
  TAP_OK(strstr(rest, "violation 102 getuid") && WIFEXITED(st) && WEXITSTATUS(st) == 125,
         "%s: a forbidden syscall is reported and ends it with 125 (status 0x%x)", who, st);
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);
  if (!mkdtemp(dir) || chmod(dir, 0755) < 0)
    return 1;
  if (geteuid() != 0) {
    TAP_OK(0, "test_jail needs root, as the suites do");
    return tap__done();
  }
  /* twice: the second VMM start loads the programs from the cache */
  run_case("root", 0, "64800\t64800\t64800\t64800");
  run_case("root, cached", 0, "64800\t64800\t64800\t64800");
  cleanup_free char *f = util__fmt("%s/written", dir);
  struct stat st;
  TAP_OK(stat(f, &st) == 0 && st.st_uid == JAIL_UID, "the file it wrote is the jail uid's");
  unlink(f);
  TAP_OK(chown(dir, 65534, 65534) == 0 && chmod(dir, 0700) == 0, "a dir of uid 65534");
  run_case("rootless (uid 65534)", 65534, "65534\t65534\t65534\t65534");

  setenv("VMBOX_KVM_JAIL", "0", 1);
  vmbox_error_t err = NULL;
  TAP_OK(!jail__enabled() && jail__enter(&(struct jail_spec){0}, &err) == 0 &&
             jail__thread(JAIL_THREAD_VCPU, &err) == 0,
         "VMBOX_KVM_JAIL=0: jail__enter and jail__thread do nothing");
  cleanup_free char *sc = status_field(getpid(), "Seccomp");
  TAP_OK(strcmp(sc, "0") == 0, "VMBOX_KVM_JAIL=0: no filter loaded");
  unsetenv("VMBOX_KVM_JAIL");
  setenv("VMBOX_JAIL_SELFTEST", "no_such_call", 1);
  TAP_OK(jail__enter(&(struct jail_spec){0}, &err) < 0 && strstr(err->msg, "no such syscall"),
         "a bad VMBOX_JAIL_SELFTEST is refused: %s", err ? err->msg : "");
  vmbox_error_free(&err);
  util__rm_rf(dir, NULL);
  return tap__done();
}
