/* Legacy virtio-pci transport (virtio 1.x, 4.1.4.8): one I/O BAR, no
 * capability list, no MSI-X, INTx only.  Generic over device types: a device
 * embeds a struct virtio_pci, fills config[] and says what it offers; the
 * transport does registers, feature bits, queue set-up, ISR and the IRQ line.
 *
 * Locking: vp->lock is held around every register access, so device
 * callbacks run with it held.  Another thread touching queues (an rx thread
 * in later devices) takes it too. */
#ifndef VMBOX_KVM_VIRTIO_PCI_H
#define VMBOX_KVM_VIRTIO_PCI_H

#include <pthread.h>

#include "../vmm.h"
#include "ring.h"

/* BAR0 registers without MSI-X. */
#define VIRTIO_PCI_HOST_FEATURES 0  /* u32 ro */
#define VIRTIO_PCI_GUEST_FEATURES 4 /* u32 rw */
#define VIRTIO_PCI_QUEUE_PFN 8      /* u32 rw: ring address >> 12, 0 = off */
#define VIRTIO_PCI_QUEUE_NUM 12     /* u16 ro: size of the selected queue */
#define VIRTIO_PCI_QUEUE_SEL 14     /* u16 rw */
#define VIRTIO_PCI_QUEUE_NOTIFY 16  /* u16 wo: queue index */
#define VIRTIO_PCI_STATUS 18        /* u8 rw: 0 resets */
#define VIRTIO_PCI_ISR 19           /* u8 ro: reading clears (and lowers INTx) */
#define VIRTIO_PCI_CONFIG 20        /* device-specific config */

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

#define VIRTIO_ISR_QUEUE 1
#define VIRTIO_ISR_CONFIG 2

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_MAX_QUEUES 4
#define VIRTIO_PCI_CONFIG_MAX 64

struct virtio_pci;

struct virtio_dev_ops {
  const char *name; /* for the log: "virtio-blk" */
  /* The driver kicked queue q (ready, not broken). */
  void (*notify)(struct virtio_pci *vp, unsigned q);
  /* The driver wrote status 0; queues are already reset. */
  void (*reset)(struct virtio_pci *vp);
};

struct virtio_pci {
  pthread_mutex_t lock;
  const struct virtio_dev_ops *ops;
  struct guest_mem mem;
  uint32_t host_features, guest_features;
  uint8_t status, isr;
  uint16_t queue_sel, queue_max;
  unsigned nqueues;
  struct virtq vq[VIRTIO_PCI_MAX_QUEUES];
  uint32_t pfn[VIRTIO_PCI_MAX_QUEUES];
  uint8_t config[VIRTIO_PCI_CONFIG_MAX]; /* device fills, little endian */
  unsigned config_len;
  /* INTx: level 1 while isr != 0. */
  void (*irq)(struct virtio_pci *vp, int level);
  bool irq_level;
  struct vmm *vm; /* set by virtio_pci__plug */
  struct pci_dev *pci;
};

/* Sets up the transport state; no VM needed (unit tests stop here and call
 * virtio_pci__io directly). */
void virtio_pci__setup(struct virtio_pci *vp, const struct virtio_dev_ops *ops, unsigned nqueues,
                       uint16_t queue_max, uint32_t host_features, unsigned config_len,
                       const struct guest_mem *mem, void (*irq)(struct virtio_pci *, int));
/* BAR0 size: registers + config, rounded up to a power of two. */
uint16_t virtio_pci__bar_len(const struct virtio_pci *vp);
/* Puts it on the VM's PCI bus with a legacy (transitional) device id. */
int virtio_pci__plug(struct virtio_pci *vp, struct vmm *vm, uint16_t device_id, uint16_t subsys_id,
                     uint32_t class_code, vmbox_error_t *err);
void virtio_pci__cleanup(struct virtio_pci *vp);

/* The BAR0 handler (vmm_pio_fn; opaque is the struct virtio_pci). */
void virtio_pci__io(void *opaque, uint16_t off, bool is_write, uint8_t *data, unsigned size);

/* For devices, lock held: raise the interrupt with this ISR cause. */
void virtio_pci__signal(struct virtio_pci *vp, uint8_t cause);
/* The guest corrupted a queue: NEEDS_RESET, logged once, config interrupt. */
void virtio_pci__broken(struct virtio_pci *vp, unsigned q);

#endif
