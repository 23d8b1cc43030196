/* backends/kvm/virtio/vsock.c on a plain buffer standing in for guest RAM:
 * the test is the guest driver (rx/tx rings through the legacy transport)
 * and the host clients (real AF_UNIX sockets), with no KVM.  It checks the
 * packet rules, both connection directions, credit in both directions,
 * shutdown and reset, and what a hostile guest gets (RST, a broken queue),
 * with ASan watching every access. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../backends/kvm/virtio/pci.h"
#include "../../backends/kvm/virtio/vsock.h"
#include "tap.h"

#define MEM_SIZE (4u << 20)
#define QN VSOCK_QUEUE_SIZE
#define RXB 0x100000u /* rx buffers: 64 x 8 KiB */
#define RXSZ (VSOCK_HDR_LEN + 4096)
#define NRX 64
#define TXH 0x180000u /* tx headers: 16 x 64 */
#define TXP 0x200000u /* tx payloads: 16 x 64 KiB */
#define CID 3

static uint8_t *mem;
static struct guest_mem gm;
static struct vsock *v;
static struct virtio_pci *vp;
static uint16_t rx_avail, tx_avail, rx_seen, tx_slot;
static char dir[] = "/tmp/vmbox-test-vsock-XXXXXX";
static char lpath[128], uds[128];
static int lfd;

/* --- the guest driver ------------------------------------------------------------ */

static uint8_t *q_desc(int q)
{
  return mem + (1 + 3 * q) * 4096;
}
static uint8_t *q_avail(int q)
{
  return q_desc(q) + 16 * QN;
}
static uint8_t *q_used(int q)
{
  return q_desc(q) + 8192;
}

static void put16(uint8_t *p, uint16_t x)
{
  x = htole16(x), memcpy(p, &x, 2);
}
static uint16_t get16(const uint8_t *p)
{
  uint16_t x;
  memcpy(&x, p, 2);
  return le16toh(x);
}
static uint32_t get32(const uint8_t *p)
{
  uint32_t x;
  memcpy(&x, p, 4);
  return le32toh(x);
}

static void desc(int q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
  uint8_t *d = q_desc(q) + 16u * i;
  addr = htole64(addr), len = htole32(len);
  memcpy(d, &addr, 8), memcpy(d + 8, &len, 4), put16(d + 12, flags), put16(d + 14, next);
}

static void io16(unsigned off, uint16_t val)
{
  uint8_t b[2] = {val & 0xff, val >> 8};
  virtio_pci__io(vp, off, true, b, 2);
}

static void io32(unsigned off, uint32_t val)
{
  uint8_t b[4] = {val, val >> 8, val >> 16, val >> 24};
  virtio_pci__io(vp, off, true, b, 4);
}

static void kick(int q, uint16_t *avail, uint16_t head)
{
  put16(q_avail(q) + 4 + 2 * (*avail % QN), head);
  put16(q_avail(q) + 2, ++*avail);
  io16(VIRTIO_PCI_QUEUE_NOTIFY, q);
}

static void rx_add(uint16_t i)
{
  desc(VSOCK_Q_RX, i, RXB + i * 8192u, RXSZ, VIRTQ_DESC_F_WRITE, 0);
  kick(VSOCK_Q_RX, &rx_avail, i);
}

static void rings_init(void)
{
  memset(mem, 0, RXB);
  rx_avail = tx_avail = rx_seen = tx_slot = 0;
  for (int q = 0; q < VSOCK_NQUEUES; q++) {
    io16(VIRTIO_PCI_QUEUE_SEL, q);
    io32(VIRTIO_PCI_QUEUE_PFN, 1 + 3 * q);
  }
  for (uint16_t i = 0; i < NRX; i++)
    rx_add(i);
}

static void turn(void)
{
  vsock__poll(v, 10);
}

static void tx(uint32_t src, uint32_t dst, uint16_t op, uint32_t flags, uint32_t buf_alloc,
               uint32_t fwd, const void *data, uint32_t len)
{
  struct vsock_hdr h = {.src_cid = CID,
                        .dst_cid = VSOCK_HOST_CID,
                        .src_port = src,
                        .dst_port = dst,
                        .len = len,
                        .type = VSOCK_TYPE_STREAM,
                        .op = op,
                        .flags = flags,
                        .buf_alloc = buf_alloc,
                        .fwd_cnt = fwd};
  uint16_t s = tx_slot++ % 16;
  vsock_hdr__encode(&h, mem + TXH + 64 * s);
  desc(VSOCK_Q_TX, 2 * s, TXH + 64 * s, VSOCK_HDR_LEN, len ? VIRTQ_DESC_F_NEXT : 0, 2 * s + 1);
  if (len) {
    memcpy(mem + TXP + 65536u * s, data, len);
    desc(VSOCK_Q_TX, 2 * s + 1, TXP + 65536u * s, len, 0, 0);
  }
  kick(VSOCK_Q_TX, &tx_avail, 2 * s);
  turn();
}

static uint8_t got_data[65536];

/* The next packet the device sent the guest (polling up to ~2 s). */
static bool rx(struct vsock_hdr *h)
{
  for (int k = 0; k < 100 && get16(q_used(VSOCK_Q_RX) + 2) == rx_seen; k++)
    turn();
  if (get16(q_used(VSOCK_Q_RX) + 2) == rx_seen)
    return false;
  const uint8_t *e = q_used(VSOCK_Q_RX) + 4 + 8 * (rx_seen % QN);
  uint32_t id = get32(e), len = get32(e + 4);
  rx_seen++;
  if (id >= NRX || len < VSOCK_HDR_LEN)
    return false;
  vsock_hdr__decode(mem + RXB + id * 8192u, h);
  memcpy(got_data, mem + RXB + id * 8192u + VSOCK_HDR_LEN, h->len);
  rx_add(id);
  return len == VSOCK_HDR_LEN + h->len && h->src_cid == VSOCK_HOST_CID && h->dst_cid == CID;
}

static bool rx_op(struct vsock_hdr *h, uint16_t op)
{
  return rx(h) && h->op == op;
}

/* --- host clients ------------------------------------------------------------------ */

static int client(const char *line)
{
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, lpath);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
    abort();
  if (line && write(fd, line, strlen(line)) != (ssize_t)strlen(line))
    abort();
  return fd;
}

/* Reads up to n bytes while turning the device; returns the count (-1: EOF first). */
static ssize_t client_read(int fd, char *buf, size_t n)
{
  size_t got = 0;
  for (int k = 0; k < 200 && got < n; k++) {
    turn();
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) <= 0)
      continue;
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0)
      return got ? (ssize_t)got : -1;
    got += r;
  }
  return got;
}

/* A host-initiated stream the guest accepted; *hport gets the host port. */
static int established(uint32_t gport, uint32_t buf_alloc, uint32_t *hport)
{
  char line[32];
  snprintf(line, sizeof(line), "CONNECT %u\n", gport);
  int fd = client(line);
  struct vsock_hdr h;
  if (!rx_op(&h, VSOCK_OP_REQUEST) || h.dst_port != gport)
    return -1;
  *hport = h.src_port;
  tx(gport, h.src_port, VSOCK_OP_RESPONSE, 0, buf_alloc, 0, NULL, 0);
  char ok[32] = {0}, want[32];
  int n = snprintf(want, sizeof(want), "OK %u\n", h.src_port);
  if (client_read(fd, ok, n) != n || strcmp(ok, want) != 0)
    return -1;
  return fd;
}

/* --- tests ------------------------------------------------------------------------- */

static void test_header(void)
{
  struct vsock_hdr h = {.src_cid = CID,
                        .dst_cid = 2,
                        .src_port = 1234,
                        .dst_port = 0xfffffff0,
                        .len = 7,
                        .type = 1,
                        .op = VSOCK_OP_RW,
                        .flags = 3,
                        .buf_alloc = 262144,
                        .fwd_cnt = 99},
                   d;
  uint8_t raw[VSOCK_HDR_LEN];
  vsock_hdr__encode(&h, raw);
  vsock_hdr__decode(raw, &d);
  bool same = h.src_cid == d.src_cid && h.dst_cid == d.dst_cid && h.src_port == d.src_port &&
              h.dst_port == d.dst_port && h.len == d.len && h.type == d.type && h.op == d.op &&
              h.flags == d.flags && h.buf_alloc == d.buf_alloc && h.fwd_cnt == d.fwd_cnt;
  TAP_OK(same && raw[16] == 0xd2 && raw[17] == 0x04 && raw[30] == 5,
         "header: little-endian packed layout round-trips");
  TAP_OK(!vsock_hdr__check(&h, CID, 7), "header: a good RW passes");
  d = h, d.src_cid = 4;
  TAP_OK(vsock_hdr__check(&d, CID, 7) != NULL, "header: a spoofed source CID is refused");
  d = h, d.dst_cid = 5;
  TAP_OK(vsock_hdr__check(&d, CID, 7) != NULL, "header: a destination other than the host");
  d = h, d.type = 2;
  TAP_OK(vsock_hdr__check(&d, CID, 7) != NULL, "header: seqpacket (not offered)");
  d = h, d.op = 0;
  TAP_OK(vsock_hdr__check(&d, CID, 7) != NULL, "header: op 0");
  d = h, d.op = 8;
  TAP_OK(vsock_hdr__check(&d, CID, 7) != NULL, "header: op 8");
  TAP_OK(vsock_hdr__check(&h, CID, 6) != NULL, "header: len past the chain");
  d = h, d.len = VSOCK_MAX_PKT + 1;
  TAP_OK(vsock_hdr__check(&d, CID, UINT32_MAX) != NULL, "header: len over 64 KiB");
  d = h, d.op = VSOCK_OP_REQUEST;
  TAP_OK(vsock_hdr__check(&d, CID, 7) != NULL, "header: payload on a control packet");
  uint32_t p = 0;
  TAP_OK(vsock__parse_connect("CONNECT 5000", &p) == 0 && p == 5000 &&
             vsock__parse_connect("CONNECT 4294967295", &p) == 0 && p == UINT32_MAX,
         "CONNECT line: ports up to 2^32-1");
  TAP_OK(
      vsock__parse_connect("CONNECT 4294967296", &p) < 0 &&
          vsock__parse_connect("CONNECT ", &p) < 0 && vsock__parse_connect("CONNECT 12a", &p) < 0 &&
          vsock__parse_connect("connect 5", &p) < 0 && vsock__parse_connect("CONNECT -1", &p) < 0 &&
          vsock__parse_connect("CONNECT 00000000001", &p) < 0,
      "CONNECT line: overflow, junk, case, sign and 11 digits are refused");
}

static void test_host_stream(void)
{
  uint32_t hport;
  int fd = established(5000, 262144, &hport);
  TAP_OK(fd >= 0 && hport >= VSOCK_HOST_PORT_BASE, "host connect: REQUEST, RESPONSE, \"OK %u\"",
         hport);
  struct vsock_hdr h;
  TAP_OK(write(fd, "ping", 4) == 4 && rx_op(&h, VSOCK_OP_RW) && h.len == 4 &&
             memcmp(got_data, "ping", 4) == 0 && h.src_port == hport && h.dst_port == 5000,
         "host -> guest bytes arrive as RW");
  tx(5000, hport, VSOCK_OP_RW, 0, 262144, 4, "pong!", 5);
  char buf[8] = {0};
  TAP_OK(client_read(fd, buf, 5) == 5 && strcmp(buf, "pong!") == 0, "guest -> host bytes arrive");
  tx(5000, hport, VSOCK_OP_CREDIT_REQUEST, 0, 262144, 4, NULL, 0);
  TAP_OK(rx_op(&h, VSOCK_OP_CREDIT_UPDATE) && h.fwd_cnt == 5 && h.buf_alloc == VSOCK_BUF_ALLOC,
         "CREDIT_REQUEST: answered with our fwd_cnt and buf_alloc");
  shutdown(fd, SHUT_WR);
  TAP_OK(rx_op(&h, VSOCK_OP_SHUTDOWN) && h.flags == VSOCK_SHUTDOWN_SEND,
         "client EOF: SHUTDOWN(SEND) to the guest");
  tx(5000, hport, VSOCK_OP_RW, 0, 262144, 4, "late", 4);
  TAP_OK(client_read(fd, buf, 4) == 4 && memcmp(buf, "late", 4) == 0,
         "half-closed: the guest still writes to the client");
  tx(5000, hport, VSOCK_OP_SHUTDOWN, 0, 262144, 4, NULL, 0);
  tx(5000, hport, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV, 262144, 4, NULL, 0);
  TAP_OK(rx_op(&h, VSOCK_OP_RST) && client_read(fd, buf, 1) == -1 && vsock__nconns(v) == 0,
         "guest SHUTDOWN both ways: RST to the guest, client sees EOF, stream freed");
  close(fd);
}

static void test_credit(void)
{
  uint32_t hport;
  int fd = established(5001, 10, &hport);
  char big[100];
  memset(big, 'x', sizeof(big));
  struct vsock_hdr h;
  TAP_OK(fd >= 0 && write(fd, big, 100) == 100 && rx_op(&h, VSOCK_OP_RW) && h.len == 10 && !rx(&h),
         "the guest's buf_alloc of 10 bounds what it gets");
  tx(5001, hport, VSOCK_OP_CREDIT_UPDATE, 0, 10, 10, NULL, 0);
  TAP_OK(rx_op(&h, VSOCK_OP_RW) && h.len == 10 && !rx(&h), "a CREDIT_UPDATE lets 10 more through");
  /* The client stops reading; the guest ignores our credit. */
  static uint8_t chunk[VSOCK_MAX_PKT];
  bool rst = false;
  long sent = 0, held = 0;
  for (int i = 0; i < 200 && !rst; i++) {
    tx(5001, hport, VSOCK_OP_RW, 0, 10, 20, chunk, sizeof(chunk));
    sent += sizeof(chunk);
    while (get16(q_used(VSOCK_Q_RX) + 2) != rx_seen && rx(&h))
      rst |= h.op == VSOCK_OP_RST;
  }
  /* What the client's socket took, the device did not hold. */
  for (ssize_t r; (r = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT)) > 0;)
    held -= r;
  held += sent;
  TAP_OK(rst && vsock__nconns(v) == 0 && held > VSOCK_BUF_ALLOC &&
             held <= VSOCK_BUF_ALLOC + VSOCK_MAX_PKT,
         "a guest writing past our credit gets RST once it is over (%ld of %ld bytes held)", held,
         sent);
  close(fd);
}

static void test_guest_stream(void)
{
  char path[200];
  snprintf(path, sizeof(path), "%s_6000", uds);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, path);
  int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 4) < 0)
    abort();
  struct vsock_hdr h;
  tx(41000, 6000, VSOCK_OP_REQUEST, 0, 262144, 0, NULL, 0);
  int s = accept(l, NULL, NULL);
  TAP_OK(rx_op(&h, VSOCK_OP_RESPONSE) && h.src_port == 6000 && h.dst_port == 41000 && s >= 0,
         "guest connect to port 6000 reaches <uds>_6000");
  tx(41000, 6000, VSOCK_OP_RW, 0, 262144, 0, "hi", 2);
  char buf[4] = {0};
  TAP_OK(client_read(s, buf, 2) == 2 && strcmp(buf, "hi") == 0 && write(s, "yo", 2) == 2 &&
             rx_op(&h, VSOCK_OP_RW) && memcmp(got_data, "yo", 2) == 0,
         "guest-initiated: bytes both ways");
  close(s);
  TAP_OK(rx_op(&h, VSOCK_OP_SHUTDOWN) && rx_op(&h, VSOCK_OP_RST) && vsock__nconns(v) == 0,
         "the host side closes: SHUTDOWN then RST, stream freed");
  tx(41001, 6001, VSOCK_OP_REQUEST, 0, 262144, 0, NULL, 0);
  TAP_OK(rx_op(&h, VSOCK_OP_RST) && h.src_port == 6001 && h.dst_port == 41001,
         "guest connect to a port nobody serves: RST");
  tx(41002, 6000, VSOCK_OP_RW, 0, 262144, 0, "??", 2);
  TAP_OK(rx_op(&h, VSOCK_OP_RST), "RW on no stream: RST");
  tx(41002, 6000, VSOCK_OP_RST, 0, 262144, 0, NULL, 0);
  TAP_OK(!rx(&h), "RST on no stream: silence (no RST storm)");
  close(l);
  unlink(path);
}

static void test_refused_and_many(void)
{
  int fd = client("CONNECT 7777\n");
  struct vsock_hdr h;
  bool req = rx_op(&h, VSOCK_OP_REQUEST);
  tx(7777, h.src_port, VSOCK_OP_RST, 0, 0, 0, NULL, 0);
  char c;
  TAP_OK(req && client_read(fd, &c, 1) == -1 && vsock__nconns(v) == 0,
         "guest RST to a REQUEST: the client is closed without OK");
  close(fd);
  fd = client("GET / HTTP/1.0\n");
  TAP_OK(client_read(fd, &c, 1) == -1, "a bad CONNECT line: closed without a word");
  close(fd);
  enum { N = 70 };
  int fds[N];
  uint32_t ports[N];
  bool all = true;
  for (int i = 0; i < N; i++)
    all &= (fds[i] = established(8000 + i, 262144, &ports[i])) >= 0;
  TAP_OK(all && vsock__nconns(v) == N, "%d host streams at once", N);
  for (int i = 0; i < N; i++) {
    char b[16];
    int n = snprintf(b, sizeof(b), "s%d", i);
    tx(8000 + i, ports[i], VSOCK_OP_RW, 0, 262144, 0, b, n);
    char got[16] = {0};
    all &= client_read(fds[i], got, n) == n && strcmp(got, b) == 0;
  }
  TAP_OK(all, "each stream gets its own bytes");
  uint8_t zero = 0;
  virtio_pci__io(vp, VIRTIO_PCI_STATUS, true, &zero, 1);
  turn();
  TAP_OK(vsock__nconns(v) == 0 && client_read(fds[0], &c, 1) == -1,
         "a device reset drops every stream, clients see EOF");
  for (int i = 0; i < N; i++)
    close(fds[i]);
  rings_init();
}

static void test_hostile(void)
{
  /* A header split over three descriptors, with a zero-length one. */
  uint8_t raw[VSOCK_HDR_LEN];
  struct vsock_hdr h = {.src_cid = CID, .dst_cid = 2, .src_port = 1, .dst_port = 2, .type = 1};
  h.op = VSOCK_OP_RW, h.len = 3;
  vsock_hdr__encode(&h, raw);
  memcpy(mem + TXH, raw, 10);
  memcpy(mem + TXH + 100, raw + 10, VSOCK_HDR_LEN - 10);
  desc(VSOCK_Q_TX, 40, TXH, 10, VIRTQ_DESC_F_NEXT, 41);
  desc(VSOCK_Q_TX, 41, 0, 0, VIRTQ_DESC_F_NEXT, 42);
  desc(VSOCK_Q_TX, 42, TXH + 100, VSOCK_HDR_LEN - 10, 0, 0);
  kick(VSOCK_Q_TX, &tx_avail, 40);
  turn();
  struct vsock_hdr r;
  TAP_OK(rx_op(&r, VSOCK_OP_RST) && r.dst_port == 1,
         "a header over 3 descriptors is read; len past the chain is refused with RST");
  desc(VSOCK_Q_TX, 43, TXH, 20, 0, 0);
  kick(VSOCK_Q_TX, &tx_avail, 43);
  turn();
  TAP_OK(!rx(&r) && get16(q_used(VSOCK_Q_TX) + 2) == tx_avail,
         "a packet shorter than a header: consumed, no answer");
  desc(VSOCK_Q_TX, 44, MEM_SIZE - 8, 44, 0, 0);
  kick(VSOCK_Q_TX, &tx_avail, 44);
  turn();
  TAP_OK(vp->vq[VSOCK_Q_TX].broken && (vp->status & VIRTIO_STATUS_NEEDS_RESET),
         "a descriptor past guest memory breaks the queue (NEEDS_RESET), no crash");
  uint8_t zero = 0;
  virtio_pci__io(vp, VIRTIO_PCI_STATUS, true, &zero, 1);
  rings_init();
  put16(q_avail(VSOCK_Q_RX) + 2, rx_avail + 1000);
  int fd = client("CONNECT 9\n");
  turn();
  TAP_OK(vp->vq[VSOCK_Q_RX].broken, "an rx avail index jumping by 1000 breaks the rx queue");
  virtio_pci__io(vp, VIRTIO_PCI_STATUS, true, &zero, 1);
  turn();
  close(fd);
  rings_init();
  struct vsock_hdr g;
  uint32_t hport;
  fd = established(5005, 262144, &hport);
  TAP_OK(fd >= 0 && write(fd, "again", 5) == 5 && rx_op(&g, VSOCK_OP_RW) && g.len == 5,
         "after a reset the device works again");
  close(fd);
  turn();
  while (rx(&g))
    ;
}

int main(void)
{
  mem = aligned_alloc(4096, MEM_SIZE);
  memset(mem, 0, MEM_SIZE);
  gm = (struct guest_mem){.host = mem, .size = MEM_SIZE};
  if (!mkdtemp(dir))
    abort();
  snprintf(lpath, sizeof(lpath), "%s/v.sock", dir);
  snprintf(uds, sizeof(uds), "%s/g", dir);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  strcpy(sa.sun_path, lpath);
  lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0)
    abort();
  vmbox_error_t err = NULL;
  v = vsock__new(CID, lfd, uds, &gm, &err);
  if (!v)
    return vmbox_error_report(&err);
  vp = vsock__vp(v);
  TAP_OK(get32(vp->config) == CID && vp->config_len == 8, "config space: le64 guest_cid");
  rings_init();
  test_header();
  test_host_stream();
  test_credit();
  test_guest_stream();
  test_refused_and_many();
  test_hostile();
  vsock__free(v);
  close(lfd);
  unlink(lpath);
  rmdir(dir);
  free(mem);
  return tap__done();
}
