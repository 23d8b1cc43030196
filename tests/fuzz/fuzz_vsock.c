/* libFuzzer: the virtio-vsock device (backends/kvm/virtio/vsock.c) with real
 * sockets on a plain buffer of guest memory.  Each input gets a fresh
 * device whose driver (this harness) has set up the three queues and 16 rx
 * buffers, and a host client that asked for guest port 5000.  The input is
 * then a list of guest packets, 18 control bytes + payload each:
 *   op (any, 0..8), a selector (wrong CIDs / type, header split over
 *   descriptors, client or server writes, a device reset, a raw u32 len),
 *   source and destination ports (picked among the live ones or any),
 *   len, buf_alloc, fwd_cnt, flags, and the payload bytes.
 * After each packet the device takes a turn and the harness recycles what
 * it sent the guest.  Guest connects to port 6000 reach a listening socket
 * (accepted and written to on demand); others are refused. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../backends/kvm/virtio/pci.h"
#include "../../backends/kvm/virtio/vsock.h"

#define MEM (512 * 1024)
#define QN VSOCK_QUEUE_SIZE
#define NRX 16
#define RXB 0x10000u
#define RXSZ (VSOCK_HDR_LEN + 4096)
#define TXA 0x30000u /* one packet at a time: header + up to 64 KiB + slack */

static char dir[] = "/tmp/vmbox-fuzz-vsock-XXXXXX";
static char lpath[100], uds[100];
static int lfd, srv;

static int unix_listen(const char *path)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0)
    abort();
  return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc, (void)argv;
  if (!mkdtemp(dir))
    abort();
  snprintf(lpath, sizeof(lpath), "%s/l", dir);
  snprintf(uds, sizeof(uds), "%s/g", dir);
  char g[120];
  snprintf(g, sizeof(g), "%s_6000", uds);
  lfd = unix_listen(lpath);
  srv = unix_listen(g);
  return 0;
}

static uint8_t *mem;
static struct virtio_pci *vp;
static uint16_t rx_avail, tx_avail, rx_seen;

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = v, p[1] = v >> 8;
}
static uint32_t le32(const uint8_t *p)
{
  return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint8_t *q_desc(int q)
{
  return mem + (1 + 3 * q) * 4096;
}

static void io(unsigned off, uint32_t v, unsigned size)
{
  uint8_t b[4] = {v, v >> 8, v >> 16, v >> 24};
  virtio_pci__io(vp, off, true, b, size);
}

static void desc(int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
  uint8_t *d = q_desc(q) + 16u * i;
  for (int k = 0; k < 8; k++)
    d[k] = addr >> (8 * k);
  for (int k = 0; k < 4; k++)
    d[8 + k] = len >> (8 * k);
  put16(d + 12, flags), put16(d + 14, next);
}

static void kick(int q, uint16_t *avail, uint16_t head)
{
  uint8_t *a = q_desc(q) + 16 * QN;
  put16(a + 4 + 2 * (*avail % QN), head);
  put16(a + 2, ++*avail);
  io(VIRTIO_PCI_QUEUE_NOTIFY, q, 2);
}

static void rings(void)
{
  memset(mem, 0, RXB);
  rx_avail = tx_avail = rx_seen = 0;
  for (int q = 0; q < VSOCK_NQUEUES; q++) {
    io(VIRTIO_PCI_QUEUE_SEL, q, 2);
    io(VIRTIO_PCI_QUEUE_PFN, 1 + 3 * q, 4);
  }
  for (uint16_t i = 0; i < NRX; i++) {
    desc(VSOCK_Q_RX, i, RXB + i * 0x1100u, RXSZ, VIRTQ_DESC_F_WRITE, 0);
    kick(VSOCK_Q_RX, &rx_avail, i);
  }
}

/* Hands back the rx buffers the device used, as a driver would. */
static void recycle(void)
{
  uint8_t *used = q_desc(VSOCK_Q_RX) + 8192;
  uint16_t idx = used[2] | used[3] << 8;
  for (; rx_seen != idx; rx_seen++) {
    uint32_t id = le32(used + 4 + 8 * (rx_seen % QN));
    if (id >= NRX)
      abort(); /* the device made up a head */
    kick(VSOCK_Q_RX, &rx_avail, id);
  }
}

static uint32_t port(uint8_t b)
{
  static const uint32_t ports[] = {5000, 6000, VSOCK_HOST_PORT_BASE, VSOCK_HOST_PORT_BASE + 1,
                                   5001};
  return b < 5 * 40 ? ports[b % 5] : b * 2654435761u;
}

static void packet(const uint8_t *d, const uint8_t *payload, uint32_t n)
{
  uint8_t sel = d[1];
  struct vsock_hdr h = {.src_cid = sel & 1 ? 4 : 3,
                        .dst_cid = sel & 2 ? 7 : VSOCK_HOST_CID,
                        .src_port = port(d[2]),
                        .dst_port = port(d[3]),
                        .len = sel & 0x40 ? le32(d + 4) : n,
                        .type = sel & 4 ? 2 : VSOCK_TYPE_STREAM,
                        .op = d[0] % 9,
                        .flags = d[16],
                        .buf_alloc = le32(d + 8),
                        .fwd_cnt = le32(d + 12)};
  vsock_hdr__encode(&h, mem + TXA);
  memcpy(mem + TXA + VSOCK_HDR_LEN, payload, n);
  uint32_t total = VSOCK_HDR_LEN + n, cut = sel & 8 ? d[17] % total : 0;
  if (cut) { /* header and payload split at any byte */
    desc(VSOCK_Q_TX, 0, TXA, cut, VIRTQ_DESC_F_NEXT, 1);
    desc(VSOCK_Q_TX, 1, TXA + cut, total - cut, 0, 0);
  } else {
    desc(VSOCK_Q_TX, 0, TXA, total, 0, 0);
  }
  kick(VSOCK_Q_TX, &tx_avail, 0);
}

static void host_side(uint8_t sel, int client, int *accepted)
{
  static const char junk[3000] = "host bytes";
  if (sel & 0x10)
    (void)!send(client, junk, sizeof(junk), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sel & 0x20) {
    if (*accepted < 0)
      *accepted = accept4(srv, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (*accepted >= 0)
      (void)!send(*accepted, junk, 100, MSG_DONTWAIT | MSG_NOSIGNAL);
  }
  char sink[65536]; /* the host reads what the guest sent it, now and then */
  if (sel & 0x80) {
    (void)!recv(client, sink, sizeof(sink), MSG_DONTWAIT);
    if (*accepted >= 0)
      (void)!recv(*accepted, sink, sizeof(sink), MSG_DONTWAIT);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  mem = calloc(1, MEM);
  struct guest_mem gm = {.host = mem, .size = MEM};
  struct vsock *v = vsock__new(3, lfd, uds, &gm, NULL);
  if (!v)
    abort();
  vp = vsock__vp(v);
  rings();
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", lpath);
  int client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), accepted = -1;
  if (connect(client, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
      write(client, "CONNECT 5000\n", 13) != 13)
    abort();
  vsock__poll(v, 0);
  recycle();
  for (size_t off = 0; off + 18 <= size;) {
    const uint8_t *d = data + off;
    uint32_t n = d[4] | d[5] << 8;
    off += 18;
    if (n > size - off)
      n = size - off;
    if (d[1] == 0xff && d[0] == 0xff) { /* a driver reset, then the rings again */
      io(VIRTIO_PCI_STATUS, 0, 1);
      rings();
    } else {
      packet(d, data + off, n);
    }
    off += n;
    host_side(d[1], client, &accepted);
    vsock__poll(v, 0);
    recycle();
  }
  close(client);
  if (accepted >= 0)
    close(accepted);
  int fd;
  while ((fd = accept4(srv, NULL, NULL, SOCK_CLOEXEC)) >= 0)
    close(fd);
  vsock__free(v);
  free(mem);
  return 0;
}
