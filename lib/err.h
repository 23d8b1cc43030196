/* Errors are values: a function that fails fills a vmbox_error and returns -1.
 * Callers add context on the way up; the CLI prints the chain once and picks
 * the exit code.  Modelled on crun's libcrun_error_t. */
#ifndef VMBOX_ERR_H
#define VMBOX_ERR_H

#include <stdarg.h>

/* Docker's exit codes for failures of vmbox itself and of the command. */
enum {
  EXIT_VMBOX_FAILED = 125,
  EXIT_CANNOT_RUN = 126,
  EXIT_NOT_FOUND = 127,
};

struct vmbox_error {
  int errno_;    /* 0 when the failure is not a system call's */
  int exit_code; /* what the CLI should exit with; 125 by default */
  char *msg;     /* full message, context prefixes already joined */
  char *hint;    /* optional "what to do" line, shown after the message */
};
typedef struct vmbox_error *vmbox_error_t;

/* Sets *err (if err is non-NULL) and returns -1.  errno_ 0 means no strerror. */
int vmbox_error_set(vmbox_error_t *err, int errno_, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, with errno as the cause. */
#define vmbox_error_sys(err, ...) vmbox_error_set((err), errno, __VA_ARGS__)
/* Prefixes context ("pull alpine: ") to an existing error; returns -1. */
int vmbox_error_wrap(vmbox_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Attaches a hint ("what to do"); returns -1. */
int vmbox_error_hint(vmbox_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Overrides the exit code (e.g. 126/127); returns -1. */
int vmbox_error_code(vmbox_error_t *err, int exit_code);
void vmbox_error_free(vmbox_error_t *err);
/* Prints "vmbox: MSG[: strerror]\n[hint]" to stderr, frees it, returns exit code. */
int vmbox_error_report(vmbox_error_t *err);
/* Formats the message with strerror as one string (caller frees). */
char *vmbox_error_string(const struct vmbox_error *e);

#endif
