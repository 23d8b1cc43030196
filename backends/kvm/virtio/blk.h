/* virtio-blk (virtio 1.x, 5.2) request handling, exposed apart from the
 * transport so unit tests and fuzzers drive it on a plain buffer. */
#ifndef VMBOX_KVM_VIRTIO_BLK_H
#define VMBOX_KVM_VIRTIO_BLK_H

#include "../disk.h"
#include "../vmm.h"
#include "ring.h"

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_BLK_LEGACY_DEVICE 0x1001 /* transitional: 0x1000 + id - 1 */
#define PCI_CLASS_STORAGE_SCSI 0x010000

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20

#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_CONFIG_LEN 24 /* capacity .. blk_size: all we offer */

/* Serves one request chain; returns the bytes written into it (the used
 * length), 0 when the chain has no byte for a status. */
uint32_t virtio_blk__request(struct disk *d, const struct virtq_chain *c);
/* Serves every available request of vq: the number served, or -1 when the
 * guest broke the queue (vq->why says how). */
int virtio_blk__drain(struct disk *d, struct virtq *vq, const struct guest_mem *m,
                      struct virtq_chain *c);

/* The device without a VM: disk opened, transport set up, not on a bus
 * (virtio_blk__init = this + virtio_pci__plug).  Tests plug it themselves. */
struct virtio_blk;
struct virtio_blk *virtio_blk__new(const struct vmm_config *cfg, vmbox_error_t *err);
struct virtio_pci *virtio_blk__vp(struct virtio_blk *blk);
/* Closes the disk (flushing the overlay map); NULL is fine. */
int virtio_blk__free(struct virtio_blk *blk, vmbox_error_t *err);

#endif
