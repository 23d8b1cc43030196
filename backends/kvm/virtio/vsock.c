/* virtio-vsock on the legacy PCI transport, with Firecracker's host side:
 *
 *   host-initiated  a client connects to cfg->vsock_listen_fd and writes
 *                   "CONNECT <port>\n"; we send the guest a REQUEST from a
 *                   fresh host port; on RESPONSE the client reads
 *                   "OK <host port>\n" and the socket is the stream; on RST
 *                   (nobody listening) it is closed without a word.
 *   guest-initiated connect() to CID 2 port P reaches "<vsock_uds>_P".
 *
 * One I/O thread owns every connection: it waits (epoll) on the client
 * sockets, the listening socket and an eventfd the vCPUs kick on a queue
 * notify, and does all queue work under vp.lock, so vCPUs only ever take
 * the lock for register accesses and a kick.
 *
 * Trust: the guest controls every header field and every ring.  A packet
 * that makes no sense gets an RST (or is dropped); a guest that sends past
 * the credit we gave it loses that stream; what we hold per stream is
 * bounded by that credit (VSOCK_BUF_ALLOC) and streams by VSOCK_MAX_CONNS.
 * Host bytes enter the guest only as fast as its credit and rx buffers
 * allow: we read a client socket straight into a guest rx buffer, so no
 * host->guest byte is ever buffered here. */
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../../lib/log.h"
#include "../../../lib/util.h"
#include "pci.h"
#include "vsock.h"

enum conn_state {
  C_LINE, /* host client accepted, its CONNECT line not read yet */
  C_REQ,  /* REQUEST owed to / sent to the guest, no answer yet */
  C_EST,  /* a stream */
};

/* Control packets owed to the guest, sent as rx buffers come. */
#define P_REQUEST 1u
#define P_RESPONSE 2u
#define P_CREDIT 4u
#define P_SHUTDOWN 8u

struct conn {
  uint32_t gen; /* epoll events name a conn by slot + gen */
  unsigned slot;
  int fd;
  enum conn_state state;
  uint32_t local_port, peer_port; /* host side, guest side */
  uint64_t deadline;              /* ns, 0: none */
  unsigned pend;
  uint32_t shut_flags; /* with P_SHUTDOWN */
  /* The guest's credit as its last header said, and what we sent it. */
  uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
  /* Ours: guest payload bytes received, passed to the client, last told. */
  uint32_t rx_cnt, fwd_cnt, fwd_told;
  /* Bytes for the client: [out_off, out_off + out_len); the first
   * out_extra of them are ours ("OK ...\n"), not the guest's. */
  uint8_t *out;
  uint32_t out_off, out_len, out_cap, out_extra;
  bool readable; /* the socket may have bytes (edge-triggered epoll) */
  bool hup;      /* the client closed both ways */
  bool cl_eof;   /* read returned 0: the client sends no more */
  bool wr_shut;  /* we shut the client's read side down */
  bool g_no_send, g_no_recv;
};

#define RST_RING 64
#define EV_KICK UINT64_MAX
#define EV_LISTEN (UINT64_MAX - 1)
#define MAX_IOV 64
#define TX_BUDGET (2 * VSOCK_QUEUE_SIZE) /* packets per turn: a guest cannot pin us */

struct vsock {
  struct virtio_pci vp; /* first: ops get the vp, we cast back */
  uint64_t cid;
  int listen_fd, ep, kick;
  char *uds;
  pthread_t thread;
  bool thread_up;
  atomic_bool stop;
  /* Everything below: vp.lock. */
  bool reset; /* the driver reset the device: every stream is gone */
  bool more;  /* work left over from the last turn */
  struct conn *conns[VSOCK_MAX_CONNS];
  unsigned nconns, rr;
  uint32_t gen, next_port;
  struct {
    uint32_t local, peer;
  } rst[RST_RING];
  unsigned rst_head, rst_n;
  bool rx_held; /* rx_chain popped and not used yet */
  const uint8_t *held_desc;
  bool rx_pushed, tx_pushed;
  struct virtq_chain rx_chain, tx_chain;
  struct iovec iov[MAX_IOV];
};

/* --- headers ----------------------------------------------------------------- */

static uint64_t get_le(const uint8_t *p, unsigned n)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
  for (unsigned i = 0; i < n; i++)
    p[i] = v >> (8 * i);
}

void vsock_hdr__decode(const uint8_t raw[VSOCK_HDR_LEN], struct vsock_hdr *h)
{
  h->src_cid = get_le(raw, 8);
  h->dst_cid = get_le(raw + 8, 8);
  h->src_port = get_le(raw + 16, 4);
  h->dst_port = get_le(raw + 20, 4);
  h->len = get_le(raw + 24, 4);
  h->type = get_le(raw + 28, 2);
  h->op = get_le(raw + 30, 2);
  h->flags = get_le(raw + 32, 4);
  h->buf_alloc = get_le(raw + 36, 4);
  h->fwd_cnt = get_le(raw + 40, 4);
}

void vsock_hdr__encode(const struct vsock_hdr *h, uint8_t raw[VSOCK_HDR_LEN])
{
  put_le(raw, h->src_cid, 8);
  put_le(raw + 8, h->dst_cid, 8);
  put_le(raw + 16, h->src_port, 4);
  put_le(raw + 20, h->dst_port, 4);
  put_le(raw + 24, h->len, 4);
  put_le(raw + 28, h->type, 2);
  put_le(raw + 30, h->op, 2);
  put_le(raw + 32, h->flags, 4);
  put_le(raw + 36, h->buf_alloc, 4);
  put_le(raw + 40, h->fwd_cnt, 4);
}

const char *vsock_hdr__check(const struct vsock_hdr *h, uint64_t guest_cid, uint32_t room)
{
  if (h->src_cid != guest_cid)
    return "source CID is not the guest's";
  if (h->dst_cid != VSOCK_HOST_CID)
    return "destination CID is not the host";
  if (h->type != VSOCK_TYPE_STREAM)
    return "not a stream packet";
  if (h->op == VSOCK_OP_INVALID || h->op > VSOCK_OP_CREDIT_REQUEST)
    return "unknown op";
  if (h->op != VSOCK_OP_RW && h->len)
    return "payload on a control packet";
  if (h->len > VSOCK_MAX_PKT)
    return "payload over 64 KiB";
  if (h->len > room)
    return "payload longer than its buffers";
  return NULL;
}

int vsock__parse_connect(const char *line, uint32_t *port)
{
  if (strncmp(line, "CONNECT ", 8) != 0)
    return -1;
  const char *p = line + 8;
  uint64_t v = 0;
  size_t n = 0;
  for (; p[n] >= '0' && p[n] <= '9' && n < 10; n++)
    v = v * 10 + (uint64_t)(p[n] - '0');
  if (n == 0 || p[n] != 0 || v > UINT32_MAX)
    return -1;
  *port = v;
  return 0;
}

/* --- connections ---------------------------------------------------------------- */

static uint64_t now_ns(void)
{
  return util__now_ns();
}

static uint64_t after_ms(unsigned ms)
{
  return now_ns() + (uint64_t)ms * 1000000;
}

static struct conn *conn__new(struct vsock *v, int fd, enum conn_state st)
{
  unsigned s;
  for (s = 0; s < VSOCK_MAX_CONNS && v->conns[s]; s++)
    ;
  if (s == VSOCK_MAX_CONNS)
    return NULL;
  struct conn *c = xcalloc(1, sizeof(*c));
  *c = (struct conn){.gen = ++v->gen, .slot = s, .fd = fd, .state = st, .readable = true};
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                           .data.u64 = (uint64_t)c->gen << 32 | s};
  if (epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
    free(c);
    return NULL;
  }
  v->conns[s] = c;
  v->nconns++;
  return c;
}

static void conn__free(struct vsock *v, struct conn *c)
{
  close(c->fd); /* also leaves the epoll set: nobody else holds the file */
  v->conns[c->slot] = NULL;
  v->nconns--;
  free(c->out);
  free(c);
}

static void rst__push(struct vsock *v, uint32_t local, uint32_t peer)
{
  if (v->rst_n == RST_RING) {
    log__debug("virtio-vsock: RST ring full, dropping RST %u->%u", local, peer);
    return;
  }
  unsigned i = (v->rst_head + v->rst_n++) % RST_RING;
  v->rst[i].local = local;
  v->rst[i].peer = peer;
}

/* Ends a stream; rst: tell the guest (when it knows of the stream). */
static void conn__kill(struct vsock *v, struct conn *c, bool rst)
{
  bool guest_knows = c->state == C_EST || (c->state == C_REQ && !(c->pend & P_REQUEST));
  if (rst && guest_knows)
    rst__push(v, c->local_port, c->peer_port);
  conn__free(v, c);
}

static struct conn *conn__find(struct vsock *v, uint32_t local, uint32_t peer)
{
  for (unsigned s = 0; s < VSOCK_MAX_CONNS; s++) {
    struct conn *c = v->conns[s];
    if (c && c->state != C_LINE && c->local_port == local && c->peer_port == peer)
      return c;
  }
  return NULL;
}

static bool port__used(struct vsock *v, uint32_t port)
{
  for (unsigned s = 0; s < VSOCK_MAX_CONNS; s++)
    if (v->conns[s] && v->conns[s]->state != C_LINE && v->conns[s]->local_port == port)
      return true;
  return false;
}

/* A host port no stream uses: at most VSOCK_MAX_CONNS + 1 tries. */
static uint32_t port__alloc(struct vsock *v)
{
  for (;;) {
    uint32_t p = v->next_port++;
    if (v->next_port < VSOCK_HOST_PORT_BASE)
      v->next_port = VSOCK_HOST_PORT_BASE;
    if (!port__used(v, p))
      return p;
  }
}

static uint32_t conn__credit(const struct conn *c)
{
  uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
  return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* iovecs over a chain's buffers of one direction, after skip, up to len. */
static int chain__iov(const struct virtq_chain *ch, bool write, uint32_t skip, uint32_t len,
                      struct iovec *iov, uint32_t *total)
{
  int n = 0;
  *total = 0;
  for (unsigned i = 0; i < ch->n && len && n < MAX_IOV; i++) {
    const struct virtq_buf *b = &ch->buf[i];
    if (b->write != write)
      continue;
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    uint32_t k = b->len - skip < len ? b->len - skip : len;
    iov[n++] = (struct iovec){.iov_base = b->host + skip, .iov_len = k};
    skip = 0, len -= k, *total += k;
  }
  return n;
}

/* --- to the guest (rx queue) ------------------------------------------------------ */

static struct virtq *rxq(struct vsock *v)
{
  return &v->vp.vq[VSOCK_Q_RX];
}

/* The next rx buffer with room for a header, or NULL. */
static struct virtq_chain *rx__get(struct vsock *v)
{
  struct virtq *q = rxq(v);
  if (v->rx_held && q->num && q->desc == v->held_desc)
    return &v->rx_chain;
  v->rx_held = false; /* the queue was set up again under us */
  for (unsigned tries = 0; tries < VSOCK_QUEUE_SIZE; tries++) {
    int r = virtq__pop(q, &v->vp.mem, &v->rx_chain);
    if (r < 0)
      virtio_pci__broken(&v->vp, VSOCK_Q_RX);
    if (r <= 0)
      return NULL;
    if (v->rx_chain.in_len >= VSOCK_HDR_LEN) {
      v->rx_held = true;
      v->held_desc = q->desc;
      return &v->rx_chain;
    }
    virtq__push(q, v->rx_chain.head, 0); /* no room for a header: the driver's bug */
    v->rx_pushed = true;
  }
  return NULL;
}

static void rx__put(struct vsock *v, struct conn *c, uint16_t op, uint32_t flags, uint32_t len)
{
  struct vsock_hdr h = {.src_cid = VSOCK_HOST_CID,
                        .dst_cid = v->cid,
                        .src_port = c ? c->local_port : 0,
                        .dst_port = c ? c->peer_port : 0,
                        .len = len,
                        .type = VSOCK_TYPE_STREAM,
                        .op = op,
                        .flags = flags,
                        .buf_alloc = VSOCK_BUF_ALLOC,
                        .fwd_cnt = c ? c->fwd_cnt : 0};
  if (c)
    c->fwd_told = c->fwd_cnt; /* every header carries our credit */
  uint8_t raw[VSOCK_HDR_LEN];
  vsock_hdr__encode(&h, raw);
  virtq__write(&v->rx_chain, 0, raw, sizeof(raw));
  virtq__push(rxq(v), v->rx_chain.head, VSOCK_HDR_LEN + len);
  v->rx_held = false;
  v->rx_pushed = true;
}

static bool rx__ctl(struct vsock *v, struct conn *c, uint16_t op, uint32_t flags)
{
  if (!rx__get(v))
    return false;
  rx__put(v, c, op, flags, 0);
  return true;
}

static bool rx__rsts(struct vsock *v)
{
  while (v->rst_n) {
    if (!rx__get(v))
      return false;
    struct conn fake = {.local_port = v->rst[v->rst_head].local,
                        .peer_port = v->rst[v->rst_head].peer};
    rx__put(v, &fake, VSOCK_OP_RST, 0, 0);
    v->rst_head = (v->rst_head + 1) % RST_RING;
    v->rst_n--;
  }
  return true;
}

/* --- to the client ---------------------------------------------------------------- */

static void conn__settle(struct vsock *v, struct conn *c);

static void out__append(struct conn *c, const void *p, uint32_t n, bool extra)
{
  if (c->out_off + c->out_len + n > c->out_cap) {
    if (c->out_len)
      memmove(c->out, c->out + c->out_off, c->out_len);
    c->out_off = 0;
    if (c->out_len + n > c->out_cap) { /* doubling, but never past what credit allows */
      uint32_t cap = c->out_cap * 2 > c->out_len + n ? c->out_cap * 2 : c->out_len + n;
      c->out_cap = cap < VSOCK_BUF_ALLOC + VSOCK_LINE_MAX ? cap : c->out_len + n;
      c->out = xrealloc(c->out, c->out_cap);
    }
  }
  if (p)
    memcpy(c->out + c->out_off + c->out_len, p, n);
  c->out_len += n;
  if (extra)
    c->out_extra += n;
}

static void conn__consumed(struct conn *c, uint32_t n)
{
  uint32_t ours = n < c->out_extra ? n : c->out_extra;
  c->out_extra -= ours;
  c->fwd_cnt += n - ours;
  /* Tell the guest once a quarter of its window is free again; a guest
   * blocked on credit then always hears of it (the buffer drains fully). */
  if (c->fwd_cnt - c->fwd_told >= VSOCK_BUF_ALLOC / 4)
    c->pend |= P_CREDIT;
}

static bool sock__gone(int e)
{
  return e != EAGAIN && e != EWOULDBLOCK && e != EINTR;
}

/* Writes what the client takes; false when the stream died. */
static bool conn__flush(struct vsock *v, struct conn *c)
{
  while (c->out_len) {
    ssize_t n = send(c->fd, c->out + c->out_off, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && sock__gone(errno)) {
      conn__kill(v, c, true);
      return false;
    }
    if (n <= 0)
      break;
    c->out_off += n;
    c->out_len -= n;
    conn__consumed(c, n);
  }
  if (!c->out_len)
    c->out_off = 0;
  return true;
}

/* A guest RW packet: straight to the socket when nothing waits before it,
 * the rest into the buffer the guest's credit bounds. */
static void conn__recv(struct vsock *v, struct conn *c, const struct virtq_chain *ch, uint32_t len)
{
  if (len > VSOCK_BUF_ALLOC - (c->rx_cnt - c->fwd_cnt)) {
    log__debug("virtio-vsock: guest overran its credit on %u->%u", c->peer_port, c->local_port);
    conn__kill(v, c, true);
    return;
  }
  c->rx_cnt += len;
  uint32_t sent = 0;
  if (!c->out_len && len) {
    uint32_t total;
    int n = chain__iov(ch, false, VSOCK_HDR_LEN, len, v->iov, &total);
    struct msghdr m = {.msg_iov = v->iov, .msg_iovlen = n};
    ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && sock__gone(errno)) {
      conn__kill(v, c, true);
      return;
    }
    sent = w > 0 ? (uint32_t)w : 0;
    conn__consumed(c, sent);
  }
  if (sent < len) {
    out__append(c, NULL, len - sent, false);
    uint8_t *dst = c->out + c->out_off + c->out_len - (len - sent);
    virtq__read(ch, VSOCK_HDR_LEN + sent, dst, len - sent);
  }
}

/* --- from the client -------------------------------------------------------------- */

/* One rx buffer's worth from the socket: 1 progress, 0 nothing to read,
 * -1 no rx buffer, 2 the stream died (c is freed). */
static int conn__send_data(struct vsock *v, struct conn *c)
{
  struct virtq_chain *ch = rx__get(v);
  if (!ch)
    return -1;
  uint32_t room = ch->in_len - VSOCK_HDR_LEN, credit = conn__credit(c), total;
  if (!room)
    return -1; /* a header-only buffer: kept for a control packet */
  room = room < credit ? room : credit;
  room = room < VSOCK_MAX_PKT ? room : VSOCK_MAX_PKT;
  int n = chain__iov(ch, true, VSOCK_HDR_LEN, room, v->iov, &total);
  ssize_t r = readv(c->fd, v->iov, n);
  if (r > 0) {
    c->tx_cnt += r;
    rx__put(v, c, VSOCK_OP_RW, 0, r);
    return 1;
  }
  if (r < 0 && !sock__gone(errno)) {
    c->readable = false;
    return 0;
  }
  c->readable = false;
  if (r < 0) {
    conn__kill(v, c, true);
    return 2;
  }
  c->cl_eof = true; /* the client sends no more: tell the guest, after its data */
  c->pend |= P_SHUTDOWN;
  c->shut_flags |= VSOCK_SHUTDOWN_SEND;
  return 1;
}

static bool conn__wants_data(const struct conn *c)
{
  return c->state == C_EST && c->readable && !c->cl_eof && !c->g_no_recv && conn__credit(c);
}

/* Sends what c owes the guest: 1 progress, 0 none, -1 out of rx buffers
 * (c may be gone after 1). */
static int conn__pump(struct vsock *v, struct conn *c)
{
  static const struct {
    unsigned bit;
    uint16_t op;
  } ctl[] = {{P_REQUEST, VSOCK_OP_REQUEST},
             {P_RESPONSE, VSOCK_OP_RESPONSE},
             {P_CREDIT, VSOCK_OP_CREDIT_UPDATE}};
  int progress = 0;
  for (size_t i = 0; i < ARRAY_SIZE(ctl); i++) {
    if (!(c->pend & ctl[i].bit))
      continue;
    if (!rx__ctl(v, c, ctl[i].op, 0))
      return -1;
    c->pend &= ~ctl[i].bit;
    if (ctl[i].bit == P_REQUEST)
      c->deadline = after_ms(VSOCK_REQ_TIMEOUT_MS);
    progress = 1;
  }
  for (int k = 0; k < 4 && conn__wants_data(c); k++) { /* 4 buffers a turn: fair */
    int r = conn__send_data(v, c);
    if (r < 0)
      return -1;
    if (r == 0)
      break;
    if (r == 2)
      return 1;
    progress = 1;
  }
  if ((c->pend & P_SHUTDOWN) && !conn__wants_data(c)) {
    if (!rx__ctl(v, c, VSOCK_OP_SHUTDOWN, c->shut_flags))
      return -1;
    c->pend &= ~P_SHUTDOWN;
    progress = 1;
  }
  return progress;
}

static void rx__pump(struct vsock *v)
{
  if (!virtq__ready(rxq(v)) || !rx__rsts(v))
    return;
  for (int progress = 1; progress;) {
    progress = 0;
    for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
      struct conn *c = v->conns[(v->rr + i) % VSOCK_MAX_CONNS];
      if (!c || c->state == C_LINE)
        continue;
      int r = conn__pump(v, c);
      if (r < 0) {
        v->rr = (v->rr + i) % VSOCK_MAX_CONNS; /* it goes first next time */
        return;
      }
      progress |= r;
      if (!rx__rsts(v))
        return;
    }
  }
}

/* --- the CONNECT line ------------------------------------------------------------- */

static void conn__line(struct vsock *v, struct conn *c)
{
  char buf[VSOCK_LINE_MAX + 1];
  ssize_t n = recv(c->fd, buf, VSOCK_LINE_MAX, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && !sock__gone(errno)) {
    c->readable = false;
    return;
  }
  char *nl = n > 0 ? memchr(buf, '\n', n) : NULL;
  if (!nl && n > 0 && n < VSOCK_LINE_MAX) {
    c->readable = false; /* the rest of the line comes with the next edge */
    return;
  }
  uint32_t port;
  ssize_t len = nl ? nl - buf + 1 : 0;
  if (!nl || recv(c->fd, buf, len, MSG_DONTWAIT) != len ||
      (buf[len - 1] = 0, vsock__parse_connect(buf, &port) < 0)) {
    conn__free(v, c); /* a bad or missing line: closed without a word */
    return;
  }
  c->local_port = port__alloc(v);
  c->peer_port = port;
  c->state = C_REQ;
  c->pend = P_REQUEST;
  c->deadline = after_ms(VSOCK_QUEUE_TIMEOUT_MS);
}

static void vsock__accept(struct vsock *v)
{
  int fd = accept4(v->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0)
    return;
  struct conn *c = conn__new(v, fd, C_LINE);
  if (!c) {
    log__debug("virtio-vsock: %u streams open, refusing a client", VSOCK_MAX_CONNS);
    close(fd);
    return;
  }
  c->deadline = after_ms(VSOCK_LINE_TIMEOUT_MS);
  conn__line(v, c);
}

/* --- from the guest (tx queue) ---------------------------------------------------- */

static void vsock__guest_connect(struct vsock *v, const struct vsock_hdr *h, struct conn *old)
{
  if (old)
    conn__kill(v, old, false); /* the guest reused the pair: it forgot that one */
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int fd = -1;
  if (v->uds && (size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->uds, h->dst_port) <
                    sizeof(sa.sun_path))
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct conn *c = NULL;
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
    c = conn__new(v, fd, C_EST);
  if (!c) {
    if (fd >= 0)
      close(fd);
    rst__push(v, h->dst_port, h->src_port);
    return;
  }
  c->local_port = h->dst_port;
  c->peer_port = h->src_port;
  c->peer_buf_alloc = h->buf_alloc;
  c->peer_fwd_cnt = h->fwd_cnt;
  c->pend = P_RESPONSE;
}

static void vsock__response(struct vsock *v, struct conn *c)
{
  if (c->state != C_REQ || (c->pend & P_REQUEST)) {
    conn__kill(v, c, true);
    return;
  }
  char ok[32];
  int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
  c->state = C_EST;
  c->deadline = 0;
  c->readable = true; /* bytes the client sent early wait in the socket */
  out__append(c, ok, n, true);
  conn__flush(v, c);
}

static void vsock__shutdown(struct vsock *v, struct conn *c, uint32_t flags)
{
  if (c->state != C_EST) {
    conn__kill(v, c, true);
    return;
  }
  c->g_no_recv |= flags & VSOCK_SHUTDOWN_RCV;
  c->g_no_send |= !!(flags & VSOCK_SHUTDOWN_SEND);
}

static void vsock__packet(struct vsock *v, const struct virtq_chain *ch)
{
  uint8_t raw[VSOCK_HDR_LEN];
  if (ch->out_len < VSOCK_HDR_LEN || virtq__read(ch, 0, raw, sizeof(raw)) != sizeof(raw))
    return; /* not even a header: nothing to answer */
  struct vsock_hdr h;
  vsock_hdr__decode(raw, &h);
  const char *why = vsock_hdr__check(&h, v->cid, ch->out_len - VSOCK_HDR_LEN);
  struct conn *c = why ? NULL : conn__find(v, h.dst_port, h.src_port);
  if (why || (!c && h.op != VSOCK_OP_REQUEST)) {
    if (why)
      log__debug("virtio-vsock: dropped a guest packet: %s", why);
    if (h.op != VSOCK_OP_RST && h.src_cid == v->cid)
      rst__push(v, h.dst_port, h.src_port);
    return;
  }
  if (h.op == VSOCK_OP_REQUEST) {
    vsock__guest_connect(v, &h, c);
    return;
  }
  c->peer_buf_alloc = h.buf_alloc;
  c->peer_fwd_cnt = h.fwd_cnt;
  switch (h.op) {
  case VSOCK_OP_RESPONSE: vsock__response(v, c); break;
  case VSOCK_OP_RST:
    if (conn__flush(v, c))
      conn__kill(v, c, false);
    break;
  case VSOCK_OP_SHUTDOWN: vsock__shutdown(v, c, h.flags); break;
  case VSOCK_OP_RW:
    if (c->state != C_EST || c->g_no_send)
      conn__kill(v, c, true);
    else
      conn__recv(v, c, ch, h.len);
    break;
  case VSOCK_OP_CREDIT_REQUEST: c->pend |= P_CREDIT; break;
  default: break; /* CREDIT_UPDATE: the fields above were all of it */
  }
}

static void tx__drain(struct vsock *v)
{
  struct virtq *q = &v->vp.vq[VSOCK_Q_TX];
  for (unsigned i = 0; i < TX_BUDGET; i++) {
    int r = virtq__pop(q, &v->vp.mem, &v->tx_chain);
    if (r < 0)
      virtio_pci__broken(&v->vp, VSOCK_Q_TX);
    if (r <= 0)
      return;
    vsock__packet(v, &v->tx_chain);
    virtq__push(q, v->tx_chain.head, 0);
    v->tx_pushed = true;
  }
  v->more = true;
}

/* --- state changes and time ------------------------------------------------------- */

/* Half-closes and ends a stream once both sides are done with it. */
static void conn__settle(struct vsock *v, struct conn *c)
{
  if (c->state != C_EST)
    return;
  if (c->g_no_send && !c->out_len && !c->wr_shut) {
    shutdown(c->fd, SHUT_WR);
    c->wr_shut = true;
  }
  bool guest_done = c->g_no_send && c->g_no_recv;
  bool flushed = !c->out_len;
  /* A client gone both ways takes nothing more: once its last bytes are
   * out (or the guest refuses them), RST. */
  bool client_gone = c->hup && (c->cl_eof || c->g_no_recv) && !(c->pend & P_SHUTDOWN);
  if ((guest_done && flushed) || (c->cl_eof && c->g_no_send && flushed) || client_gone) {
    conn__kill(v, c, true);
    return;
  }
  if (guest_done && !c->deadline)
    c->deadline = after_ms(VSOCK_CLOSE_TIMEOUT_MS);
}

static void vsock__tick(struct vsock *v)
{
  uint64_t now = now_ns();
  for (unsigned s = 0; s < VSOCK_MAX_CONNS; s++) {
    struct conn *c = v->conns[s];
    if (c && c->deadline && now >= c->deadline) {
      log__debug("virtio-vsock: stream %u->%u timed out", c->local_port, c->peer_port);
      conn__kill(v, c, true);
    } else if (c) {
      conn__settle(v, c);
    }
  }
}

static void vsock__drop_all(struct vsock *v)
{
  for (unsigned s = 0; s < VSOCK_MAX_CONNS; s++)
    if (v->conns[s])
      conn__free(v, v->conns[s]);
  v->rst_n = 0;
  v->rx_held = false;
}

void vsock__process(struct vsock *v)
{
  if (v->reset) {
    vsock__drop_all(v);
    v->reset = false;
  }
  v->more = false;
  if (virtq__ready(&v->vp.vq[VSOCK_Q_TX]))
    tx__drain(v);
  rx__pump(v);
  vsock__tick(v);
  rx__pump(v); /* what settling owed the guest */
  bool notify = (v->rx_pushed && virtq__should_notify(rxq(v))) ||
                (v->tx_pushed && virtq__should_notify(&v->vp.vq[VSOCK_Q_TX]));
  v->rx_pushed = v->tx_pushed = false;
  if (notify)
    virtio_pci__signal(&v->vp, VIRTIO_ISR_QUEUE);
}

/* --- the I/O loop ----------------------------------------------------------------- */

static void vsock__event(struct vsock *v, const struct epoll_event *e)
{
  if (e->data.u64 == EV_KICK) {
    uint64_t n;
    if (read(v->kick, &n, sizeof(n)) < 0) { /* EAGAIN: someone read it already */
    }
    return;
  }
  if (e->data.u64 == EV_LISTEN) {
    vsock__accept(v);
    return;
  }
  unsigned s = e->data.u64 & 0xffffffffu;
  struct conn *c = s < VSOCK_MAX_CONNS ? v->conns[s] : NULL;
  if (!c || c->gen != e->data.u64 >> 32)
    return; /* a stream gone since epoll_wait */
  if (e->events & (EPOLLHUP | EPOLLERR))
    c->hup = true;
  c->readable = true;
  if (c->state == C_LINE) {
    conn__line(v, c);
    return;
  }
  if (c->out_len)
    conn__flush(v, c);
}

int vsock__poll(struct vsock *v, int timeout_ms)
{
  struct epoll_event ev[64];
  int n = epoll_wait(v->ep, ev, ARRAY_SIZE(ev), v->more ? 0 : timeout_ms);
  if (n < 0 && errno != EINTR)
    return -1;
  pthread_mutex_lock(&v->vp.lock);
  if (v->reset) {
    vsock__drop_all(v);
    v->reset = false;
  }
  for (int i = 0; i < n; i++)
    vsock__event(v, &ev[i]);
  vsock__process(v);
  pthread_mutex_unlock(&v->vp.lock);
  return 0;
}

/* --- the device ------------------------------------------------------------------- */

static void vsock__kick(struct vsock *v)
{
  uint64_t one = 1;
  if (write(v->kick, &one, sizeof(one)) < 0) { /* EAGAIN: a kick is pending anyway */
  }
}

static void vsock__notify(struct virtio_pci *vp, unsigned q)
{
  if (q != VSOCK_Q_EVENT) /* we never send events: nothing to do there */
    vsock__kick((struct vsock *)vp);
}

static void vsock__reset(struct virtio_pci *vp)
{
  struct vsock *v = (struct vsock *)vp;
  v->reset = true; /* the I/O thread drops the streams: it owns them */
  vsock__kick(v);
}

static const struct virtio_dev_ops vsock_ops = {
    .name = "virtio-vsock", .notify = vsock__notify, .reset = vsock__reset};

struct vsock *vsock__new(uint32_t cid, int listen_fd, const char *uds, const struct guest_mem *mem,
                         vmbox_error_t *err)
{
  struct vsock *v = xcalloc(1, sizeof(*v));
  v->cid = cid;
  v->listen_fd = listen_fd;
  v->uds = uds ? xstrdup(uds) : NULL;
  v->next_port = VSOCK_HOST_PORT_BASE;
  v->ep = epoll_create1(EPOLL_CLOEXEC);
  v->kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ek = {.events = EPOLLIN, .data.u64 = EV_KICK};
  struct epoll_event el = {.events = EPOLLIN, .data.u64 = EV_LISTEN};
  if (v->ep < 0 || v->kick < 0 || epoll_ctl(v->ep, EPOLL_CTL_ADD, v->kick, &ek) < 0 ||
      (listen_fd >= 0 && epoll_ctl(v->ep, EPOLL_CTL_ADD, listen_fd, &el) < 0)) {
    vmbox_error_sys(err, "virtio-vsock: epoll set-up (listening fd %d)", listen_fd);
    vsock__free(v);
    return NULL;
  }
  virtio_pci__setup(&v->vp, &vsock_ops, VSOCK_NQUEUES, VSOCK_QUEUE_SIZE, 0, 8, mem, NULL);
  put_le(v->vp.config, cid, 8); /* le64 guest_cid */
  return v;
}

struct virtio_pci *vsock__vp(struct vsock *v)
{
  return &v->vp;
}

unsigned vsock__nconns(struct vsock *v)
{
  return v->nconns;
}

void vsock__free(struct vsock *v)
{
  if (!v)
    return;
  vsock__drop_all(v);
  if (v->ep >= 0)
    close(v->ep);
  if (v->kick >= 0)
    close(v->kick);
  if (v->vp.ops)
    virtio_pci__cleanup(&v->vp);
  free(v->uds);
  free(v);
}

int virtio_vsock__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err)
{
  if (cfg->vsock_cid < 3 || cfg->vsock_cid == UINT32_MAX)
    return vmbox_error_set(err, 0, "vsock CID %u is reserved: use 3 .. 4294967294", cfg->vsock_cid);
  struct guest_mem none = {0};
  struct vsock *v = vsock__new(cfg->vsock_cid, cfg->vsock_listen_fd, cfg->vsock_uds, &none, err);
  if (!v)
    return -1;
  if (virtio_pci__plug(&v->vp, vm, VIRTIO_VSOCK_LEGACY_DEVICE, VIRTIO_ID_VSOCK,
                       PCI_CLASS_COMM_OTHER, err) < 0) {
    vsock__free(v);
    return -1;
  }
  vmm__set_slot(vm, VMM_SLOT_VSOCK, v);
  return 0;
}

static void *vsock__thread(void *opaque)
{
  struct vsock *v = opaque;
  vmbox_error_t err = NULL;
  if (jail__thread(JAIL_THREAD_IO, &err) < 0) {
    char *s = vmbox_error_string(err);
    log__warn("virtio-vsock: I/O thread not started: %s", s);
    free(s);
    vmbox_error_free(&err);
    return NULL;
  }
  while (!atomic_load(&v->stop))
    if (vsock__poll(v, 1000) < 0) {
      log__warn("virtio-vsock: epoll_wait: %s; the device stops", strerror(errno));
      break;
    }
  return NULL;
}

int virtio_vsock__start(struct vmm *vm, vmbox_error_t *err)
{
  struct vsock *v = vmm__slot(vm, VMM_SLOT_VSOCK);
  if (!v)
    return 0;
  int e = pthread_create(&v->thread, NULL, vsock__thread, v);
  if (e)
    return vmbox_error_set(err, e, "virtio-vsock: I/O thread");
  v->thread_up = true;
  return 0;
}

void virtio_vsock__exit(struct vmm *vm)
{
  struct vsock *v = vmm__slot(vm, VMM_SLOT_VSOCK);
  if (!v)
    return;
  if (v->thread_up) {
    atomic_store(&v->stop, true);
    vsock__kick(v);
    pthread_join(v->thread, NULL);
  }
  vsock__free(v);
  vmm__set_slot(vm, VMM_SLOT_VSOCK, NULL);
}
