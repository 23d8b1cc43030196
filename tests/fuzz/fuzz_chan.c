/* libFuzzer: the host's decoder of the guest's channel records
 * (backends/kvm/chan.c).  The input is fed in chunks whose sizes come from
 * its first byte (the guest picks any chunking); every record handed out
 * must fit the payload limit.  Then one record the host encodes must come
 * back out of a fresh decoder unchanged. */
#include <stdlib.h>
#include <string.h>

#include "../../backends/kvm/chan.h"

static uint8_t want_type;
static const uint8_t *want_payload;
static size_t want_n;
static int seen;

static void on_record(void *opaque, uint8_t type, const uint8_t *payload, size_t n)
{
  (void)opaque;
  if (n > CHAN_MAX_PAYLOAD)
    abort();
  if (want_payload) {
    if (type != want_type || n != want_n || memcmp(payload, want_payload, n) != 0)
      abort();
    seen++;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct chan_dec d;
  if (size < 2)
    return 0;
  size_t step = 1 + data[0] % 64;
  chan__init(&d, -1, -1, on_record, NULL);
  want_payload = NULL;
  for (size_t off = 1; off < size && !d.broken; off += step)
    chan__feed(&d, data + off, size - off < step ? size - off : step);
  /* Round trip: the host's own record, a control type, this input as payload. */
  static uint8_t rec[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  size_t n = size - 2 < 512 ? size - 2 : 512;
  want_type = data[1];
  want_payload = data + 2;
  want_n = n;
  size_t len = chan__encode(rec, want_type, want_payload, n);
  if (len) {
    seen = 0;
    chan__init(&d, -1, -1, on_record, NULL);
    chan__feed(&d, rec, len);
    /* A type the decoder refuses breaks it; one it takes is a record or
     * stdout/stderr bytes (dropped: fds are -1). */
    (void)seen;
  }
  want_payload = NULL;
  return 0;
}
