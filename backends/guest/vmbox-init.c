/* vmbox-init: PID 1 of a kvm box's guest (static, no libraries of ours).
 *
 * Boot: mount /proc /sys /dev, load the modules the host listed (virtio-pci,
 * virtio-blk, vsock, ...), connect the channel (vsock to the host's port
 * CHAN_PORT_MAIN, or ttyS1 when there is no vsock), wait for /dev/vda, mount
 * it as the root (MS_MOVE + chroot, the switch_root way), mount the API
 * filesystems inside, set the hostname, put limits in a cgroup v2 and run
 * the command from /vmbox/config (proto.h) with its stdio on pipes (or a
 * pty) that we frame onto the channel.  Meanwhile we listen on vsock port
 * CHAN_PORT_EXEC: each host connection is an exec or cp session, served by
 * a child of ours (session.c's twin on the host side).  When the command
 * ends: kill what is left, sync, send EXIT and write the status to port
 * 0x501, which stops the VM.  A failure before the command runs goes up as
 * EXEC_FAIL (code 125, or 126/127 as Docker says) and the VM stops the same
 * way.
 *
 * Our stderr is the kernel console (ttyS0): the host keeps it in the box's
 * console.log, so notes there are for whoever debugs a box. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cp.h"
#include "net.h"
#include "proto.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define DISK "/dev/vda"
#define DISK_WAIT_MS 20000 /* nested TCG is slow to probe PCI */
#define VSOCK_WAIT_MS 3000 /* the vsock device probes with the modules */
#define STDIN_BUF_MAX (1u << 20)

struct cfg {
  char **argv, **env;
  size_t argc, envc;
  char *cwd, *hostname;
  uid_t uid;
  gid_t gid;
  gid_t groups[64];
  size_t n_groups;
  unsigned long long memory, pids;
  bool read_only, want_stdin, tty;
  unsigned short rows, cols;
  char *tmpfs[16][2];
  size_t n_tmpfs;
  char *net_addr, *net_gw; /* eth0 (net.c) */
};

static int chan = -1; /* the main command's channel: vsock, or ttyS1 */
static bool chan_serial;
static int exec_listen = -1; /* vsock port CHAN_PORT_EXEC */

/* ---- channel --------------------------------------------------------------- */

void write_all(int fd, const void *buf, size_t n)
{
  const uint8_t *p = buf;
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return; /* the host is gone: nothing to tell anyone */
    p += w;
    n -= (size_t)w;
  }
}

/* One or more records of `type` on fd, chunk bytes of payload at most. */
void rec_send(int fd, size_t chunk, uint8_t type, const void *buf, size_t n)
{
  static uint8_t rec[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  const uint8_t *p = buf ? buf : (const uint8_t *)"";
  do {
    size_t part = n > chunk ? chunk : n;
    chan__put_hdr(rec, type, (uint16_t)part);
    if (part)
      memcpy(rec + CHAN_HDR_LEN, p, part);
    if (fd >= 0)
      write_all(fd, rec, CHAN_HDR_LEN + part);
    p += part;
    n -= part;
  } while (n);
}

static size_t chan_chunk(void)
{
  return chan_serial ? CHAN_SERIAL_PAYLOAD : CHAN_MAX_PAYLOAD;
}

static void chan_send(uint8_t type, const void *buf, size_t n)
{
  rec_send(chan, chan_chunk(), type, buf, n);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)n >= sizeof(buf))
    n = sizeof(buf) - 1;
  dprintf(2, "vmbox-init: %s\n", buf);
  chan_send(CHAN_G_LOG, buf, (size_t)n);
}

static int serial_open(void)
{
  int fd = open("/dev/ttyS1", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  struct termios t;
  if (tcgetattr(fd, &t) == 0) {
    /* 8-bit clean, no echo, no line discipline, no flow control. */
    cfmakeraw(&t);
    t.c_cflag &= ~(tcflag_t)CRTSCTS;
    t.c_cflag |= CLOCAL | CREAD;
    t.c_iflag &= ~(tcflag_t)(IXON | IXOFF);
    cfsetspeed(&t, B115200);
    tcsetattr(fd, TCSANOW, &t);
  }
  return fd;
}

static unsigned long uptime_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (unsigned long)ts.tv_sec * 1000 + (unsigned long)ts.tv_nsec / 1000000;
}

/* The host listens on CHAN_PORT_MAIN before the VM starts, so a refusal
 * only means the transport is still probing: retry for a bounded time. */
static int vsock_connect_host(void)
{
  unsigned long t0 = uptime_ms();
  do {
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      return -1; /* no vsock in this kernel */
    struct sockaddr_vm a = {
        .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = CHAN_PORT_MAIN};
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
      return fd;
    close(fd);
    usleep(10000);
  } while (uptime_ms() - t0 < VSOCK_WAIT_MS);
  return -1;
}

static int vsock_listen(unsigned port)
{
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  if (fd >= 0 && (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0)) {
    note("vsock listen on port %u: %s", port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

static bool cmdline_has(const char *word)
{
  char buf[4096] = "";
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
  }
  return strstr(buf, word) != NULL;
}

/* The host says vmbox.chan=serial when its VMM has no vsock (qemu, or
 * VMBOX_KVM_NO_VSOCK=1): no need to wait for a transport that never comes. */
static void chan_open(void)
{
  chan = cmdline_has("vmbox.chan=serial") ? -1 : vsock_connect_host();
  if (chan >= 0) {
    exec_listen = vsock_listen(CHAN_PORT_EXEC);
    return;
  }
  chan = serial_open();
  chan_serial = true;
  if (chan >= 0)
    note("no vsock to the host: the channel is ttyS1 (no exec, no cp)");
}

/* The host closes the channel once it has our EXIT: then nothing we sent is
 * still in a queue when the VM stops.  Bounded: a host that never closes
 * costs 3 s. */
static void chan_drain(void)
{
  if (chan < 0)
    return;
  if (chan_serial) {
    tcdrain(chan);
    return;
  }
  shutdown(chan, SHUT_WR);
  char buf[256];
  for (unsigned long t0 = uptime_ms(); uptime_ms() - t0 < 3000;) {
    struct pollfd p = {chan, POLLIN, 0};
    if (poll(&p, 1, 100) > 0 && read(chan, buf, sizeof(buf)) <= 0)
      return;
  }
}

/* Stops the VM with `code`: the VMM watches port 0x501.  Without it (some
 * other VMM), reboot=t makes the reboot a triple fault the host sees too. */
static void __attribute__((noreturn)) power_off(int code)
{
  sync();
  chan_drain();
  if (ioperm(0x501, 1, 1) == 0)
    outb((unsigned char)code, 0x501);
  reboot(RB_AUTOBOOT);
  for (;;)
    pause();
}

/* A failure before the command runs: the host turns it into the error of
 * `vmbox run`. */
static void __attribute__((noreturn)) fail(int code, const char *fmt, ...)
{
  char buf[1024];
  buf[0] = (char)code;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + 1, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof(buf) - 1)
    n = sizeof(buf) - 2;
  dprintf(2, "vmbox-init: %s\n", buf + 1);
  chan_send(CHAN_G_EXEC_FAIL, buf, (size_t)n + 1);
  power_off(code);
}

/* ---- boot ---------------------------------------------------------------------- */

static void mount_or_fail(const char *src, const char *dst, const char *type, unsigned long fl,
                          const char *data)
{
  mkdir(dst, 0755);
  if (mount(src, dst, type, fl, data) < 0)
    fail(125, "guest: mount %s on %s: %s", type, dst, strerror(errno));
}

static void load_modules(void)
{
  FILE *f = fopen(GUEST_MODULES_ORDER, "re");
  if (f == NULL)
    return; /* a kernel with everything built in */
  char line[256];
  while (fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = '\0';
    if (line[0] == '\0' || strchr(line, '/'))
      continue;
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", GUEST_MODULES_DIR, line);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      note("module %s: %s", path, strerror(errno));
      continue;
    }
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
      note("load module %s: %s", line, strerror(errno));
    close(fd);
  }
  fclose(f);
}

static void wait_disk(void)
{
  struct stat st;
  for (unsigned ms = 0; stat(DISK, &st) < 0 || !S_ISBLK(st.st_mode); ms += 5) {
    if (ms >= DISK_WAIT_MS)
      fail(125, "guest: no box disk %s after %us (virtio-blk did not come up; see console.log)",
           DISK, DISK_WAIT_MS / 1000);
    usleep(5000);
  }
}

/* The switch_root way: the disk's root replaces the initramfs's with
 * MS_MOVE, then chroot into it.  The initramfs stays in RAM (a few MB). */
static void enter_root(const struct cfg *c)
{
  unsigned long fl = c->read_only ? MS_RDONLY : 0;
  mkdir("/newroot", 0755);
  if (mount(DISK, "/newroot", "ext4", fl, NULL) < 0)
    fail(125, "guest: mount the box disk %s: %s", DISK, strerror(errno));
  /* Fresh ones inside the new root; the fds we hold stay valid. */
  umount2("/proc", MNT_DETACH);
  umount2("/sys", MNT_DETACH);
  umount2("/dev", MNT_DETACH);
  if (chdir("/newroot") < 0 || mount("/newroot", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
      chdir("/") < 0)
    fail(125, "guest: switch to the box root: %s", strerror(errno));
}

static void mount_api(const struct cfg *c)
{
  mount_or_fail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_fail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_fail("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=755");
  mount_or_fail("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,gid=5,mode=620,ptmxmode=666");
  mount_or_fail("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_or_fail("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_or_fail("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  symlink("/proc/self/fd", "/dev/fd");
  symlink("/proc/self/fd/0", "/dev/stdin");
  symlink("/proc/self/fd/1", "/dev/stdout");
  symlink("/proc/self/fd/2", "/dev/stderr");
  unlink("/dev/ptmx");
  symlink("pts/ptmx", "/dev/ptmx");
  /* The box has no business with the channel: we hold our fd already. */
  unlink("/dev/ttyS1");
  for (size_t i = 0; i < c->n_tmpfs; i++)
    mount_or_fail("tmpfs", c->tmpfs[i][0], "tmpfs", MS_NOSUID | MS_NODEV,
                  c->tmpfs[i][1][0] ? c->tmpfs[i][1] : NULL);
}

static bool write_str(const char *path, const char *s)
{
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  bool ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
  close(fd);
  return ok;
}

/* --memory and --pids-limit: a cgroup of its own for the command, so the
 * OOM killer takes the command (137), not init or the kernel. */
static void setup_cgroup(const struct cfg *c)
{
  if (mkdir("/sys/fs/cgroup/box", 0755) < 0 && errno != EEXIST)
    fail(125, "guest: cgroup: %s", strerror(errno));
  write_str("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids");
  char v[32];
  if (c->memory) {
    snprintf(v, sizeof(v), "%llu", c->memory);
    if (!write_str("/sys/fs/cgroup/box/memory.max", v))
      fail(125, "guest: set memory.max: %s", strerror(errno));
    write_str("/sys/fs/cgroup/box/memory.swap.max", "0");
    /* An OOM ends the box (137), not just whichever child was biggest. */
    write_str("/sys/fs/cgroup/box/memory.oom.group", "1");
  }
  if (c->pids) {
    snprintf(v, sizeof(v), "%llu", c->pids);
    write_str("/sys/fs/cgroup/box/pids.max", v);
  }
}

static bool oom_killed(void)
{
  FILE *f = fopen("/sys/fs/cgroup/box/memory.events", "re");
  if (f == NULL)
    return false;
  char key[64];
  unsigned long long n;
  bool oom = false;
  while (fscanf(f, "%63s %llu", key, &n) == 2)
    if (strcmp(key, "oom_kill") == 0 && n > 0)
      oom = true;
  fclose(f);
  return oom;
}

/* ---- config ------------------------------------------------------------------ */

static char *dup_n(const uint8_t *p, uint32_t n)
{
  char *s = malloc((size_t)n + 1);
  if (s == NULL)
    fail(125, "guest: out of memory reading the config");
  memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static void push(char ***v, size_t *n, char *s)
{
  char **nv = realloc(*v, (*n + 2) * sizeof(**v));
  if (nv == NULL)
    fail(125, "guest: out of memory reading the config");
  nv[(*n)++] = s;
  nv[*n] = NULL;
  *v = nv;
}

static void cfg_entry(struct cfg *c, uint8_t key, char *s, uint32_t n)
{
  switch (key) {
  case CFG_ARGV: push(&c->argv, &c->argc, s); return;
  case CFG_ENV: push(&c->env, &c->envc, s); return;
  case CFG_CWD: c->cwd = s; return;
  case CFG_HOSTNAME: c->hostname = s; return;
  case CFG_NET_ADDR: c->net_addr = s; return;
  case CFG_NET_GW: c->net_gw = s; return;
  case CFG_UID: c->uid = (uid_t)strtoul(s, NULL, 10); break;
  case CFG_GID: c->gid = (gid_t)strtoul(s, NULL, 10); break;
  case CFG_GROUP:
    if (c->n_groups < sizeof(c->groups) / sizeof(c->groups[0]))
      c->groups[c->n_groups++] = (gid_t)strtoul(s, NULL, 10);
    break;
  case CFG_MEMORY: c->memory = strtoull(s, NULL, 10); break;
  case CFG_PIDS: c->pids = strtoull(s, NULL, 10); break;
  case CFG_READ_ONLY: c->read_only = s[0] == '1'; break;
  case CFG_STDIN: c->want_stdin = s[0] == '1'; break;
  case CFG_TTY: c->tty = s[0] == '1'; break;
  case CFG_WINSIZE: {
    unsigned r = 0, k = 0;
    if (sscanf(s, "%u %u", &r, &k) == 2 && r < 65536 && k < 65536) {
      c->rows = (unsigned short)r;
      c->cols = (unsigned short)k;
    }
    break;
  }
  case CFG_TMPFS:
    if (c->n_tmpfs < 16 && strlen(s) + 1 <= n) {
      c->tmpfs[c->n_tmpfs][0] = s;
      c->tmpfs[c->n_tmpfs++][1] = s + strlen(s) + 1;
      return;
    }
    break;
  default: break; /* newer host, older init: ignore */
  }
  free(s);
}

/* Entries [key u8][len u32 LE][value]; false at the first bad length. */
static bool parse_entries(struct cfg *c, const uint8_t *buf, size_t len)
{
  size_t off = 0;
  while (off + 5 <= len) {
    uint8_t key = buf[off];
    uint32_t n = (uint32_t)buf[off + 1] | (uint32_t)buf[off + 2] << 8 |
                 (uint32_t)buf[off + 3] << 16 | (uint32_t)buf[off + 4] << 24;
    off += 5;
    if (n > CFG_MAX_ENTRY || n > len - off)
      return false;
    cfg_entry(c, key, dup_n(buf + off, n), n);
    off += n;
  }
  return off == len;
}

static void read_config(struct cfg *c)
{
  int fd = open(GUEST_CONFIG_PATH, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    fail(125, "guest: no box config %s: %s", GUEST_CONFIG_PATH, strerror(errno));
  uint8_t *buf = malloc((size_t)st.st_size + 1);
  if (buf == NULL || read(fd, buf, (size_t)st.st_size) != st.st_size)
    fail(125, "guest: read %s", GUEST_CONFIG_PATH);
  close(fd);
  if (!parse_entries(c, buf, (size_t)st.st_size))
    fail(125, "guest: box config %s is corrupt", GUEST_CONFIG_PATH);
  free(buf);
  if (c->argc == 0)
    fail(125, "guest: the box config has no command");
}

/* ---- the command ----------------------------------------------------------------- */

static const char *env_get(char *const *env, const char *key)
{
  size_t kl = strlen(key);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
      return env[i] + kl + 1;
  return NULL;
}

/* Reports [code][message] on the status pipe and exits: the parent makes an
 * EXEC_FAIL of it.  Messages match the ns backend's. */
static void __attribute__((noreturn)) child_fail(int fd, int code, const char *fmt, ...)
{
  char buf[1024];
  buf[0] = (char)code;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf + 1, sizeof(buf) - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    n = 0;
  if ((size_t)n >= sizeof(buf) - 1)
    n = sizeof(buf) - 2;
  write_all(fd, buf, (size_t)n + 1);
  _exit(code);
}

static char *find_command(int sfd, const char *name, char *const *env)
{
  if (strchr(name, '/'))
    return strdup(name);
  const char *path = env_get(env, "PATH");
  char *dirs = strdup(path ? path : DEFAULT_PATH);
  bool denied = false;
  for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    char cand[4096];
    snprintf(cand, sizeof(cand), "%s/%s", d, name);
    struct stat st;
    if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
      if (access(cand, X_OK) == 0)
        return strdup(cand);
      denied = true;
    }
  }
  if (denied)
    child_fail(sfd, 126, "exec %s: %s", name, strerror(EACCES));
  child_fail(sfd, 127, "exec %s: executable file not found in $PATH", name);
}

static void mkdir_p(const char *path)
{
  char buf[4096];
  snprintf(buf, sizeof(buf), "%s", path);
  for (char *p = buf + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(buf, 0755);
      *p = '/';
    }
  mkdir(buf, 0755);
}

static void __attribute__((noreturn)) exec_command(const struct cfg *c, int sfd, int fds[3])
{
  for (int i = 0; i < 3; i++)
    if (dup2(fds[i], i) < 0)
      child_fail(sfd, 125, "stdio: %s", strerror(errno));
  setsid();
  sigset_t none;
  sigemptyset(&none);
  for (int s = 1; s < NSIG; s++)
    signal(s, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  umask(022);
  write_str("/sys/fs/cgroup/box/cgroup.procs", "0");
  const char *cwd = c->cwd ? c->cwd : "/";
  mkdir_p(cwd); /* docker run -w creates a missing workdir, as root */
  if (setgroups(c->n_groups, c->groups) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
    child_fail(sfd, 125, "set user %u:%u: %s", (unsigned)c->uid, (unsigned)c->gid, strerror(errno));
  if (chdir(cwd) < 0)
    child_fail(sfd, 126, "chdir to %s: %s", cwd, strerror(errno));
  char *def_env[] = {"PATH=" DEFAULT_PATH, NULL};
  char *const *env = c->envc ? c->env : def_env;
  char *path = find_command(sfd, c->argv[0], env);
  execve(path, c->argv, env);
  int e = errno;
  child_fail(sfd, e == ENOENT ? 127 : 126, "exec %s: %s", c->argv[0], strerror(e));
}

/* ---- a process and its channel: the main command, or an exec session ------ */

struct run {
  int chan;     /* its connection (or ttyS1) */
  size_t chunk; /* payload bytes per record */
  pid_t child;
  int out, err, in; /* our ends; -1 once closed.  With a tty out and in are
                     * the pty master (two fds), err is -1. */
  int pty;
  int sigfd;
  int listen; /* PID 1 only: exec sessions to accept */
  bool exited, chan_eof;
  int status;
  uint8_t rx[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  size_t rx_len;
  uint8_t *inbuf; /* stdin bytes the process has not read yet */
  size_t in_len;
  bool in_eof;
};

static void run_init(struct run *r, int fd, size_t chunk)
{
  memset(r, 0, sizeof(*r));
  r->chan = fd;
  r->chunk = chunk;
  r->out = r->err = r->in = r->pty = r->listen = -1;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  r->sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void pump_out(struct run *r, int *fd, uint8_t type)
{
  static uint8_t buf[CHAN_MAX_PAYLOAD];
  ssize_t n = read(*fd, buf, r->chunk);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) { /* EOF, or EIO from a pty whose last user left */
    close(*fd);
    *fd = -1;
    return;
  }
  rec_send(r->chan, r->chunk, type, buf, (size_t)n);
}

static void flush_stdin(struct run *r)
{
  while (r->in >= 0 && r->in_len) {
    ssize_t w = write(r->in, r->inbuf, r->in_len);
    if (w < 0 && (errno == EINTR))
      continue;
    if (w < 0 && errno == EAGAIN)
      return;
    if (w <= 0) { /* the process closed its stdin */
      close(r->in);
      r->in = -1;
      r->in_len = 0;
      return;
    }
    memmove(r->inbuf, r->inbuf + w, r->in_len - (size_t)w);
    r->in_len -= (size_t)w;
  }
  /* A pty has no end of input short of hanging up: EOF there is ignored. */
  if (r->in >= 0 && r->pty < 0 && r->in_eof && r->in_len == 0) {
    close(r->in);
    r->in = -1;
  }
}

static void host_record(struct run *r, uint8_t type, const uint8_t *p, size_t n)
{
  switch (type) {
  case CHAN_H_SIGNAL:
    if (n == 1 && p[0] > 0 && p[0] < NSIG && r->child > 0 && !r->exited)
      kill(r->child, p[0]);
    return;
  case CHAN_H_RESIZE:
    if (n == 4 && r->pty >= 0) {
      struct winsize ws = {.ws_row = chan__get_u16(p), .ws_col = chan__get_u16(p + 2)};
      ioctl(r->pty, TIOCSWINSZ, &ws);
    }
    return;
  case CHAN_H_STDIN:
    if (r->in < 0)
      return;
    if (r->in_len + n > STDIN_BUF_MAX) {
      dprintf(2, "vmbox-init: stdin: the process reads too slowly; %zu bytes dropped\n", n);
      return;
    }
    {
      uint8_t *nb = realloc(r->inbuf, r->in_len + n);
      if (nb == NULL)
        return;
      r->inbuf = nb;
    }
    memcpy(r->inbuf + r->in_len, p, n);
    r->in_len += n;
    flush_stdin(r);
    return;
  case CHAN_H_STDIN_EOF:
    r->in_eof = true;
    flush_stdin(r);
    return;
  default: return;
  }
}

/* Host records; the host's EOF (it went away) kills an exec'd process. */
static void pump_chan(struct run *r)
{
  ssize_t n = read(r->chan, r->rx + r->rx_len, sizeof(r->rx) - r->rx_len);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    r->chan_eof = true;
    if (r->listen < 0 && r->child > 0 && !r->exited)
      kill(r->child, SIGKILL);
    return;
  }
  r->rx_len += (size_t)n;
  for (;;) {
    if (r->rx_len < CHAN_HDR_LEN)
      return;
    size_t len = chan__get_u16(r->rx + 1);
    if (len > CHAN_MAX_PAYLOAD) { /* out of sync: drop what we have */
      r->rx_len = 0;
      return;
    }
    if (r->rx_len < CHAN_HDR_LEN + len)
      return;
    host_record(r, r->rx[0], r->rx + CHAN_HDR_LEN, len);
    r->rx_len -= CHAN_HDR_LEN + len;
    memmove(r->rx, r->rx + CHAN_HDR_LEN + len, r->rx_len);
  }
}

static void reap(struct run *r)
{
  struct signalfd_siginfo si;
  while (read(r->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
    ;
  int st;
  pid_t pid;
  while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
    if (pid == r->child) {
      r->exited = true;
      r->status = st;
    }
}

static void accept_session(struct run *r);

static void loop(struct run *r)
{
  while (!r->exited) {
    struct pollfd p[6] = {{r->out, POLLIN, 0},
                          {r->err, POLLIN, 0},
                          {r->chan_eof ? -1 : r->chan, POLLIN, 0},
                          {r->sigfd, POLLIN, 0},
                          {r->in_len ? r->in : -1, POLLOUT, 0},
                          {r->listen, POLLIN, 0}};
    if (poll(p, 6, -1) < 0 && errno != EINTR)
      return;
    if (p[0].revents)
      pump_out(r, &r->out, CHAN_G_STDOUT);
    if (p[1].revents)
      pump_out(r, &r->err, CHAN_G_STDERR);
    if (p[2].revents)
      pump_chan(r);
    if (p[4].revents)
      flush_stdin(r);
    if (p[5].revents)
      accept_session(r);
    if (p[3].revents)
      reap(r);
  }
}

/* What the process wrote is still in the pipes, and its orphans may hold
 * them open: read what is there within ms.  */
static void drain(struct run *r, int ms)
{
  for (;;) {
    struct pollfd p[2] = {{r->out, POLLIN, 0}, {r->err, POLLIN, 0}};
    if ((r->out < 0 && r->err < 0) || poll(p, 2, ms) <= 0)
      return;
    if (p[0].revents)
      pump_out(r, &r->out, CHAN_G_STDOUT);
    if (p[1].revents)
      pump_out(r, &r->err, CHAN_G_STDERR);
  }
}

/* The main command is gone: read what is there, end the orphans (the box
 * ends with its command, as in Docker), then read to EOF. */
static void finish(struct run *r)
{
  drain(r, 0);
  kill(-1, SIGKILL); /* everything but us */
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
    ;
  drain(r, 1000);
}

static void exit_record(struct run *r, uint8_t rec[3])
{
  int code = 0, sig = 0;
  if (WIFEXITED(r->status))
    code = WEXITSTATUS(r->status);
  else if (WIFSIGNALED(r->status)) {
    sig = WTERMSIG(r->status);
    code = 128 + sig;
  }
  rec[0] = (uint8_t)code;
  rec[1] = (uint8_t)sig;
  rec[2] = oom_killed() ? CHAN_EXIT_OOM : 0;
}

/* [code][message] into st, as child_fail does. */
static ssize_t setup_fail(uint8_t *st, size_t cap, const char *what)
{
  st[0] = 125;
  int n = snprintf((char *)st + 1, cap - 1, "guest: %s: %s", what, strerror(errno));
  return 1 + (n < 0 ? 0 : (size_t)n >= cap - 1 ? (ssize_t)cap - 2 : n);
}

static int open_pty(struct run *r, const struct cfg *c, char *slave, size_t cap)
{
  r->pty = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (r->pty < 0 || grantpt(r->pty) < 0 || unlockpt(r->pty) < 0 ||
      ptsname_r(r->pty, slave, cap) != 0)
    return -1;
  if (c->rows && c->cols) {
    struct winsize ws = {.ws_row = c->rows, .ws_col = c->cols};
    ioctl(r->pty, TIOCSWINSZ, &ws);
  }
  return 0;
}

static void __attribute__((noreturn)) tty_child(const struct cfg *c, int sfd, const char *slave)
{
  setsid();
  int s = open(slave, O_RDWR);
  if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
    child_fail(sfd, 125, "guest: open the pty %s: %s", slave, strerror(errno));
  int fds[3] = {s, s, s};
  exec_command(c, sfd, fds);
}

/* Forks c's command with its stdio on pipes or a pty into r.  Returns 0
 * once it exec'd, else the size of [code][message] in st. */
static ssize_t spawn(struct run *r, const struct cfg *c, uint8_t *st, size_t cap)
{
  int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1}, ps[2];
  char slave[64];
  if (pipe2(ps, O_CLOEXEC) < 0)
    return setup_fail(st, cap, "pipe");
  if (c->tty ? open_pty(r, c, slave, sizeof(slave)) < 0
             : pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ||
                   (c->want_stdin && pipe2(pi, O_CLOEXEC) < 0))
    return setup_fail(st, cap, c->tty ? "pty" : "pipe");
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  r->child = fork();
  if (r->child < 0)
    return setup_fail(st, cap, "fork");
  if (r->child == 0) {
    close(ps[0]);
    if (c->tty)
      tty_child(c, ps[1], slave);
    int fds[3] = {c->want_stdin ? pi[0] : null, po[1], pe[1]};
    exec_command(c, ps[1], fds);
  }
  int keep[] = {ps[1], po[1], pe[1], pi[0], null};
  for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
    if (keep[i] >= 0)
      close(keep[i]);
  if (c->tty) {
    r->out = r->pty;
    r->in = fcntl(r->pty, F_DUPFD_CLOEXEC, 3);
  } else {
    r->out = po[0];
    r->err = pe[0];
    r->in = pi[1];
  }
  if (r->in >= 0)
    fcntl(r->in, F_SETFL, O_NONBLOCK); /* the pty master's too: one file */
  ssize_t n;
  while ((n = read(ps[0], st, cap)) < 0 && errno == EINTR)
    ;
  close(ps[0]);
  if (n > 0)
    waitpid(r->child, NULL, 0);
  return n > 0 ? n : 0;
}

/* ---- exec and cp sessions (children of PID 1) ------------------------------- */

/* The session's first record, within 10 s; its payload is malloc'd. */
static uint8_t *read_request(int fd, uint8_t *type, size_t *len)
{
  uint8_t *buf = malloc(CHAN_HDR_LEN + CHAN_MAX_PAYLOAD);
  size_t have = 0, want = CHAN_HDR_LEN;
  while (buf && have < want) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0)
      break;
    ssize_t n = read(fd, buf + have, want - have);
    if (n <= 0)
      break;
    have += (size_t)n;
    if (have == CHAN_HDR_LEN) {
      want += chan__get_u16(buf + 1);
      if (want > CHAN_HDR_LEN + CHAN_MAX_PAYLOAD)
        break;
    }
  }
  if (buf == NULL || have != want || have < CHAN_HDR_LEN) {
    free(buf);
    return NULL;
  }
  *type = buf[0];
  *len = have - CHAN_HDR_LEN;
  memmove(buf, buf + CHAN_HDR_LEN, *len);
  return buf;
}

static void __attribute__((noreturn)) exec_session(int fd, const uint8_t *req, size_t len)
{
  struct cfg c = {0};
  struct run r;
  run_init(&r, fd, CHAN_MAX_PAYLOAD);
  uint8_t st[1024];
  ssize_t n;
  if (!parse_entries(&c, req, len) || c.argc == 0) {
    st[0] = 125;
    n = 1 + snprintf((char *)st + 1, sizeof(st) - 1, "guest: a bad exec request");
  } else {
    n = spawn(&r, &c, st, sizeof(st));
  }
  if (n > 0) {
    rec_send(fd, r.chunk, CHAN_G_EXEC_FAIL, st, (size_t)n);
    _exit(0);
  }
  rec_send(fd, r.chunk, CHAN_G_STARTED, NULL, 0);
  loop(&r);
  drain(&r, 200); /* orphans may hold its pipes open for good */
  uint8_t rec[3];
  exit_record(&r, rec);
  rec_send(fd, r.chunk, CHAN_G_EXIT, rec, sizeof(rec));
  _exit(0);
}

static void __attribute__((noreturn)) session(int fd)
{
  uint8_t type;
  size_t len;
  uint8_t *req = read_request(fd, &type, &len);
  if (req && type == CHAN_H_EXEC)
    exec_session(fd, req, len);
  if (req && (type == CHAN_H_CP_OUT || type == CHAN_H_CP_IN))
    _exit(cp__session(fd, type, req, len));
  _exit(1); /* the host closes: it gets no STARTED */
}

/* PID 1: each connection gets a child of its own, which closes the main
 * command's fds (its stdin pipe above all: the command would never see EOF). */
static void accept_session(struct run *r)
{
  int fd = accept4(r->listen, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0)
    return;
  pid_t pid = fork();
  if (pid == 0) {
    int mine[] = {r->listen, r->out, r->err, r->in, r->sigfd, chan};
    for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
      if (mine[i] >= 0)
        close(mine[i]);
    signal(SIGPIPE, SIG_IGN);
    session(fd);
  }
  close(fd);
}

static void __attribute__((noreturn)) run_command(const struct cfg *c)
{
  static struct run r;
  run_init(&r, chan, chan_chunk());
  r.listen = exec_listen;
  uint8_t st[1024];
  ssize_t n = spawn(&r, c, st, sizeof(st));
  if (n > 0) { /* exec failed: the message is the box's error */
    chan_send(CHAN_G_EXEC_FAIL, st, (size_t)n);
    power_off(st[0]);
  }
  chan_send(CHAN_G_STARTED, NULL, 0);
  loop(&r);
  finish(&r);
  uint8_t rec[3];
  exit_record(&r, rec);
  sync();
  chan_send(CHAN_G_EXIT, rec, sizeof(rec));
  power_off(rec[0]);
}

/* A test hook (vmbox.test=crash on the kernel command line): PID 1 dies, the
 * kernel panics, and the host must say so instead of hanging. */
static void test_hooks(void)
{
  if (cmdline_has("vmbox.test=crash")) {
    note("vmbox.test=crash: crashing on purpose");
    abort();
  }
}

int main(void)
{
  if (getpid() != 1) {
    fprintf(stderr, "vmbox-init: I am PID 1 of a vmbox guest; not for running by hand\n");
    return 2;
  }
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  mount("devtmpfs", "/dev", "devtmpfs", 0, "mode=755");
  int con = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (con >= 0) {
    dup2(con, 1);
    dup2(con, 2);
  }
  signal(SIGPIPE, SIG_IGN); /* a host that hangs up is an EOF, not our end */
  test_hooks();
  load_modules(); /* vsock's among them: before the channel */
  chan_open();
  char up[32];
  int n = snprintf(up, sizeof(up), "%lu", uptime_ms());
  chan_send(CHAN_G_BOOTED, up, (size_t)n);
  if (chan < 0)
    fail(125, "guest: no channel to the host (no vsock, no /dev/ttyS1): %s", strerror(errno));
  struct cfg c = {0};
  read_config(&c);
  wait_disk();
  enter_root(&c);
  mount_api(&c);
  char msg[256];
  if (guest_net__up(c.net_addr, c.net_gw, 20000, msg, sizeof(msg)) < 0)
    fail(125, "%s", msg);
  const char *hn = c.hostname ? c.hostname : "vmbox";
  sethostname(hn, strlen(hn));
  setup_cgroup(&c);
  run_command(&c);
}
