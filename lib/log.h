/* Debug logging, off unless --debug: the library never prints otherwise. */
#ifndef VMBOX_LOG_H
#define VMBOX_LOG_H

#include <stdbool.h>

extern bool log__debug_enabled;
void log__debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A one-line warning on stderr ("vmbox: warning: ..."); never for -q output. */
void log__warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
