/* The per-box monitor (conmon's job): a daemon process, one per box, that
 * owns the backend handle and the box's stdio.  It creates and starts the
 * box, copies its output to ROOT/boxes/ID/ctr.log (and to the caller of a
 * foreground `vmbox run`), forwards signals, records the exit in state.json,
 * deletes the backend state and, with --rm, the box.
 *
 * Other vmbox processes reach it with sigqueue(SIGRTMIN, value = signal
 * number) for `kill`/`stop`; they learn it ended from its pid (state.json
 * records pid and start time, see box__monitor_alive). */
#ifndef VMBOX_BOX_MONITOR_H
#define VMBOX_BOX_MONITOR_H

#include <stdbool.h>
#include <sys/types.h>

#include "../backends/backend.h"
#include "../lib/err.h"
#include "box.h"

struct monitor_opts {
  const struct backend_ops *ops;
  const struct box_spec *spec; /* proc.stdio is filled in by the monitor */
  const struct box_info *box;
  const char *root;
  bool detach;      /* -d: return once started; output only to the log */
  bool interactive; /* -i: the caller's stdin becomes the box's */
  bool auto_remove; /* --rm */
};

/* Forks the monitor (double fork, setsid) and waits for it: until the box
 * started (detach; *exit_code is then -1) or ended (*exit_code is the box's
 * status).  While it waits, SIGINT/SIGTERM/SIGHUP are forwarded to the box.
 * A box that could not start is an error carrying the 125/126/127 code. */
int monitor__launch(const struct monitor_opts *o, int *exit_code, vmbox_error_t *err);

/* Asks the monitor of a running box to deliver sig to the box. */
int monitor__signal(const struct box_info *b, int sig, vmbox_error_t *err);

/* Waits until the box's monitor has exited, up to timeout_ms (-1: forever).
 * Returns 1 when it is gone, 0 on timeout. */
int monitor__wait_gone(const struct box_info *b, int timeout_ms, vmbox_error_t *err);

#endif
