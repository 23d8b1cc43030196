/* Split virtqueues (virtio 1.x, 2.7) seen from the device side.
 *
 * Everything in guest memory is untrusted and may change under our feet
 * (other vCPUs run while we look): every descriptor is copied once, then
 * checked, and every buffer handed out has been translated and bounds-checked
 * against guest memory.  A queue the guest corrupts goes "broken" and is not
 * touched again until reset; the VMM itself never fails.
 *
 * Nothing here knows about struct vmm: guest memory is a guest_mem, which is
 * either a plain buffer (unit tests, fuzzers) or a translate callback. */
#ifndef VMBOX_KVM_VIRTIO_RING_H
#define VMBOX_KVM_VIRTIO_RING_H

#include <stdbool.h>
#include <stdint.h>

#define VIRTQ_MAX_SIZE 1024 /* spec allows 32768; our devices offer <= 256 */

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4 /* never offered: rejected */
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTIO_LEGACY_PFN_SHIFT 12
#define VIRTIO_LEGACY_ALIGN 4096

struct guest_mem {
  uint8_t *host; /* guest-physical 0 .. size-1, when translate is NULL */
  uint64_t size;
  /* Otherwise: host pointer to [gpa, gpa+len) or NULL if any of it is not
   * guest RAM (vmm__gpa). */
  void *(*translate)(void *opaque, uint64_t gpa, uint64_t len);
  void *opaque;
};

/* Host pointer to guest [gpa, gpa+len), overflow-safe; NULL when outside. */
void *guest_mem__ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

struct virtq {
  uint16_t num; /* 0: not set up */
  bool broken;
  uint16_t last_avail;          /* next avail entry to consume: ours, not the guest's */
  uint16_t used_idx;            /* shadow of used->idx: never read back from the guest */
  uint8_t *desc, *avail, *used; /* host pointers, checked at setup */
  uint64_t desc_gpa, avail_gpa, used_gpa;
  const char *why; /* why it broke, for the log */
};

struct virtq_buf {
  uint8_t *host; /* NULL when len == 0 */
  uint32_t len;
  bool write; /* device-writable */
};

struct virtq_chain {
  uint16_t head; /* what goes back in the used ring */
  unsigned n;
  uint32_t in_len, out_len; /* total device-writable / device-readable bytes */
  struct virtq_buf buf[VIRTQ_MAX_SIZE];
};

/* Byte sizes of the three parts for a queue of num entries. */
uint64_t virtq__desc_size(uint16_t num);
uint64_t virtq__avail_size(uint16_t num);
uint64_t virtq__used_size(uint16_t num);

/* Checks the layout (num a power of two <= max, alignment, all three parts in
 * guest memory) and resets the indexes.  -1 (queue left unset) when bad. */
int virtq__setup(struct virtq *vq, const struct guest_mem *m, uint16_t num, uint16_t max,
                 uint64_t desc, uint64_t avail, uint64_t used);
/* The legacy layout: all three from one page frame number, used ring aligned
 * to 4096. */
int virtq__setup_legacy(struct virtq *vq, const struct guest_mem *m, uint16_t num, uint16_t max,
                        uint32_t pfn);
void virtq__reset(struct virtq *vq);
static inline bool virtq__ready(const struct virtq *vq)
{
  return vq->num && !vq->broken;
}

/* Takes the next available chain: 1 = *c filled, 0 = nothing available,
 * -1 = the guest broke the queue (vq->broken, vq->why). */
int virtq__pop(struct virtq *vq, const struct guest_mem *m, struct virtq_chain *c);
/* Returns a chain to the driver with `len` bytes written into it. */
void virtq__push(struct virtq *vq, uint16_t head, uint32_t len);
/* After pushes: whether the driver asked for an interrupt. */
bool virtq__should_notify(const struct virtq *vq);

/* Gather/scatter over a chain's readable / writable buffers, skipping `off`
 * bytes of that direction first.  Return the bytes copied. */
uint32_t virtq__read(const struct virtq_chain *c, uint32_t off, void *dst, uint32_t len);
uint32_t virtq__write(const struct virtq_chain *c, uint32_t off, const void *src, uint32_t len);

#endif
