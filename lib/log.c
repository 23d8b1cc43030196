#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

bool log__debug_enabled;

void log__debug(const char *fmt, ...)
{
  if (!log__debug_enabled)
    return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(stderr, "[%5ld.%03ld] ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

void log__warn(const char *fmt, ...)
{
  fputs("vmbox: warning: ", stderr);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}
