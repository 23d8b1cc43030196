/* The per-box monitor (see monitor.h).  The caller and the monitor talk over
 * one pipe, monitor to caller, one line per event:
 *
 *   S PID                 the box runs; PID is the monitor (signal target)
 *   E CODE\tMSG\tHINT     the box could not be created or started
 *   X CODE                the box ended with CODE (state.json is written) */
#include "monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../lib/util.h"
#include "ctl.h"
#include "log.h"

/* The monitor's fds after monitor__setup_fds. */
enum { FD_REPORT = 3, FD_IN, FD_OUT, FD_ERR };

struct mon {
  const struct monitor_opts *o;
  struct box_info box; /* shallow copy: the monitor only rewrites .state */
  int cout, cerr;      /* the caller's stdout/stderr (foreground), else -1 */
  int log, out_r, err_r, sfd, ctl;
  int pty, in; /* -t: the pty master (also out_r) and, with -i, our stdin */
  struct box *handle;
  uint64_t log_size, log_max; /* ctr.log rotates to ctr.log.1 past log_max */
};

/* ---- monitor side ------------------------------------------------------------- */

/* Keeps exactly: 0-2 /dev/null, the report pipe, and the caller's stdio when
 * attached.  Everything else the caller had open (the store lock!) goes. */
static void setup_fds(const struct monitor_opts *o, int report)
{
  int keep[4] = {report, o->interactive ? 0 : -1, o->detach ? -1 : 1, o->detach ? -1 : 2};
  int tmp[4];
  for (int i = 0; i < 4; i++)
    tmp[i] = keep[i] >= 0 ? fcntl(keep[i], F_DUPFD_CLOEXEC, 1000) : -1;
  syscall(SYS_close_range, 0U, 999U, 0U);
  int null = open("/dev/null", O_RDWR); /* lowest free: 0 */
  dup2(null, 1);
  dup2(null, 2);
  for (int i = 0; i < 4; i++)
    if (tmp[i] >= 0)
      dup3(tmp[i], FD_REPORT + i, O_CLOEXEC);
  syscall(SYS_close_range, (unsigned)FD_ERR + 1, ~0U, 0U);
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vdprintf(FD_REPORT, fmt, ap);
  va_end(ap);
}

static void report_error(const char *id, vmbox_error_t *err)
{
  cleanup_free char *full = vmbox_error_string(*err);
  /* The backend names the box by its 64-hex id; the user knows which box. */
  char *msg = full;
  size_t n = strlen(id);
  if (strncmp(msg, id, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
    msg += n + 2;
  const char *hint = (*err)->hint ? (*err)->hint : "";
  for (char *p = msg; *p; p++)
    if (*p == '\n' || *p == '\t')
      *p = ' ';
  report("E %d\t%s\t%s\n", (*err)->exit_code, msg, strchr(hint, '\n') ? "" : hint);
}

static int open_io(struct mon *m, int out[2], int errp[2], vmbox_error_t *err)
{
  cleanup_free char *lp = box__path(&m->box, "ctr.log");
  m->log = open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (m->log < 0)
    return vmbox_error_sys(err, "open %s", lp);
  struct stat st;
  m->log_size = fstat(m->log, &st) == 0 ? (uint64_t)st.st_size : 0;
  json_int_t max = json_integer_value(json_object_get(m->box.config, "log_max_size"));
  m->log_max = max > 0 ? (uint64_t)max : 0;
  if (pipe2(out, O_CLOEXEC) < 0)
    return vmbox_error_sys(err, "pipe");
  if (pipe2(errp, O_CLOEXEC) < 0) {
    close(out[0]);
    close(out[1]);
    return vmbox_error_sys(err, "pipe");
  }
  return 0;
}

/* The caller's terminal size onto the box's pty; the kernel then sends
 * SIGWINCH to the pty's foreground process group in the box. */
static void resize_pty(struct mon *m)
{
  struct winsize ws;
  if (m->pty < 0)
    return;
  if ((m->cout >= 0 && ioctl(m->cout, TIOCGWINSZ, &ws) == 0) ||
      (m->in >= 0 && ioctl(m->in, TIOCGWINSZ, &ws) == 0))
    ioctl(m->pty, TIOCSWINSZ, &ws);
}

static int start_box(struct mon *m, vmbox_error_t *err)
{
  int out[2], errp[2];
  if (open_io(m, out, errp, err) < 0)
    return -1;
  struct box_spec spec = *m->o->spec;
  spec.proc.stdio = (struct box_stdio){m->o->interactive ? FD_IN : -1, out[1], errp[1]};
  int r = m->o->ops->create(&spec, &m->handle, err);
  struct box_proc_io io = {.pty_master = -1};
  if (r == 0)
    r = m->o->ops->start(m->handle, &io, err);
  /* Only the box holds the write ends now: EOF means it is gone. */
  close(out[1]);
  close(errp[1]);
  m->out_r = out[0];
  m->err_r = errp[0];
  if (io.pty_master >= 0) {
    /* With a tty all output comes from the pty master (EIO when the box is
     * gone); the pipes carry nothing. */
    close(m->out_r);
    close(m->err_r);
    m->err_r = -1;
    m->out_r = m->pty = io.pty_master;
    if (m->o->interactive)
      m->in = FD_IN; /* we copy it into the pty */
    resize_pty(m);
  } else if (m->o->interactive) {
    close(FD_IN);
  }
  return r;
}

/* -it: the caller's stdin goes into the pty. */
static void copy_in(struct mon *m)
{
  char buf[4096];
  ssize_t n = read(m->in, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0 || m->pty < 0 || write(m->pty, buf, (size_t)n) < 0) {
    close(m->in);
    m->in = -1;
  }
}

/* --log-opt max-size: ctr.log becomes ctr.log.1 (replacing the older one)
 * before a write would take it past the limit; `logs` reads both. */
static void log_write(struct mon *m, char stream, const char *buf, size_t n)
{
  if (m->log_max && m->log_size > 0 && m->log_size + n > m->log_max) {
    cleanup_free char *lp = box__path(&m->box, "ctr.log");
    cleanup_free char *old = box__path(&m->box, "ctr.log.1");
    int fd = rename(lp, old) == 0 ? open(lp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (fd >= 0) {
      dup3(fd, m->log, O_CLOEXEC); /* the fd number stays what ctl__serve drops */
      close(fd);
      m->log_size = 0;
    }
  }
  log__append(m->log, stream, buf, n);
  off_t end = lseek(m->log, 0, SEEK_CUR); /* O_APPEND: the file's size */
  m->log_size = end > 0 ? (uint64_t)end : m->log_size + n;
}

static void copy_out(struct mon *m, int *fd, char stream)
{
  char buf[65536];
  ssize_t n = read(*fd, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    if (*fd == m->pty)
      m->pty = -1;
    close(*fd);
    *fd = -1;
    return;
  }
  log_write(m, stream, buf, (size_t)n);
  int *to = stream == 'o' ? &m->cout : &m->cerr;
  /* The caller may have gone (Ctrl-C, closed pipe): keep logging. */
  if (*to >= 0 && write(*to, buf, (size_t)n) < 0 && errno != EINTR && errno != EAGAIN)
    *to = -1;
}

static void forward_signal(struct mon *m)
{
  struct signalfd_siginfo si;
  if (read(m->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
    return;
  int sig = si.ssi_int;
  if (sig == SIGWINCH) { /* from the caller (see proxy_signal): not for the box */
    resize_pty(m);
    return;
  }
  if (sig > 0 && sig < NSIG)
    m->o->ops->signal(m->handle, sig, NULL); /* a box that just ended: nothing to do */
}

static int poll_ms(uint64_t deadline)
{
  if (deadline == 0)
    return -1;
  uint64_t now = util__now_ns();
  return now >= deadline ? 0 : (int)((deadline - now) / 1000000 + 1);
}

/* Until the box ends (or its --timeout is up): output to log and caller,
 * signal requests to the box. */
static void pump(struct mon *m)
{
  unsigned t = m->o->spec->timeout_sec;
  uint64_t deadline = t ? util__now_ns() + (uint64_t)t * 1000000000ULL : 0;
  int wfd = m->o->ops->wait_fd ? m->o->ops->wait_fd(m->handle) : -1;
  for (;;) {
    struct pollfd p[6] = {{m->out_r, POLLIN, 0}, {m->err_r, POLLIN, 0}, {m->sfd, POLLIN, 0},
                          {wfd, POLLIN, 0},      {m->ctl, POLLIN, 0},   {m->in, POLLIN, 0}};
    int r = poll(p, 6, poll_ms(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return; /* the deadline: the backend's wait does the killing */
    if (p[0].revents)
      copy_out(m, &m->out_r, 'o');
    if (p[1].revents)
      copy_out(m, &m->err_r, 'e');
    if (p[2].revents)
      forward_signal(m);
    if (p[5].revents)
      copy_in(m);
    if (p[4].revents) {
      int drop[] = {FD_REPORT, m->cout, m->cerr, m->log, m->out_r, m->err_r, m->sfd, m->ctl, m->in};
      ctl__serve(m->ctl, m->o->ops, m->handle, drop, ARRAY_SIZE(drop));
    }
    if (p[3].revents || (wfd < 0 && m->out_r < 0 && m->err_r < 0))
      return;
  }
}

/* What the box wrote before it ended is still in the pipes. */
static void drain(struct mon *m)
{
  uint64_t until = util__now_ns() + 2000000000ULL;
  while ((m->out_r >= 0 || m->err_r >= 0) && util__now_ns() < until) {
    struct pollfd p[2] = {{m->out_r, POLLIN, 0}, {m->err_r, POLLIN, 0}};
    if (poll(p, 2, 200) <= 0)
      continue;
    if (p[0].revents)
      copy_out(m, &m->out_r, 'o');
    if (p[1].revents)
      copy_out(m, &m->err_r, 'e');
  }
}

static void record_exit(struct mon *m, int code, bool oom, bool timed_out, const char *reason)
{
  m->box.state.status = BOX_STATUS_EXITED;
  m->box.state.exit_code = code;
  m->box.state.oom = oom;
  m->box.state.timed_out = timed_out;
  m->box.state.finished = time(NULL);
  m->box.state.reason = reason ? xstrdup(reason) : NULL;
  box__state_write(&m->box, NULL);
}

static void finish(struct mon *m, int code)
{
  if (m->handle)
    m->o->ops->delete (m->handle, NULL);
  if (m->o->auto_remove && code >= 0)
    box__exit_note_write(m->o->root, m->box.id, code);
  cleanup_free char *trash = NULL;
  if (m->o->auto_remove)
    box__remove_begin(m->o->root, &m->box, &trash, NULL);
  report("X %d\n", code);
  /* The caller has its answer and nothing finds the box any more. */
  if (trash)
    util__rm_rf(trash, NULL);
}

static int block_signals(struct mon *m)
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGRTMIN);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  m->sfd = signalfd(-1, &set, SFD_CLOEXEC);
  return m->sfd;
}

static void __attribute__((noreturn)) monitor_main(const struct monitor_opts *o, int report_fd)
{
  struct mon m = {
      .o = o, .box = *o->box, .log = -1, .out_r = -1, .err_r = -1, .ctl = -1, .pty = -1, .in = -1};
  m.box.state.reason = NULL;
  setup_fds(o, report_fd); /* first: it closes every fd it does not know */
  /* Like any daemon: keep no directory of the caller's busy. */
  if (chdir("/") < 0)
    _exit(1);
  block_signals(&m);
  m.cout = o->detach ? -1 : FD_OUT;
  m.cerr = o->detach ? -1 : FD_ERR;
  m.box.state.monitor_pid = getpid();
  m.box.state.monitor_start = box__proc_start(getpid());
  box__state_write(&m.box, NULL);
  vmbox_error_t err = NULL;
  if (start_box(&m, &err) < 0) {
    record_exit(&m, err->exit_code, false, false, err->msg);
    report_error(m.box.id, &err);
    finish(&m, -1);
    _exit(0);
  }
  m.box.state.status = BOX_STATUS_RUNNING;
  m.box.state.started = time(NULL);
  box__state_write(&m.box, NULL);
  m.ctl = ctl__listen(m.box.dir, NULL); /* without it only exec is missing */
  report("S %d\n", (int)getpid());
  pump(&m);
  if (m.ctl >= 0) {
    close(m.ctl);
    cleanup_free char *sock = box__path(&m.box, "ctl.sock");
    unlink(sock);
  }
  struct box_exit e = {.code = 137};
  bool ok = o->ops->wait(m.handle, &e, &err) == 0;
  drain(&m);
  record_exit(&m, e.code, e.oom, e.timed_out,
              !ok           ? "wait failed"
              : e.timed_out ? "timed out"
              : e.oom       ? "out of memory"
                            : NULL);
  finish(&m, e.code);
  _exit(0);
}

/* ---- caller side ------------------------------------------------------------- */

static int spawn(const struct monitor_opts *o, int report_w, vmbox_error_t *err)
{
  /* One fork, not a daemon's two (a process and a wait less per run, ~3 ms
   * on a loaded host): in its own session no terminal signal reaches the
   * monitor, and it outlives us, adopted by init (or a subreaper) when we
   * exit.  A monitor that ends first is our zombie until then, which
   * box__proc_start counts as dead, as it is. */
  pid_t pid = fork();
  if (pid < 0)
    return vmbox_error_sys(err, "fork the box monitor");
  if (pid == 0) {
    setsid();
    monitor_main(o, report_w);
  }
  return 0;
}

static int parse_error(char *line, vmbox_error_t *err)
{
  char *msg = strchr(line, '\t');
  char *hint = msg ? strchr(msg + 1, '\t') : NULL;
  if (hint)
    *hint++ = '\0';
  int code = atoi(line + 2);
  /* The message already carries strerror: set it verbatim. */
  vmbox_error_set(err, 0, "%s", msg ? msg + 1 : "the box could not start");
  if (hint && *hint)
    vmbox_error_hint(err, "%s", hint);
  return vmbox_error_code(err, code > 0 ? code : EXIT_VMBOX_FAILED);
}

/* Forwards the caller's terminal signals to the box, as docker's sig-proxy. */
static void proxy_signal(int sfd, pid_t monitor)
{
  struct signalfd_siginfo si;
  if (monitor > 0 && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
    sigqueue(monitor, SIGRTMIN, (union sigval){.sival_int = (int)si.ssi_signo});
}

static int read_line(int fd, int sfd, pid_t *monitor, char *buf, size_t len)
{
  size_t n = 0;
  while (n + 1 < len) {
    struct pollfd p[2] = {{fd, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    if (p[1].revents)
      proxy_signal(sfd, *monitor);
    if (!p[0].revents)
      continue;
    ssize_t r = read(fd, buf + n, 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    if (buf[n] == '\n')
      break;
    n++;
  }
  buf[n] = '\0';
  return 0;
}

static int await(const struct monitor_opts *o, int fd, int sfd, int *exit_code, vmbox_error_t *err)
{
  char line[8192];
  pid_t monitor = 0;
  for (;;) {
    if (read_line(fd, sfd, &monitor, line, sizeof(line)) < 0)
      return vmbox_error_set(err, 0, "box %.12s: the monitor died before the box ended",
                             o->box->id);
    if (line[0] == 'E')
      return parse_error(line, err);
    if (line[0] == 'S') {
      monitor = (pid_t)atoi(line + 2);
      if (o->detach) {
        *exit_code = -1;
        return 0;
      }
    }
    if (line[0] == 'X') {
      *exit_code = atoi(line + 2);
      return 0;
    }
  }
}

int monitor__launch(const struct monitor_opts *o, int *exit_code, vmbox_error_t *err)
{
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return vmbox_error_sys(err, "pipe");
  fflush(stdout);
  fflush(stderr);
  int r = spawn(o, p[1], err);
  close(p[1]);
  if (r < 0) {
    close(p[0]);
    return -1;
  }
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  /* -t: a resized terminal reaches the box's pty through the monitor. */
  if (o->spec->proc.tty && !o->detach)
    sigaddset(&set, SIGWINCH);
  sigprocmask(SIG_BLOCK, &set, &old);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC);
  /* -it on a terminal: keys go to the box as they are typed (^C too). */
  struct termios saved;
  bool raw =
      o->spec->proc.tty && o->interactive && !o->detach && isatty(0) && tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(0, TCSANOW, &t);
  }
  r = await(o, p[0], sfd, exit_code, err);
  if (raw)
    tcsetattr(0, TCSANOW, &saved);
  close(sfd);
  sigprocmask(SIG_SETMASK, &old, NULL);
  close(p[0]);
  return r;
}

/* ---- other commands ---------------------------------------------------------- */

int monitor__signal(const struct box_info *b, int sig, vmbox_error_t *err)
{
  if (b->state.status != BOX_STATUS_RUNNING || !box__monitor_alive(&b->state))
    return vmbox_error_set(err, 0, "box %.12s is not running", b->id);
  if (sigqueue(b->state.monitor_pid, SIGRTMIN, (union sigval){.sival_int = sig}) < 0)
    return vmbox_error_sys(err, "signal box %.12s", b->id);
  return 0;
}

int monitor__wait_gone(const struct box_info *b, int timeout_ms, vmbox_error_t *err)
{
  if (!box__monitor_alive(&b->state))
    return 1;
  int fd = (int)syscall(SYS_pidfd_open, b->state.monitor_pid, 0);
  if (fd < 0)
    return errno == ESRCH ? 1 : vmbox_error_sys(err, "watch box %.12s", b->id);
  /* The pid may have been reused between the check and pidfd_open. */
  if (!box__monitor_alive(&b->state)) {
    close(fd);
    return 1;
  }
  struct pollfd p = {fd, POLLIN, 0};
  int r;
  while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
    ;
  close(fd);
  return r > 0 ? 1 : 0;
}
