/* /init for the VMM core's own tests (tests/kvm/inner/vmm.bats, driving
 * build/tools/vmm_run): a static program, alone in a tiny initramfs.
 *
 * It mounts devtmpfs, proc and sysfs, writes "vmm-init: up" on ttyS1
 * first (so the time of the first COM2 byte is boot-to-init), then on the
 * console "vmm-init: hello" and "vmm-init: cpus=<online cpus>".  The
 * kernel command line picks what follows (the kernel hands unknown
 * name=value words to init as environment):
 *   vmmtest=poweroff  (default) write vmmcode (default 42) to port 0x501
 *   vmmtest=echo      read one line from ttyS1 (raw), print it as
 *                     "vmm-init: got=<line>", send "echo:<line>" back, then
 *                     power off as above
 *   vmmtest=panic     return: the kernel panics ("Attempted to kill init")
 *   vmmtest=spin      loop forever (for vmm__stop tests)
 *   vmmtest=acpioff   power off through the kernel (ACPI S5)
 *   vmmtest=blk       load the modules in /mod, in the order of /mod/order, wait for
 *                     /dev/vda, print "vmm-init: vda=<first 16 bytes>",
 *                     write "vmm-init-wrote" at byte 4096, then power off
 *                     (virtio-blk needs its PCI INTx routed: ACPI _PRT)
 *   vmmtest=vsock     load /mod as for blk, then serve vsock: port 5000 echoes
 *                     (one child per stream, half-close at EOF), port 5001
 *                     reads to EOF and answers "<bytes>\n", a connect
 *                     to port 5002 powers off at once (streams still open);
 *                     prints "vmm-init: vsock ready" when listening.  With
 *                     vsockout=P it also connects to host port P, sends
 *                     "hello-from-guest\n", prints "vmm-init: vsock-out
 *                     got=<reply line>", then connects to port P+1 (nobody
 *                     there) and prints "vmm-init: vsock-refused errno=N"
 *   vmmdmesg=1        first print the kernel log with its timestamps */
#include <errno.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

static int console = -1, chan = -1;

static void say(int fd, const char *s)
{
  if (fd >= 0 && write(fd, s, strlen(s)) < 0)
    return;
}

static void setup_fs(void)
{
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mkdir("/sys", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
}

static void open_chan(void)
{
  chan = open("/dev/ttyS1", O_RDWR | O_NOCTTY);
  struct termios t;
  if (chan >= 0 && tcgetattr(chan, &t) == 0) {
    cfmakeraw(&t);
    tcsetattr(chan, TCSANOW, &t);
  }
}

static void print_cpus(void)
{
  char buf[64] = "?";
  int fd = open("/sys/devices/system/cpu/online", O_RDONLY);
  if (fd >= 0) {
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    close(fd);
  }
  char line[128];
  snprintf(line, sizeof line, "vmm-init: cpus=%s\n", buf);
  say(console, line);
  FILE *m = fopen("/proc/meminfo", "r");
  long kb = 0;
  if (m && fscanf(m, "MemTotal: %ld kB", &kb) == 1) {
    snprintf(line, sizeof line, "vmm-init: memtotal_kb=%ld\n", kb);
    say(console, line);
  }
  if (m)
    fclose(m);
}

/* One line from the channel, bounded in time (10 s) and length. */
static void echo_line(void)
{
  char line[256];
  size_t n = 0;
  for (int waits = 0; waits < 100 && n < sizeof line - 1; waits++) {
    struct pollfd p = {.fd = chan, .events = POLLIN};
    if (poll(&p, 1, 100) <= 0)
      continue;
    char c;
    if (read(chan, &c, 1) != 1 || c == '\n')
      break;
    line[n++] = c;
  }
  line[n] = 0;
  char out[300];
  snprintf(out, sizeof out, "vmm-init: got=%s\n", line);
  say(console, out);
  snprintf(out, sizeof out, "echo:%s\n", line);
  say(chan, out);
  tcdrain(chan);
}

static void load_modules(void)
{
  FILE *f = fopen("/mod/order", "r");
  char name[256], path[300], line[400];
  while (f && fgets(name, sizeof name, f)) {
    name[strcspn(name, "\n")] = 0;
    snprintf(path, sizeof path, "/mod/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    long r = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
    snprintf(line, sizeof line, "vmm-init: insmod %s: %s\n", name, r == 0 ? "ok" : "FAILED");
    say(console, line);
    if (fd >= 0)
      close(fd);
  }
  if (f)
    fclose(f);
}

/* Waits (bounded: 10 s) for /dev/vda, reads its head, writes a marker. */
static void blk_test(void)
{
  load_modules();
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; i++) {
    fd = open("/dev/vda", O_RDWR);
    if (fd < 0)
      usleep(100000);
  }
  char buf[17] = {0}, line[100];
  if (fd < 0 || pread(fd, buf, 16, 0) != 16) {
    say(console, "vmm-init: vda missing or unreadable\n");
  } else {
    for (int i = 0; i < 16; i++)
      buf[i] = buf[i] >= 32 && buf[i] < 127 ? buf[i] : '.';
    snprintf(line, sizeof line, "vmm-init: vda=%s\n", buf);
    say(console, line);
    const char mark[] = "vmm-init-wrote";
    int ok = pwrite(fd, mark, sizeof mark - 1, 4096) == sizeof mark - 1 && fsync(fd) == 0;
    say(console, ok ? "vmm-init: vda write ok\n" : "vmm-init: vda write FAILED\n");
  }
  if (fd >= 0)
    close(fd);
}

static void power_off(int code);

static int vsock_listen(unsigned port)
{
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
  int fd = -1;
  for (int i = 0; i < 100 && fd < 0; i++) { /* the transport probes after insmod */
    fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0)) {
      close(fd);
      fd = -1;
    }
    if (fd < 0)
      usleep(100000);
  }
  return fd;
}

static void vsock_echo(int fd)
{
  static char buf[65536];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    for (ssize_t off = 0; off < n;) {
      ssize_t w = write(fd, buf + off, n - off);
      if (w <= 0)
        _exit(1);
      off += w;
    }
  shutdown(fd, SHUT_WR);
  /* Linux tears the stream down when the fd closes; let the host read first. */
  while (read(fd, buf, sizeof buf) > 0)
    ;
  _exit(0);
}

static void vsock_sink(int fd)
{
  static char buf[65536];
  long long total = 0;
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0)
    total += n;
  char line[32];
  snprintf(line, sizeof line, "%lld\n", total);
  say(fd, line);
  shutdown(fd, SHUT_WR);
  while (read(fd, buf, sizeof buf) > 0)
    ;
  _exit(0);
}

static int vsock_connect(unsigned port)
{
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
    return fd;
  int e = errno;
  if (fd >= 0)
    close(fd);
  errno = e;
  return -1;
}

static void vsock_out(unsigned port)
{
  char line[300], got[200] = "";
  int fd = vsock_connect(port);
  if (fd < 0) {
    snprintf(line, sizeof line, "vmm-init: vsock-out connect failed errno=%d\n", errno);
    say(console, line);
  } else {
    say(fd, "hello-from-guest\n");
    size_t n = 0;
    ssize_t r;
    while (n < sizeof got - 1 && (r = read(fd, got + n, sizeof got - 1 - n)) > 0)
      n += r;
    got[n] = 0;
    got[strcspn(got, "\n")] = 0;
    snprintf(line, sizeof line, "vmm-init: vsock-out got=%s\n", got);
    say(console, line);
    close(fd);
  }
  fd = vsock_connect(port + 1);
  snprintf(line, sizeof line, "vmm-init: vsock-refused errno=%d\n", fd < 0 ? errno : 0);
  say(console, line);
}

static void vsock_test(void)
{
  load_modules();
  signal(SIGCHLD, SIG_IGN); /* no zombies */
  int echo = vsock_listen(5000), sink = vsock_listen(5001), off = vsock_listen(5002);
  if (echo < 0 || sink < 0 || off < 0) {
    say(console, "vmm-init: vsock listen FAILED\n");
    return;
  }
  say(console, "vmm-init: vsock ready\n");
  const char *out = getenv("vsockout");
  if (out && fork() == 0) {
    vsock_out((unsigned)atoi(out));
    _exit(0);
  }
  for (;;) {
    struct pollfd p[3] = {{.fd = echo, .events = POLLIN},
                          {.fd = sink, .events = POLLIN},
                          {.fd = off, .events = POLLIN}};
    if (poll(p, 3, -1) <= 0)
      continue;
    if (p[2].revents) {
      say(console, "vmm-init: vsock power-off request\n");
      power_off(42);
    }
    for (int i = 0; i < 2; i++) {
      int c = p[i].revents ? accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC) : -1;
      if (c >= 0 && fork() == 0)
        i == 0 ? vsock_echo(c) : vsock_sink(c);
      if (c >= 0)
        close(c);
    }
  }
}

/* The kernel log of a quiet boot, with its timestamps, without paying
 * for it on the serial console during the boot. */
static void dump_kmsg(void)
{
  int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
  char rec[1024];
  for (int i = 0; fd >= 0 && i < 2000; i++) {
    ssize_t n = read(fd, rec, sizeof rec - 1);
    if (n <= 0)
      break;
    rec[n] = 0;
    char *semi = strchr(rec, ';'), *comma = strchr(rec, ',');
    char line[1200];
    if (!semi || !comma)
      continue;
    comma = strchr(comma + 1, ','); /* seq, then the time in us */
    snprintf(line, sizeof line, "kmsg %.3f %s", comma ? atof(comma + 1) / 1e6 : 0.0, semi + 1);
    say(console, line);
  }
  if (fd >= 0)
    close(fd);
}

int main(void)
{
  setup_fs();
  open_chan();
  say(chan, "vmm-init: up\n");
  console = open("/dev/console", O_WRONLY | O_NOCTTY);
  say(console, "vmm-init: hello\n");
  print_cpus();
  const char *mode = getenv("vmmtest") ? getenv("vmmtest") : "poweroff";
  if (getenv("vmmdmesg"))
    dump_kmsg();
  if (strcmp(mode, "panic") == 0)
    return 1;
  if (strcmp(mode, "spin") == 0)
    for (;;)
      pause();
  if (strcmp(mode, "echo") == 0)
    echo_line();
  if (strcmp(mode, "blk") == 0)
    blk_test();
  if (strcmp(mode, "vsock") == 0)
    vsock_test();
  if (strcmp(mode, "acpioff") == 0) {
    sync();
    reboot(RB_POWER_OFF);
  }
  power_off(getenv("vmmcode") ? atoi(getenv("vmmcode")) : 42);
}

static void power_off(int code)
{
  /* Console and channel writes are interrupt-driven: let them drain, or
   * the VM stops with their tail still in the guest's tty buffers. */
  if (chan >= 0)
    tcdrain(chan);
  if (console >= 0)
    tcdrain(console);
  if (ioperm(0x501, 1, 1) == 0)
    outb((unsigned char)code, 0x501);
  say(console, "vmm-init: exit port write did not stop the VM\n");
  for (;;)
    pause();
}
