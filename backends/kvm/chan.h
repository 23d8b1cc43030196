/* Host side of the channel to vmbox-init (framing in backends/guest/proto.h;
 * one vsock connection per process, or COM2).  The decoder is fed whatever
 * bytes the guest wrote, in any chunking; it never trusts a length or a type
 * from the guest: an unknown type or an oversized record breaks the channel
 * for good (the box then ends with a clear error), and a record's bytes are
 * only ever copied into a fixed buffer. */
#ifndef VMBOX_KVM_CHAN_H
#define VMBOX_KVM_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../guest/proto.h"

/* Control records (everything but STDOUT/STDERR) go to this callback. */
typedef void (*chan_record_fn)(void *opaque, uint8_t type, const uint8_t *payload, size_t n);

struct chan_dec {
  int out_fd, err_fd; /* STDOUT/STDERR payloads go here; -1 drops them */
  chan_record_fn on_record;
  void *opaque;
  uint8_t buf[CHAN_HDR_LEN + CHAN_MAX_PAYLOAD];
  size_t len;
  bool broken;
  char why[96]; /* set when broken */
  uint64_t records, out_bytes, err_bytes;
};

void chan__init(struct chan_dec *d, int out_fd, int err_fd, chan_record_fn fn, void *opaque);
/* Feeds guest bytes; returns false once the channel is broken (d->why). */
bool chan__feed(struct chan_dec *d, const uint8_t *buf, size_t n);
/* Encodes one host->guest record into out (room for CHAN_HDR_LEN + n);
 * returns its size, 0 when n is too large. */
size_t chan__encode(uint8_t *out, uint8_t type, const void *payload, size_t n);
/* Writes one host->guest record to a blocking fd; -1 when the peer is gone
 * or n is too large. */
int chan__send(int fd, uint8_t type, const void *payload, size_t n);

#endif
