/* ROOT/boxes/ID/ctl.sock: how `vmbox exec` reaches the monitor, which alone
 * holds the backend handle.  A SOCK_SEQPACKET unix socket; the request is
 * one message (JSON: argv, env, cwd, uid, gid) carrying the client's
 * stdin/stdout/stderr as SCM_RIGHTS, so the process writes straight to the
 * client.  The reply is one line: "X CODE" (exit status) or "E CODE\tMSG". */
#ifndef VMBOX_BOX_CTL_H
#define VMBOX_BOX_CTL_H

#include <jansson.h>
#include <stddef.h>

#include "../backends/backend.h"
#include "../lib/err.h"
#include "box.h"

/* Monitor side: binds ctl.sock in dir.  Returns the listening fd. */
int ctl__listen(const char *dir, vmbox_error_t *err);
/* Monitor side: accepts one request and serves it in a detached child (the
 * monitor's event loop never blocks on an exec).  The child closes the drop
 * fds first: the caller's stdout or report pipe would otherwise stay open
 * as long as the exec runs. */
void ctl__serve(int listen_fd, const struct backend_ops *ops, struct box *handle, const int *drop,
                size_t n_drop);

/* Client side: runs req in the box with fds as its stdio; *code is its status. */
int ctl__exec(const struct box_info *b, json_t *req, const int fds[3], int *code,
              vmbox_error_t *err);

#endif
