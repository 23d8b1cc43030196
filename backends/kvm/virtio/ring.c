/* Split virtqueue, device side; see ring.h for the trust model. */
#include <endian.h>
#include <string.h>

#include "ring.h"

void *guest_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len)
{
  if (m->translate)
    return m->translate(m->opaque, gpa, len);
  if (gpa > m->size || len > m->size - gpa) /* never gpa + len: it may wrap */
    return NULL;
  return m->host + gpa;
}

uint64_t virtq__desc_size(uint16_t num)
{
  return 16ull * num;
}
uint64_t virtq__avail_size(uint16_t num)
{
  return 6ull + 2ull * num;
} /* + used_event */
uint64_t virtq__used_size(uint16_t num)
{
  return 6ull + 8ull * num;
} /* + avail_event */

/* Indexes are shared with running vCPUs: the driver publishes avail->idx
 * after filling the ring (so we load it with acquire), and reads used->idx
 * expecting the elements before it to be visible (so we store with release). */
static uint16_t load16_acquire(const uint8_t *p)
{
  return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static uint16_t load16(const uint8_t *p)
{
  return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static int virtq__fail(struct virtq *vq, const char *why)
{
  vq->broken = true;
  vq->why = why;
  return -1;
}

void virtq__reset(struct virtq *vq)
{
  memset(vq, 0, sizeof(*vq));
}

static bool aligned(uint64_t v, uint64_t a)
{
  return (v & (a - 1)) == 0;
}

int virtq__setup(struct virtq *vq, const struct guest_mem *m, uint16_t num, uint16_t max,
                 uint64_t desc, uint64_t avail, uint64_t used)
{
  virtq__reset(vq);
  if (num == 0 || (num & (num - 1)) || num > max || max > VIRTQ_MAX_SIZE)
    return -1;
  /* The spec's alignments (2.7); they also make the index loads aligned. */
  if (!aligned(desc, 16) || !aligned(avail, 2) || !aligned(used, 4))
    return -1;
  uint8_t *d = guest_mem__ptr(m, desc, virtq__desc_size(num));
  uint8_t *a = guest_mem__ptr(m, avail, virtq__avail_size(num));
  uint8_t *u = guest_mem__ptr(m, used, virtq__used_size(num));
  if (!d || !a || !u)
    return -1;
  if (!aligned((uintptr_t)a, 2) || !aligned((uintptr_t)u, 4)) /* a misaligned plain buffer */
    return -1;
  *vq = (struct virtq){.num = num,
                       .desc = d,
                       .avail = a,
                       .used = u,
                       .desc_gpa = desc,
                       .avail_gpa = avail,
                       .used_gpa = used};
  return 0;
}

int virtq__setup_legacy(struct virtq *vq, const struct guest_mem *m, uint16_t num, uint16_t max,
                        uint32_t pfn)
{
  uint64_t desc = (uint64_t)pfn << VIRTIO_LEGACY_PFN_SHIFT;
  uint64_t avail = desc + virtq__desc_size(num);
  uint64_t used = (avail + virtq__avail_size(num) + VIRTIO_LEGACY_ALIGN - 1) &
                  ~(uint64_t)(VIRTIO_LEGACY_ALIGN - 1);
  return virtq__setup(vq, m, num, max, desc, avail, used);
}

/* One descriptor, copied out of guest memory before anything looks at it so
 * the guest cannot change it between our check and our use. */
struct desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags, next;
};

static struct desc virtq__desc(const struct virtq *vq, uint16_t i)
{
  uint8_t raw[16];
  struct desc d;
  memcpy(raw, vq->desc + 16u * i, sizeof(raw));
  memcpy(&d.addr, raw, 8);
  memcpy(&d.len, raw + 8, 4);
  memcpy(&d.flags, raw + 12, 2);
  memcpy(&d.next, raw + 14, 2);
  d.addr = le64toh(d.addr);
  d.len = le32toh(d.len);
  d.flags = le16toh(d.flags);
  d.next = le16toh(d.next);
  return d;
}

/* Follows the chain from head.  At most num descriptors: a longer chain is
 * a loop (the table has only num entries), and it is rejected as such. */
static int virtq__walk(struct virtq *vq, const struct guest_mem *m, uint16_t head,
                       struct virtq_chain *c)
{
  uint64_t in = 0, out = 0;
  uint16_t i = head;
  c->head = head;
  c->n = 0;
  for (;;) {
    if (i >= vq->num)
      return virtq__fail(vq, "descriptor index out of range");
    if (c->n >= vq->num)
      return virtq__fail(vq, "descriptor chain loops or exceeds the queue size");
    struct desc d = virtq__desc(vq, i);
    if (d.flags & VIRTQ_DESC_F_INDIRECT)
      return virtq__fail(vq, "indirect descriptor (feature not offered)");
    struct virtq_buf *b = &c->buf[c->n++];
    b->len = d.len;
    b->write = d.flags & VIRTQ_DESC_F_WRITE;
    b->host = NULL;
    if (d.len && !(b->host = guest_mem__ptr(m, d.addr, d.len)))
      return virtq__fail(vq, "descriptor buffer outside guest memory");
    *(b->write ? &in : &out) += d.len;
    if (!(d.flags & VIRTQ_DESC_F_NEXT))
      break;
    i = d.next;
  }
  if (in > UINT32_MAX || out > UINT32_MAX)
    return virtq__fail(vq, "descriptor chain longer than 4 GiB");
  c->in_len = in;
  c->out_len = out;
  return 1;
}

int virtq__pop(struct virtq *vq, const struct guest_mem *m, struct virtq_chain *c)
{
  if (vq->broken)
    return -1;
  if (!vq->num)
    return 0;
  uint16_t avail_idx = load16_acquire(vq->avail + 2);
  uint16_t pending = avail_idx - vq->last_avail; /* free-running, mod 2^16 */
  if (pending == 0)
    return 0;
  if (pending > vq->num)
    return virtq__fail(vq, "available index moved by more than the queue size");
  uint16_t head = load16(vq->avail + 4 + 2u * (vq->last_avail & (vq->num - 1)));
  int r = virtq__walk(vq, m, head, c);
  if (r > 0)
    vq->last_avail++;
  return r;
}

void virtq__push(struct virtq *vq, uint16_t head, uint32_t len)
{
  if (!vq->num || vq->broken)
    return;
  uint8_t *e = vq->used + 4 + 8u * (vq->used_idx & (vq->num - 1));
  uint32_t id = htole32(head), l = htole32(len);
  memcpy(e, &id, 4);
  memcpy(e + 4, &l, 4);
  vq->used_idx++;
  __atomic_store_n((uint16_t *)(vq->used + 2), htole16(vq->used_idx), __ATOMIC_RELEASE);
}

bool virtq__should_notify(const struct virtq *vq)
{
  if (!vq->num)
    return false;
  /* Order our used->idx store before reading the driver's flag, else we may
   * miss a flag it cleared just before sleeping. */
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return !(load16(vq->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

static uint32_t virtq__copy(const struct virtq_chain *c, bool write, uint32_t off, uint8_t *p,
                            uint32_t len)
{
  uint32_t done = 0;
  for (unsigned i = 0; i < c->n && done < len; i++) {
    const struct virtq_buf *b = &c->buf[i];
    if (b->write != write)
      continue;
    if (off >= b->len) {
      off -= b->len;
      continue;
    }
    uint32_t n = b->len - off;
    if (n > len - done)
      n = len - done;
    if (write)
      memcpy(b->host + off, p + done, n);
    else
      memcpy(p + done, b->host + off, n);
    done += n;
    off = 0;
  }
  return done;
}

uint32_t virtq__read(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len)
{
  return virtq__copy(c, false, off, dst, len);
}

uint32_t virtq__write(const struct virtq_chain *c, uint32_t off, const void *src, uint32_t len)
{
  return virtq__copy(c, true, off, (uint8_t *)src, len);
}
