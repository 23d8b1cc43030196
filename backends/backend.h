/* The one interface every backend fills: ns (Linux namespaces), kvm (our
 * micro-VMM) and sentry (user-space kernel).  The CLI builds a box_spec from
 * the image config and the flags; a per-box monitor process owns the handle
 * and the box's stdio, and drives the ops below.  Nothing outside backends/
 * sees how a backend keeps its box: the handle is opaque.
 *
 * Life cycle: create (prepare the root, nothing runs) -> start (command
 * running, or 126/127 error) -> wait (exit status) -> delete (state gone).
 * exec/signal/stats are valid between start and delete.
 *
 * Call start/exec from a single-threaded process (the monitor is an event
 * loop): the ns backend clones/forks and runs library code in the child. */
#ifndef VMBOX_BACKEND_H
#define VMBOX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/err.h"

/* -v HOST:GUEST[:ro] */
struct box_mount {
  const char *source; /* host path, absolute */
  const char *target; /* path inside the box, absolute */
  bool read_only;
};

/* --tmpfs GUEST[:size=N,mode=M] */
struct box_tmpfs {
  const char *target;
  const char *options; /* mount data, may be NULL ("size=64m,mode=1777") */
};

enum box_net_mode {
  BOX_NET_NONE,   /* only lo, up */
  BOX_NET_BRIDGE, /* lo + a veth/TAP on the vmbox bridge (net/) */
  BOX_NET_TAP,    /* --net tap:NAME,...: an existing TAP device (kvm only) */
};

/* The box's one interface besides lo.  The backend only plugs a device in:
 * whoever made the TAP (the caller for BOX_NET_TAP, net/ for BRIDGE) owns
 * addressing on the host side.  Strings NULL when unset. */
struct box_net {
  enum box_net_mode mode;
  const char *tap;     /* TAP device name */
  const char *netns;   /* the TAP's network namespace: a path (/run/netns/X)
                        * or NULL = the caller's own */
  const char *address; /* the box's eth0 address, "10.0.0.2/24" */
  const char *gateway; /* default route via, "10.0.0.1" */
  const char *mac;     /* "02:..:..", NULL = derived from the box id */
};

struct box_limits {
  uint64_t memory;     /* bytes, 0 = unlimited */
  uint64_t cpu_millis; /* --cpus 1.5 -> 1500, 0 = unlimited */
  int64_t pids;        /* 0 = unlimited */
};

/* A process's stdio, as fds the caller (monitor) owns; the backend dups them
 * into the box and never closes the caller's copies.  -1 means /dev/null.
 * With tty set the three are ignored: the backend makes a pty inside the box
 * and hands its master side back (see box_proc_io). */
struct box_stdio {
  int in, out, err;
};

/* Everything that differs between two processes in the same box. */
struct box_process {
  char *const *argv; /* argv[0] is looked up in env's PATH inside the box */
  char *const *env;  /* "K=V"; NULL = just a default PATH */
  const char *cwd;   /* absolute inside the box; created if missing; NULL = "/" */
  uid_t uid;
  gid_t gid;
  const gid_t *groups; /* additional gids */
  size_t n_groups;
  bool tty;
  struct box_stdio stdio;
};

struct box_spec {
  const char *id;        /* [a-zA-Z0-9_.-]{1,64}: cgroup and log names */
  const char *image;     /* flattened ext4 image; never written */
  const char *state_dir; /* the box's own dir: overlay upper, files, pid */
  struct box_process proc;
  const char *hostname; /* NULL = first 12 chars of id */
  const struct box_mount *mounts;
  size_t n_mounts;
  const struct box_tmpfs *tmpfs;
  size_t n_tmpfs;
  bool read_only; /* --read-only: root not writable (tmpfs/-v still are) */
  struct box_limits limits;
  struct box_net net;
  unsigned timeout_sec; /* 0 = none; else killed after, exit 137, timed_out */
};

/* How a process ended, already in Docker's terms. */
struct box_exit {
  int code;       /* 0..255: the exit code, or 128+N for signal N */
  int signal;     /* N when killed by a signal, else 0 */
  bool oom;       /* the memory limit killed something in the box */
  bool timed_out; /* spec.timeout_sec ran out */
};

struct box_stats {
  uint64_t cpu_ns;    /* cpu time used by the whole box */
  uint64_t mem_bytes; /* memory charged to the box */
  uint64_t mem_limit; /* 0 = unlimited */
  uint64_t pids;      /* live tasks */
};

/* What start/exec hand back: the pty master when the process has a tty. */
struct box_proc_io {
  int pty_master; /* owned by the caller; -1 without tty */
};

/* One `vmbox cp`: between box_path and host_path, or a tar stream. */
struct box_cp {
  const char *name;      /* the box as the user named it, for messages */
  const char *image;     /* its disk image: a stopped box is remounted from it */
  const char *box_path;  /* absolute, inside the box */
  const char *host_path; /* absolute on the host; NULL: tar_fd instead */
  int tar_fd;            /* tar stream read (cp_in) or written (cp_out) */
  bool follow;           /* -L: follow a symlink SRC */
  bool archive;          /* -a: keep uid/gid (mode and times are always kept) */
};

struct box;      /* opaque, one per box, owned by the monitor */
struct box_proc; /* opaque, one per exec'd process */

struct backend_ops {
  const char *name;
  /* Prepares the root (cheap: no copy of the image) and the limits; nothing
   * runs yet.  The spec is copied: the caller may free it afterwards. */
  int (*create)(const struct box_spec *spec, struct box **out, vmbox_error_t *err);
  /* Runs the command.  Returns once it is exec'd; a command that cannot run
   * is an error whose exit code is 126 or 127. */
  int (*start)(struct box *b, struct box_proc_io *io, vmbox_error_t *err);
  /* Blocks until the command (the box) ends.  Once only. */
  int (*wait)(struct box *b, struct box_exit *out, vmbox_error_t *err);
  /* pollable fd that becomes readable when the box ends, for a monitor's
   * event loop; -1 if the backend has none.  Owned by the box. */
  int (*wait_fd)(struct box *b);
  /* An extra process in the running box with its own stdio/tty. */
  int (*exec)(struct box *b, const struct box_process *p, struct box_proc **out,
              struct box_proc_io *io, vmbox_error_t *err);
  int (*exec_wait)(struct box_proc *p, struct box_exit *out, vmbox_error_t *err);
  /* Frees an exec'd process's handle (killing it if it still runs). */
  void (*exec_free)(struct box_proc *p);
  /* Delivers sig to the command (PID 1 forwards it); SIGKILL ends the box. */
  int (*signal)(struct box *b, int sig, vmbox_error_t *err);
  int (*stats)(struct box *b, struct box_stats *out, vmbox_error_t *err);
  /* Kills what is left, removes cgroups, mounts and state; frees the handle.
   * Safe at any stage after create. */
  int (*delete)(struct box *b, vmbox_error_t *err);
  /* Frees the handle only, leaving cgroups and state for cleanup() (a box
   * still running dies with its monitor). */
  void (*release)(struct box *b);
  /* Cleans up after a monitor that died (kill -9): from the state dir alone. */
  int (*cleanup)(const char *id, const char *state_dir, vmbox_error_t *err);
  /* Memory+device snapshot and restore; NULL where not supported (yet). */
  int (*snapshot)(struct box *b, const char *dir, vmbox_error_t *err);
  int (*restore)(const struct box_spec *spec, const char *dir, struct box **out,
                 vmbox_error_t *err);
  /* `vmbox cp` out of / into a box, running or stopped, from any process
   * (no handle: the box's id and state dir say where it is).  A box's
   * writes outlive it until its state dir is removed, as a stopped docker
   * container's do.  NULL where not supported. */
  int (*cp_out)(const char *id, const char *state_dir, const struct box_cp *c, vmbox_error_t *err);
  int (*cp_in)(const char *id, const char *state_dir, const struct box_cp *c, vmbox_error_t *err);
  /* Image files were removed (rmi, prune): drops what the backend keeps for
   * images that no longer exist (ns: their mounts).  NULL: nothing kept. */
  void (*images_gone)(void);
};

/* Looks a backend up by its --backend name.  Unknown names and backends not
 * built yet are errors that say which ones exist. */
int backend__lookup(const char *name, const struct backend_ops **out, vmbox_error_t *err);
/* Calls images_gone of every backend built in. */
void backend__images_gone(void);
/* The default (--backend absent): "ns" for now. */
const char *backend__default_name(void);

/* Checks an id as box_spec.id wants it. */
bool backend__valid_id(const char *id);

/* For backends: makes <state_dir>/<name>, the backend's own directory
 * (state_dir too if missing).  *dir is always set, to "" when the directory
 * could not be made or already existed (another box's, or not cleaned up):
 * a delete after that must not remove it. */
int backend__own_dir(const struct box_spec *s, const char *name, char **dir, vmbox_error_t *err);

/* For backends: deep copies they keep in their handles (the caller's spec
 * may go away after create/exec). */
struct box_spec *backend__spec_dup(const struct box_spec *s);
void backend__spec_free(struct box_spec *s);
void backend__process_copy(struct box_process *dst, const struct box_process *src);
void backend__process_clear(struct box_process *p);

#endif
