/* exec: an extra process in a running box.  A helper forked from the
 * monitor goes into the box's cgroups, joins all its namespaces at once
 * through the box's pidfd, and runs the same init loop as PID 1 around the
 * new process, which lands inside the box's pid namespace.  The helper is
 * the handle: waiting for it is waiting for the process. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

static void exec_child(struct box *b, const struct box_process *p, struct launch *l)
{
  vmbox_error_t err = NULL;
  launch__wait_go(l);
  /* One setns through the pidfd joins them all atomically; the pid ns
   * applies to our children, so init__run's fork lands inside. */
  int fl =
      CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP;
  if (b->map.active) {
    /* Rootless: PID 1 is not dumpable, so its pidfd would need host
     * CAP_SYS_PTRACE; the monitor opened the namespaces while it could.
     * Same cgroup as PID 1 (none of its own): a new cgroup ns is its view. */
    if (userns__join_all(b->nsfd, &err) < 0 || unshare(CLONE_NEWCGROUP) < 0) {
      if (err == NULL)
        vmbox_error_sys(&err, "new cgroup namespace");
      init__fail(l->report[1], &err);
    }
  } else if (setns(b->pidfd, fl) < 0) {
    vmbox_error_sys(&err, "join the box's namespaces");
    init__fail(l->report[1], &err);
  }
  struct ns_exec x = {p, l->report[1], l->console[1], &b->seccomp};
  init__run(&x);
}

int ns__exec(struct box *b, const struct box_process *p, struct box_proc **out,
             struct box_proc_io *io, vmbox_error_t *err)
{
  struct launch l;
  if (io)
    io->pty_master = -1;
  if (b->state != BOX_RUNNING)
    return vmbox_error_set(err, 0, "box %s: not running", b->spec->id);
  if (p->argv == NULL || p->argv[0] == NULL)
    return vmbox_error_set(err, 0, "box %s: exec: no command", b->spec->id);
  if (launch__open(&l, p->tty, err) < 0)
    return -1;
  pid_t pid = fork();
  if (pid == 0) {
    launch__side(&l, true);
    exec_child(b, p, &l);
  }
  int e = errno;
  launch__side(&l, false);
  if (pid < 0) {
    launch__close(&l);
    return vmbox_error_set(err, e, "box %s: exec: fork", b->spec->id);
  }
  struct box_proc *bp = xcalloc(1, sizeof(*bp));
  bp->box = b;
  bp->pid = pid;
  int r = cgroup__enter(&b->cg, pid, err);
  if (r == 0)
    r = launch__go(&l, "exec", io, err);
  launch__close(&l);
  if (r < 0) {
    ns__exec_free(bp);
    return -1;
  }
  *out = bp;
  return 0;
}

int ns__exec_wait(struct box_proc *p, struct box_exit *out, vmbox_error_t *err)
{
  (void)err;
  if (!p->done) {
    int st = 0;
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
      ;
    init__decode_status(st, &p->exit);
    p->exit.oom = cgroup__oom_kills(&p->box->cg) > 0;
    p->done = true;
  }
  *out = p->exit;
  return 0;
}

void ns__exec_free(struct box_proc *p)
{
  if (p == NULL)
    return;
  if (!p->done) {
    struct box_exit e;
    kill(p->pid, SIGKILL);
    ns__exec_wait(p, &e, NULL);
  }
  free(p);
}
