/* The VMM's jail (Firecracker's jailer is the model), for the kvm backend's
 * VMM process.  Two halves:
 *
 * jail__fork()   the VMM process starts in a pid namespace of its own (it is
 *                pid 1 there: no other process of the host is visible to it).
 * jail__enter()  once the VM is built (every fd open) and while the process
 *                is one thread: new mount, net, ipc and uts namespaces; a
 *                read-only tmpfs root holding only the given host dirs, bound
 *                at their own paths (so paths the VMM built before, like the
 *                overlay map's, still resolve); the uid/gid JAIL_UID with
 *                no capabilities, no_new_privs, no core dumps.  It also
 *                compiles the seccomp programs jail__thread (vmm.h) loads,
 *                one per thread kind; a syscall outside them traps into a
 *                SIGSYS handler that reports it through `violation` and
 *                ends the VMM (exit 125).
 *
 * VMBOX_KVM_JAIL=0 turns both off (debugging: strace, gdb, perf).  Rootless
 * (euid != 0): a user namespace maps the caller's own uid, which stays; no
 * pid namespace; the rest is the same. */
#ifndef VMBOX_KVM_JAIL_H
#define VMBOX_KVM_JAIL_H

#include <stdbool.h>
#include <sys/types.h>

#include "../../lib/err.h"

/* The VMMs' uid and gid when vmbox runs as root: unprivileged, owning nothing
 * on the host but what it creates in spec->shared dirs. */
#define JAIL_UID 64800
#define JAIL_GID 64800

struct jail_spec {
  /* Host directories the VMM keeps, read-write, at the same absolute
   * paths; NULL-terminated.  Everything else of the host is gone. */
  const char *const *dirs;
  /* Paths the VMM needs after the uid drop, handed to group JAIL_GID (the
   * owner stays): a dir becomes 1770, where it may create files and replace
   * its own but never remove or replace the host's (sticky); a file or
   * socket g+rw (console.log read back, its sockets connected to).  Missing
   * ones are skipped.  What the VMM creates is its own: the host opens
   * those with O_NOFOLLOW. */
  const char *const *shared;
  int console_fd; /* the SIGSYS handler's line goes here too; -1 none */
  /* Called from the SIGSYS handler, on the offending thread, before the
   * VMM exits: report the box's error.  Async-signal-safe code only (no
   * malloc, no locks); nr is the syscall, name its name or "?". */
  void (*violation)(void *opaque, long nr, const char *name);
  void *opaque;
};

/* False when VMBOX_KVM_JAIL=0. */
bool jail__enabled(void);
/* fork(), but the child starts in a new pid namespace when the jail is on
 * and we are root.  Only from a single-threaded process (no atfork
 * handlers run). */
pid_t jail__fork(void);
/* Confines the calling process; see above.  Single-threaded callers only.
 * Returns 0 at once when the jail is off. */
int jail__enter(const struct jail_spec *spec, vmbox_error_t *err);

#endif
