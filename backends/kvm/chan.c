/* The channel framing, host side (see chan.h). */
#include "chan.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

void chan__init(struct chan_dec *d, int out_fd, int err_fd, chan_record_fn fn, void *opaque)
{
  memset(d, 0, sizeof(*d));
  d->out_fd = out_fd;
  d->err_fd = err_fd;
  d->on_record = fn;
  d->opaque = opaque;
}

static bool known_type(uint8_t t)
{
  return t >= CHAN_G_BOOTED && t <= CHAN_G_LAST;
}

/* The box's reader may be slow or gone (a closed pipe): output is the
 * box's, a failed write only drops it. */
static void copy_out(int fd, const uint8_t *p, size_t n)
{
  while (fd >= 0 && n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    p += w;
    n -= (size_t)w;
  }
}

static void deliver(struct chan_dec *d, uint8_t type, const uint8_t *p, size_t n)
{
  d->records++;
  if (type == CHAN_G_STDOUT) {
    d->out_bytes += n;
    copy_out(d->out_fd, p, n);
  } else if (type == CHAN_G_STDERR) {
    d->err_bytes += n;
    copy_out(d->err_fd, p, n);
  } else if (d->on_record) {
    d->on_record(d->opaque, type, p, n);
  }
}

static bool breaks(struct chan_dec *d, const char *fmt, unsigned a, unsigned b)
{
  d->broken = true;
  d->len = 0;
  snprintf(d->why, sizeof(d->why), fmt, a, b);
  return false;
}

bool chan__feed(struct chan_dec *d, const uint8_t *buf, size_t n)
{
  while (n && !d->broken) {
    /* The header first, then exactly the payload it announces. */
    size_t want = CHAN_HDR_LEN;
    if (d->len >= CHAN_HDR_LEN) {
      size_t plen = (size_t)d->buf[1] | (size_t)d->buf[2] << 8;
      want = CHAN_HDR_LEN + plen;
    }
    size_t take = want - d->len < n ? want - d->len : n;
    memcpy(d->buf + d->len, buf, take);
    d->len += take;
    buf += take;
    n -= take;
    if (d->len == CHAN_HDR_LEN) {
      size_t plen = (size_t)d->buf[1] | (size_t)d->buf[2] << 8;
      if (!known_type(d->buf[0]))
        return breaks(d, "unknown record type %u (len %u)", d->buf[0], (unsigned)plen);
      if (plen > CHAN_MAX_PAYLOAD)
        return breaks(d, "record type %u claims %u bytes", d->buf[0], (unsigned)plen);
      want = CHAN_HDR_LEN + plen;
    }
    if (d->len >= CHAN_HDR_LEN && d->len == want) {
      deliver(d, d->buf[0], d->buf + CHAN_HDR_LEN, d->len - CHAN_HDR_LEN);
      d->len = 0;
    }
  }
  return !d->broken;
}

size_t chan__encode(uint8_t *out, uint8_t type, const void *payload, size_t n)
{
  if (n > CHAN_MAX_PAYLOAD)
    return 0;
  chan__put_hdr(out, type, (uint16_t)n);
  if (n)
    memcpy(out + CHAN_HDR_LEN, payload, n);
  return CHAN_HDR_LEN + n;
}

/* Host -> guest records go out whole; a short write means the peer is gone. */
int chan__send(int fd, uint8_t type, const void *payload, size_t n)
{
  uint8_t hdr[CHAN_HDR_LEN];
  if (n > CHAN_MAX_PAYLOAD)
    return -1;
  chan__put_hdr(hdr, type, (uint16_t)n);
  struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, n}};
  size_t left = sizeof(hdr) + n;
  int i = 0;
  while (left) {
    ssize_t w = writev(fd, iov + i, 2 - i);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    left -= (size_t)w;
    while (i < 2 && (size_t)w >= iov[i].iov_len) {
      w -= (ssize_t)iov[i].iov_len;
      iov[i++].iov_len = 0;
    }
    if (i < 2) {
      iov[i].iov_base = (uint8_t *)iov[i].iov_base + w;
      iov[i].iov_len -= (size_t)w;
    }
  }
  return 0;
}
