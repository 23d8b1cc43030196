/* The monitor's control socket (see ctl.h). */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "../lib/util.h"

#define REQ_MAX 65536

/* sun_path holds 108 bytes; a box dir under a deep --root does not fit, so
 * go through an O_PATH fd of the dir. */
static int sock_addr(const char *dir, int *dfd, struct sockaddr_un *a, vmbox_error_t *err)
{
  *dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (*dfd < 0)
    return vmbox_error_sys(err, "open %s", dir);
  memset(a, 0, sizeof(*a));
  a->sun_family = AF_UNIX;
  snprintf(a->sun_path, sizeof(a->sun_path), "/proc/self/fd/%d/ctl.sock", *dfd);
  return 0;
}

int ctl__listen(const char *dir, vmbox_error_t *err)
{
  struct sockaddr_un a;
  cleanup_close int dfd = -1;
  if (sock_addr(dir, &dfd, &a, err) < 0)
    return -1;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return vmbox_error_sys(err, "socket");
  unlinkat(dfd, "ctl.sock", 0);
  if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0) {
    int e = errno;
    close(fd);
    return vmbox_error_set(err, e, "listen on %s/ctl.sock", dir);
  }
  return fd;
}

static int send_fds(int fd, const char *msg, const int *fds, size_t n)
{
  char cbuf[CMSG_SPACE(3 * sizeof(int))];
  memset(cbuf, 0, sizeof(cbuf));
  struct iovec iov = {(void *)msg, strlen(msg)};
  struct msghdr m = {.msg_iov = &iov,
                     .msg_iovlen = 1,
                     .msg_control = cbuf,
                     .msg_controllen = CMSG_SPACE(n * sizeof(int))};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(n * sizeof(int));
  memcpy(CMSG_DATA(c), fds, n * sizeof(int));
  return sendmsg(fd, &m, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static ssize_t recv_req(int conn, char *buf, size_t len, int fds[3])
{
  char cbuf[CMSG_SPACE(3 * sizeof(int))];
  struct iovec iov = {buf, len - 1};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
  ssize_t n = recvmsg(conn, &m, MSG_CMSG_CLOEXEC);
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (n <= 0 || c == NULL || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(3 * sizeof(int)))
    return -1;
  memcpy(fds, CMSG_DATA(c), 3 * sizeof(int));
  buf[n] = '\0';
  return n;
}

static char **strv_from_json(json_t *a)
{
  char **v = NULL;
  size_t i;
  json_t *s;
  json_array_foreach(a, i, s) strv_push(&v, json_string_value(s) ? json_string_value(s) : "");
  return v;
}

static void __attribute__((noreturn))
run_exec(int conn, const char *req, const int fds[3], const struct backend_ops *ops, struct box *h)
{
  json_t *j = json_loads(req, 0, NULL);
  char **argv = strv_from_json(json_object_get(j, "argv"));
  char **env = strv_from_json(json_object_get(j, "env"));
  struct box_process p = {.argv = argv,
                          .env = env,
                          .cwd = json_string_value(json_object_get(j, "cwd")),
                          .uid = (uid_t)json_integer_value(json_object_get(j, "uid")),
                          .gid = (gid_t)json_integer_value(json_object_get(j, "gid")),
                          .tty = json_is_true(json_object_get(j, "tty")),
                          .stdio = {fds[0], fds[1], fds[2]}};
  vmbox_error_t err = NULL;
  struct box_proc *bp = NULL;
  struct box_proc_io io = {.pty_master = -1};
  if (argv == NULL || ops->exec(h, &p, &bp, &io, &err) < 0) {
    if (err == NULL)
      vmbox_error_set(&err, 0, "exec: no command");
    cleanup_free char *msg = vmbox_error_string(err);
    for (char *c = msg; *c; c++)
      if (*c == '\n' || *c == '\t')
        *c = ' ';
    dprintf(conn, "E %d\t%s\n", err->exit_code, msg);
    _exit(0);
  }
  for (int i = 0; i < 3; i++)
    close(fds[i]);
  if (io.pty_master >= 0) { /* the client copies to and from the pty */
    send_fds(conn, "T\n", &io.pty_master, 1);
    close(io.pty_master);
  }
  struct box_exit e = {.code = 137};
  ops->exec_wait(bp, &e, &err);
  ops->exec_free(bp);
  dprintf(conn, "X %d\n", e.code);
  _exit(0);
}

void ctl__serve(int listen_fd, const struct backend_ops *ops, struct box *handle, const int *drop,
                size_t n_drop)
{
  int conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0)
    return;
  cleanup_free char *buf = xmalloc(REQ_MAX);
  int fds[3] = {-1, -1, -1};
  if (recv_req(conn, buf, REQ_MAX, fds) < 0) {
    close(conn);
    return;
  }
  /* Double fork: the exec waits in a grandchild the monitor need not reap. */
  pid_t pid = fork();
  if (pid == 0) {
    if (fork() == 0) {
      /* Keep only what the exec needs: not the caller's stdout or the
       * report pipe of a foreground run, which would wait for us. */
      for (size_t i = 0; i < n_drop; i++)
        if (drop[i] >= 0)
          close(drop[i]);
      run_exec(conn, buf, fds, ops, handle);
    }
    _exit(0);
  }
  if (pid > 0)
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
      ;
  for (int i = 0; i < 3; i++)
    close(fds[i]);
  close(conn);
}

static int send_req(int fd, const char *req, const int fds[3], vmbox_error_t *err)
{
  if (strlen(req) >= REQ_MAX)
    return vmbox_error_set(err, 0, "exec: command line too long");
  if (send_fds(fd, req, fds, 3) < 0)
    return vmbox_error_sys(err, "exec: send request");
  return 0;
}

/* A message and, for "T", the pty master it carries. */
static ssize_t recv_msg(int fd, char *buf, size_t len, int *pty)
{
  char cbuf[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {buf, len - 1};
  struct msghdr m = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
  ssize_t n;
  while ((n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
    ;
  struct cmsghdr *c = n > 0 ? CMSG_FIRSTHDR(&m) : NULL;
  if (c && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
    memcpy(pty, CMSG_DATA(c), sizeof(int));
  return n;
}

/* exec -t: our terminal's size onto the box's pty (the kernel signals the
 * process in the box). */
static void copy_winsize(int pty)
{
  struct winsize ws;
  if (ioctl(1, TIOCGWINSZ, &ws) == 0 || ioctl(0, TIOCGWINSZ, &ws) == 0)
    ioctl(pty, TIOCSWINSZ, &ws);
}

/* Copies pty output to stdout and (with -i) stdin to the pty until the
 * monitor's reply arrives, then what is left of the output.  The window
 * size follows ours: at start and on each SIGWINCH (sfd). */
static void relay_pty(int conn, int pty, bool in, int sfd)
{
  char buf[4096];
  bool replied = false;
  copy_winsize(pty);
  for (;;) {
    struct pollfd p[4] = {
        {pty, POLLIN, 0}, {in ? 0 : -1, POLLIN, 0}, {conn, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (replied)
      p[1].fd = p[2].fd = -1;
    int r = poll(p, 4, replied ? 200 : -1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return;
    if (p[0].revents) {
      ssize_t n = read(pty, buf, sizeof(buf));
      if (n <= 0 || write(1, buf, (size_t)n) < 0)
        return;
    }
    if (p[1].revents) {
      ssize_t n = read(0, buf, sizeof(buf));
      if (n <= 0 || write(pty, buf, (size_t)n) < 0)
        in = false;
    }
    if (p[2].revents)
      replied = true;
    struct signalfd_siginfo si;
    if (p[3].revents && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
      copy_winsize(pty);
  }
}

static int read_reply(int fd, int *code, bool in, vmbox_error_t *err)
{
  char line[8192];
  int pty = -1;
  ssize_t n = recv_msg(fd, line, sizeof(line), &pty);
  if (n > 0 && line[0] == 'T' && pty >= 0) {
    struct termios saved;
    bool raw = in && isatty(0) && tcgetattr(0, &saved) == 0;
    if (raw) {
      struct termios t = saved;
      cfmakeraw(&t);
      tcsetattr(0, TCSANOW, &t);
    }
    sigset_t winch, old;
    sigemptyset(&winch);
    sigaddset(&winch, SIGWINCH);
    sigprocmask(SIG_BLOCK, &winch, &old);
    int sfd = signalfd(-1, &winch, SFD_CLOEXEC);
    relay_pty(fd, pty, in, sfd);
    if (sfd >= 0)
      close(sfd);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (raw)
      tcsetattr(0, TCSANOW, &saved);
    close(pty);
    n = recv_msg(fd, line, sizeof(line), &pty);
  }
  if (n <= 0)
    return vmbox_error_set(err, 0, "exec: the box's monitor went away");
  line[n] = '\0';
  line[strcspn(line, "\n")] = '\0';
  if (line[0] == 'X') {
    *code = atoi(line + 2);
    return 0;
  }
  char *msg = strchr(line, '\t');
  vmbox_error_set(err, 0, "%s", msg ? msg + 1 : "exec failed");
  return vmbox_error_code(err, line[0] == 'E' && atoi(line + 2) > 0 ? atoi(line + 2) : 125);
}

int ctl__exec(const struct box_info *b, json_t *req, const int fds[3], int *code,
              vmbox_error_t *err)
{
  struct sockaddr_un a;
  cleanup_close int dfd = -1;
  if (sock_addr(b->dir, &dfd, &a, err) < 0)
    return -1;
  cleanup_close int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return vmbox_error_sys(err, "socket");
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
    return vmbox_error_sys(err, "exec: connect to the monitor of box %.12s", b->id);
  cleanup_free char *s = json_dumps(req, JSON_COMPACT);
  if (send_req(fd, s, fds, err) < 0)
    return -1;
  return read_reply(fd, code, json_is_true(json_object_get(req, "interactive")), err);
}
