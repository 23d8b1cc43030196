/* The ns backend: a box is a set of fresh namespaces (mount, pid, ipc, uts,
 * net, cgroup; and user, when not root) around an overlay of the read-only,
 * loop-mounted ext4 image (rootless: the image unpacked once, unpack.c).
 * PID 1 is a tiny init forked from the monitor (it never execs the host
 * binary); the command runs as its child after pivot_root.
 *
 * Files: ns.c ops table, create/start/wait/delete; launch.c the monitor <->
 * child channels; exec.c extra processes; rootfs.c loop+overlay+pivot and
 * safe paths; dev.c /dev /proc /sys and masks; etc.c hostname/hosts/resolv
 * and lo; cgroup.c limits (v2, v1 fallback); caps.c; seccomp.c; tty.c;
 * init.c PID 1 and the exec of the command; userns.c and unpack.c the
 * rootless parts (id maps, the unpacked image). */
#ifndef VMBOX_BACKENDS_NS_H
#define VMBOX_BACKENDS_NS_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../../lib/err.h"
#include "../backend.h"

extern const struct backend_ops ns__backend;

/* ---- cgroup.c ------------------------------------------------------------- */
enum { CGROUP_MAX_DIRS = 5 };
struct cgroup {
  bool v2;
  size_t n;
  char *dirs[CGROUP_MAX_DIRS]; /* v2: one; v1: memory, pids, cpu, cpuacct (+unified) */
  char *ctrl[CGROUP_MAX_DIRS]; /* controller of each dir (v1) */
};
int cgroup__create(struct cgroup *cg, const char *id, const struct box_limits *l,
                   vmbox_error_t *err);
int cgroup__enter(const struct cgroup *cg, pid_t pid, vmbox_error_t *err);
uint64_t cgroup__oom_kills(const struct cgroup *cg);
int cgroup__stats(const struct cgroup *cg, struct box_stats *st, vmbox_error_t *err);
/* Kills every task, removes the dirs (waiting for the tasks to go). */
int cgroup__destroy(struct cgroup *cg, vmbox_error_t *err);
/* Finds the dirs of an existing box again (cleanup after a dead monitor). */
void cgroup__locate(struct cgroup *cg, const char *id);
void cgroup__free(struct cgroup *cg);

/* ---- ns.c: the handles (opaque outside backends/ns) ------------------------ */
enum box_state { BOX_CREATED, BOX_RUNNING, BOX_EXITED };

/* ---- userns.c: rootless boxes ------------------------------------------------ */
enum { NS_FDS = 6 }; /* user, mnt, pid, ipc, uts, net */
struct idmap {
  bool active; /* not root: the box gets its own user namespace */
  uid_t uid;   /* the host user and group, root in the box */
  gid_t gid;
  /* The user's ranges in /etc/subuid and /etc/subgid: ids 1..n in the box
   * map there (newuidmap/newgidmap).  n 0: the single-uid map. */
  uint32_t subuid, nsubuid, subgid, nsubgid;
};
void userns__plan(struct idmap *m);
/* Monitor side, child cloned but not yet let go. */
int userns__write_maps(const struct idmap *m, pid_t pid, vmbox_error_t *err);
/* Runs fn in a child, as root of a fresh user namespace with map M, where
 * files of subuid owners are the user's to write (directly without
 * ranges).  Errors come back as values. */
int userns__run(const struct idmap *m, int (*fn)(void *arg, vmbox_error_t *err), void *arg,
                vmbox_error_t *err);
int userns__rm_rf(const struct idmap *m, const char *path, vmbox_error_t *err);
/* Makes everything under PATH the user's (root's in the box) again, so the
 * user can remove it without a user namespace.  No-op without ranges. */
int userns__give_back(const struct idmap *m, const char *path, vmbox_error_t *err);
int userns__open_all(pid_t pid, int fds[NS_FDS], vmbox_error_t *err);
/* Exec helper side: joins the box's namespaces through the fds above. */
int userns__join_all(const int fds[NS_FDS], vmbox_error_t *err);
void userns__close_all(int fds[NS_FDS]);

/* ---- unpack.c: the rootless root ---------------------------------------------- */
/* Unpacks IMAGE once into IMAGE-minus-.ext4 + ".rootfs" (cached, shared by
 * every rootless box of that image); *lock_out is held shared while the box
 * lives, so prune leaves the tree alone. */
int unpack__tree(const char *image, const struct idmap *m, char **tree_out, int *lock_out,
                 vmbox_error_t *err);

struct box {
  struct box_spec *spec;
  char *dir;      /* <state_dir>/ns */
  int lower_fd;   /* imgmnt__clone's mount, until the box has it */
  char *loop_dev; /* else this, held open by loop_fd */
  int loop_fd;
  struct idmap map;
  char *tree;       /* rootless: the unpacked image, the overlay's lower layer */
  int tree_lock;    /* rootless: flock held shared on the tree */
  int nsfd[NS_FDS]; /* rootless: the box's namespaces, for exec */
  struct cgroup cg;
  enum box_state state;
  pid_t pid; /* PID 1, as the monitor sees it */
  int pidfd;
  uint64_t deadline_ns;
  struct box_exit exit;
  struct sock_fprog seccomp;
};

struct box_proc {
  struct box *box;
  pid_t pid; /* the exec helper, parent of the process in the box */
  bool done;
  struct box_exit exit;
};

/* ---- launch.c --------------------------------------------------------------- */
/* The channels between the monitor and a process it starts in a box. */
struct launch {
  int report[2];  /* child -> monitor: a struct ns_report, or EOF at exec */
  int sync[2];    /* monitor -> child: go, now that it is in the cgroups */
  int console[2]; /* child -> monitor: the pty master (tty only) */
};
int launch__open(struct launch *l, bool tty, vmbox_error_t *err);
void launch__close(struct launch *l);
/* Keeps one side's ends: the child's (child) or the monitor's. */
void launch__side(struct launch *l, bool child);
/* Child side: waits for the monitor's go (exits if the monitor is gone). */
void launch__wait_go(struct launch *l);
/* Reads a child's report (init__fail): 0 when the pipe closed empty. */
int launch__read_report(int fd, const char *what, vmbox_error_t *err);
/* Monitor side, child in its cgroups: lets it go and learns how it went. */
int launch__go(struct launch *l, const char *what, struct box_proc_io *io, vmbox_error_t *err);

/* ---- exec.c ----------------------------------------------------------------- */
int ns__exec(struct box *b, const struct box_process *p, struct box_proc **out,
             struct box_proc_io *io, vmbox_error_t *err);
int ns__exec_wait(struct box_proc *p, struct box_exit *out, vmbox_error_t *err);
void ns__exec_free(struct box_proc *p);

/* ---- cp.c ------------------------------------------------------------------- */
int ns__cp_out(const char *id, const char *state_dir, const struct box_cp *c, vmbox_error_t *err);
int ns__cp_in(const char *id, const char *state_dir, const struct box_cp *c, vmbox_error_t *err);

/* ---- rootfs.c -------------------------------------------------------------- */
/* Finds the loop device other boxes of IMAGE use, or attaches IMAGE to a
 * free one: read-only and autoclear, so the device goes away with its last
 * mount.  Keep *fd open until the box mounted it. */
int rootfs__loop_attach(const char *image, char **dev_out, int *fd_out, vmbox_error_t *err);
/* In the box's mount namespace, cwd = state dir: the image at lower/ (the
 * detached mount LOWER_FD from imgmnt__clone when >= 0, else ext4 from
 * LOOP_DEV, or, rootless, the unpacked TREE bound read-only), overlay at
 * rootfs/.  Returns an O_PATH fd of rootfs/. */
int rootfs__mount(int lower_fd, const char *loop_dev, const char *tree, vmbox_error_t *err);

/* ---- imgmnt.c: image mounts kept in vmbox's own mount namespace ----------- */
/* A detached read-only clone of IMAGE's ext4 mount (mounted once per image,
 * kept past every box) for move_mount into a box; an fd, or -1 with *err
 * (the caller then mounts per box from a loop device). */
int imgmnt__clone(const char *image, vmbox_error_t *err);
/* Unmounts the images whose files are gone; quietly nothing when there is
 * no image namespace (rootless, never used). */
void imgmnt__gc(void);
/* Opens PATH (absolute, inside the root) as O_PATH, never leaving the root
 * through symlinks or "..", creating what is missing: dirs, and the last
 * component as a dir (is_dir) or empty file. */
int rootfs__mkpath(int rootfd, const char *path, bool is_dir, vmbox_error_t *err);
/* Same, without creating: -1 with errno ENOENT when absent. */
int rootfs__open(int rootfd, const char *path);
/* "/proc/self/fd/N" for mounting onto an O_PATH fd. */
const char *rootfs__fdpath(int fd, char buf[static 32]);
/* -v and --tmpfs mounts. */
int rootfs__user_mounts(int rootfd, const struct box_spec *s, vmbox_error_t *err);
/* pivot_root into rootfs/ and drop the old root; read_only remounts it ro. */
int rootfs__pivot(int rootfd, bool read_only, vmbox_error_t *err);

/* ---- dev.c ----------------------------------------------------------------- */
int dev__mount_all(int rootfd, vmbox_error_t *err); /* /proc /dev /sys + masks */

/* ---- etc.c ----------------------------------------------------------------- */
/* Writes hostname, hosts, resolv.conf into the box's /etc (before pivot). */
int etc__install(int rootfd, const char *hostname, vmbox_error_t *err);
/* Brings lo up in the box's net namespace. */
int etc__lo_up(vmbox_error_t *err);

/* ---- caps.c ---------------------------------------------------------------- */
/* Docker's default set for root; nothing for other users.  Bounding set
 * reduced, inheritable and ambient cleared.  Call as root, switches ids. */
int caps__drop_and_switch(const struct box_process *p, vmbox_error_t *err);
/* Keeps only `keep` everywhere (PID 1 needs just CAP_KILL to forward). */
int caps__limit(uint64_t keep, vmbox_error_t *err);
#define CAPS_DOCKER_DEFAULT 0xa80425fbULL

/* ---- seccomp.c ------------------------------------------------------------- */
/* Compiles the default profile to BPF once, in the monitor, so each box
 * process only loads it (no libseccomp work between fork and exec). */
int seccomp__compile_default(struct sock_fprog *out, vmbox_error_t *err);
/* Loads it; no_new_privs must already be set. */
int seccomp__load(const struct sock_fprog *prog, vmbox_error_t *err);

/* ---- tty.c ----------------------------------------------------------------- */
/* Box side (after pivot, session leader): a pty from the box's devpts as
 * controlling tty and stdio; the master goes to the monitor over sock. */
int tty__setup_child(int sock, vmbox_error_t *err);
/* Monitor side: -1 when the process died before sending (see its report). */
int tty__recv_master(int sock, int *out, vmbox_error_t *err);

/* ---- init.c ---------------------------------------------------------------- */
/* What a child reports up the error pipe before dying. */
struct ns_report {
  int exit_code;
  int errno_;
  char msg[480];
  char hint[160];
};
/* What the last steps before a box process's execve need. */
struct ns_exec {
  const struct box_process *p;
  int report_fd;                    /* CLOEXEC: EOF tells the monitor "exec'd" */
  int console_fd;                   /* -1 without tty */
  const struct sock_fprog *seccomp; /* compiled by the monitor at create */
};
/* Writes err (freed) to fd and _exits with its exit code. */
__attribute__((noreturn)) void init__fail(int fd, vmbox_error_t *err);
/* Becomes the command: stdio, cwd, ids, caps, seccomp, execve.  Never
 * returns; failures go up report_fd with 126/127/125. */
__attribute__((noreturn)) void init__exec(const struct ns_exec *x);
/* PID 1 (or an exec helper): forks the command, forwards signals to it,
 * reaps everything, exits with the command's status. */
__attribute__((noreturn)) void init__run(const struct ns_exec *x);
/* Replaces PID 1's inherited command line (the host's) by "vmbox-init". */
void init__hide_cmdline(void);
/* Decodes a wait status into Docker terms. */
void init__decode_status(int status, struct box_exit *out);

#endif
