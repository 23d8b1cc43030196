/* libFuzzer: virtio-net frame handling (backends/kvm/virtio/net.c).  The
 * input is [features u32][avail tx u8][avail rx u8][rx frame len u16] then
 * guest memory (64 KiB): a 16-entry legacy tx queue at page 0 and an rx
 * queue at page 2, descriptors and buffers all from the input.  Tx frames go
 * to one end of an AF_UNIX datagram socketpair standing in for the TAP
 * (packet semantics, like a TAP); rx delivers a frame taken from the input.
 * Any chain must end sent, dropped or with the queue broken, never with an
 * access outside guest memory or the frame. */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../backends/kvm/virtio/net.h"

#define MEM 65536
#define QN 16
#define HDR 8

static int tap[2];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc, (void)argv;
  if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap) < 0)
    abort();
  int big = 1 << 20;
  setsockopt(tap[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  return 0;
}

static void set_avail(uint8_t *mem, const struct virtq *vq, uint16_t n)
{
  mem[vq->avail_gpa + 2] = n & 0xff;
  mem[vq->avail_gpa + 3] = n >> 8;
}

static void tx(struct virtq *vq, const struct guest_mem *m, uint32_t features)
{
  static struct virtq_chain c;
  static uint8_t sink[VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME];
  int r, n = 0;
  while ((r = virtq__pop(vq, m, &c)) > 0) {
    int sent = virtio_net__tx(tap[0], &c, features);
    if (sent && (c.out_len < VIRTIO_NET_HDR_LEN + ETH_HDR_LEN ||
                 c.out_len > VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME))
      abort(); /* a frame the checks should have dropped */
    if (sent && recv(tap[1], sink, sizeof(sink), 0) != (ssize_t)c.out_len)
      abort();
    virtq__push(vq, c.head, 0);
    if (++n > QN)
      abort();
  }
}

static void rx(struct virtq *vq, const struct guest_mem *m, uint32_t features, const uint8_t *frame,
               uint32_t len)
{
  static struct virtq_chain c;
  uint8_t *copy = malloc(len ? len : 1); /* exact size: ASan sees overreads */
  memcpy(copy, frame, len);
  int r, n = 0;
  while ((r = virtq__pop(vq, m, &c)) > 0) {
    uint32_t used = virtio_net__rx(&c, copy, len, features);
    if (used > c.in_len || (used && used != len))
      abort();
    virtq__push(vq, c.head, used);
    if (++n > QN)
      abort();
  }
  free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < HDR)
    return 0;
  uint32_t features;
  uint16_t flen;
  memcpy(&features, data, 4);
  memcpy(&flen, data + 6, 2);
  features &= VIRTIO_NET_FEATURES;
  uint8_t *mem = calloc(1, MEM);
  size_t body = size - HDR < MEM ? size - HDR : MEM;
  memcpy(mem, data + HDR, body);
  struct guest_mem m = {.host = mem, .size = MEM};
  struct virtq txq, rxq;
  if (virtq__setup_legacy(&txq, &m, QN, QN, 0) < 0 || virtq__setup_legacy(&rxq, &m, QN, QN, 2) < 0)
    abort();
  set_avail(mem, &txq, data[4] % (QN + 2));
  set_avail(mem, &rxq, data[5] % (QN + 2));
  tx(&txq, &m, features);
  /* The rx frame: the input's tail, as a TAP would hand it over. */
  uint32_t len = flen % (body + 1);
  rx(&rxq, &m, features, data + size - len, len);
  struct virtio_net_hdr h;
  if (size >= HDR + VIRTIO_NET_HDR_LEN)
    virtio_net__hdr_parse(data + HDR, flen, features, &h);
  (void)virtio_net__offloads(features);
  free(mem);
  return 0;
}
