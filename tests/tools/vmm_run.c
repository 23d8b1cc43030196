/* vmm_run: boots a kernel on the VMM core (vmm__run) with nothing of the
 * kvm backend around it, for the VMM's own tests.
 *
 *   vmm_run --kernel K [--initrd I] [--append CMDLINE] [--mem MIB] [--cpus N]
 *           [--disk BASE [--overlay F --map F]] [--com2-out F] [--com2-in STRING]
 *           [--timeout S] [--time] [--vsock-cid N [--vsock-listen PATH] [--vsock-uds PREFIX]]
 *
 * COM1 (the console) goes to stdout; what the guest writes on COM2 goes to
 * --com2-out (default stderr); --com2-in bytes are queued on COM2 as soon
 * as the VM exists.  --timeout stops the VM after S seconds (kind=stopped).
 * The last line on stderr is
 *   vmm: kind=<poweroff|reset|stopped|error> code=N reason=...
 * and with --time also
 *   vmm: time first_com1_ms=N first_com2_ms=N exit_ms=N   (-1: no byte)
 * --vsock-cid adds virtio-vsock with that guest CID; --vsock-listen makes
 * the listening Unix socket host clients connect to ("CONNECT <port>\n"),
 * --vsock-uds the prefix guest connects go to ("PREFIX_<port>").
 * Exit status: 0 once the VM ran, 2 on bad usage, else vmbox's code. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../backends/kvm/vmm.h"
#include "../../lib/err.h"
#include "../../lib/util.h"

struct run {
  int com2_fd;
  const char *com2_in;
  unsigned timeout_s;
  uint64_t t0;
  _Atomic int64_t first_com1_ns, first_com2_ns;
  int console_pipe[2];
  pthread_t console_thread, helper_thread;
  bool helper_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool exiting;
  struct vmm *vm;
};

static void stamp(struct run *r, _Atomic int64_t *slot)
{
  int64_t none = -1;
  atomic_compare_exchange_strong(slot, &none, (int64_t)(util__now_ns() - r->t0));
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

static void com2_out(void *opaque, const uint8_t *buf, size_t n)
{
  struct run *r = opaque;
  stamp(r, &r->first_com2_ns);
  write_all(r->com2_fd, buf, n);
}

/* With --time the console goes through a pipe so its first byte is timed. */
static void *console_copy(void *opaque)
{
  struct run *r = opaque;
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = read(r->console_pipe[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return NULL;
    stamp(r, &r->first_com1_ns);
    write_all(1, buf, (size_t)n);
  }
}

/* Injects --com2-in, then waits out --timeout (or the VM's end). */
static void *helper(void *opaque)
{
  struct run *r = opaque;
  if (r->com2_in)
    vmm__com2_inject(r->vm, (const uint8_t *)r->com2_in, strlen(r->com2_in));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += r->timeout_s ? r->timeout_s : 0;
  pthread_mutex_lock(&r->mu);
  int rc = 0;
  while (r->timeout_s && !r->exiting && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  bool fire = r->timeout_s && !r->exiting;
  pthread_mutex_unlock(&r->mu);
  if (fire)
    vmm__stop(r->vm);
  return NULL;
}

static void on_ready(struct vmm *vm, void *opaque)
{
  struct run *r = opaque;
  r->vm = vm;
  if (r->com2_in || r->timeout_s)
    r->helper_started = pthread_create(&r->helper_thread, NULL, helper, r) == 0;
}

static void on_exit_vm(struct vmm *vm, void *opaque)
{
  struct run *r = opaque;
  (void)vm;
  pthread_mutex_lock(&r->mu);
  r->exiting = true;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
  if (r->helper_started)
    pthread_join(r->helper_thread, NULL);
  r->helper_started = false;
}

/* The socket host clients reach the guest's vsock ports through. */
static int listen_unix(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (strlen(path) >= sizeof(sa.sun_path) || fd < 0) {
    fprintf(stderr, "vmm_run: cannot listen on %s: path too long or no socket\n", path);
    return -1;
  }
  strcpy(sa.sun_path, path);
  unlink(path);
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
    fprintf(stderr, "vmm_run: cannot listen on %s: %s\n", path, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static int usage(void)
{
  fprintf(stderr, "usage: vmm_run --kernel K [--initrd I] [--append CMDLINE] [--mem MIB] "
                  "[--cpus N] [--disk BASE [--overlay F --map F]] [--com2-out F] "
                  "[--com2-in STRING] [--timeout S] [--time] "
                  "[--vsock-cid N [--vsock-listen PATH] [--vsock-uds PREFIX]]\n");
  return 2;
}

static const char *kind_name(enum vmm_exit_kind k)
{
  switch (k) {
  case VMM_EXIT_POWEROFF: return "poweroff";
  case VMM_EXIT_RESET: return "reset";
  case VMM_EXIT_STOPPED: return "stopped";
  default: return "error";
  }
}

static long ms(int64_t ns)
{
  return ns < 0 ? -1 : (long)(ns / 1000000);
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || v > max || s[0] == '-')
    return false;
  *out = v;
  return true;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"kernel", 1, 0, 'k'},    {"initrd", 1, 0, 'i'},
      {"append", 1, 0, 'a'},    {"mem", 1, 0, 'm'},
      {"cpus", 1, 0, 'c'},      {"disk", 1, 0, 'd'},
      {"overlay", 1, 0, 'o'},   {"map", 1, 0, 'M'},
      {"com2-out", 1, 0, 'O'},  {"com2-in", 1, 0, 'I'},
      {"timeout", 1, 0, 't'},   {"time", 0, 0, 'T'},
      {"vsock-cid", 1, 0, 'V'}, {"vsock-listen", 1, 0, 'L'},
      {"vsock-uds", 1, 0, 'U'}, {0, 0, 0, 0},
  };
  struct vmm_config cfg = {.mem_bytes = 512ULL << 20, .vcpus = 1, .console_fd = 1};
  struct run r = {.com2_fd = 2, .console_pipe = {-1, -1}};
  bool timing = false;
  unsigned long long v;
  const char *com2_path = NULL, *vsock_listen = NULL;
  int c;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (c) {
    case 'k': cfg.kernel = optarg; break;
    case 'i': cfg.initrd = optarg; break;
    case 'a': cfg.cmdline = optarg; break;
    case 'm':
      if (!parse_uint(optarg, 1ULL << 30, &v))
        return usage();
      cfg.mem_bytes = v << 20;
      break;
    case 'c':
      if (!parse_uint(optarg, 1024, &v))
        return usage();
      cfg.vcpus = (unsigned)v;
      break;
    case 'd': cfg.disk_base = optarg; break;
    case 'o': cfg.disk_overlay = optarg; break;
    case 'M': cfg.disk_overlay_map = optarg; break;
    case 'O': com2_path = optarg; break;
    case 'I': r.com2_in = optarg; break;
    case 't':
      if (!parse_uint(optarg, 86400, &v))
        return usage();
      r.timeout_s = (unsigned)v;
      break;
    case 'T': timing = true; break;
    case 'V':
      if (!parse_uint(optarg, UINT32_MAX, &v))
        return usage();
      cfg.vsock_cid = (uint32_t)v;
      break;
    case 'L': vsock_listen = optarg; break;
    case 'U': cfg.vsock_uds = optarg; break;
    default: return usage();
    }
  }
  if (!cfg.kernel || optind != argc)
    return usage();
  if (com2_path) {
    r.com2_fd = open(com2_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (r.com2_fd < 0) {
      fprintf(stderr, "vmm_run: cannot open %s: %s\n", com2_path, strerror(errno));
      return 2;
    }
  }
  cfg.vsock_listen_fd = -1;
  if (vsock_listen && (cfg.vsock_listen_fd = listen_unix(vsock_listen)) < 0)
    return 2;
  pthread_mutex_init(&r.mu, NULL);
  pthread_cond_init(&r.cv, NULL);
  atomic_init(&r.first_com1_ns, -1);
  atomic_init(&r.first_com2_ns, -1);
  r.t0 = util__now_ns();
  bool copying = false;
  if (timing && pipe2(r.console_pipe, O_CLOEXEC) == 0) {
    copying = pthread_create(&r.console_thread, NULL, console_copy, &r) == 0;
    if (copying)
      cfg.console_fd = r.console_pipe[1];
  }
  cfg.chan_guest_out = com2_out;
  cfg.chan_opaque = &r;
  cfg.on_ready = on_ready;
  cfg.on_exit = on_exit_vm;

  struct vmm_result res = {0};
  vmbox_error_t err = NULL;
  int rc = vmm__run(&cfg, &res, &err);
  int64_t exit_ns = (int64_t)(util__now_ns() - r.t0);
  if (copying) {
    close(r.console_pipe[1]);
    pthread_join(r.console_thread, NULL);
    close(r.console_pipe[0]);
  }
  if (rc < 0)
    return vmbox_error_report(&err);
  fprintf(stderr, "vmm: kind=%s code=%d reason=%s\n", kind_name(res.kind), res.code, res.reason);
  if (timing)
    fprintf(stderr, "vmm: time first_com1_ms=%ld first_com2_ms=%ld exit_ms=%ld\n",
            ms(atomic_load(&r.first_com1_ns)), ms(atomic_load(&r.first_com2_ns)), ms(exit_ns));
  if (com2_path)
    close(r.com2_fd);
  return 0;
}
