/* virtio-vsock (virtio 1.x, 5.10) with Firecracker's host side: guest
 * streams map to AF_UNIX stream sockets on the host (see vmm.h,
 * vmm_config.vsock_*).  Exposed apart from the VM so unit tests and fuzzers
 * drive the device on a plain buffer and real sockets, without KVM. */
#ifndef VMBOX_KVM_VIRTIO_VSOCK_H
#define VMBOX_KVM_VIRTIO_VSOCK_H

#include <stdint.h>

#include "../vmm.h"
#include "ring.h"

#define VIRTIO_ID_VSOCK 19
/* vsock has no transitional id; the legacy driver binds any 0x1000-0x103f
 * and reads the device type from the subsystem id (virtio 1.x, 4.1.2). */
#define VIRTIO_VSOCK_LEGACY_DEVICE 0x1012
#define PCI_CLASS_COMM_OTHER 0x078000

#define VSOCK_HOST_CID 2
#define VSOCK_QUEUE_SIZE 256
enum { VSOCK_Q_RX, VSOCK_Q_TX, VSOCK_Q_EVENT, VSOCK_NQUEUES };

/* struct virtio_vsock_hdr: packed, little endian, 44 bytes. */
#define VSOCK_HDR_LEN 44
#define VSOCK_MAX_PKT (64 * 1024) /* Linux's VIRTIO_VSOCK_MAX_PKT_BUF_SIZE */
#define VSOCK_TYPE_STREAM 1
enum vsock_op {
  VSOCK_OP_INVALID,
  VSOCK_OP_REQUEST,
  VSOCK_OP_RESPONSE,
  VSOCK_OP_RST,
  VSOCK_OP_SHUTDOWN,
  VSOCK_OP_RW,
  VSOCK_OP_CREDIT_UPDATE,
  VSOCK_OP_CREDIT_REQUEST,
};
#define VSOCK_SHUTDOWN_RCV 1  /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2 /* the sender will send no more */

/* What the device offers each connection (our buf_alloc), and so the most
 * guest bytes it ever holds for one; times VSOCK_MAX_CONNS bounds it all. */
#define VSOCK_BUF_ALLOC (128 * 1024)
#define VSOCK_MAX_CONNS 256
#define VSOCK_LINE_MAX 32               /* "CONNECT 4294967295\n" and then some */
#define VSOCK_LINE_TIMEOUT_MS 5000      /* a client must send CONNECT within */
#define VSOCK_REQ_TIMEOUT_MS 10000      /* the guest must answer a REQUEST within */
#define VSOCK_QUEUE_TIMEOUT_MS 60000    /* a REQUEST may wait this long for the driver */
#define VSOCK_CLOSE_TIMEOUT_MS 10000    /* to flush the last guest bytes to a client */
#define VSOCK_HOST_PORT_BASE (1u << 30) /* host ports of host-initiated streams */

struct vsock_hdr {
  uint64_t src_cid, dst_cid;
  uint32_t src_port, dst_port, len;
  uint16_t type, op;
  uint32_t flags, buf_alloc, fwd_cnt;
};
void vsock_hdr__decode(const uint8_t raw[VSOCK_HDR_LEN], struct vsock_hdr *h);
void vsock_hdr__encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_LEN]);
/* NULL when a guest packet's header is acceptable (from guest_cid to the
 * host, a stream op, len within the chain's `room` payload bytes and
 * VSOCK_MAX_PKT), else why not. */
const char *vsock_hdr__check(const struct vsock_hdr *h, uint64_t guest_cid, uint32_t room);
/* Parses a client's "CONNECT <port>\n" (line without the \n): 0 or -1. */
int vsock__parse_connect(const char *line, uint32_t *port);

/* The device without a VM: transport set up on mem, not on a bus. */
struct vsock;
struct vsock *vsock__new(uint32_t cid, int listen_fd, const char *uds, const struct guest_mem *mem,
                         vmbox_error_t *err);
struct virtio_pci *vsock__vp(struct vsock *v);
/* One turn of the I/O loop: waits up to timeout_ms for a socket or a kick,
 * then serves the queues and the sockets.  -1 only when epoll fails. */
int vsock__poll(struct vsock *v, int timeout_ms);
/* The queue work alone (tx packets, then rx), for fuzzers; vp.lock held. */
void vsock__process(struct vsock *v);
/* Live connections (tests). */
unsigned vsock__nconns(struct vsock *v);
/* Closes every client socket (not listen_fd) and frees; NULL is fine. */
void vsock__free(struct vsock *v);

#endif
