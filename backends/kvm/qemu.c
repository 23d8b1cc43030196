/* VMBOX_KVM_VMM=qemu: the same guest (kernel, initramfs, disk, COM1/COM2,
 * exit port) under qemu-system-x86_64, with KVM when /dev/kvm opens, else
 * TCG.  A debugging aid, and the reference our VMM must match: if a box
 * works here and not on vmm__run, the bug is in the VMM.  Same contract as
 * vmm__run (vmm.h).  The disk is QEMU's snapshot=on (a temporary overlay),
 * not disk.c's. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "kvmbox.h"

struct qvm {
  int sock;
};

void qemu__com2_inject(struct vmm *vm, const uint8_t *buf, size_t n)
{
  struct qvm *q = (struct qvm *)vm;
  while (n) {
    ssize_t w = write(q->sock, buf, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    buf += w;
    n -= (size_t)w;
  }
}

static char **qemu_argv(const struct vmm_config *cfg)
{
  bool kvm = access("/dev/kvm", R_OK | W_OK) == 0;
  char **v = NULL;
  const char *fixed[] = {"qemu-system-x86_64",
                         "-M",
                         "pc",
                         "-nodefaults",
                         "-no-reboot",
                         "-display",
                         "none",
                         "-monitor",
                         "none",
                         "-accel",
                         kvm ? "kvm" : "tcg",
                         "-cpu",
                         kvm ? "host" : "max",
                         "-device",
                         "isa-debug-exit,iobase=0x501,iosize=1",
                         "-kernel",
                         cfg->kernel,
                         "-append",
                         cfg->cmdline,
                         "-serial",
                         cfg->console_fd >= 0 ? "file:/dev/fd/3" : "null",
                         "-serial",
                         "stdio"};
  for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
    strv_push(&v, fixed[i]);
  char *s = util__fmt("%llu", (unsigned long long)(cfg->mem_bytes >> 20));
  strv_push(&v, "-m");
  strv_push(&v, s);
  free(s);
  s = util__fmt("%u", cfg->vcpus);
  strv_push(&v, "-smp");
  strv_push(&v, s);
  free(s);
  if (cfg->initrd) {
    strv_push(&v, "-initrd");
    strv_push(&v, cfg->initrd);
  }
  if (cfg->disk_base) {
    s = util__fmt("file=%s,if=virtio,format=raw,%s", cfg->disk_base,
                  cfg->disk_overlay ? "snapshot=on" : "readonly=on");
    strv_push(&v, "-drive");
    strv_push(&v, s);
    free(s);
  }
  return v;
}

static void __attribute__((noreturn)) exec_qemu(const struct vmm_config *cfg, int sock)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  int con = cfg->console_fd >= 0 ? fcntl(cfg->console_fd, F_DUPFD, 10) : -1;
  if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0 || (con >= 0 && dup2(con, 3) < 0))
    _exit(127);
  char **argv = qemu_argv(cfg);
  execvp(argv[0], argv);
  dprintf(2, "vmbox: exec qemu-system-x86_64: %s\n", strerror(errno));
  _exit(127);
}

int qemu__run(const struct vmm_config *cfg, struct vmm_result *res, vmbox_error_t *err)
{
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    return vmbox_error_sys(err, "socketpair");
  pid_t pid = fork();
  if (pid < 0)
    return vmbox_error_sys(err, "fork qemu");
  if (pid == 0)
    exec_qemu(cfg, sv[1]);
  close(sv[1]);
  struct qvm q = {.sock = sv[0]};
  if (cfg->on_ready)
    cfg->on_ready((struct vmm *)&q, cfg->chan_opaque);
  uint8_t buf[4096];
  for (;;) {
    ssize_t n = read(q.sock, buf, sizeof(buf));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (cfg->chan_guest_out)
      cfg->chan_guest_out(cfg->chan_opaque, buf, (size_t)n);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
    ;
  memset(res, 0, sizeof(*res));
  if (WIFEXITED(st) && (WEXITSTATUS(st) & 1)) { /* isa-debug-exit: (code << 1) | 1 */
    res->kind = VMM_EXIT_POWEROFF;
    res->code = WEXITSTATUS(st) >> 1;
  } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) { /* -no-reboot: a reset ends QEMU */
    res->kind = VMM_EXIT_RESET;
  } else {
    res->kind = VMM_EXIT_ERROR;
    snprintf(res->reason, sizeof(res->reason), "qemu-system-x86_64 ended with status %d", st);
  }
  return 0;
}
