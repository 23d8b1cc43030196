/* The host side of the kvm backend's channel framing (backends/kvm/chan.c):
 * records in any chunking, stdout/stderr apart, and a hostile guest that
 * lies about lengths or types breaks the channel instead of the host. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../backends/kvm/chan.h"
#include "tap.h"

struct seen {
  int n;
  uint8_t type[16];
  size_t len[16];
};

static void on_rec(void *opaque, uint8_t type, const uint8_t *p, size_t n)
{
  (void)p;
  struct seen *s = opaque;
  if (s->n < 16) {
    s->type[s->n] = type;
    s->len[s->n++] = n;
  }
}

static size_t rec(uint8_t *out, uint8_t type, const char *s, size_t n)
{
  out[0] = type;
  out[1] = (uint8_t)(n & 0xff);
  out[2] = (uint8_t)(n >> 8);
  memcpy(out + 3, s, n);
  return n + 3;
}

static char *slurp(int fd, size_t *n)
{
  static char buf[65536];
  *n = 0;
  ssize_t r;
  while ((r = read(fd, buf + *n, sizeof(buf) - *n)) > 0)
    *n += (size_t)r;
  return buf;
}

int main(void)
{
  int out[2], err[2];
  if (pipe2(out, O_NONBLOCK) < 0 || pipe2(err, O_NONBLOCK) < 0)
    return 1;
  struct seen s = {0};
  struct chan_dec d;
  chan__init(&d, out[1], err[1], on_rec, &s);

  uint8_t stream[256];
  size_t n = 0;
  n += rec(stream + n, CHAN_G_BOOTED, "123", 3);
  n += rec(stream + n, CHAN_G_STDOUT, "hello ", 6);
  n += rec(stream + n, CHAN_G_STDERR, "oops", 4);
  n += rec(stream + n, CHAN_G_STARTED, "", 0);
  n += rec(stream + n, CHAN_G_STDOUT, "world\0\r\n", 8);
  n += rec(stream + n, CHAN_G_EXIT, "\x03\x00\x00", 3);
  /* one byte at a time: the worst chunking a UART gives */
  bool ok = true;
  for (size_t i = 0; i < n; i++)
    ok = chan__feed(&d, stream + i, 1) && ok;
  TAP_OK(ok && !d.broken, "a byte-at-a-time stream decodes");
  size_t got;
  char *o = slurp(out[0], &got);
  TAP_OK(got == 14 && memcmp(o, "hello world\0\r\n", 14) == 0,
         "stdout bytes arrive in order, 8-bit clean");
  char *e = slurp(err[0], &got);
  TAP_OK(got == 4 && memcmp(e, "oops", 4) == 0, "stderr goes to its own fd");
  TAP_OK(s.n == 3 && s.type[0] == CHAN_G_BOOTED && s.type[1] == CHAN_G_STARTED &&
             s.type[2] == CHAN_G_EXIT && s.len[2] == 3,
         "control records reach the callback with their lengths");

  /* all at once gives the same */
  struct seen s2 = {0};
  chan__init(&d, out[1], err[1], on_rec, &s2);
  TAP_OK(chan__feed(&d, stream, n) && s2.n == 3, "a whole stream in one call decodes");
  slurp(out[0], &got);
  slurp(err[0], &got);

  /* a guest that claims more than a record may hold */
  struct seen s3 = {0};
  chan__init(&d, out[1], err[1], on_rec, &s3);
  uint8_t big[3] = {CHAN_G_STDOUT, 0xff, 0xff};
  TAP_OK(!chan__feed(&d, big, 3) && d.broken && strstr(d.why, "65535"),
         "an oversized length breaks the channel: %s", d.why);
  TAP_OK(!chan__feed(&d, stream, n) && s3.n == 0, "a broken channel delivers nothing more");
  slurp(out[0], &got);
  TAP_OK(got == 0, "no stdout after the break");

  /* unknown types, and random garbage never crash or over-read */
  chan__init(&d, out[1], err[1], on_rec, &s3);
  uint8_t bad[3] = {0x99, 1, 0};
  TAP_OK(!chan__feed(&d, bad, 3) && strstr(d.why, "unknown record type 153"),
         "an unknown type breaks it: %s", d.why);
  srand(7);
  int breaks = 0;
  for (int round = 0; round < 200; round++) {
    struct seen s4 = {0};
    chan__init(&d, -1, -1, on_rec, &s4);
    /* records may be 32 KiB: enough junk that one header surely lies */
    static uint8_t junk[1 << 18];
    for (size_t i = 0; i < sizeof(junk); i++)
      junk[i] = (uint8_t)rand();
    breaks += !chan__feed(&d, junk, sizeof(junk));
  }
  TAP_OK(breaks == 200, "random garbage is refused (%d of 200 rounds broke the channel)", breaks);

  /* the cp records reach the callback; the first type past them breaks */
  struct seen s6 = {0};
  chan__init(&d, -1, -1, on_rec, &s6);
  uint8_t cp[32];
  size_t cn = rec(cp, CHAN_G_DATA, "tar", 3);
  cn += rec(cp + cn, CHAN_G_DONE, "\0", 1);
  TAP_OK(chan__feed(&d, cp, cn) && s6.n == 2 && s6.type[0] == CHAN_G_DATA && s6.len[0] == 3 &&
             s6.type[1] == CHAN_G_DONE,
         "DATA and DONE records reach the callback");
  uint8_t next[3] = {CHAN_G_LAST + 1, 0, 0};
  TAP_OK(!chan__feed(&d, next, 3) && strstr(d.why, "unknown record type"),
         "type %d (past the last) breaks it", CHAN_G_LAST + 1);

  /* the largest legal record passes */
  static uint8_t maxrec[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  struct seen s5 = {0};
  chan__init(&d, -1, -1, on_rec, &s5);
  chan__put_hdr(maxrec, CHAN_G_LOG, CHAN_MAX_PAYLOAD);
  TAP_OK(chan__feed(&d, maxrec, sizeof(maxrec)) && s5.n == 1 && s5.len[0] == CHAN_MAX_PAYLOAD,
         "a record of CHAN_MAX_PAYLOAD bytes is fine");

  uint8_t enc[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD + 1];
  TAP_OK(chan__encode(enc, CHAN_H_SIGNAL, "\x0f", 1) == 4 && enc[0] == CHAN_H_SIGNAL &&
             enc[1] == 1 && enc[2] == 0 && enc[3] == 15,
         "host records encode as [type][len u16 LE][payload]");
  TAP_OK(chan__encode(enc, CHAN_H_STDIN, maxrec, CHAN_MAX_PAYLOAD + 1) == 0,
         "an oversized host record is refused");
  return tap__done();
}
