/* The default seccomp profile, in the spirit of Docker's: the syscalls that
 * Docker refuses to a box without extra capabilities fail with EPERM.  A
 * deny-list (everything else allowed) for now; the filter is native-arch
 * only, so i386/x32 entry points are killed as a bad arch rather than
 * letting them around the list. */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

static const char *const denied[] = {
    /* file systems and the root */
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "quotactl",
    "quotactl_fd",
    "open_by_handle_at",
    "name_to_handle_at",
    "swapon",
    "swapoff",
    "acct",
    /* the kernel itself */
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "get_kernel_syms",
    "query_module",
    "bpf",
    "perf_event_open",
    "lookup_dcookie",
    "syslog",
    "iopl",
    "ioperm",
    "uselib",
    "nfsservctl",
    "_sysctl",
    "sysfs",
    "ustat",
    "vm86",
    "vm86old",
    "vhangup",
    /* keys, clocks, namespaces */
    "keyctl",
    "add_key",
    "request_key",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_adjtime",
    "setns",
    "userfaultfd",
    "fanotify_init",
    /* NUMA policy needs CAP_SYS_NICE in Docker's profile */
    "mbind",
    "set_mempolicy",
    "migrate_pages",
    "move_pages",
    /* io_uring goes around seccomp for the operations it performs */
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
};

/* clone/unshare making any new namespace: a nested user namespace is the
 * usual first step of a kernel exploit. */
static const unsigned long ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, CLONE_NEWTIME,
};

static int add_rules(scmp_filter_ctx ctx)
{
  for (size_t i = 0; i < ARRAY_SIZE(denied); i++) {
    int nr = seccomp_syscall_resolve_name(denied[i]);
    if (nr == __NR_SCMP_ERROR)
      continue; /* not on this arch */
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0) < 0)
      return -1;
  }
  for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
    unsigned long f = ns_flags[i];
    if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(unshare), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, f, f)) < 0 ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, f, f)) < 0)
      return -1;
  }
  /* clone3 passes its flags in memory seccomp cannot read: ENOSYS makes
   * libc fall back to clone, which the rules above can check (as Docker). */
  return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

int seccomp__compile_default(struct sock_fprog *out, vmbox_error_t *err)
{
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
  if (ctx == NULL)
    return vmbox_error_set(err, ENOMEM, "seccomp: init");
  /* libseccomp 2.5 exports to an fd only. */
  int fd = memfd_create("vmbox-seccomp", MFD_CLOEXEC);
  int r = fd < 0 ? -errno : add_rules(ctx);
  if (r == 0)
    r = seccomp_export_bpf(ctx, fd);
  seccomp_release(ctx);
  off_t len = r == 0 ? lseek(fd, 0, SEEK_END) : -1;
  if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0) {
    if (fd >= 0)
      close(fd);
    return vmbox_error_set(err, r < 0 ? -r : EINVAL, "seccomp: compile the default profile");
  }
  struct sock_filter *insns = xmalloc((size_t)len);
  ssize_t n = pread(fd, insns, (size_t)len, 0);
  close(fd);
  if (n != len) {
    free(insns);
    return vmbox_error_sys(err, "seccomp: read the compiled profile");
  }
  out->filter = insns;
  out->len = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
  return 0;
}

int seccomp__load(const struct sock_fprog *prog, vmbox_error_t *err)
{
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
    return vmbox_error_sys(err, "seccomp: load the default profile");
  return 0;
}
