/* The kvm backend's ops table: one micro-VM per box.
 *
 * create  finds the kernel (kernel.c), makes sure the cached initramfs
 *         exists (initramfs.c) and writes the box's initrd (+ /vmbox/config),
 *         names the disk's overlay and map (disk.c creates them at boot: O(1)).
 * start   forks the VMM process: it runs vmm__run with a vsock device whose
 *         host sockets are in the state dir; vmbox-init connects to it at
 *         boot and its records are decoded by chan.c (stdout/stderr straight
 *         to the box's stdio fds, or a host pty with -t); it tells us over a
 *         pipe when the command started, failed (126/127/125) and, at the
 *         end, how it ended.  start returns at "started".
 * wait    reads that pipe (it is wait_fd); EOF without a result means the
 *         VMM died, which is an exit reason of its own.
 * signal  SIGKILL kills the VMM (137); any other signal travels to
 *         vmbox-init as a record and reaches the command.
 * exec/cp session.c: their own vsock connections to vmbox-init.
 *
 * Guest RAM = --memory + KVM_HEADROOM for the kernel, page cache and init
 * (the command's cgroup inside gets exactly --memory, so an OOM kills the
 * command: 137, not the guest); no --memory: KVM_DEFAULT_MEM.
 *
 * State: <state_dir>/kvm/ holds initrd.cpio, disk.overlay + disk.map, and
 * console.log + timing, which outlive the box until `vmbox rm` (cleanup). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
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
#include "chan.h"
#include "jail.h"
#include "kvmbox.h"
#include "virtio/net.h"

#define MIB (1024ULL * 1024)
#define KVM_HEADROOM (128 * MIB)
#define KVM_MIN_MEM (256 * MIB)
#define KVM_DEFAULT_MEM (512 * MIB)
#define KVM_MAX_VCPUS 64
#define KVM_BOOT_TIMEOUT 180 /* s; nested TCG boots take 5-20 s */
#define NOT_YET " is not supported by the kvm backend yet (issue 5)"
#define KVM_VSOCK_SOCK "vsock" /* in the state dir; the guest's ports: vsock_P */

/* Weak: the VMM core (vm.c) may not be in this build yet; lookups say so. */
extern int vmm__run(const struct vmm_config *cfg, struct vmm_result *res, vmbox_error_t *err)
    __attribute__((weak));
extern void vmm__com2_inject(struct vmm *vm, const uint8_t *buf, size_t n) __attribute__((weak));

enum kvm_state { KVM_CREATED, KVM_RUNNING, KVM_EXITED };

struct box {
  struct box_spec *spec;
  char *dir, *kernel, *initrd, *cmdline, *overlay, *map, *console;
  uint64_t mem;
  unsigned vcpus;
  enum kvm_state state;
  pid_t pid;       /* the VMM process */
  int report, ctl; /* its pipes: results in, signals out */
  int pty_slave;   /* -t: the host pty's slave, for the VMM process */
  int err_fd;      /* a dup of the box's stderr, for our own last words */
  bool killed;
  uint64_t deadline_ns;
  struct box_exit exit;
};

/* VMM process -> backend, one write each (< PIPE_BUF: atomic). */
enum { MSG_STARTED = 1, MSG_FAILED, MSG_EXIT };
struct kvm_msg {
  int32_t kind, code, sig, oom;
  char text[1024];
  char hint[512]; /* the VMM's own hint; empty: point at console.log */
};

/* ---- create ------------------------------------------------------------------ */

static int check_spec(const struct box_spec *s, vmbox_error_t *err)
{
  if (s->id == NULL || !backend__valid_id(s->id))
    return vmbox_error_set(err, 0, "invalid box id '%s'", s->id ? s->id : "");
  if (s->image == NULL || s->image[0] != '/' || s->state_dir == NULL || s->state_dir[0] != '/')
    return vmbox_error_set(err, 0, "box %s: image and state dir must be absolute paths", s->id);
  if (s->proc.argv == NULL || s->proc.argv[0] == NULL)
    return vmbox_error_set(err, 0, "box %s: no command to run", s->id);
  const char *what = s->n_mounts ? "volumes (-v)" : NULL;
  if (what) {
    vmbox_error_set(err, 0, "%s" NOT_YET, what);
    return vmbox_error_hint(err, "use --backend ns for now");
  }
  if (s->limits.cpu_millis > KVM_MAX_VCPUS * 1000ULL)
    return vmbox_error_set(err, 0, "--cpus: the kvm backend runs at most %d vCPUs", KVM_MAX_VCPUS);
  return tap__check(&s->net, err);
}

/* <root>/boxes/<id> -> <root>, where the store keeps kernels/ and kvm/. */
static char *store_root(const char *state_dir)
{
  cleanup_free char *d = xstrdup(state_dir);
  char *slash = strrchr(d, '/');
  if (slash == NULL || slash == d)
    return NULL;
  *slash = '\0';
  slash = strrchr(d, '/');
  if (slash == NULL || strcmp(slash + 1, "boxes") != 0)
    return NULL;
  *slash = '\0';
  return d[0] ? xstrdup(d) : NULL;
}

static void cfg_put(char **buf, size_t *len, uint8_t key, const void *v, size_t n)
{
  *buf = xrealloc(*buf, *len + 5 + n);
  uint8_t *p = (uint8_t *)*buf + *len;
  p[0] = key;
  for (int i = 0; i < 4; i++)
    p[1 + i] = (uint8_t)(n >> (8 * i));
  memcpy(p + 5, v, n);
  *len += 5 + n;
}

static void cfg_str(char **buf, size_t *len, uint8_t key, const char *s)
{
  cfg_put(buf, len, key, s, strlen(s));
}

static void cfg_num(char **buf, size_t *len, uint8_t key, unsigned long long v)
{
  char s[32];
  snprintf(s, sizeof(s), "%llu", v);
  cfg_str(buf, len, key, s);
}

/* The box config vmbox-init reads (proto.h). */
static char *box_config(const struct box_spec *s, size_t *len)
{
  char *b = NULL;
  *len = 0;
  for (size_t i = 0; s->proc.argv[i]; i++)
    cfg_str(&b, len, CFG_ARGV, s->proc.argv[i]);
  for (size_t i = 0; s->proc.env && s->proc.env[i]; i++)
    cfg_str(&b, len, CFG_ENV, s->proc.env[i]);
  if (s->proc.cwd)
    cfg_str(&b, len, CFG_CWD, s->proc.cwd);
  cfg_num(&b, len, CFG_UID, s->proc.uid);
  cfg_num(&b, len, CFG_GID, s->proc.gid);
  for (size_t i = 0; i < s->proc.n_groups; i++)
    cfg_num(&b, len, CFG_GROUP, s->proc.groups[i]);
  char host[13];
  snprintf(host, sizeof(host), "%s", s->id);
  cfg_str(&b, len, CFG_HOSTNAME, s->hostname ? s->hostname : host);
  if (s->limits.memory)
    cfg_num(&b, len, CFG_MEMORY, s->limits.memory);
  if (s->limits.pids > 0)
    cfg_num(&b, len, CFG_PIDS, (unsigned long long)s->limits.pids);
  if (s->read_only)
    cfg_str(&b, len, CFG_READ_ONLY, "1");
  if (s->proc.stdio.in >= 0)
    cfg_str(&b, len, CFG_STDIN, "1");
  if (s->proc.tty)
    cfg_str(&b, len, CFG_TTY, "1");
  for (size_t i = 0; i < s->n_tmpfs; i++) {
    const char *o = s->tmpfs[i].options ? s->tmpfs[i].options : "";
    cleanup_free char *v = util__fmt("%s%c%s", s->tmpfs[i].target, 0, o);
    cfg_put(&b, len, CFG_TMPFS, v, strlen(s->tmpfs[i].target) + 1 + strlen(o));
  }
  if (s->net.address)
    cfg_str(&b, len, CFG_NET_ADDR, s->net.address);
  if (s->net.gateway)
    cfg_str(&b, len, CFG_NET_GW, s->net.gateway);
  return b;
}

static void shape(struct box *b)
{
  const struct box_limits *l = &b->spec->limits;
  b->mem = l->memory ? l->memory + KVM_HEADROOM : KVM_DEFAULT_MEM;
  if (b->mem < KVM_MIN_MEM)
    b->mem = KVM_MIN_MEM;
  b->mem = (b->mem + MIB - 1) & ~(MIB - 1);
  b->vcpus = l->cpu_millis ? (unsigned)((l->cpu_millis + 999) / 1000) : 1;
  const char *extra = getenv("VMBOX_GUEST_APPEND"); /* debugging: loglevel=7, ... */
  b->cmdline =
      util__fmt("console=ttyS0 reboot=t panic=-1 quiet%s%s", extra ? " " : "", extra ? extra : "");
}

static int prepare(struct box *b, vmbox_error_t *err)
{
  cleanup_free char *root = store_root(b->spec->state_dir);
  cleanup_free char *release = NULL, *base = NULL, *cache = NULL, *cfg = NULL;
  const char *source = NULL;
  if (kernel__find(getenv("VMBOX_KERNEL_FLAG"), root, &b->kernel, &release, &source, err) < 0)
    return -1;
  cache = root ? util__fmt("%s/kvm", root) : util__fmt("%s/cache", b->dir);
  if (initramfs__base(cache, release, &base, err) < 0)
    return -1;
  size_t len;
  cfg = box_config(b->spec, &len);
  b->initrd = util__fmt("%s/initrd.cpio", b->dir);
  if (initramfs__for_box(base, cfg, len, b->initrd, err) < 0)
    return -1;
  b->console = util__fmt("%s/console.log", b->dir);
  int fd = open(b->console, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "create %s", b->console);
  close(fd);
  if (!b->spec->read_only) {
    b->overlay = util__fmt("%s/disk.overlay", b->dir);
    b->map = util__fmt("%s/disk.map", b->dir);
  }
  shape(b);
  return 0;
}

static int kvm__delete(struct box *b, vmbox_error_t *err);

static int kvm__create(const struct box_spec *spec, struct box **out, vmbox_error_t *err)
{
  if (check_spec(spec, err) < 0)
    return -1;
  struct box *b = xcalloc(1, sizeof(*b));
  b->spec = backend__spec_dup(spec);
  b->report = b->ctl = b->err_fd = b->pty_slave = -1;
  int r = backend__own_dir(spec, "kvm", &b->dir, err);
  if (r == 0)
    r = prepare(b, err);
  if (r < 0) {
    vmbox_error_wrap(err, "create box %s", spec->id);
    kvm__delete(b, NULL);
    return -1;
  }
  *out = b;
  return 0;
}

/* ---- the VMM process ----------------------------------------------------------- */

struct vmmproc {
  struct box *b;
  struct chan_dec dec;
  int report, ctl, in;
  /* The main command's vsock channel: main_listen is "vsock_1025" in the
   * state dir (the guest connects there at boot); conn once it did.  tty is
   * the host pty's slave with -t (in, out and err are it), winch its
   * SIGWINCH signalfd.  Only the I/O thread touches these and outq. */
  int main_listen, conn, tty, winch, wake[2];
  uint8_t *outq;
  size_t outq_len;
  bool serial, io_running, vm_done;
  pthread_t io;
  /* mu guards the decoder and the flags; vm_mu the vm pointer.  Apart, so
   * an inject never waits on a vCPU that is inside guest_out. */
  pthread_mutex_t mu, vm_mu;
  struct vmm *vm; /* NULL once vmm__run returned */
  void (*inject)(struct vmm *vm, const uint8_t *buf, size_t n);
  bool booted, started, failed, exited;
  uint8_t exit_rec[3];
  uint64_t t0, boot_ns;
};

static void send_msg(int fd, int kind, int code, int sig, bool oom, const char *text,
                     const char *hint)
{
  struct kvm_msg m = {.kind = kind, .code = code, .sig = sig, .oom = oom};
  snprintf(m.text, sizeof(m.text), "%s", text ? text : "");
  snprintf(m.hint, sizeof(m.hint), "%s", hint ? hint : "");
  if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m)) {
    /* the backend is gone: its box dies with it (PDEATHSIG) */
  }
}

/* Guest text goes into our messages: printable ASCII only. */
static void clean_text(char *dst, size_t cap, const uint8_t *p, size_t n)
{
  size_t j = 0;
  for (size_t i = 0; i < n && j + 1 < cap; i++)
    dst[j++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
  dst[j] = '\0';
}

static void write_timing(struct vmmproc *v)
{
  cleanup_free char *p = util__fmt("%s/timing", v->b->dir);
  cleanup_free char *s = util__fmt("boot_to_init_ms=%llu\nstarted_ms=%llu\n",
                                   (unsigned long long)(v->boot_ns / 1000000),
                                   (unsigned long long)((util__now_ns() - v->t0) / 1000000));
  util__write_file_atomic(p, s, strlen(s), 0644, NULL);
}

/* Control records from the guest (chan.c already checked the framing). */
static void on_record(void *opaque, uint8_t type, const uint8_t *p, size_t n)
{
  struct vmmproc *v = opaque;
  char text[512];
  switch (type) {
  case CHAN_G_BOOTED:
    if (!v->booted)
      v->boot_ns = util__now_ns() - v->t0;
    v->booted = true;
    return;
  case CHAN_G_STARTED:
    if (v->started || v->failed)
      return;
    __atomic_store_n(&v->started, true, __ATOMIC_RELEASE);
    write_timing(v);
    send_msg(v->report, MSG_STARTED, 0, 0, false, NULL, NULL);
    return;
  case CHAN_G_EXEC_FAIL:
    if (v->started || v->failed || n < 1)
      return;
    v->failed = true;
    clean_text(text, sizeof(text), p + 1, n - 1);
    send_msg(v->report, MSG_FAILED, p[0] == 126 || p[0] == 127 ? p[0] : 125, 0, false, text, NULL);
    return;
  case CHAN_G_EXIT:
    if (n == 3 && v->started && !v->exited) {
      memcpy(v->exit_rec, p, 3);
      v->exited = true;
    }
    return;
  default: return; /* LOG: init wrote it to the console too */
  }
}

static void guest_out(void *opaque, const uint8_t *buf, size_t n)
{
  struct vmmproc *v = opaque;
  pthread_mutex_lock(&v->mu);
  v->serial = true; /* no vsock in this guest: COM2 carries the channel */
  chan__feed(&v->dec, buf, n);
  pthread_mutex_unlock(&v->mu);
}

/* Host -> guest, from the I/O thread only: queued for the vsock channel
 * (written as the guest takes it, so a guest that does not read stdin
 * never stalls its output), or injected into COM2 for a serial guest. */
static void send_guest(struct vmmproc *v, uint8_t type, const void *p, size_t n)
{
  uint8_t rec[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  size_t len = chan__encode(rec, type, p, n);
  if (len == 0)
    return;
  if (v->conn >= 0) {
    v->outq = xrealloc(v->outq, v->outq_len + len);
    memcpy(v->outq + v->outq_len, rec, len);
    v->outq_len += len;
    return;
  }
  pthread_mutex_lock(&v->vm_mu);
  for (size_t off = 0; v->vm && v->serial && off < len; off += CHAN_SERIAL_PAYLOAD)
    v->inject(v->vm, rec + off, len - off < CHAN_SERIAL_PAYLOAD ? len - off : CHAN_SERIAL_PAYLOAD);
  pthread_mutex_unlock(&v->vm_mu);
}

static void conn_close(struct vmmproc *v)
{
  if (v->conn >= 0)
    close(steal_fd(&v->conn));
  v->outq_len = 0;
}

static void conn_accept(struct vmmproc *v)
{
  int fd = accept4(v->main_listen, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0)
    return;
  if (v->conn >= 0) { /* one main channel per boot: a second is a liar */
    close(fd);
    return;
  }
  v->conn = fd;
}

/* Guest bytes from the vsock channel; the channel closes once the EXIT is
 * in (the guest waits for that before it powers off) or when it broke. */
static void conn_read(struct vmmproc *v)
{
  static uint8_t buf[65536];
  ssize_t n = read(v->conn, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  pthread_mutex_lock(&v->mu);
  bool ok = n > 0 && chan__feed(&v->dec, buf, (size_t)n);
  bool done = v->exited || v->failed;
  pthread_mutex_unlock(&v->mu);
  if (!ok || done)
    conn_close(v);
}

static void conn_write(struct vmmproc *v)
{
  ssize_t w = write(v->conn, v->outq, v->outq_len);
  if (w < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (w <= 0) {
    conn_close(v);
    return;
  }
  memmove(v->outq, v->outq + w, v->outq_len - (size_t)w);
  v->outq_len -= (size_t)w;
}

static void send_winsize(struct vmmproc *v)
{
  struct winsize ws;
  if (v->tty < 0 || ioctl(v->tty, TIOCGWINSZ, &ws) < 0)
    return;
  uint8_t p[4] = {(uint8_t)ws.ws_row, (uint8_t)(ws.ws_row >> 8), (uint8_t)ws.ws_col,
                  (uint8_t)(ws.ws_col >> 8)};
  send_guest(v, CHAN_H_RESIZE, p, sizeof(p));
}

/* Our stdin (or pty) for the guest; only when the queue is empty, so a
 * guest that does not read is not flooded. */
static void stdin_read(struct vmmproc *v)
{
  uint8_t buf[CHAN_MAX_PAYLOAD];
  ssize_t n = read(v->in, buf, sizeof(buf));
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n > 0) {
    send_guest(v, CHAN_H_STDIN, buf, (size_t)n);
    return;
  }
  send_guest(v, CHAN_H_STDIN_EOF, NULL, 0); /* EIO: the pty's caller left */
  v->in = -1;
}

static void ctl_read(struct vmmproc *v)
{
  uint8_t sig;
  if (read(v->ctl, &sig, 1) != 1)
    v->ctl = -1;
  else
    send_guest(v, CHAN_H_SIGNAL, &sig, 1);
}

/* The I/O thread: the main channel both ways, signals from the backend,
 * stdin once the command runs, and the pty's size.  After the VM stopped
 * (vm_done) it reads what the channel still holds, for at most 2 s. */
static void *io_thread(void *opaque)
{
  struct vmmproc *v = opaque;
  vmbox_error_t err = NULL;
  if (jail__thread(JAIL_THREAD_IO, &err) < 0) {
    vmbox_error_free(&err);
    return NULL; /* the box has no channel: it ends as a broken one */
  }
  uint64_t until = 0;
  bool sized = false;
  for (;;) {
    bool go = __atomic_load_n(&v->started, __ATOMIC_ACQUIRE);
    bool done = __atomic_load_n(&v->vm_done, __ATOMIC_ACQUIRE);
    if (done && until == 0)
      until = util__now_ns() + 2000000000ULL;
    if (done && (v->conn < 0 || util__now_ns() >= until))
      return NULL;
    if (go && !sized) {
      sized = true;
      send_winsize(v);
    }
    struct pollfd p[6] = {{done ? -1 : v->ctl, POLLIN, 0},
                          {go && !done && v->outq_len == 0 ? v->in : -1, POLLIN, 0},
                          {v->conn, (short)(POLLIN | (v->outq_len ? POLLOUT : 0)), 0},
                          {v->conn < 0 && !done ? v->main_listen : -1, POLLIN, 0},
                          {v->winch, POLLIN, 0},
                          {v->wake[0], POLLIN, 0}};
    int ms = done ? 100 : (go || v->in < 0) ? -1 : 50;
    if (poll(p, 6, ms) < 0 && errno != EINTR)
      return NULL;
    if (p[0].revents)
      ctl_read(v);
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR))
      conn_read(v);
    if (v->conn >= 0 && (p[2].revents & POLLOUT))
      conn_write(v);
    if (p[3].revents)
      conn_accept(v);
    if (p[1].revents)
      stdin_read(v);
    struct signalfd_siginfo si;
    if (p[4].revents && read(v->winch, &si, sizeof(si)) > 0)
      send_winsize(v);
    uint8_t c;
    if (p[5].revents && read(v->wake[0], &c, 1) < 0) {
      /* only wakes us */
    }
  }
}

static void on_ready(struct vmm *vm, void *opaque)
{
  struct vmmproc *v = opaque;
  pthread_mutex_lock(&v->vm_mu);
  v->vm = vm;
  pthread_mutex_unlock(&v->vm_mu);
  v->io_running = pthread_create(&v->io, NULL, io_thread, v) == 0;
}

/* After this returns the VMM frees the vm: no inject may follow. */
static void on_exit_vm(struct vmm *vm, void *opaque)
{
  (void)vm;
  struct vmmproc *v = opaque;
  pthread_mutex_lock(&v->vm_mu);
  v->vm = NULL;
  pthread_mutex_unlock(&v->vm_mu);
}

/* The line of console.log that says why the guest died: the kernel's
 * "Kernel panic - ..." if there is one, else the last line. */
static void last_words(const char *console, char *out, size_t cap)
{
  out[0] = '\0';
  cleanup_close int fd = open(console, O_RDONLY | O_CLOEXEC);
  char buf[16384];
  off_t end = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
  if (end < 0)
    return;
  off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
  ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
  if (n <= 0)
    return;
  buf[n] = '\0';
  const char *pick = NULL, *last = NULL;
  for (char *save = NULL, *l = strtok_r(buf, "\r\n", &save); l; l = strtok_r(NULL, "\r\n", &save)) {
    if (strstr(l, "Kernel panic"))
      pick = l;
    if (l[strspn(l, " \t")])
      last = l;
  }
  pick = pick ? pick : last;
  if (pick) {
    pick = strchr(pick, ']') && pick[0] == '[' ? strchr(pick, ']') + 1 : pick;
    pick += strspn(pick, " ");
    clean_text(out, cap, (const uint8_t *)pick, strlen(pick));
  }
}

static void final_report(struct vmmproc *v, int r, const struct vmm_result *res, vmbox_error_t *err)
{
  struct box *b = v->b;
  if (v->exited) {
    send_msg(v->report, MSG_EXIT, v->exit_rec[0], v->exit_rec[1],
             (v->exit_rec[2] & CHAN_EXIT_OOM) != 0, NULL, NULL);
    return;
  }
  if (v->failed)
    return;
  char why[512], words[256];
  cleanup_free char *msg = r < 0 ? vmbox_error_string(*err) : NULL;
  last_words(b->console, words, sizeof(words));
  if (msg)
    snprintf(why, sizeof(why), "%s", msg);
  else if (v->dec.broken)
    snprintf(why, sizeof(why), "the guest broke the host channel (%s)", v->dec.why);
  else if (res->kind == VMM_EXIT_RESET)
    snprintf(why, sizeof(why), "the guest kernel %s: %s",
             strstr(words, "panic") ? "panicked" : "reset (init crashed?)",
             words[0] ? words : "(no console output)");
  else if (res->kind == VMM_EXIT_POWEROFF)
    snprintf(why, sizeof(why), "the guest powered off (code %d) without reporting an exit status",
             res->code);
  else if (res->kind == VMM_EXIT_ERROR)
    snprintf(why, sizeof(why), "the VMM failed: %s", res->reason);
  else
    snprintf(why, sizeof(why), "the VM was stopped");
  /* A VMM setup error carries its own hint; a panic's line says it all;
   * anything else: the console has the story. */
  const char *hint = msg                           ? ((*err)->hint ? (*err)->hint : "-")
                     : strstr(why, "Kernel panic") ? "-"
                                                   : NULL;
  if (!v->started) {
    send_msg(v->report, MSG_FAILED, 125, 0, false, why, hint);
    return;
  }
  dprintf(v->dec.err_fd, "vmbox: %s\n", why); /* the user sees why, in logs too */
  send_msg(v->report, MSG_EXIT, 125, 0, false, why, hint);
}

/* Keeps only what the VMM needs, at known numbers: the monitor's other fds
 * (its report pipe, the caller's terminal) must not live on in the VM. */
static void vmm_fds(struct box *b, int report, int ctl, int fds[5])
{
  const struct box_stdio *io = &b->spec->proc.stdio;
  int src[5] = {io->in, io->out, io->err, report, ctl}, tmp[5];
  if (b->pty_slave >= 0) /* -t: the pty is all three */
    src[0] = src[1] = src[2] = b->pty_slave;
  for (int i = 0; i < 5; i++)
    tmp[i] = src[i] >= 0 ? fcntl(src[i], F_DUPFD_CLOEXEC, 100) : -1;
  syscall(SYS_close_range, 3U, 99U, 0U);
  for (int i = 0; i < 5; i++)
    fds[i] = tmp[i] >= 0 ? fcntl(tmp[i], F_DUPFD_CLOEXEC, 3) : -1;
  syscall(SYS_close_range, 100U, ~0U, 0U);
}

/* From the jail's SIGSYS handler: no malloc, no locks (the thread may hold
 * v->mu); the VMM exits right after. */
static void jail_violation(void *opaque, long nr, const char *name)
{
  struct vmmproc *v = opaque;
  char why[160];
  snprintf(why, sizeof(why), "the VMM was killed by its seccomp filter (syscall %ld, %s)", nr,
           name);
  const char *hint = "a bug in the VMM or a hostile guest; VMBOX_KVM_JAIL=0 runs it unconfined";
  bool started = __atomic_load_n(&v->started, __ATOMIC_ACQUIRE);
  if (started)
    dprintf(v->dec.err_fd, "vmbox: %s\n", why);
  send_msg(v->report, started ? MSG_EXIT : MSG_FAILED, 125, 0, false, why, hint);
}

/* The VMM keeps its state dir (disk map, console.log, timing, sockets). */
static int vmm_jail(void *opaque, vmbox_error_t *err)
{
  struct vmmproc *v = opaque;
  const char *const dirs[] = {v->b->dir, NULL};
  /* Its own sockets too: connecting to one takes write permission. */
  cleanup_free char *dev = util__fmt("%s/" KVM_VSOCK_SOCK, v->b->dir);
  cleanup_free char *main_sock = util__fmt("%s_%u", dev, CHAN_PORT_MAIN);
  const char *const shared[] = {v->b->dir, v->b->console, dev, main_sock, NULL};
  struct jail_spec s = {
      .dirs = dirs, .shared = shared, .console_fd = -1, .violation = jail_violation, .opaque = v};
  if (jail__enter(&s, err) < 0)
    return -1;
  /* The vsock sockets are named relative to the state dir (vsock_setup);
   * the jail binds it at its own path. */
  if (chdir(v->b->dir) < 0)
    return vmbox_error_sys(err, "jail: chdir %s", v->b->dir);
  return 0;
}

static int unix_listen(const char *name, vmbox_error_t *err)
{
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", name);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  unlink(name);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return vmbox_error_set(err, e, "listen on %s", name);
  }
  return fd;
}

static bool vsock_wanted(void)
{
  const char *which = getenv("VMBOX_KVM_VMM"), *no = getenv("VMBOX_KVM_NO_VSOCK");
  return !(which && strcmp(which, "qemu") == 0) && !(no && strcmp(no, "1") == 0);
}

/* The vsock device's sockets live in the state dir, which is our cwd: the
 * names stay short (sun_path has 108 bytes) however deep the dir is.
 * Without vsock the guest is told to use COM2 at once. */
static int vsock_setup(struct vmmproc *v, struct vmm_config *cfg, vmbox_error_t *err)
{
  if (!vsock_wanted()) {
    cfg->cmdline = util__fmt("%s vmbox.chan=serial", cfg->cmdline);
    return 0;
  }
  char main_name[32];
  snprintf(main_name, sizeof(main_name), KVM_VSOCK_SOCK "_%u", CHAN_PORT_MAIN);
  if (chdir(v->b->dir) < 0)
    return vmbox_error_sys(err, "chdir %s", v->b->dir);
  cfg->vsock_listen_fd = unix_listen(KVM_VSOCK_SOCK, err);
  if (cfg->vsock_listen_fd < 0)
    return -1;
  v->main_listen = unix_listen(main_name, err);
  if (v->main_listen < 0)
    return -1;
  cfg->vsock_cid = CHAN_GUEST_CID;
  cfg->vsock_uds = KVM_VSOCK_SOCK;
  return 0;
}

/* -t: the pty slave is our controlling terminal, so a resize by whoever
 * holds the master reaches us as SIGWINCH (blocked here, before any
 * thread, and read from a signalfd by the I/O thread). */
static void tty_setup(struct vmmproc *v)
{
  struct termios t;
  setsid();
  ioctl(v->tty, TIOCSCTTY, 0);
  if (tcgetattr(v->tty, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(v->tty, TCSANOW, &t);
  }
  sigset_t w;
  sigemptyset(&w);
  sigaddset(&w, SIGWINCH);
  sigprocmask(SIG_BLOCK, &w, NULL);
  v->winch = signalfd(-1, &w, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* The VM stopped: the I/O thread reads what the channel still holds. */
static void io_stop(struct vmmproc *v)
{
  __atomic_store_n(&v->vm_done, true, __ATOMIC_RELEASE);
  if (v->io_running) {
    if (write(v->wake[1], "x", 1) < 0) {
      /* the thread polls with a timeout anyway */
    }
    pthread_join(v->io, NULL);
  }
  if (v->main_listen < 0)
    return; /* no vsock: nothing of ours to remove (and cwd is not the dir) */
  char main_name[32];
  snprintf(main_name, sizeof(main_name), KVM_VSOCK_SOCK "_%u", CHAN_PORT_MAIN);
  unlink(KVM_VSOCK_SOCK);
  unlink(main_name);
}

static void __attribute__((noreturn)) vmm_main(struct box *b, int report, int ctl)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  prctl(PR_SET_NAME, "vmbox-vmm", 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  int fds[5];
  vmm_fds(b, report, ctl, fds);
  struct vmmproc v = {.b = b,
                      .report = fds[3],
                      .ctl = fds[4],
                      .in = fds[0],
                      .main_listen = -1,
                      .conn = -1,
                      .tty = b->pty_slave >= 0 ? fds[0] : -1,
                      .winch = -1};
  if (pipe2(v.wake, O_CLOEXEC | O_NONBLOCK) < 0)
    v.wake[0] = v.wake[1] = -1;
  if (v.tty >= 0)
    tty_setup(&v);
  v.t0 = util__now_ns();
  pthread_mutex_init(&v.mu, NULL);
  pthread_mutex_init(&v.vm_mu, NULL);
  chan__init(&v.dec, fds[1], fds[2], on_record, &v);
  int con = open(b->console, O_WRONLY | O_APPEND | O_CLOEXEC);
  struct vmm_config cfg = {.kernel = b->kernel,
                           .initrd = b->initrd,
                           .cmdline = b->cmdline,
                           .mem_bytes = b->mem,
                           .vcpus = b->vcpus,
                           .disk_base = b->spec->image,
                           .disk_overlay = b->overlay,
                           .disk_overlay_map = b->map,
                           .console_fd = con,
                           .vsock_listen_fd = -1,
                           .chan_guest_out = guest_out,
                           .chan_opaque = &v,
                           .on_ready = on_ready,
                           .on_exit = on_exit_vm,
                           .jail = vmm_jail};
  struct vmm_result res = {.kind = VMM_EXIT_ERROR};
  vmbox_error_t err = NULL;
  const char *which = getenv("VMBOX_KVM_VMM");
  int r = tap__config(&b->spec->net, b->spec->id, &cfg, &err);
  if (r == 0)
    r = vsock_setup(&v, &cfg, &err);
  if (r < 0) {
    /* err says which TAP and why */
  } else if (which && strcmp(which, "qemu") == 0) {
    v.inject = qemu__com2_inject;
    r = qemu__run(&cfg, &res, &err);
  } else if (vmm__run == NULL || vmm__com2_inject == NULL) {
    r = vmbox_error_set(&err, 0, "this vmbox was built without the VMM core (backends/kvm/vm.c)");
  } else {
    v.inject = vmm__com2_inject;
    r = vmm__run(&cfg, &res, &err);
  }
  io_stop(&v);
  pthread_mutex_lock(&v.vm_mu);
  v.vm = NULL;
  pthread_mutex_unlock(&v.vm_mu);
  pthread_mutex_lock(&v.mu);
  final_report(&v, r, &res, &err);
  pthread_mutex_unlock(&v.mu);
  _exit(0);
}

/* ---- start, wait, signal ------------------------------------------------------------ */

static void reap(struct box *b)
{
  if (b->pid <= 0)
    return;
  while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR)
    ;
  b->pid = 0;
}

static void stop_vmm(struct box *b)
{
  if (b->pid > 0) {
    kill(b->pid, SIGKILL);
    reap(b);
  }
}

/* One message from the VMM process within ms (-1: forever); 0 = EOF,
 * -1 = timeout. */
static int read_msg(struct box *b, struct kvm_msg *m, int ms)
{
  for (;;) {
    struct pollfd p = {b->report, POLLIN, 0};
    int r = poll(&p, 1, ms);
    if (r < 0 && errno == EINTR)
      continue;
    if (r == 0)
      return -1;
    ssize_t n = read(b->report, m, sizeof(*m));
    if (n < 0 && errno == EINTR)
      continue;
    if (n != (ssize_t)sizeof(*m))
      return 0;
    m->text[sizeof(m->text) - 1] = '\0';
    m->hint[sizeof(m->hint) - 1] = '\0';
    return 1;
  }
}

static int boot_timeout(void)
{
  const char *s = getenv("VMBOX_KVM_BOOT_TIMEOUT");
  int t = s ? atoi(s) : 0;
  return t > 0 ? t : KVM_BOOT_TIMEOUT;
}

static int start_failed(struct box *b, int r, const struct kvm_msg *m, vmbox_error_t *err)
{
  stop_vmm(b);
  b->state = KVM_EXITED;
  if (r == 1 && m->kind == MSG_FAILED) {
    vmbox_error_set(err, 0, "%s", m->text);
    if (m->hint[0] && strcmp(m->hint, "-") != 0)
      vmbox_error_hint(err, "%s", m->hint);
    else if (m->code == 125 && m->hint[0] == '\0')
      vmbox_error_hint(err, "the guest's console is in %s", b->console);
    return vmbox_error_code(err, m->code);
  }
  if (r < 0)
    vmbox_error_set(err, 0, "box %s: the guest did not start the command within %ds", b->spec->id,
                    boot_timeout());
  else
    vmbox_error_set(err, 0, "box %s: the VMM process died while the guest booted", b->spec->id);
  return vmbox_error_hint(err, "the guest's console is in %s", b->console);
}

static int kvm__start(struct box *b, struct box_proc_io *io, vmbox_error_t *err)
{
  if (io)
    io->pty_master = -1;
  if (b->state != KVM_CREATED)
    return vmbox_error_set(err, 0, "box %s: already started", b->spec->id);
  int rp[2], cp[2];
  int master = -1;
  if (b->spec->proc.tty && (master = session__openpty(&b->pty_slave, err)) < 0)
    return -1;
  if (pipe2(rp, O_CLOEXEC) < 0) {
    if (master >= 0) {
      close(master);
      close(steal_fd(&b->pty_slave));
    }
    return vmbox_error_sys(err, "pipe");
  }
  if (pipe2(cp, O_CLOEXEC) < 0) {
    close(rp[0]);
    close(rp[1]);
    return vmbox_error_sys(err, "pipe");
  }
  b->pid = jail__fork(); /* a pid namespace of its own */
  if (b->pid == 0)
    vmm_main(b, rp[1], cp[0]);
  int e = errno;
  close(rp[1]);
  close(cp[0]);
  b->report = rp[0];
  b->ctl = cp[1];
  if (b->pty_slave >= 0)
    close(steal_fd(&b->pty_slave)); /* the VMM's now: EIO on the master once it is gone */
  if (b->pid < 0) {
    if (master >= 0)
      close(master);
    return vmbox_error_set(err, e, "box %s: fork the VMM", b->spec->id);
  }
  b->state = KVM_RUNNING;
  if (b->spec->proc.stdio.err >= 0)
    b->err_fd = fcntl(b->spec->proc.stdio.err, F_DUPFD_CLOEXEC, 3);
  struct kvm_msg m;
  int r = read_msg(b, &m, boot_timeout() * 1000);
  if (r != 1 || m.kind != MSG_STARTED) {
    if (master >= 0)
      close(master);
    return start_failed(b, r, &m, err);
  }
  if (io)
    io->pty_master = master;
  else if (master >= 0)
    close(master);
  if (b->spec->timeout_sec)
    b->deadline_ns = util__now_ns() + (uint64_t)b->spec->timeout_sec * 1000000000ULL;
  return 0;
}

static void ended(struct box *b, int code, int sig, bool oom, bool timed_out)
{
  b->exit = (struct box_exit){.code = code, .signal = sig, .oom = oom, .timed_out = timed_out};
  b->state = KVM_EXITED;
  reap(b);
  if (b->err_fd >= 0)
    close(steal_fd(&b->err_fd));
}

static int kvm__wait(struct box *b, struct box_exit *out, vmbox_error_t *err)
{
  if (b->state == KVM_CREATED)
    return vmbox_error_set(err, 0, "box %s: not started", b->spec->id);
  while (b->state == KVM_RUNNING) {
    int ms = -1;
    if (b->deadline_ns) {
      uint64_t now = util__now_ns();
      ms = now >= b->deadline_ns ? 0 : (int)((b->deadline_ns - now) / 1000000 + 1);
    }
    struct kvm_msg m;
    int r = read_msg(b, &m, ms);
    if (r < 0) { /* --timeout */
      stop_vmm(b);
      ended(b, 137, SIGKILL, false, true);
    } else if (r == 1 && m.kind == MSG_EXIT) {
      ended(b, m.code, m.sig, m.oom != 0, false);
    } else if (r == 0 && b->killed) {
      ended(b, 137, SIGKILL, false, false);
    } else if (r == 0) {
      int st = 0;
      waitpid(b->pid, &st, 0);
      b->pid = 0;
      if (b->err_fd >= 0)
        dprintf(b->err_fd, "vmbox: the VMM process of box %.12s died (status %d)\n", b->spec->id,
                st);
      ended(b, 125, 0, false, false);
    }
  }
  *out = b->exit;
  return 0;
}

static int kvm__wait_fd(struct box *b)
{
  return b->report;
}

static int kvm__signal(struct box *b, int sig, vmbox_error_t *err)
{
  if (b->state != KVM_RUNNING || b->pid <= 0)
    return vmbox_error_set(err, ESRCH, "box %s: not running", b->spec->id);
  if (sig == SIGKILL) {
    b->killed = true;
    if (kill(b->pid, SIGKILL) < 0)
      return vmbox_error_sys(err, "box %s: kill the VMM", b->spec->id);
    return 0;
  }
  if (sig <= 0 || sig > 255)
    return vmbox_error_set(err, EINVAL, "box %s: signal %d", b->spec->id, sig);
  uint8_t s = (uint8_t)sig;
  if (write(b->ctl, &s, 1) != 1)
    return vmbox_error_sys(err, "box %s: signal %d", b->spec->id, sig);
  return 0;
}

/* The VMM process is the box: its CPU time and resident memory. */
static int kvm__stats(struct box *b, struct box_stats *out, vmbox_error_t *err)
{
  memset(out, 0, sizeof(*out));
  out->mem_limit = b->spec->limits.memory;
  if (b->state != KVM_RUNNING || b->pid <= 0)
    return 0;
  cleanup_free char *p = util__fmt("/proc/%d/stat", (int)b->pid);
  cleanup_free char *stat = NULL;
  if (util__read_file(p, &stat, NULL, err) < 0)
    return -1;
  char *f = strrchr(stat, ')');
  unsigned long long ut = 0, st = 0, threads = 0, rss = 0;
  /* fields after "(comm)": 3 state ... 14 utime 15 stime ... 20 threads ... 24 rss */
  for (int i = 3; f && i <= 24; i++) {
    f = strchr(f + 1, ' ');
    if (f == NULL)
      break;
    unsigned long long v = strtoull(f + 1, NULL, 10);
    if (i == 14)
      ut = v;
    else if (i == 15)
      st = v;
    else if (i == 20)
      threads = v;
    else if (i == 24)
      rss = v;
  }
  long hz = sysconf(_SC_CLK_TCK);
  out->cpu_ns = (ut + st) * (1000000000ULL / (unsigned long long)(hz > 0 ? hz : 100));
  out->mem_bytes = rss * (unsigned long long)sysconf(_SC_PAGESIZE);
  out->pids = threads;
  return 0;
}

/* ---- the end ----------------------------------------------------------------------- */

static void kvm__release(struct box *b)
{
  if (b->report >= 0)
    close(b->report);
  if (b->ctl >= 0)
    close(b->ctl);
  if (b->err_fd >= 0)
    close(b->err_fd);
  backend__spec_free(b->spec);
  free(b->dir);
  free(b->kernel);
  free(b->initrd);
  free(b->cmdline);
  free(b->overlay);
  free(b->map);
  free(b->console);
  free(b);
}

/* The disk copy and initrd go now; console.log and timing stay for
 * whoever looks at the box until `vmbox rm` (cleanup). */
static int kvm__delete(struct box *b, vmbox_error_t *err)
{
  (void)err;
  stop_vmm(b);
  const char *files[] = {b->initrd, b->overlay, b->map};
  for (size_t i = 0; i < ARRAY_SIZE(files); i++)
    if (b->dir[0] && files[i])
      unlink(files[i]);
  if (b->dir[0]) {
    cleanup_free char *cache = util__fmt("%s/cache", b->dir);
    util__rm_rf(cache, NULL);
  }
  kvm__release(b);
  return 0;
}

static int kvm__cleanup(const char *id, const char *state_dir, vmbox_error_t *err)
{
  (void)id;
  cleanup_free char *dir = util__fmt("%s/kvm", state_dir);
  return util__rm_rf(dir, err);
}

/* exec goes over vsock straight to vmbox-init (session.c): the VMM process
 * only carries the bytes. */
static int kvm__exec(struct box *b, const struct box_process *p, struct box_proc **out,
                     struct box_proc_io *io, vmbox_error_t *err)
{
  if (io)
    io->pty_master = -1;
  if (b->state != KVM_RUNNING || b->pid <= 0)
    return vmbox_error_set(err, 0, "box %.12s: not running", b->spec->id);
  return session__exec(b->dir, b->spec->id, p, out, io, err);
}

/* cp goes through the running guest (session.c); a stopped box's disk is
 * ext4 with a COW overlay that only the VMM reads, so it needs a boot. */
static int kvm__cp(const char *state_dir, const struct box_cp *c, bool in, vmbox_error_t *err)
{
  cleanup_free char *dir = util__fmt("%s/kvm", state_dir);
  int r = in ? session__cp_in(dir, c, err) : session__cp_out(dir, c, err);
  if (r < 0 && err && *err && strstr((*err)->msg, "is not running")) {
    vmbox_error_hint(err, "cp with a stopped kvm box is not supported yet: start it, or use "
                          "--backend ns");
  }
  return r;
}

static int kvm__cp_out(const char *id, const char *state_dir, const struct box_cp *c,
                       vmbox_error_t *err)
{
  (void)id;
  return kvm__cp(state_dir, c, false, err);
}

static int kvm__cp_in(const char *id, const char *state_dir, const struct box_cp *c,
                      vmbox_error_t *err)
{
  (void)id;
  return kvm__cp(state_dir, c, true, err);
}

const struct backend_ops backend_kvm_ops = {
    .name = "kvm",
    .create = kvm__create,
    .start = kvm__start,
    .wait = kvm__wait,
    .wait_fd = kvm__wait_fd,
    .exec = kvm__exec,
    .exec_wait = session__exec_wait,
    .exec_free = session__exec_free,
    .signal = kvm__signal,
    .stats = kvm__stats,
    .delete = kvm__delete,
    .release = kvm__release,
    .cleanup = kvm__cleanup,
    .snapshot = NULL,
    .restore = NULL,
    .cp_out = kvm__cp_out,
    .cp_in = kvm__cp_in,
};
