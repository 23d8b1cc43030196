#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void util__freep(void *p)
{
  free(*(void **)p);
}
void util__closep(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}
void util__fclosep(FILE **f)
{
  if (*f)
    fclose(*f);
  *f = NULL;
}
void util__strvfreep(char ***v)
{
  strv_free(*v);
}

static void oom(void)
{
  fputs("vmbox: out of memory\n", stderr);
  abort();
}

void *xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (!p)
    oom();
  return p;
}
void *xcalloc(size_t n, size_t sz)
{
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p)
    oom();
  return p;
}
void *xrealloc(void *p, size_t n)
{
  p = realloc(p, n ? n : 1);
  if (!p)
    oom();
  return p;
}
char *xstrdup(const char *s)
{
  char *p = strdup(s ? s : "");
  if (!p)
    oom();
  return p;
}
char *xstrndup(const char *s, size_t n)
{
  char *p = strndup(s, n);
  if (!p)
    oom();
  return p;
}
int xasprintf(char **out, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int r = vasprintf(out, fmt, ap);
  va_end(ap);
  if (r < 0)
    oom();
  return r;
}
char *util__fmt(const char *fmt, ...)
{
  char *s;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    oom();
  va_end(ap);
  return s;
}

size_t strv_len(char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}
void strv_push(char ***v, const char *s)
{
  size_t n = strv_len(*v);
  *v = xrealloc(*v, (n + 2) * sizeof(char *));
  (*v)[n] = xstrdup(s);
  (*v)[n + 1] = NULL;
}
void strv_free(char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free(v[i]);
  free(v);
}
char **strv_dup(char *const *v)
{
  char **out = xcalloc(strv_len(v) + 1, sizeof(char *));
  for (size_t i = 0; v && v[i]; i++)
    out[i] = xstrdup(v[i]);
  return out;
}

bool util__has_prefix(const char *s, const char *prefix)
{
  return strncmp(s, prefix, strlen(prefix)) == 0;
}
bool util__has_suffix(const char *s, const char *suffix)
{
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

int util__mkdir_p(const char *path, mode_t mode, vmbox_error_t *err)
{
  cleanup_free char *p = xstrdup(path);
  for (char *s = p + 1; *s; s++) {
    if (*s != '/')
      continue;
    *s = '\0';
    if (mkdir(p, mode) < 0 && errno != EEXIST)
      return vmbox_error_sys(err, "mkdir %s", p);
    *s = '/';
  }
  if (mkdir(p, mode) < 0 && errno != EEXIST)
    return vmbox_error_sys(err, "mkdir %s", p);
  return 0;
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)st;
  (void)ftw;
  if (flag == FTW_DNR) { /* unreadable dir: util__rm_rf opens it up */
    if (rmdir(path) == 0 || errno == ENOENT)
      return 0;
    if (errno == ENOTEMPTY)
      errno = EACCES;
    return -1;
  }
  int r = (flag == FTW_DP || flag == FTW_D) ? rmdir(path) : unlink(path);
  return (r < 0 && errno != ENOENT) ? -1 : 0;
}

static int open_up_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  (void)ftw;
  if ((flag == FTW_D || flag == FTW_DNR) && (st->st_mode & 0700) != 0700)
    chmod(path, (st->st_mode & 07777) | 0700);
  return 0;
}

int util__rm_rf(const char *path, vmbox_error_t *err)
{
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : vmbox_error_sys(err, "stat %s", path);
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(path) < 0 && errno != ENOENT)
      return vmbox_error_sys(err, "remove %s", path);
    return 0;
  }
  /* Without root, a dir lacking rwx for its owner (overlayfs's work/work is
   * 0000) stops the walk: open such dirs up, one more level per pass. */
  for (int pass = 0; nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0; pass++)
    if (errno != EACCES || pass == 16 || nftw(path, open_up_cb, 32, FTW_PHYS | FTW_MOUNT) < 0)
      return vmbox_error_sys(err, "remove %s", path);
  return 0;
}

int util__read_file(const char *path, char **out, size_t *len, vmbox_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "open %s", path);
  size_t cap = 4096, n = 0;
  cleanup_free char *buf = xmalloc(cap);
  for (;;) {
    if (n + 1 >= cap)
      buf = xrealloc(buf, cap *= 2);
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return vmbox_error_sys(err, "read %s", path);
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  buf[n] = '\0';
  if (len)
    *len = n;
  *out = steal_pointer(&buf);
  return 0;
}

int util__fsync_dir(const char *dir)
{
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = fsync(fd);
  close(fd);
  return r;
}

static int write_file_renamed(const char *path, const void *buf, size_t len, mode_t mode,
                              bool durable, vmbox_error_t *err)
{
  cleanup_free char *tmp = util__fmt("%s.tmp.%d", path, (int)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0)
    return vmbox_error_sys(err, "create %s", tmp);
  const char *p = buf;
  size_t left = len;
  while (left > 0) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return vmbox_error_set(err, e, "write %s", path);
    }
    p += w;
    left -= (size_t)w;
  }
  if ((durable && fsync(fd) < 0) || close(fd) < 0) {
    int e = errno;
    unlink(tmp);
    return vmbox_error_set(err, e, "write %s", path);
  }
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    return vmbox_error_set(err, e, "rename %s", path);
  }
  cleanup_free char *d = xstrdup(path);
  if (durable)
    util__fsync_dir(dirname(d));
  return 0;
}

int util__write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode,
                            vmbox_error_t *err)
{
  return write_file_renamed(path, buf, len, mode, true, err);
}

int util__write_file_replace(const char *path, const void *buf, size_t len, mode_t mode,
                             vmbox_error_t *err)
{
  return write_file_renamed(path, buf, len, mode, false, err);
}

int util__lock_file(const char *path, bool exclusive, vmbox_error_t *err)
{
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return vmbox_error_sys(err, "open lock %s", path);
  while (flock(fd, exclusive ? LOCK_EX : LOCK_SH) < 0) {
    if (errno == EINTR)
      continue;
    int e = errno;
    close(fd);
    return vmbox_error_set(err, e, "lock %s", path);
  }
  return fd;
}

char *util__sha256_digest(const void *buf, size_t len)
{
  unsigned char md[32];
  unsigned int mdlen = 0;
  EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL);
  char *out = xmalloc(7 + 64 + 1);
  memcpy(out, "sha256:", 7);
  for (int i = 0; i < 32; i++)
    sprintf(out + 7 + 2 * i, "%02x", md[i]);
  return out;
}

const char *util__digest_hex(const char *digest)
{
  if (digest == NULL || strncmp(digest, "sha256:", 7) != 0)
    return NULL;
  const char *hex = digest + 7;
  size_t n = 0;
  for (; hex[n]; n++)
    if (!isxdigit((unsigned char)hex[n]) || isupper((unsigned char)hex[n]))
      return NULL;
  return n == 64 ? hex : NULL;
}

void util__human_size(uint64_t bytes, char *buf, size_t len)
{
  static const char *units[] = {"B", "kB", "MB", "GB", "TB"};
  double v = (double)bytes;
  size_t u = 0;
  while (v >= 1000.0 && u + 1 < ARRAY_SIZE(units)) {
    v /= 1000.0;
    u++;
  }
  if (u == 0)
    snprintf(buf, len, "%lluB", (unsigned long long)bytes);
  else
    snprintf(buf, len, "%.3g%s", v, units[u]);
}

int util__parse_size(const char *s, uint64_t *out, vmbox_error_t *err)
{
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0)
    return vmbox_error_set(err, 0, "invalid size %s (use e.g. 512m, 2g)", s);
  uint64_t mult = 1;
  switch (tolower((unsigned char)*end)) {
  case '\0': break;
  case 'b': mult = 1; break;
  case 'k': mult = 1ULL << 10; break;
  case 'm': mult = 1ULL << 20; break;
  case 'g': mult = 1ULL << 30; break;
  case 't': mult = 1ULL << 40; break;
  default: return vmbox_error_set(err, 0, "invalid size %s (use e.g. 512m, 2g)", s);
  }
  if (*end && end[1] && !(tolower((unsigned char)end[1]) == 'b' && end[2] == '\0') &&
      !(tolower((unsigned char)end[1]) == 'i' && tolower((unsigned char)end[2]) == 'b' && !end[3]))
    return vmbox_error_set(err, 0, "invalid size %s (use e.g. 512m, 2g)", s);
  *out = (uint64_t)(v * (double)mult);
  return 0;
}

uint64_t util__now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
