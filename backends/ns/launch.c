/* The channels between the monitor and a process it starts in a box: a
 * report pipe (CLOEXEC: an error value, or EOF once the command is exec'd,
 * as runc does), a go pipe (the child waits until the monitor has put it in
 * the cgroups) and, with a tty, a socket for the pty master. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

int launch__read_report(int fd, const char *what, vmbox_error_t *err)
{
  struct ns_report r;
  ssize_t n;
  do
    n = read(fd, &r, sizeof(r));
  while (n < 0 && errno == EINTR);
  if (n == 0)
    return 0;
  if (n != (ssize_t)sizeof(r))
    return vmbox_error_set(err, 0, "%s: the box died during setup", what);
  r.msg[sizeof(r.msg) - 1] = r.hint[sizeof(r.hint) - 1] = '\0';
  vmbox_error_set(err, r.errno_, "%s: %s", what, r.msg);
  if (r.hint[0])
    vmbox_error_hint(err, "%s", r.hint);
  return vmbox_error_code(err, r.exit_code);
}

void launch__close(struct launch *l)
{
  int *fds[] = {&l->report[0], &l->report[1],  &l->sync[0],
                &l->sync[1],   &l->console[0], &l->console[1]};
  for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
    if (*fds[i] >= 0)
      close(*fds[i]), *fds[i] = -1;
}

int launch__open(struct launch *l, bool tty, vmbox_error_t *err)
{
  memset(l, -1, sizeof(*l));
  if (pipe2(l->report, O_CLOEXEC) < 0 || pipe2(l->sync, O_CLOEXEC) < 0 ||
      (tty && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, l->console) < 0)) {
    launch__close(l);
    return vmbox_error_sys(err, "pipe");
  }
  return 0;
}

void launch__side(struct launch *l, bool child)
{
  int *drop[] = {&l->report[child ? 0 : 1], &l->sync[child ? 1 : 0], &l->console[child ? 0 : 1]};
  for (size_t i = 0; i < ARRAY_SIZE(drop); i++)
    if (*drop[i] >= 0)
      close(*drop[i]), *drop[i] = -1;
}

void launch__wait_go(struct launch *l)
{
  char go;
  if (read(l->sync[0], &go, 1) != 1)
    _exit(EXIT_VMBOX_FAILED); /* the monitor died or gave up */
  close(l->sync[0]);
  /* The box must not outlive its monitor. */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int launch__go(struct launch *l, const char *what, struct box_proc_io *io, vmbox_error_t *err)
{
  int master = -1;
  if (write(l->sync[1], "g", 1) != 1)
    return vmbox_error_sys(err, "%s: start", what);
  close(l->sync[1]), l->sync[1] = -1;
  if (l->console[0] >= 0)
    tty__recv_master(l->console[0], &master, err);
  if (launch__read_report(l->report[0], what, err) < 0) {
    if (master >= 0)
      close(master);
    return -1;
  }
  if (l->console[0] >= 0 && master < 0)
    return vmbox_error_set(err, 0, "%s: the box sent no pty", what);
  if (io)
    io->pty_master = master;
  else if (master >= 0)
    close(master);
  return 0;
}
