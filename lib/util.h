/* Small helpers every module uses: owned-resource cleanup, allocation that
 * cannot return NULL, atomic file writes and advisory locks. */
#ifndef VMBOX_UTIL_H
#define VMBOX_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"

/* Owned resources are released when they go out of scope (as crun does). */
void util__freep(void *p);
void util__closep(int *fd);
void util__fclosep(FILE **f);
void util__strvfreep(char ***v);
#define cleanup_free __attribute__((cleanup(util__freep)))
#define cleanup_close __attribute__((cleanup(util__closep)))
#define cleanup_fclose __attribute__((cleanup(util__fclosep)))
#define cleanup_strv __attribute__((cleanup(util__strvfreep)))

/* Hands ownership out of a cleanup variable. */
#define steal_pointer(pp)                                                                          \
  ({                                                                                               \
    __typeof__(*(pp)) _p = *(pp);                                                                  \
    *(pp) = NULL;                                                                                  \
    _p;                                                                                            \
  })
#define steal_fd(fdp)                                                                              \
  ({                                                                                               \
    int _fd = *(fdp);                                                                              \
    *(fdp) = -1;                                                                                   \
    _fd;                                                                                           \
  })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Out of memory is not an error we can carry: abort with a message. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *util__fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* NULL-terminated string vectors. */
size_t strv_len(char *const *v);
void strv_push(char ***v, const char *s);
void strv_free(char **v);
char **strv_dup(char *const *v);

bool util__has_prefix(const char *s, const char *prefix);
bool util__has_suffix(const char *s, const char *suffix);

/* mkdir -p with mode for every created component. */
int util__mkdir_p(const char *path, mode_t mode, vmbox_error_t *err);
/* rm -rf; missing path is success. */
int util__rm_rf(const char *path, vmbox_error_t *err);
/* Reads a whole file; *len may be NULL.  Adds a terminating NUL. */
int util__read_file(const char *path, char **out, size_t *len, vmbox_error_t *err);
/* Writes via PATH.tmp.PID + fsync + rename so readers never see half a file. */
int util__write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode,
                            vmbox_error_t *err);
/* Same temp file + rename, without the two fsyncs (5-15 ms each on a busy
 * disk): readers never see half a file, but after a host crash the file may
 * be the previous version (or, for a new name, empty).  For state a reboot
 * makes stale anyway: a box's state while its monitor lives, exit notes. */
int util__write_file_replace(const char *path, const void *buf, size_t len, mode_t mode,
                             vmbox_error_t *err);
/* fsyncs a directory so a rename inside it survives a crash. */
int util__fsync_dir(const char *dir);

/* Advisory whole-file lock (flock) on PATH, created if missing. Returns the fd. */
int util__lock_file(const char *path, bool exclusive, vmbox_error_t *err);

/* sha256 helpers over libcrypto: "sha256:<64 hex>". */
char *util__sha256_digest(const void *buf, size_t len);
/* Validates "sha256:<64 lowercase hex>" and returns a pointer to the hex part. */
const char *util__digest_hex(const char *digest);

/* Human sizes: "12.3MB" as docker prints them (powers of 1000). */
void util__human_size(uint64_t bytes, char *buf, size_t len);
/* Parses "10g", "512m", "1024" (bytes); powers of 1024 as docker does. */
int util__parse_size(const char *s, uint64_t *out, vmbox_error_t *err);

/* Monotonic time in ns, for progress and benchmarks. */
uint64_t util__now_ns(void);

#endif
