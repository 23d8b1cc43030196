/* PID 1 of a box and the last steps of its command.
 *
 * PID 1 is the monitor's forked child: it never execs anything, so it is
 * not the host binary re-executed inside the box, it holds no fds, is not
 * dumpable (no /proc/1/exe, /proc/1/mem for the box) and keeps only
 * CAP_KILL.  It forwards signals to the command, reaps every orphan and
 * exits with the command's status: the pid namespace dies with it.
 *
 * The command execs from inside the new root, so /proc/self/exe is a file of
 * the box; its cwd is resolved after pivot_root, never from an inherited fd
 * (CVE-2024-21626); every other fd is closed on exec. */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void init__fail(int fd, vmbox_error_t *err)
{
  struct ns_report r = {.exit_code = EXIT_VMBOX_FAILED};
  if (err && *err) {
    r.exit_code = (*err)->exit_code;
    r.errno_ = (*err)->errno_;
    snprintf(r.msg, sizeof(r.msg), "%s", (*err)->msg ? (*err)->msg : "");
    snprintf(r.hint, sizeof(r.hint), "%s", (*err)->hint ? (*err)->hint : "");
  }
  if (write(fd, &r, sizeof(r)) < 0) {
    /* nobody to tell: the exit code still says it */
  }
  _exit(r.exit_code);
}

void init__decode_status(int status, struct box_exit *out)
{
  memset(out, 0, sizeof(*out));
  if (WIFEXITED(status)) {
    out->code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    out->signal = WTERMSIG(status);
    out->code = 128 + out->signal;
  }
}

static const char *env_get(char *const *env, const char *key)
{
  size_t kl = strlen(key);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
      return env[i] + kl + 1;
  return NULL;
}

/* execvpe searches the caller's PATH; the box's is in its own env. */
static char *find_command(const char *name, char *const *env, vmbox_error_t *err)
{
  if (strchr(name, '/'))
    return xstrdup(name);
  const char *path = env_get(env, "PATH");
  cleanup_free char *dirs = xstrdup(path ? path : DEFAULT_PATH);
  bool denied = false;
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char *cand = util__fmt("%s/%s", d, name);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0)
        return cand;
      denied = true;
    }
    free(cand);
  }
  if (denied) {
    vmbox_error_set(err, EACCES, "exec %s", name);
    return vmbox_error_code(err, EXIT_CANNOT_RUN), NULL;
  }
  vmbox_error_set(err, 0, "exec %s: executable file not found in $PATH", name);
  return vmbox_error_code(err, EXIT_NOT_FOUND), NULL;
}

static int setup_stdio(const struct box_stdio *io, vmbox_error_t *err)
{
  int src[3] = {io->in, io->out, io->err}, tmp[3];
  /* Move them above 2 first: the caller's fds may be 0..2 in any order. */
  for (int i = 0; i < 3; i++) {
    tmp[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 3)
                         : open("/dev/null", (i ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (tmp[i] < 0)
      return vmbox_error_sys(err, "stdio %d", i);
  }
  for (int i = 0; i < 3; i++)
    if (dup2(tmp[i], i) < 0)
      return vmbox_error_sys(err, "stdio %d", i);
  return 0;
}

static void reset_signals(void)
{
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++)
    signal(s, SIG_DFL); /* SIG_IGN would survive exec */
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static int become_user(const struct box_process *p, vmbox_error_t *err)
{
  const char *cwd = p->cwd ? p->cwd : "/";
  /* docker run -w creates a missing workdir, as root, inside the box. */
  if (util__mkdir_p(cwd, 0755, err) < 0 || caps__drop_and_switch(p, err) < 0)
    return -1;
  if (chdir(cwd) < 0) {
    vmbox_error_sys(err, "chdir to %s", cwd);
    return vmbox_error_code(err, EXIT_CANNOT_RUN);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return vmbox_error_sys(err, "set no_new_privs");
  return 0;
}

void init__exec(const struct ns_exec *x)
{
  const struct box_process *p = x->p;
  int report_fd = x->report_fd;
  vmbox_error_t err = NULL;
  reset_signals();
  umask(022);
  /* An exec'd process must not outlive its helper (the monitor's handle). */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (setsid() < 0)
    vmbox_error_sys(&err, "setsid");
  else if (p->tty ? tty__setup_child(x->console_fd, &err) : setup_stdio(&p->stdio, &err))
    ;
  else
    become_user(p, &err);
  if (err)
    init__fail(report_fd, &err);
  char *const def_env[] = {"PATH=" DEFAULT_PATH, NULL};
  char *const *env = p->env ? p->env : def_env;
  cleanup_free char *path = find_command(p->argv[0], env, &err);
  if (path == NULL)
    init__fail(report_fd, &err);
  if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    vmbox_error_sys(&err, "close inherited fds");
    init__fail(report_fd, &err);
  }
  if (seccomp__load(x->seccomp, &err) < 0)
    init__fail(report_fd, &err);
  execve(path, p->argv, env);
  int e = errno;
  vmbox_error_set(&err, e, "exec %s", p->argv[0]);
  vmbox_error_code(&err, e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN);
  init__fail(report_fd, &err);
}

/* PID 1 is a fork of the monitor: its argv area still holds the host's
 * command line, readable by anyone in the box as /proc/1/cmdline. */
void init__hide_cmdline(void)
{
  cleanup_free char *stat = NULL;
  prctl(PR_SET_NAME, "vmbox-init", 0, 0, 0);
  if (util__read_file("/proc/self/stat", &stat, NULL, NULL) < 0 || !strrchr(stat, ')'))
    return;
  /* Fields after "(comm)" start at field 3; arg_start/arg_end are 48/49. */
  unsigned long long v[2] = {0, 0};
  char *f = strrchr(stat, ')') + 2;
  for (int field = 3; f && field <= 49; field++) {
    if (field >= 48)
      v[field - 48] = strtoull(f, NULL, 10);
    f = strchr(f, ' ');
    f = f ? f + 1 : NULL;
  }
  if (v[0] == 0 || v[1] <= v[0])
    return;
  char *start = (char *)(uintptr_t)v[0];
  size_t len = (size_t)(v[1] - v[0]);
  memset(start, 0, len);
  snprintf(start, len, "vmbox-init");
}

static void noop(int sig)
{
  (void)sig;
}

static bool forwarded(int sig)
{
  switch (sig) {
  case SIGTERM:
  case SIGINT:
  case SIGHUP:
  case SIGQUIT:
  case SIGUSR1:
  case SIGUSR2:
  case SIGWINCH:
  case SIGCONT:
  case SIGALRM: return true;
  }
  return false;
}

static void exit_like(int status)
{
  struct box_exit e;
  init__decode_status(status, &e);
  _exit(e.code);
}

void init__run(const struct ns_exec *x)
{
  /* Blocked before the fork so nothing arrives between fork and sigwait;
   * handlers because an ns init ignores signals left at SIG_DFL. */
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, NULL);
  for (int s = 1; s < NSIG; s++)
    if (forwarded(s) || s == SIGCHLD)
      signal(s, noop);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  pid_t child = fork();
  if (child < 0) {
    vmbox_error_t err = NULL;
    vmbox_error_sys(&err, "fork the command");
    init__fail(x->report_fd, &err);
  }
  if (child == 0)
    init__exec(x);
  close_range(0, ~0U, 0);
  caps__limit(1ULL << CAP_KILL, NULL);
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig == SIGCHLD) {
      int st;
      pid_t pid;
      while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        if (pid == child)
          exit_like(st);
    } else if (sig > 0 && forwarded(sig)) {
      kill(child, sig);
    }
  }
}
