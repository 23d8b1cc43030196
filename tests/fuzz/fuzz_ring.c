/* libFuzzer: split virtqueues (backends/kvm/virtio/ring.c) over 64 KiB of
 * guest memory the input fills.  The first 8 bytes pick the queue size and
 * where its parts lie (legacy page frame or three free addresses); then
 * every chain the ring yields is read and written in full.  ASan flags any
 * access outside the buffer; a chain must never claim more than it holds. */
#include <stdlib.h>
#include <string.h>

#include "../../backends/kvm/virtio/ring.h"

#define MEM 65536

static uint16_t le16(const uint8_t *p)
{
  return p[0] | p[1] << 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static struct virtq_chain c;
  if (size < 8)
    return 0;
  uint8_t *mem = calloc(1, MEM);
  memcpy(mem, data + 8, size - 8 < MEM ? size - 8 : MEM);
  struct guest_mem m = {.host = mem, .size = MEM};
  struct virtq vq;
  uint16_t num = 1u << (data[0] % 10); /* 1 .. 512: 512 must be refused (max 256) */
  uint16_t max = data[1] & 1 ? 256 : num;
  int r = data[1] & 2
              ? virtq__setup_legacy(&vq, &m, num, max, data[2] % 16)
              : virtq__setup(&vq, &m, num, max, le16(data + 2), le16(data + 4), le16(data + 6));
  for (unsigned i = 0; r == 0 && i < 2u * num + 2; i++) {
    int p = virtq__pop(&vq, &m, &c);
    if (p <= 0)
      break;
    if (c.n > num || c.head >= num)
      abort();
    uint8_t tmp[1024];
    uint64_t in = 0, out = 0;
    for (unsigned k = 0; k < c.n; k++)
      *(c.buf[k].write ? &in : &out) += c.buf[k].len;
    if (in != c.in_len || out != c.out_len)
      abort();
    for (uint32_t off = 0; off < c.out_len && off < MEM; off += sizeof(tmp))
      virtq__read(&c, off, tmp, sizeof(tmp));
    memset(tmp, 0xa5, sizeof(tmp));
    for (uint32_t off = 0; off < c.in_len && off < MEM; off += sizeof(tmp))
      virtq__write(&c, off, tmp, sizeof(tmp));
    virtq__push(&vq, c.head, c.in_len);
    virtq__should_notify(&vq);
  }
  free(mem);
  return 0;
}
