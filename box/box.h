/* Boxes on disk: what `vmbox run` creates and every other box command reads.
 *
 *   ROOT/boxes.lock               flock: held while a name is claimed or a box removed
 *   ROOT/boxes/ID/config.json     what the box is: spec, image, name, created, backend
 *   ROOT/boxes/ID/state.json      where it is: status, monitor pid, exit code, reason
 *   ROOT/boxes/ID/lock            flock: held while state.json is rewritten
 *   ROOT/boxes/ID/ctr.log         the box's output, framed per stream (box/log.h)
 *
 * Library code: no printing.  State files are written temp+rename. */
#ifndef VMBOX_BOX_H
#define VMBOX_BOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../lib/err.h"

#define BOX_ID_LEN 64

enum box_status { BOX_STATUS_CREATED, BOX_STATUS_RUNNING, BOX_STATUS_EXITED };

struct box_state {
  enum box_status status;
  pid_t monitor_pid;
  uint64_t monitor_start; /* /proc/PID/stat starttime: guards against pid reuse */
  int exit_code;
  bool oom, timed_out;
  int64_t started, finished; /* unix seconds, 0 = not yet */
  char *reason;              /* why it ended when not on its own ("monitor died") */
};

/* One box as read from disk. */
struct box_info {
  char *id;
  char *name;
  char *dir;
  json_t *config; /* config.json as written by box__create */
  struct box_state state;
};

void box_info__free(struct box_info *b);
void box_info__list_free(struct box_info *v, size_t n);

const char *box__status_name(enum box_status s);

/* Creates ROOT/boxes/ID with config.json (config gets id, name, created added)
 * and a "created" state.  name NULL: a docker-like "adjective_name" is picked.
 * A name in use is an error (exit 125) naming the box that has it. */
int box__create(const char *root, const char *name, json_t *config, struct box_info *out,
                vmbox_error_t *err);

/* Finds a box by full id, name, or unique id prefix and refreshes its state
 * (box__refresh).  Returns 1 found, 0 not found, -1 on error (ambiguous). */
int box__find(const char *root, const char *key, struct box_info *out, vmbox_error_t *err);
/* Like box__find, but "not found" is an error: "No such box: KEY". */
int box__get(const char *root, const char *key, struct box_info *out, vmbox_error_t *err);
/* Every box, oldest first, states refreshed. */
int box__list(const char *root, struct box_info **out, size_t *n, vmbox_error_t *err);
/* Rereads state.json. */
int box__reload(struct box_info *b, vmbox_error_t *err);

/* Rewrites state.json under the box lock. */
int box__state_write(const struct box_info *b, vmbox_error_t *err);
/* A box whose state says created/running but whose monitor is gone (kill -9)
 * is marked exited (137, reason "monitor died") and its backend cleaned up. */
int box__refresh(struct box_info *b, vmbox_error_t *err);
bool box__monitor_alive(const struct box_state *s);
/* /proc/PID/stat starttime, 0 if the process is gone. */
uint64_t box__proc_start(pid_t pid);

/* Deletes the box's directory (the caller made sure nothing runs). */
int box__remove(const char *root, const struct box_info *b, vmbox_error_t *err);
/* The same in two steps, so a caller can answer in between: once this
 * returns the box is gone for every lookup and from boxes/; its files wait
 * in *trash (NULL when already removed) for util__rm_rf. */
int box__remove_begin(const char *root, const struct box_info *b, char **trash, vmbox_error_t *err);

/* The stable JSON form (`inspect`, `ps --format json`): id, name, image,
 * image_id, backend, created, command, auto_remove, state{...}, config{...}. */
json_t *box__to_json(const struct box_info *b);
/* "2024-01-02T03:04:05Z", or "" for 0 (thread-local buffer). */
const char *box__rfc3339(int64_t t);
/* The command line as one string, words joined by spaces (caller frees). */
char *box__command(const struct box_info *b);

/* exits.c: a --rm box's exit code, kept a while after the box is gone for
 * a `vmbox wait` that was waiting on it.  read: 1 found, 0 not. */
void box__exit_note_write(const char *root, const char *id, int code);
int box__exit_note_read(const char *root, const char *id, int *code);

/* Path of a file in the box dir (caller frees). */
char *box__path(const struct box_info *b, const char *file);

#endif
