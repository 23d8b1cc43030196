/* virtio-blk on the legacy PCI transport: /dev/vda in the guest, backed by
 * the box disk (disk.c).
 *
 * A request is: a 16-byte header {u32 type, u32 ioprio, u64 sector} in the
 * device-readable part, data (readable for OUT, writable for IN), and one
 * status byte, the last writable byte.  Whatever the guest puts there, the
 * worst it gets is an error status for that request; a corrupt ring stops the
 * queue (NEEDS_RESET), never the VMM.  Disk I/O runs on the vCPU thread that
 * kicked the queue. */
#include <endian.h>
#include <stdlib.h>
#include <string.h>

#include "../../../lib/log.h"
#include "../../../lib/util.h"
#include "blk.h"
#include "pci.h"

#define BLK_ID "vmbox-disk"

struct blk_hdr {
  uint32_t type, ioprio;
  uint64_t sector;
};

/* Moves len bytes between the disk at off and the chain's buffers of one
 * direction, skipping their first skip bytes (the header, for OUT). */
static int blk__io(struct disk *d, const struct virtq_chain *c, bool to_guest, uint32_t skip,
                   uint32_t len, uint64_t off)
{
  for (unsigned i = 0; i < c->n && len; i++) {
    const struct virtq_buf *b = &c->buf[i];
    if (b->write != to_guest)
      continue;
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    uint32_t n = b->len - skip < len ? b->len - skip : len;
    int r =
        to_guest ? disk__read(d, b->host + skip, n, off) : disk__write(d, b->host + skip, n, off);
    if (r < 0)
      return r;
    skip = 0, len -= n, off += n;
  }
  return 0;
}

/* Checks sector and length against the disk; -1 when out of range. */
static int blk__range(struct disk *d, uint64_t sector, uint32_t len, uint64_t *off)
{
  uint64_t cap = disk__size(d) / DISK_SECTOR;
  if (len % DISK_SECTOR || sector > cap || len / DISK_SECTOR > cap - sector)
    return -1;
  *off = sector * DISK_SECTOR;
  return 0;
}

static uint8_t blk__serve(struct disk *d, const struct virtq_chain *c, const struct blk_hdr *h,
                          uint32_t *written)
{
  uint64_t off;
  uint32_t in_data = c->in_len - 1; /* writable bytes before the status */
  uint32_t out_data = c->out_len - sizeof(*h);
  switch (h->type) {
  case VIRTIO_BLK_T_IN:
    if (blk__range(d, h->sector, in_data, &off) < 0 || blk__io(d, c, true, 0, in_data, off) < 0)
      return VIRTIO_BLK_S_IOERR;
    *written = in_data;
    return VIRTIO_BLK_S_OK;
  case VIRTIO_BLK_T_OUT:
    if (disk__read_only(d) || blk__range(d, h->sector, out_data, &off) < 0)
      return VIRTIO_BLK_S_IOERR;
    return blk__io(d, c, false, sizeof(*h), out_data, off) < 0 ? VIRTIO_BLK_S_IOERR
                                                               : VIRTIO_BLK_S_OK;
  case VIRTIO_BLK_T_FLUSH: return disk__flush(d) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
  case VIRTIO_BLK_T_GET_ID: {
    char id[VIRTIO_BLK_ID_BYTES] = BLK_ID; /* NUL-padded; no NUL needed at 20 */
    *written = virtq__write(c, 0, id, in_data < sizeof(id) ? in_data : sizeof(id));
    return VIRTIO_BLK_S_OK;
  }
  default: return VIRTIO_BLK_S_UNSUPP;
  }
}

uint32_t virtio_blk__request(struct disk *d, const struct virtq_chain *c)
{
  if (c->in_len == 0)
    return 0; /* nowhere to put a status: the driver's bug, nothing to say */
  struct blk_hdr h;
  uint32_t written = 0;
  uint8_t status;
  if (virtq__read(c, 0, &h, sizeof(h)) != sizeof(h)) {
    status = VIRTIO_BLK_S_IOERR;
  } else {
    h.type = le32toh(h.type);
    h.sector = le64toh(h.sector);
    status = blk__serve(d, c, &h, &written);
  }
  virtq__write(c, c->in_len - 1, &status, 1);
  return written + 1;
}

int virtio_blk__drain(struct disk *d, struct virtq *vq, const struct guest_mem *m,
                      struct virtq_chain *c)
{
  int served = 0, r;
  while ((r = virtq__pop(vq, m, c)) > 0) {
    virtq__push(vq, c->head, virtio_blk__request(d, c));
    served++;
  }
  return r < 0 ? -1 : served;
}

/* --- the device on the VM's PCI bus --------------------------------------- */

struct virtio_blk {
  struct virtio_pci vp; /* first: ops get the vp, we cast back */
  struct disk *disk;
  struct virtq_chain chain; /* big: one per device, used under vp.lock */
};

static void blk__notify(struct virtio_pci *vp, unsigned q)
{
  struct virtio_blk *blk = (struct virtio_blk *)vp;
  int n = virtio_blk__drain(blk->disk, &vp->vq[q], &vp->mem, &blk->chain);
  if (n < 0)
    virtio_pci__broken(vp, q);
  else if (n > 0 && virtq__should_notify(&vp->vq[q]))
    virtio_pci__signal(vp, VIRTIO_ISR_QUEUE);
}

static const struct virtio_dev_ops blk_ops = {.name = "virtio-blk", .notify = blk__notify};

static void put_le32(uint8_t *p, uint32_t v)
{
  v = htole32(v);
  memcpy(p, &v, 4);
}

/* struct virtio_blk_config up to blk_size: capacity @0, size_max @8,
 * seg_max @12, geometry @16, blk_size @20. */
static void blk__config(struct virtio_blk *blk)
{
  uint64_t cap = htole64(disk__size(blk->disk) / DISK_SECTOR);
  memcpy(blk->vp.config, &cap, 8);
  /* Without indirect descriptors a request must fit the ring: header and
   * status take two. */
  put_le32(blk->vp.config + 12, VIRTIO_BLK_QUEUE_SIZE - 2);
  put_le32(blk->vp.config + 20, DISK_SECTOR);
}

struct virtio_blk *virtio_blk__new(const struct vmm_config *cfg, vmbox_error_t *err)
{
  struct disk *disk;
  if (disk__open(&disk, cfg->disk_base, cfg->disk_overlay, cfg->disk_overlay_map, false, err) < 0)
    return NULL;
  struct virtio_blk *blk = xcalloc(1, sizeof(*blk));
  blk->disk = disk;
  uint32_t features =
      1u << VIRTIO_BLK_F_SEG_MAX | 1u << VIRTIO_BLK_F_BLK_SIZE | 1u << VIRTIO_BLK_F_FLUSH;
  if (disk__read_only(disk))
    features |= 1u << VIRTIO_BLK_F_RO;
  struct guest_mem none = {0};
  virtio_pci__setup(&blk->vp, &blk_ops, 1, VIRTIO_BLK_QUEUE_SIZE, features, VIRTIO_BLK_CONFIG_LEN,
                    &none, NULL);
  blk__config(blk);
  return blk;
}

struct virtio_pci *virtio_blk__vp(struct virtio_blk *blk)
{
  return &blk->vp;
}

int virtio_blk__free(struct virtio_blk *blk, vmbox_error_t *err)
{
  if (!blk)
    return 0;
  int r = disk__close(blk->disk, err);
  virtio_pci__cleanup(&blk->vp);
  free(blk);
  return r;
}

int virtio_blk__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err)
{
  if (!cfg->disk_base)
    return 0;
  struct virtio_blk *blk = virtio_blk__new(cfg, err);
  if (!blk)
    return vmbox_error_wrap(err, "virtio-blk");
  if (virtio_pci__plug(&blk->vp, vm, VIRTIO_BLK_LEGACY_DEVICE, VIRTIO_ID_BLOCK,
                       PCI_CLASS_STORAGE_SCSI, err) < 0) {
    virtio_blk__free(blk, NULL);
    return -1;
  }
  vmm__set_slot(vm, VMM_SLOT_BLK, blk);
  return 0;
}

void virtio_blk__exit(struct vmm *vm)
{
  struct virtio_blk *blk = vmm__slot(vm, VMM_SLOT_BLK);
  vmbox_error_t err = NULL;
  if (virtio_blk__free(blk, &err) < 0) {
    char *s = vmbox_error_string(err);
    log__warn("virtio-blk: %s", s);
    free(s);
    vmbox_error_free(&err);
  }
  vmm__set_slot(vm, VMM_SLOT_BLK, NULL);
}
