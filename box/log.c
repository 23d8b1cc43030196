/* ctr.log records (see log.h). */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/util.h"

static int write_all(int fd, const char *p, size_t n)
{
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int log__append(int fd, char stream, const char *buf, size_t len)
{
  while (len > 0) {
    const char *nl = memchr(buf, '\n', len);
    size_t n = nl ? (size_t)(nl - buf) + 1 : len;
    char hdr[32];
    int h = snprintf(hdr, sizeof(hdr), "%c %zu\n", stream, n);
    /* One buffer, one write: O_APPEND keeps records whole. */
    cleanup_free char *rec = xmalloc((size_t)h + n);
    memcpy(rec, hdr, (size_t)h);
    memcpy(rec + h, buf, n);
    if (write_all(fd, rec, (size_t)h + n) < 0)
      return -1;
    buf += n;
    len -= n;
  }
  return 0;
}

size_t log__parse(const char *buf, size_t len, struct log_record **out, size_t *used)
{
  size_t n = 0, cap = 0, off = 0;
  *out = NULL;
  while (off < len) {
    const char *nl = memchr(buf + off, '\n', len - off);
    if (nl == NULL || (buf[off] != 'o' && buf[off] != 'e') || buf[off + 1] != ' ')
      break;
    char *end;
    unsigned long long l = strtoull(buf + off + 2, &end, 10);
    if (end != nl)
      break;
    size_t data = (size_t)(nl - buf) + 1;
    if (l > len - data)
      break;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      *out = xrealloc(*out, cap * sizeof(**out));
    }
    (*out)[n++] = (struct log_record){buf[off], buf + data, (size_t)l};
    off = data + (size_t)l;
  }
  *used = off;
  return n;
}
