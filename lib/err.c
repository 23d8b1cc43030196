#include "err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char *vformat(const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    return NULL;
  return s;
}

int vmbox_error_set(vmbox_error_t *err, int errno_, const char *fmt, ...)
{
  if (err == NULL)
    return -1;
  /* The first (innermost) error wins; later sets are context, not causes. */
  if (*err != NULL)
    return -1;
  struct vmbox_error *e = xcalloc(1, sizeof(*e));
  va_list ap;
  va_start(ap, fmt);
  e->msg = vformat(fmt, ap);
  va_end(ap);
  e->errno_ = errno_;
  e->exit_code = EXIT_VMBOX_FAILED;
  *err = e;
  return -1;
}

int vmbox_error_wrap(vmbox_error_t *err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  char *prefix = vformat(fmt, ap);
  va_end(ap);
  char *joined = NULL;
  if (prefix && asprintf(&joined, "%s: %s", prefix, (*err)->msg ? (*err)->msg : "") >= 0) {
    free((*err)->msg);
    (*err)->msg = joined;
  }
  free(prefix);
  return -1;
}

int vmbox_error_hint(vmbox_error_t *err, const char *fmt, ...)
{
  if (err == NULL || *err == NULL)
    return -1;
  va_list ap;
  va_start(ap, fmt);
  free((*err)->hint);
  (*err)->hint = vformat(fmt, ap);
  va_end(ap);
  return -1;
}

int vmbox_error_code(vmbox_error_t *err, int exit_code)
{
  if (err && *err)
    (*err)->exit_code = exit_code;
  return -1;
}

void vmbox_error_free(vmbox_error_t *err)
{
  if (err == NULL || *err == NULL)
    return;
  free((*err)->msg);
  free((*err)->hint);
  free(*err);
  *err = NULL;
}

char *vmbox_error_string(const struct vmbox_error *e)
{
  char *s = NULL;
  if (e->errno_)
    xasprintf(&s, "%s: %s", e->msg ? e->msg : "error", strerror(e->errno_));
  else
    s = xstrdup(e->msg ? e->msg : "error");
  return s;
}

int vmbox_error_report(vmbox_error_t *err)
{
  if (err == NULL || *err == NULL)
    return EXIT_VMBOX_FAILED;
  char *s = vmbox_error_string(*err);
  fprintf(stderr, "vmbox: %s\n", s);
  if ((*err)->hint)
    fprintf(stderr, "hint: %s\n", (*err)->hint);
  free(s);
  int code = (*err)->exit_code;
  vmbox_error_free(err);
  return code;
}
