/* A box process's terminal: the pty comes from the box's own devpts
 * instance (so the box sees /dev/pts/0, not a host pty), is made the
 * controlling tty of the process, and its master side travels to the
 * monitor over a unix socket (SCM_RIGHTS), as runc's console socket. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

static int send_fd(int sock, int fd)
{
  char byte = 't';
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  memset(&u, 0, sizeof(u));
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

int tty__setup_child(int sock, vmbox_error_t *err)
{
  /* After pivot_root: /dev/ptmx is the box's pts/ptmx. */
  cleanup_close int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0)
    return vmbox_error_sys(err, "tty: open a pty in the box");
  char name[64];
  if (ptsname_r(master, name, sizeof(name)) != 0)
    return vmbox_error_sys(err, "tty: ptsname");
  int slave = open(name, O_RDWR | O_NOCTTY);
  if (slave < 0)
    return vmbox_error_sys(err, "tty: open %s", name);
  if (ioctl(slave, TIOCSCTTY, 0) < 0) {
    close(slave);
    return vmbox_error_sys(err, "tty: make %s the controlling terminal", name);
  }
  for (int i = 0; i < 3; i++)
    if (dup2(slave, i) < 0)
      return vmbox_error_sys(err, "tty: stdio");
  if (slave > 2)
    close(slave);
  if (send_fd(sock, master) < 0)
    return vmbox_error_sys(err, "tty: hand the pty to the monitor");
  return 0;
}

int tty__recv_master(int sock, int *out, vmbox_error_t *err)
{
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  struct msghdr msg = {
      .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
  ssize_t n;
  do
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (c == NULL || c->cmsg_type != SCM_RIGHTS)
    return -1; /* the process failed first: its report says why */
  memcpy(out, CMSG_DATA(c), sizeof(int));
  (void)err;
  return 0;
}
