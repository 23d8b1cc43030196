/* The host's side of vmbox-init's sessions: `vmbox exec` and `vmbox cp`
 * into a running kvm box, one vsock connection each (proto.h).
 *
 * A client connects to the VMM's vsock socket in the box's state dir
 * (Firecracker's protocol: "CONNECT 1024\n" -> "OK <port>\n"), sends one
 * EXEC or CP record and then speaks records.  No VMM state is involved, so
 * any process can do it: exec runs in the monitor's ctl child, cp in the
 * CLI.  An exec forks a pump process that owns the connection and the
 * process's stdio (exec_wait waits for it): the caller may go on with its
 * event loop.  The guest is hostile here as everywhere: its records go
 * through chan.c's decoder, its text is cleaned before it is shown. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "../backend.h"
#include "../copy.h"
#include "chan.h"
#include "kvmbox.h"

#define CONNECT_MS 10000
#define START_MS 60000 /* the guest forks, execs; nested TCG is slow */

struct box_proc {
  pid_t pid; /* the pump */
  int res;   /* its report: one struct box_exit */
  bool done;
  struct box_exit exit;
};

int session__openpty(int *slave, vmbox_error_t *err)
{
  int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  char name[64];
  if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
    int e = errno;
    if (m >= 0)
      close(m);
    return vmbox_error_set(err, e, "open a pty");
  }
  *slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) {
    int e = errno;
    close(m);
    return vmbox_error_set(err, e, "open %s", name);
  }
  return m;
}

static int read_line(int fd, char *buf, size_t cap, int ms)
{
  size_t n = 0;
  while (n + 1 < cap) {
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0 || read(fd, buf + n, 1) != 1)
      return -1;
    if (buf[n++] == '\n')
      break;
  }
  buf[n] = '\0';
  return 0;
}

/* A stream to vmbox-init's port `port`; the box's kvm state dir is dir. */
int session__connect(const char *dir, const char *name, unsigned port, vmbox_error_t *err)
{
  cleanup_close int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/vsock", dfd);
  int fd = dfd < 0 ? -1 : socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    if (e == ENOENT || e == ECONNREFUSED) {
      vmbox_error_set(err, 0, "box %s is not running (its VM is gone)", name);
      return vmbox_error_hint(err, "vmbox ps -a shows how it ended");
    }
    return vmbox_error_set(err, e, "box %s: connect to its VM (%s/vsock)", name, dir);
  }
  char line[64];
  dprintf(fd, "CONNECT %u\n", port);
  if (read_line(fd, line, sizeof(line), CONNECT_MS) < 0 || strncmp(line, "OK ", 3) != 0) {
    close(fd);
    vmbox_error_set(err, 0, "box %s: its guest did not answer on vsock port %u", name, port);
    return vmbox_error_hint(err, "the box may be booting or stopping; see %s/console.log", dir);
  }
  return fd;
}

static void put(char **buf, size_t *len, uint8_t key, const char *s)
{
  size_t n = strlen(s);
  *buf = xrealloc(*buf, *len + 5 + n);
  uint8_t *p = (uint8_t *)*buf + *len;
  p[0] = key;
  for (int i = 0; i < 4; i++)
    p[1 + i] = (uint8_t)(n >> (8 * i));
  memcpy(p + 5, s, n);
  *len += 5 + n;
}

static char *exec_request(const struct box_process *p, size_t *len)
{
  char *b = NULL, num[32];
  *len = 0;
  for (size_t i = 0; p->argv[i]; i++)
    put(&b, len, CFG_ARGV, p->argv[i]);
  for (size_t i = 0; p->env && p->env[i]; i++)
    put(&b, len, CFG_ENV, p->env[i]);
  if (p->cwd)
    put(&b, len, CFG_CWD, p->cwd);
  snprintf(num, sizeof(num), "%u", (unsigned)p->uid);
  put(&b, len, CFG_UID, num);
  snprintf(num, sizeof(num), "%u", (unsigned)p->gid);
  put(&b, len, CFG_GID, num);
  for (size_t i = 0; i < p->n_groups; i++) {
    snprintf(num, sizeof(num), "%u", (unsigned)p->groups[i]);
    put(&b, len, CFG_GROUP, num);
  }
  put(&b, len, CFG_STDIN, "1");
  if (p->tty)
    put(&b, len, CFG_TTY, "1");
  return b;
}

/* ---- the pump: one process per exec ------------------------------------------ */

struct pump {
  struct chan_dec dec;
  int conn, in, tty, sfd, res;
  uint8_t *q;
  size_t qlen;
  bool started, failed, exited, in_eof;
  uint8_t exit_rec[3];
  char fail_msg[512];
  int fail_code;
};

static void clean(char *dst, size_t cap, const uint8_t *p, size_t n)
{
  size_t j = 0;
  for (size_t i = 0; i < n && j + 1 < cap; i++)
    dst[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
  dst[j] = '\0';
}

static void on_rec(void *opaque, uint8_t type, const uint8_t *p, size_t n)
{
  struct pump *u = opaque;
  if (type == CHAN_G_STARTED && !u->failed) {
    u->started = true;
  } else if (type == CHAN_G_EXEC_FAIL && !u->started && !u->failed && n >= 1) {
    u->failed = true;
    u->fail_code = p[0] == 126 || p[0] == 127 ? p[0] : 125;
    clean(u->fail_msg, sizeof(u->fail_msg), p + 1, n - 1);
  } else if (type == CHAN_G_EXIT && u->started && !u->exited && n == 3) {
    u->exited = true;
    memcpy(u->exit_rec, p, 3);
  }
}

static void queue(struct pump *u, uint8_t type, const void *p, size_t n)
{
  u->q = xrealloc(u->q, u->qlen + CHAN_HDR_LEN + n);
  u->qlen += chan__encode(u->q + u->qlen, type, p, n);
}

static bool conn_in(struct pump *u)
{
  static uint8_t buf[65536];
  ssize_t n = read(u->conn, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  return n > 0 && chan__feed(&u->dec, buf, (size_t)n);
}

static void resize(struct pump *u)
{
  struct winsize ws;
  if (u->tty >= 0 && ioctl(u->tty, TIOCGWINSZ, &ws) == 0) {
    uint8_t p[4] = {(uint8_t)ws.ws_row, (uint8_t)(ws.ws_row >> 8), (uint8_t)ws.ws_col,
                    (uint8_t)(ws.ws_col >> 8)};
    queue(u, CHAN_H_RESIZE, p, sizeof(p));
  }
}

/* Signals sent to the pump (by exec_free, or whoever holds its pid) go to
 * the process; SIGWINCH is the pty's size. */
static void on_signal(struct pump *u)
{
  struct signalfd_siginfo si;
  while (read(u->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if (si.ssi_signo == SIGWINCH) {
      resize(u);
    } else {
      uint8_t s = (uint8_t)si.ssi_signo;
      queue(u, CHAN_H_SIGNAL, &s, 1);
    }
  }
}

static void stdin_in(struct pump *u)
{
  uint8_t buf[CHAN_MAX_PAYLOAD];
  ssize_t n = read(u->in, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n > 0) {
    queue(u, CHAN_H_STDIN, buf, (size_t)n);
    return;
  }
  queue(u, CHAN_H_STDIN_EOF, NULL, 0);
  u->in_eof = true;
}

static bool conn_out(struct pump *u)
{
  ssize_t w = write(u->conn, u->q, u->qlen);
  if (w < 0 && (errno == EINTR || errno == EAGAIN))
    return true;
  if (w <= 0)
    return false;
  memmove(u->q, u->q + w, u->qlen - (size_t)w);
  u->qlen -= (size_t)w;
  return true;
}

/* Until the EXIT record, or the connection ends. */
static void pump_loop(struct pump *u)
{
  bool sized = false;
  while (!u->exited) {
    if (u->started && !sized) {
      sized = true;
      resize(u);
    }
    struct pollfd p[3] = {{u->conn, (short)(POLLIN | (u->qlen ? POLLOUT : 0)), 0},
                          {u->started && !u->in_eof && !u->qlen ? u->in : -1, POLLIN, 0},
                          {u->sfd, POLLIN, 0}};
    if (poll(p, 3, -1) < 0 && errno != EINTR)
      return;
    if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) && !conn_in(u))
      return;
    if ((p[0].revents & POLLOUT) && !conn_out(u))
      return;
    if (p[1].revents)
      stdin_in(u);
    if (p[2].revents)
      on_signal(u);
  }
}

/* Only these fds stay open in the pump: not the monitor's others. */
static void keep_fds(int *fds, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0)
      fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 1000);
  syscall(SYS_close_range, 3U, 999U, 0U);
  for (size_t i = 0; i < n; i++)
    if (fds[i] >= 0) {
      int lo = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
      close(fds[i]);
      fds[i] = lo;
    }
}

static void __attribute__((noreturn)) pump_main(struct pump *u, int out, int errfd)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_NAME, "vmbox-exec", 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  int fds[6] = {u->conn, u->in, u->tty, u->res, out, errfd};
  keep_fds(fds, 6);
  u->conn = fds[0], u->in = fds[1], u->tty = fds[2], u->res = fds[3];
  u->dec.out_fd = fds[4];
  u->dec.err_fd = fds[5];
  sigset_t set;
  sigemptyset(&set);
  int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  for (size_t i = 0; i < ARRAY_SIZE(fwd); i++)
    sigaddset(&set, fwd[i]);
  sigprocmask(SIG_BLOCK, &set, NULL);
  u->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (u->tty >= 0) {
    struct termios t;
    setsid();
    ioctl(u->tty, TIOCSCTTY, 0);
    if (tcgetattr(u->tty, &t) == 0) {
      cfmakeraw(&t);
      tcsetattr(u->tty, TCSANOW, &t);
    }
  }
  fcntl(u->conn, F_SETFL, O_NONBLOCK);
  pump_loop(u);
  struct box_exit e = {.code = 137, .signal = SIGKILL};
  if (u->exited) {
    e = (struct box_exit){.code = u->exit_rec[0],
                          .signal = u->exit_rec[1] < 65 ? u->exit_rec[1] : 0,
                          .oom = (u->exit_rec[2] & CHAN_EXIT_OOM) != 0};
  } else if (u->dec.broken) {
    dprintf(u->dec.err_fd, "vmbox: the guest broke the exec channel (%s)\n", u->dec.why);
    e = (struct box_exit){.code = 125};
  }
  if (write(u->res, &e, sizeof(e)) != (ssize_t)sizeof(e)) {
    /* the caller is gone */
  }
  _exit(0);
}

/* STARTED or EXEC_FAIL, and whatever output came with it. */
static int wait_started(struct pump *u, const char *name, vmbox_error_t *err)
{
  uint64_t end = util__now_ns() + START_MS * 1000000ULL;
  while (!u->started && !u->failed) {
    uint64_t now = util__now_ns();
    struct pollfd p = {u->conn, POLLIN, 0};
    int r = now >= end ? 0 : poll(&p, 1, (int)((end - now) / 1000000) + 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      return vmbox_error_set(err, 0, "box %s: exec: the guest did not start it within %ds", name,
                             START_MS / 1000);
    if (!conn_in(u))
      return vmbox_error_set(err, 0, "box %s: exec: the guest closed the session%s%s", name,
                             u->dec.broken ? ": " : "", u->dec.broken ? u->dec.why : "");
  }
  if (u->failed) {
    vmbox_error_set(err, 0, "%s", u->fail_msg);
    return vmbox_error_code(err, u->fail_code);
  }
  return 0;
}

int session__exec(const char *dir, const char *name, const struct box_process *p,
                  struct box_proc **out, struct box_proc_io *io, vmbox_error_t *err)
{
  if (p->argv == NULL || p->argv[0] == NULL)
    return vmbox_error_set(err, 0, "box %s: exec: no command", name);
  size_t len;
  cleanup_free char *req = exec_request(p, &len);
  if (len > CHAN_MAX_PAYLOAD)
    return vmbox_error_set(err, 0, "box %s: exec: command and environment exceed %d bytes", name,
                           CHAN_MAX_PAYLOAD);
  struct pump u = {.in = p->stdio.in, .tty = -1, .res = -1, .sfd = -1};
  u.conn = session__connect(dir, name, CHAN_PORT_EXEC, err);
  if (u.conn < 0)
    return -1;
  int master = -1, res[2] = {-1, -1};
  if (p->tty && (master = session__openpty(&u.tty, err)) < 0)
    goto fail;
  int o = u.tty >= 0 ? u.tty : p->stdio.out, e = u.tty >= 0 ? u.tty : p->stdio.err;
  if (u.tty >= 0)
    u.in = u.tty;
  chan__init(&u.dec, o, e, on_rec, &u);
  if (chan__send(u.conn, CHAN_H_EXEC, req, len) < 0) {
    vmbox_error_sys(err, "box %s: exec: send the request", name);
    goto fail;
  }
  if (wait_started(&u, name, err) < 0 || pipe2(res, O_CLOEXEC) < 0)
    goto fail;
  u.res = res[1];
  pid_t pid = fork();
  if (pid == 0)
    pump_main(&u, o, e);
  if (pid < 0) {
    vmbox_error_sys(err, "box %s: exec: fork", name);
    goto fail;
  }
  close(res[1]);
  close(u.conn);
  if (u.tty >= 0)
    close(u.tty);
  struct box_proc *bp = xcalloc(1, sizeof(*bp));
  bp->pid = pid;
  bp->res = res[0];
  *out = bp;
  if (io)
    io->pty_master = master;
  else if (master >= 0)
    close(master);
  return 0;
fail:
  for (int i = 0; i < 2; i++)
    if (res[i] >= 0)
      close(res[i]);
  close(u.conn);
  if (master >= 0) {
    close(master);
    close(u.tty);
  }
  return -1;
}

int session__exec_wait(struct box_proc *p, struct box_exit *out, vmbox_error_t *err)
{
  (void)err;
  if (!p->done) {
    struct box_exit e = {.code = 137, .signal = SIGKILL};
    ssize_t n;
    while ((n = read(p->res, &e, sizeof(e))) < 0 && errno == EINTR)
      ;
    if (n != (ssize_t)sizeof(e))
      e = (struct box_exit){.code = 137, .signal = SIGKILL};
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
      ;
    p->exit = e;
    p->done = true;
  }
  *out = p->exit;
  return 0;
}

/* The pump's death closes the connection: vmbox-init then kills the
 * process (a session without its host has nobody to report to). */
void session__exec_free(struct box_proc *p)
{
  if (p == NULL)
    return;
  if (!p->done) {
    struct box_exit e;
    kill(p->pid, SIGKILL);
    session__exec_wait(p, &e, NULL);
  }
  close(p->res);
  free(p);
}

/* ---- cp ------------------------------------------------------------------------ */

struct cpw {
  int out; /* DATA goes here (cp out), -1: none expected */
  bool done, ok, write_failed;
  char msg[512];
};

static void cp_rec(void *opaque, uint8_t type, const uint8_t *p, size_t n)
{
  struct cpw *w = opaque;
  if (type == CHAN_G_DATA && w->out >= 0 && !w->done && !w->write_failed) {
    while (n) {
      ssize_t k = write(w->out, p, n);
      if (k < 0 && errno == EINTR)
        continue;
      if (k <= 0) {
        w->write_failed = true;
        return;
      }
      p += k;
      n -= (size_t)k;
    }
  } else if (type == CHAN_G_DONE && !w->done && n >= 1) {
    w->done = true;
    w->ok = p[0] == 0;
    clean(w->msg, sizeof(w->msg), p + 1, n - 1);
  }
}

/* Reads the guest's records until DONE. */
static int cp_finish(int conn, struct cpw *w, const char *name, vmbox_error_t *err)
{
  struct chan_dec dec;
  chan__init(&dec, -1, -1, cp_rec, w);
  static uint8_t buf[65536];
  while (!w->done) {
    ssize_t n = read(conn, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0 || !chan__feed(&dec, buf, (size_t)n))
      return vmbox_error_set(err, 0, "box %s: cp: the guest ended the session%s%s", name,
                             dec.broken ? ": " : "", dec.broken ? dec.why : "");
  }
  if (!w->ok)
    return vmbox_error_set(err, 0, "box %s: cp: %s", name, w->msg);
  if (w->write_failed)
    return vmbox_error_sys(err, "cp: write the tar stream");
  return 0;
}

/* "P/." -> P with *dot; trailing slashes go.  Returns a malloc'd path. */
static char *cp_norm(const char *p, bool *dot, bool *slash)
{
  char *s = xstrdup(p);
  size_t n = strlen(s);
  *dot = n >= 2 && strcmp(s + n - 2, "/.") == 0;
  if (*dot)
    s[n -= 2] = '\0';
  *slash = n > 1 && s[n - 1] == '/';
  while (n > 1 && s[n - 1] == '/')
    s[--n] = '\0';
  if (n == 0)
    strcpy(s, "/");
  return s;
}

static int cp_request(const char *dir, const char *name, uint8_t type, uint8_t flag,
                      const char *path, vmbox_error_t *err)
{
  size_t n = strlen(path);
  if (n + 1 > CHAN_MAX_PAYLOAD)
    return vmbox_error_set(err, 0, "cp: path too long");
  int conn = session__connect(dir, name, CHAN_PORT_EXEC, err);
  if (conn < 0)
    return -1;
  cleanup_free uint8_t *req = xmalloc(n + 1);
  req[0] = flag;
  memcpy(req + 1, path, n);
  if (chan__send(conn, type, req, n + 1) < 0) {
    close(conn);
    return vmbox_error_sys(err, "box %s: cp: send the request", name);
  }
  return conn;
}

static char *cp_tmpdir(vmbox_error_t *err)
{
  const char *t = getenv("TMPDIR");
  char *d = util__fmt("%s/vmbox-cp-XXXXXX", t && t[0] == '/' ? t : "/tmp");
  if (mkdtemp(d) == NULL) {
    vmbox_error_sys(err, "cp: make a temp dir like %s", d);
    free(d);
    return NULL;
  }
  return d;
}

/* Guest tar -> a file in tmp -> unpacked in tmp/x -> docker cp's rules
 * onto the host path by copy__tree. */
static int cp_out_host(const char *dir, const struct box_cp *c, const char *path, bool dot,
                       vmbox_error_t *err)
{
  cleanup_free char *tmp = cp_tmpdir(err);
  if (tmp == NULL)
    return -1;
  cleanup_free char *tarp = util__fmt("%s/t.tar", tmp), *x = util__fmt("%s/x", tmp);
  cleanup_free char *where = util__fmt("in box %s", c->name);
  struct copy_opts o = {false, c->archive, where, "on the host"};
  int r = -1;
  cleanup_close int tfd = open(tarp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  int conn = tfd < 0 || mkdir(x, 0700) < 0
                 ? vmbox_error_sys(err, "cp: temp files in %s", tmp)
                 : cp_request(dir, c->name, CHAN_H_CP_OUT, c->follow, path, err);
  if (conn >= 0) {
    struct cpw w = {.out = tfd};
    r = cp_finish(conn, &w, c->name, err);
    close(conn);
  }
  if (r == 0 && lseek(tfd, 0, SEEK_SET) == 0) {
    cleanup_close int xr = copy__open_root(x, err);
    cleanup_close int host = xr < 0 ? -1 : copy__open_root("/", err);
    const char *base = strrchr(path, '/') + 1;
    cleanup_free char *src = util__fmt("/%s%s", base[0] ? base : "", dot || !base[0] ? "/." : "");
    r = host < 0 ? -1 : copy__from_tar(tfd, xr, "/", &o, err);
    if (r == 0)
      r = copy__tree(xr, src, host, c->host_path, &o, err);
  }
  util__rm_rf(tmp, NULL);
  return r;
}

int session__cp_out(const char *dir, const struct box_cp *c, vmbox_error_t *err)
{
  bool dot, slash;
  cleanup_free char *path = cp_norm(c->box_path, &dot, &slash);
  if (c->host_path)
    return cp_out_host(dir, c, path, dot, err);
  int conn = cp_request(dir, c->name, CHAN_H_CP_OUT, c->follow || dot || slash, path, err);
  if (conn < 0)
    return -1;
  struct cpw w = {.out = c->tar_fd};
  int r = cp_finish(conn, &w, c->name, err);
  close(conn);
  return r;
}

/* Streams fd as DATA records, then DATA_EOF, and waits for DONE. */
static int cp_stream(int conn, int fd, const char *name, vmbox_error_t *err)
{
  static uint8_t buf[CHAN_MAX_PAYLOAD];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return vmbox_error_sys(err, "cp: read the tar stream");
    if (n == 0)
      break;
    if (chan__send(conn, CHAN_H_DATA, buf, (size_t)n) < 0)
      break; /* the guest gave up: DONE says why */
  }
  chan__send(conn, CHAN_H_DATA_EOF, NULL, 0);
  struct cpw w = {.out = -1};
  return cp_finish(conn, &w, name, err);
}

int session__cp_in(const char *dir, const struct box_cp *c, vmbox_error_t *err)
{
  bool dot, slash;
  cleanup_free char *hp = c->host_path ? cp_norm(c->host_path, &dot, &slash) : NULL;
  bool into = c->host_path == NULL || dot || strcmp(hp, "/") == 0;
  uint8_t flag = (uint8_t)((c->archive ? 1 : 0) | (into ? 2 : 0));
  cleanup_free char *tmp = NULL;
  cleanup_close int tfd = -1;
  if (c->host_path) {
    /* our tar of the host files first: a missing SRC fails before the box
     * is touched */
    if ((tmp = cp_tmpdir(err)) == NULL)
      return -1;
    cleanup_free char *tarp = util__fmt("%s/t.tar", tmp);
    cleanup_free char *where = util__fmt("in box %s", c->name);
    struct copy_opts o = {c->follow, c->archive, "on the host", where};
    tfd = open(tarp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    cleanup_close int host = tfd < 0 ? -1 : copy__open_root("/", err);
    int r = tfd < 0    ? vmbox_error_sys(err, "cp: create %s", tarp)
            : host < 0 ? -1
                       : copy__to_tar(host, c->host_path, tfd, &o, err);
    if (r == 0 && lseek(tfd, 0, SEEK_SET) != 0)
      r = vmbox_error_sys(err, "cp: rewind %s", tarp);
    if (r < 0) {
      util__rm_rf(tmp, NULL);
      return -1;
    }
  }
  int conn = cp_request(dir, c->name, CHAN_H_CP_IN, flag, c->box_path, err);
  int r = conn < 0 ? -1 : cp_stream(conn, c->host_path ? tfd : c->tar_fd, c->name, err);
  if (conn >= 0)
    close(conn);
  if (tmp)
    util__rm_rf(tmp, NULL);
  return r;
}
