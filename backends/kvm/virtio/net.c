/* virtio-net on the legacy PCI transport, backed by a TAP fd; see net.h.
 *
 * One I/O thread per device moves frames both ways: it polls the TAP and
 * an eventfd that queue notifies kick, so a vCPU never does more than one
 * eventfd write for the network.  Rx frames are read into a buffer of our
 * own first: when the guest has no rx buffer posted the frame waits there
 * (and the TAP is not polled) until the guest posts one.  Tx headers are
 * copied and checked before the frame goes to the TAP in one writev.
 *
 * A guest's worst: its own frames dropped, or a queue broken
 * (NEEDS_RESET); never a VMM crash or a spinning thread. */
#include <endian.h>
#include <errno.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../../../lib/log.h"
#include "../../../lib/util.h"
#include "net.h"
#include "pci.h"

#define NET_BATCH 64 /* frames per direction per round: neither starves */

static bool has(uint32_t features, unsigned bit)
{
  return features & (1u << bit);
}

static uint16_t le16_at(const uint8_t *p)
{
  uint16_t v;
  memcpy(&v, p, 2);
  return le16toh(v);
}

static int gso_ok(const struct virtio_net_hdr *h, uint32_t frame_len, uint32_t features)
{
  switch (h->gso_type) {
  case VIRTIO_NET_HDR_GSO_NONE: return 0;
  case VIRTIO_NET_HDR_GSO_TCPV4:
    if (!has(features, VIRTIO_NET_F_HOST_TSO4))
      return -1;
    break;
  case VIRTIO_NET_HDR_GSO_TCPV6:
    if (!has(features, VIRTIO_NET_F_HOST_TSO6))
      return -1;
    break;
  default: return -1; /* UDP, ECN: not offered */
  }
  /* A segmented frame needs its checksum done per segment. */
  if (h->gso_size == 0 || !(h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) || h->hdr_len > frame_len)
    return -1;
  return 0;
}

int virtio_net__hdr_parse(const uint8_t raw[VIRTIO_NET_HDR_LEN], uint32_t frame_len,
                          uint32_t features, struct virtio_net_hdr *h)
{
  h->flags = raw[0];
  h->gso_type = raw[1];
  h->hdr_len = le16_at(raw + 2);
  h->gso_size = le16_at(raw + 4);
  h->csum_start = le16_at(raw + 6);
  h->csum_offset = le16_at(raw + 8);
  if (frame_len < ETH_HDR_LEN || frame_len > VIRTIO_NET_MAX_FRAME)
    return -1;
  if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
    return -1;
  if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    if (!has(features, VIRTIO_NET_F_CSUM) ||
        (uint32_t)h->csum_start + h->csum_offset + 2 > frame_len)
      return -1;
  }
  if (h->gso_type == VIRTIO_NET_HDR_GSO_NONE && frame_len > ETH_HDR_LEN + 65535u)
    return -1;
  return gso_ok(h, frame_len, features);
}

int virtio_net__tx(int fd, const struct virtq_chain *c, uint32_t features)
{
  uint8_t raw[VIRTIO_NET_HDR_LEN];
  struct virtio_net_hdr h;
  if (c->in_len != 0 || c->out_len < sizeof(raw) ||
      virtq__read(c, 0, raw, sizeof(raw)) != sizeof(raw) ||
      virtio_net__hdr_parse(raw, c->out_len - sizeof(raw), features, &h) < 0)
    return 0;
  /* The TAP reads the header we checked, not the guest's copy of it. */
  struct iovec iov[VIRTQ_MAX_SIZE + 1];
  int n = 0;
  iov[n++] = (struct iovec){raw, sizeof(raw)};
  uint32_t skip = sizeof(raw);
  for (unsigned i = 0; i < c->n; i++) {
    const struct virtq_buf *b = &c->buf[i];
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    iov[n++] = (struct iovec){b->host + skip, b->len - skip};
    skip = 0;
  }
  ssize_t w;
  do
    w = writev(fd, iov, n);
  while (w < 0 && errno == EINTR);
  return w == (ssize_t)c->out_len;
}

uint32_t virtio_net__rx(const struct virtq_chain *c, uint8_t *frame, uint32_t len,
                        uint32_t features)
{
  if (len < VIRTIO_NET_HDR_LEN || c->out_len != 0 || c->in_len < len)
    return 0;
  /* DATA_VALID is a GUEST_CSUM thing (5.1.6.4.1); the TAP sets it anyway. */
  if (!has(features, VIRTIO_NET_F_GUEST_CSUM))
    frame[0] &= ~VIRTIO_NET_HDR_F_DATA_VALID;
  return virtq__write(c, 0, frame, len);
}

unsigned virtio_net__offloads(uint32_t features)
{
  unsigned o = 0;
  if (has(features, VIRTIO_NET_F_GUEST_CSUM)) {
    o |= TUN_F_CSUM;
    if (has(features, VIRTIO_NET_F_GUEST_TSO4))
      o |= TUN_F_TSO4;
    if (has(features, VIRTIO_NET_F_GUEST_TSO6))
      o |= TUN_F_TSO6;
  }
  return o;
}

/* --- the device ------------------------------------------------------------ */

struct virtio_net {
  struct virtio_pci vp; /* first: ops get the vp, we cast back */
  int tap, kick;        /* kick: eventfd, queue notifies and stop */
  pthread_t thread;
  bool started, tap_dead;
  int stop;         /* atomic */
  int64_t offloads; /* applied to the TAP; -1 = unknown */
  uint32_t pending; /* bytes of a frame waiting in rx[] */
  uint64_t tx_dropped, rx_dropped;
  struct virtq_chain chain;
  uint8_t rx[VIRTIO_NET_HDR_LEN + VIRTIO_NET_MAX_FRAME];
};

/* The TAP hands the guest only what it negotiated; lock held. */
static void net__sync_offloads(struct virtio_net *n)
{
  uint32_t f = n->vp.status & VIRTIO_STATUS_DRIVER_OK ? n->vp.guest_features : 0;
  unsigned o = virtio_net__offloads(f);
  if (n->offloads == (int64_t)o || n->tap_dead)
    return;
  if (ioctl(n->tap, TUNSETOFFLOAD, (unsigned long)o) < 0)
    log__warn("virtio-net: TUNSETOFFLOAD %#x: %m", o);
  n->offloads = o; /* failed or not: retrying every round would not help */
}

/* Lock held.  Returns whether anything went back to the guest. */
static bool net__tx_round(struct virtio_net *n, bool *more)
{
  struct virtq *vq = &n->vp.vq[VIRTIO_NET_TXQ];
  bool pushed = false;
  for (int i = 0; i < NET_BATCH; i++) {
    int r = virtq__pop(vq, &n->vp.mem, &n->chain);
    if (r < 0)
      virtio_pci__broken(&n->vp, VIRTIO_NET_TXQ);
    if (r <= 0)
      return pushed;
    if (n->tap_dead || !virtio_net__tx(n->tap, &n->chain, n->vp.guest_features))
      n->tx_dropped++;
    virtq__push(vq, n->chain.head, 0);
    pushed = true;
  }
  *more = true;
  return pushed;
}

/* Lock held (the vCPU's register access): the I/O thread does the work.
 * (Tx inline on the vCPU measured no faster nested, where the vCPU and the
 * I/O thread share one CPU.) */
static void net__notify(struct virtio_pci *vp, unsigned q)
{
  struct virtio_net *n = (struct virtio_net *)vp;
  uint64_t one = 1;
  (void)q;
  if (write(n->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
    log__warn("virtio-net: kick: %m");
}

static const struct virtio_dev_ops net_ops = {.name = "virtio-net", .notify = net__notify};

/* Reads the next frame into rx[]: false when there is none (or the TAP is
 * gone: then it is never polled again). */
static bool net__read_tap(struct virtio_net *n)
{
  if (n->pending)
    return true;
  if (n->tap_dead)
    return false;
  ssize_t r;
  do
    r = read(n->tap, n->rx, sizeof(n->rx));
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EAGAIN) {
    log__warn("virtio-net: read from the TAP: %m; the guest's network is down");
    n->tap_dead = true;
  }
  if (r <= 0)
    return false;
  n->pending = r;
  return true;
}

/* Lock held.  *want_tap: poll the TAP next (rx buffers are there). */
static bool net__rx_round(struct virtio_net *n, bool *want_tap, bool *more)
{
  struct virtq *vq = &n->vp.vq[VIRTIO_NET_RXQ];
  bool pushed = false;
  *want_tap = false;
  for (int i = 0; i < NET_BATCH; i++) {
    if (!virtq__ready(vq) || !net__read_tap(n)) {
      *want_tap = virtq__ready(vq) && !n->tap_dead;
      return pushed;
    }
    int r = virtq__pop(vq, &n->vp.mem, &n->chain);
    if (r < 0)
      virtio_pci__broken(&n->vp, VIRTIO_NET_RXQ);
    if (r <= 0)
      return pushed; /* the frame waits for the guest's next rx kick */
    uint32_t used = virtio_net__rx(&n->chain, n->rx, n->pending, n->vp.guest_features);
    if (used == 0)
      n->rx_dropped++;
    n->pending = 0;
    virtq__push(vq, n->chain.head, used);
    pushed = true;
  }
  *more = true;
  return pushed;
}

static void net__round(struct virtio_net *n, bool *want_tap, bool *more)
{
  pthread_mutex_lock(&n->vp.lock);
  net__sync_offloads(n);
  *more = false;
  bool tx = net__tx_round(n, more);
  bool rx = net__rx_round(n, want_tap, more);
  if ((tx && virtq__should_notify(&n->vp.vq[VIRTIO_NET_TXQ])) ||
      (rx && virtq__should_notify(&n->vp.vq[VIRTIO_NET_RXQ])))
    virtio_pci__signal(&n->vp, VIRTIO_ISR_QUEUE);
  pthread_mutex_unlock(&n->vp.lock);
}

static void *net__thread(void *arg)
{
  struct virtio_net *n = arg;
  vmbox_error_t err = NULL;
  if (jail__thread(JAIL_THREAD_IO, &err) < 0) {
    log__warn("virtio-net: %s; the guest's network is down", err ? err->msg : "jail");
    vmbox_error_free(&err);
    return NULL;
  }
  bool want_tap = false, more = false;
  while (!__atomic_load_n(&n->stop, __ATOMIC_ACQUIRE)) {
    struct pollfd p[2] = {{n->kick, POLLIN, 0}, {n->tap, want_tap ? POLLIN : 0, 0}};
    int r = poll(p, 2, more ? 0 : -1);
    if (r < 0 && errno != EINTR) {
      log__warn("virtio-net: poll: %m; the guest's network is down");
      return NULL;
    }
    uint64_t v;
    if (r > 0 && (p[0].revents & POLLIN) && read(n->kick, &v, sizeof(v)) < 0 && errno != EAGAIN)
      log__warn("virtio-net: eventfd: %m");
    /* POLLERR/POLLHUP on the TAP: the read in the round sees the error. */
    net__round(n, &want_tap, &more);
  }
  return NULL;
}

static void net__config(struct virtio_net *n, const uint8_t mac[6])
{
  memcpy(n->vp.config, mac, 6);
}

int virtio_net__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err)
{
  if (!cfg->net)
    return 0;
  if (cfg->tap_fd < 0)
    return vmbox_error_set(err, 0, "virtio-net: no TAP fd");
  struct virtio_net *n = xcalloc(1, sizeof(*n));
  n->tap = cfg->tap_fd;
  n->offloads = -1;
  n->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (n->kick < 0) {
    free(n);
    return vmbox_error_sys(err, "virtio-net: eventfd");
  }
  struct guest_mem none = {0};
  virtio_pci__setup(&n->vp, &net_ops, 2, VIRTIO_NET_QUEUE_SIZE, VIRTIO_NET_FEATURES,
                    VIRTIO_NET_CONFIG_LEN, &none, NULL);
  net__config(n, cfg->mac);
  if (virtio_pci__plug(&n->vp, vm, VIRTIO_NET_LEGACY_DEVICE, VIRTIO_ID_NET,
                       PCI_CLASS_NETWORK_ETHERNET, err) < 0) {
    virtio_pci__cleanup(&n->vp);
    close(n->kick);
    free(n);
    return -1;
  }
  vmm__set_slot(vm, VMM_SLOT_NET, n);
  return 0;
}

int virtio_net__start(struct vmm *vm, vmbox_error_t *err)
{
  struct virtio_net *n = vmm__slot(vm, VMM_SLOT_NET);
  if (!n)
    return 0;
  int e = pthread_create(&n->thread, NULL, net__thread, n);
  if (e)
    return vmbox_error_set(err, e, "virtio-net: start the I/O thread");
  n->started = true;
  return 0;
}

void virtio_net__exit(struct vmm *vm)
{
  struct virtio_net *n = vmm__slot(vm, VMM_SLOT_NET);
  if (!n)
    return;
  if (n->started) {
    uint64_t one = 1;
    __atomic_store_n(&n->stop, 1, __ATOMIC_RELEASE);
    if (write(n->kick, &one, sizeof(one)) < 0)
      log__warn("virtio-net: stop the I/O thread: %m");
    pthread_join(n->thread, NULL);
  }
  if (n->tx_dropped || n->rx_dropped)
    log__debug("virtio-net: dropped %llu tx, %llu rx frames", (unsigned long long)n->tx_dropped,
               (unsigned long long)n->rx_dropped);
  close(n->kick);
  virtio_pci__cleanup(&n->vp);
  free(n);
  vmm__set_slot(vm, VMM_SLOT_NET, NULL);
}
