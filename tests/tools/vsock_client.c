/* vsock_client: the host side of tests/kvm/inner/vsock.bats, speaking the
 * VMM's Firecracker-style vsock socket protocol.
 *
 *   vsock_client SOCK PORT                 connect, "CONNECT PORT\n", expect
 *                                          "OK <n>\n", then stdin -> stream
 *                                          (half-close at EOF) and stream ->
 *                                          stdout until EOF
 *   vsock_client SOCK PORT --abort N       send N bytes of stdin, then close
 *                                          without reading (mid-stream exit)
 *   vsock_client SOCK PORT --parallel N    N streams at once, each sends 64 KiB
 *                                          of its own pattern and checks the echo
 *   vsock_client SOCK --line TEXT          send TEXT as is (no \n added) and
 *                                          report how the VMM ended it:
 *                                          "closed after S s, N bytes"
 *   vsock_client --serve PATH [--count N]  listen on PATH (a guest connect's
 *                                          "<uds>_<port>"), answer N clients
 *                                          with "hello-from-host <their line>\n"
 *
 * stderr gets "vsock_client: ..." lines, the last one with byte counts and
 * MB/s.  Exit status: 0 ok, 3 refused (closed without OK), 4 the socket is
 * not there, 1 anything else.  Every wait is bounded (30 s idle). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define IDLE_MS 30000
#define PAR_BYTES 65536

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int unix_connect(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    fprintf(stderr, "vsock_client: connect %s: %s\n", path, strerror(errno));
    exit(4);
  }
  return fd;
}

/* One line, byte by byte (nothing past the \n is consumed); -1 on EOF. */
static int read_line(int fd, char *buf, size_t max)
{
  size_t n = 0;
  while (n < max - 1) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, IDLE_MS) <= 0)
      return -1;
    if (read(fd, buf + n, 1) != 1)
      return -1;
    if (buf[n] == '\n')
      break;
    n++;
  }
  buf[n] = 0;
  return 0;
}

static int vsock_open(const char *sock, const char *port)
{
  int fd = unix_connect(sock);
  char line[64];
  snprintf(line, sizeof line, "CONNECT %s\n", port);
  if (write(fd, line, strlen(line)) != (ssize_t)strlen(line))
    exit(1);
  if (read_line(fd, line, sizeof line) < 0) {
    fprintf(stderr, "vsock_client: port %s refused (closed without OK)\n", port);
    exit(3);
  }
  if (strncmp(line, "OK ", 3) != 0) {
    fprintf(stderr, "vsock_client: bad answer \"%s\"\n", line);
    exit(1);
  }
  fprintf(stderr, "vsock_client: %s\n", line);
  return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w <= 0)
      return -1;
    p += w, n -= w;
  }
  return 0;
}

/* stdin -> fd, fd -> stdout, both at once. */
static int pump(int fd, long abort_after)
{
  static char buf[65536];
  long in = 0, out = 0;
  int in_open = 1;
  double t0 = now_s();
  for (;;) {
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    int n = poll(p, in_open ? 2 : 1, IDLE_MS);
    if (n <= 0) {
      fprintf(stderr, "vsock_client: stalled %d s (in=%ld out=%ld)\n", IDLE_MS / 1000, in, out);
      return 1;
    }
    if (in_open && p[1].revents) {
      size_t want = sizeof buf;
      if (abort_after >= 0 && (long)want > abort_after - in)
        want = abort_after - in;
      ssize_t r = want ? read(0, buf, want) : 0;
      if (r > 0 && write_all(fd, buf, r) < 0) {
        fprintf(stderr, "vsock_client: write: %s\n", strerror(errno));
        return 1;
      }
      in += r > 0 ? r : 0;
      if (abort_after >= 0 && in >= abort_after) {
        fprintf(stderr, "vsock_client: aborting after %ld bytes\n", in);
        close(fd);
        return 0;
      }
      if (r <= 0) {
        shutdown(fd, SHUT_WR);
        in_open = 0;
      }
    }
    if (p[0].revents) {
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0)
        break;
      if (write_all(1, buf, r) < 0)
        return 1;
      out += r;
    }
  }
  double dt = now_s() - t0;
  fprintf(stderr, "vsock_client: in=%ld out=%ld secs=%.3f in_MB/s=%.2f out_MB/s=%.2f\n", in, out,
          dt, dt > 0 ? in / dt / 1e6 : 0.0, dt > 0 ? out / dt / 1e6 : 0.0);
  return 0;
}

struct par {
  int fd;
  size_t sent, got;
  int done;
};

static char pattern(int i, size_t off)
{
  return (char)(i * 131 + off * 7 + (off >> 9));
}

static int parallel(const char *sock, const char *port, int n)
{
  struct par *c = calloc(n, sizeof(*c));
  struct pollfd *p = calloc(n, sizeof(*p));
  char buf[8192];
  for (int i = 0; i < n; i++)
    c[i].fd = vsock_open(sock, port);
  for (int left = n; left > 0;) {
    for (int i = 0; i < n; i++) {
      p[i].fd = c[i].done ? -1 : c[i].fd;
      p[i].events = POLLIN | (c[i].sent < PAR_BYTES ? POLLOUT : 0);
    }
    if (poll(p, n, IDLE_MS) <= 0) {
      fprintf(stderr, "vsock_client: parallel streams stalled (%d left)\n", left);
      return 1;
    }
    for (int i = 0; i < n; i++) {
      if ((p[i].revents & POLLOUT) && c[i].sent < PAR_BYTES) {
        size_t k = PAR_BYTES - c[i].sent < sizeof buf ? PAR_BYTES - c[i].sent : sizeof buf;
        for (size_t j = 0; j < k; j++)
          buf[j] = pattern(i, c[i].sent + j);
        ssize_t w = write(c[i].fd, buf, k);
        c[i].sent += w > 0 ? w : 0;
        if (c[i].sent == PAR_BYTES)
          shutdown(c[i].fd, SHUT_WR);
      }
      if (p[i].revents & (POLLIN | POLLHUP)) {
        ssize_t r = read(c[i].fd, buf, sizeof buf);
        for (ssize_t j = 0; j < r; j++)
          if (buf[j] != pattern(i, c[i].got + j)) {
            fprintf(stderr, "vsock_client: stream %d: byte %zu differs\n", i, c[i].got + j);
            return 1;
          }
        c[i].got += r > 0 ? r : 0;
        if (r <= 0) {
          if (c[i].got != PAR_BYTES) {
            fprintf(stderr, "vsock_client: stream %d ended after %zu bytes\n", i, c[i].got);
            return 1;
          }
          c[i].done = 1;
          close(c[i].fd);
          left--;
        }
      }
    }
  }
  fprintf(stderr, "vsock_client: parallel ok %d\n", n);
  free(c);
  free(p);
  return 0;
}

static int serve(const char *path, int count)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
  unlink(path);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 16) < 0) {
    fprintf(stderr, "vsock_client: listen %s: %s\n", path, strerror(errno));
    return 1;
  }
  fprintf(stderr, "vsock_client: serving %s\n", path);
  for (int i = 0; i < count; i++) {
    struct pollfd p = {.fd = l, .events = POLLIN};
    if (poll(&p, 1, 120000) <= 0) {
      fprintf(stderr, "vsock_client: nobody connected to %s\n", path);
      return 1;
    }
    int c = accept(l, NULL, NULL);
    char line[200], reply[300];
    if (c < 0 || read_line(c, line, sizeof line) < 0)
      return 1;
    fprintf(stderr, "vsock_client: guest said \"%s\"\n", line);
    snprintf(reply, sizeof reply, "hello-from-host %s\n", line);
    write_all(c, reply, strlen(reply));
    close(c);
  }
  return 0;
}

static int raw_line(const char *sock, const char *text)
{
  int fd = unix_connect(sock);
  double t0 = now_s();
  if (write_all(fd, text, strlen(text)) < 0)
    return 1;
  char buf[256];
  long got = 0;
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, IDLE_MS) <= 0) {
      fprintf(stderr, "vsock_client: still open after %d s\n", IDLE_MS / 1000);
      return 1;
    }
    ssize_t r = read(fd, buf, sizeof buf);
    if (r <= 0)
      break;
    got += r;
  }
  fprintf(stderr, "vsock_client: closed after %.1f s, %ld bytes\n", now_s() - t0, got);
  return got ? 1 : 0;
}

int main(int argc, char **argv)
{
  if (argc == 4 && strcmp(argv[2], "--line") == 0)
    return raw_line(argv[1], argv[3]);
  if (argc >= 3 && strcmp(argv[1], "--serve") == 0)
    return serve(argv[2], argc == 5 && strcmp(argv[3], "--count") == 0 ? atoi(argv[4]) : 1);
  if (argc == 5 && strcmp(argv[3], "--parallel") == 0)
    return parallel(argv[1], argv[2], atoi(argv[4]));
  long abort_after = -1;
  if (argc == 5 && strcmp(argv[3], "--abort") == 0)
    abort_after = atol(argv[4]);
  else if (argc != 3) {
    fprintf(stderr, "usage: vsock_client SOCK PORT [--abort N | --parallel N] | "
                    "--serve PATH [--count N]\n");
    return 2;
  }
  return pump(vsock_open(argv[1], argv[2]), abort_after);
}
