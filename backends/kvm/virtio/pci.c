/* Legacy virtio-pci transport; see pci.h. */
#include <string.h>

#include "../../../lib/log.h"
#include "pci.h"

void virtio_pci__setup(struct virtio_pci *vp, const struct virtio_dev_ops *ops, unsigned nqueues,
                       uint16_t queue_max, uint32_t host_features, unsigned config_len,
                       const struct guest_mem *mem, void (*irq)(struct virtio_pci *, int))
{
  pthread_mutex_init(&vp->lock, NULL);
  vp->ops = ops;
  vp->nqueues = nqueues < VIRTIO_PCI_MAX_QUEUES ? nqueues : VIRTIO_PCI_MAX_QUEUES;
  vp->queue_max = queue_max;
  vp->host_features = host_features;
  vp->config_len = config_len < VIRTIO_PCI_CONFIG_MAX ? config_len : VIRTIO_PCI_CONFIG_MAX;
  vp->mem = *mem;
  vp->irq = irq;
}

void virtio_pci__cleanup(struct virtio_pci *vp)
{
  pthread_mutex_destroy(&vp->lock);
}

static void virtio_pci__set_irq(struct virtio_pci *vp, int level)
{
  if (vp->irq_level == !!level)
    return;
  vp->irq_level = level;
  if (vp->irq)
    vp->irq(vp, level);
}

void virtio_pci__signal(struct virtio_pci *vp, uint8_t cause)
{
  vp->isr |= cause;
  virtio_pci__set_irq(vp, 1);
}

void virtio_pci__broken(struct virtio_pci *vp, unsigned q)
{
  if (vp->status & VIRTIO_STATUS_NEEDS_RESET)
    return;
  log__warn("%s: guest broke queue %u (%s); device needs a reset", vp->ops->name, q,
            vp->vq[q].why ? vp->vq[q].why : "bad ring address");
  vp->status |= VIRTIO_STATUS_NEEDS_RESET;
  virtio_pci__signal(vp, VIRTIO_ISR_CONFIG);
}

static void virtio_pci__reset(struct virtio_pci *vp)
{
  for (unsigned q = 0; q < vp->nqueues; q++) {
    virtq__reset(&vp->vq[q]);
    vp->pfn[q] = 0;
  }
  vp->guest_features = 0;
  vp->status = 0;
  vp->queue_sel = 0;
  vp->isr = 0;
  virtio_pci__set_irq(vp, 0);
  if (vp->ops->reset)
    vp->ops->reset(vp);
}

static void virtio_pci__set_pfn(struct virtio_pci *vp, uint32_t pfn)
{
  unsigned q = vp->queue_sel;
  if (q >= vp->nqueues)
    return;
  vp->pfn[q] = pfn;
  if (pfn == 0) {
    virtq__reset(&vp->vq[q]);
    return;
  }
  /* Legacy queues have the device's size; the driver cannot pick another. */
  if (virtq__setup_legacy(&vp->vq[q], &vp->mem, vp->queue_max, vp->queue_max, pfn) < 0)
    virtio_pci__broken(vp, q);
}

/* The 20 register bytes as the driver would read them now. */
static void virtio_pci__regs(const struct virtio_pci *vp, uint8_t r[VIRTIO_PCI_CONFIG])
{
  unsigned q = vp->queue_sel;
  uint32_t pfn = q < vp->nqueues ? vp->pfn[q] : 0;
  uint16_t num = q < vp->nqueues ? vp->queue_max : 0;
  memset(r, 0, VIRTIO_PCI_CONFIG);
  for (unsigned i = 0; i < 4; i++) {
    r[VIRTIO_PCI_HOST_FEATURES + i] = vp->host_features >> (8 * i);
    r[VIRTIO_PCI_GUEST_FEATURES + i] = vp->guest_features >> (8 * i);
    r[VIRTIO_PCI_QUEUE_PFN + i] = pfn >> (8 * i);
  }
  r[VIRTIO_PCI_QUEUE_NUM] = num & 0xff;
  r[VIRTIO_PCI_QUEUE_NUM + 1] = num >> 8;
  r[VIRTIO_PCI_QUEUE_SEL] = q & 0xff;
  r[VIRTIO_PCI_QUEUE_SEL + 1] = q >> 8;
  r[VIRTIO_PCI_STATUS] = vp->status;
  r[VIRTIO_PCI_ISR] = vp->isr;
}

static void virtio_pci__read(struct virtio_pci *vp, unsigned off, uint8_t *data, unsigned size)
{
  if (off >= VIRTIO_PCI_CONFIG) {
    unsigned c = off - VIRTIO_PCI_CONFIG;
    memset(data, 0, size); /* past config_len: reads as zero */
    for (unsigned i = 0; i < size && c + i < vp->config_len; i++)
      data[i] = vp->config[c + i];
    return;
  }
  uint8_t r[VIRTIO_PCI_CONFIG];
  virtio_pci__regs(vp, r);
  memset(data, 0xff, size);
  for (unsigned i = 0; i < size && off + i < VIRTIO_PCI_CONFIG; i++)
    data[i] = r[off + i];
  if (off <= VIRTIO_PCI_ISR && off + size > VIRTIO_PCI_ISR) {
    vp->isr = 0; /* read-to-clear, and the level interrupt drops with it */
    virtio_pci__set_irq(vp, 0);
  }
}

/* Registers are written with their own width; anything else is ignored, as
 * is every write to the device config (nothing there is writable). */
static void virtio_pci__write(struct virtio_pci *vp, unsigned off, const uint8_t *data,
                              unsigned size)
{
  uint32_t v = 0;
  for (unsigned i = 0; i < size; i++)
    v |= (uint32_t)data[i] << (8 * i);
  if (off == VIRTIO_PCI_GUEST_FEATURES && size == 4) {
    vp->guest_features = v & vp->host_features;
  } else if (off == VIRTIO_PCI_QUEUE_PFN && size == 4) {
    virtio_pci__set_pfn(vp, v);
  } else if (off == VIRTIO_PCI_QUEUE_SEL && size == 2) {
    vp->queue_sel = v;
  } else if (off == VIRTIO_PCI_QUEUE_NOTIFY && size == 2) {
    if (v < vp->nqueues && virtq__ready(&vp->vq[v]))
      vp->ops->notify(vp, v);
  } else if (off == VIRTIO_PCI_STATUS && size == 1) {
    if (v == 0)
      virtio_pci__reset(vp);
    else /* NEEDS_RESET is ours: only a reset clears it */
      vp->status = v | (vp->status & VIRTIO_STATUS_NEEDS_RESET);
  }
}

void virtio_pci__io(void *opaque, uint16_t off, bool is_write, uint8_t *data, unsigned size)
{
  struct virtio_pci *vp = opaque;
  if (size == 0 || size > 4) /* the VMM passes 1, 2 or 4; nothing else is safe */
    return;
  pthread_mutex_lock(&vp->lock);
  if (is_write)
    virtio_pci__write(vp, off, data, size);
  else
    virtio_pci__read(vp, off, data, size);
  pthread_mutex_unlock(&vp->lock);
}

uint16_t virtio_pci__bar_len(const struct virtio_pci *vp)
{
  uint16_t bar = 32;
  while (bar < VIRTIO_PCI_CONFIG + vp->config_len)
    bar *= 2;
  return bar;
}

static void *virtio_pci__gpa(void *opaque, uint64_t gpa, uint64_t len)
{
  return vmm__gpa(opaque, gpa, len);
}

static void virtio_pci__intx(struct virtio_pci *vp, int level)
{
  pci__set_irq(vp->pci, level);
}

int virtio_pci__plug(struct virtio_pci *vp, struct vmm *vm, uint16_t device_id, uint16_t subsys_id,
                     uint32_t class_code, vmbox_error_t *err)
{
  uint16_t bar = virtio_pci__bar_len(vp);
  vp->vm = vm;
  vp->mem = (struct guest_mem){.translate = virtio_pci__gpa, .opaque = vm};
  vp->irq = virtio_pci__intx;
  vp->pci = pci__add(vm, VIRTIO_PCI_VENDOR, device_id, subsys_id, class_code, bar, virtio_pci__io,
                     vp, err);
  if (!vp->pci)
    return vmbox_error_wrap(err, "%s", vp->ops->name);
  return 0;
}
