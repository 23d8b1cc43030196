/* PCI bus 0 as a Linux guest without firmware finds it: configuration
 * mechanism #1 on ports 0xCF8/0xCFC (what arch/x86/pci/direct.c probes), a
 * host bridge at 00:00.0 so pci_sanity_check() accepts the bus, and one
 * function per slot from slot 1, each with one I/O BAR.
 *
 * BARs are pre-assigned inside one I/O window that pci.c serves itself: Linux
 * keeps firmware-assigned BARs, and should it move one inside the window the
 * dispatcher follows, because it looks the BAR up at every access. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"
#include "pci.h"

/* INTx lines.  Debian's cloud kernel is built without CONFIG_X86_MPPARSE,
 * so with no ACPI it never sees an IOAPIC: it runs the 8259 in virtual-wire
 * mode and, with no IRQ router either, takes the config-space Interrupt Line
 * as is, but only below 16 (pcibios_fixup_irqs drops the rest as bogus).
 * So slots get ISA IRQs nothing else uses here; past four they share. */
static const uint8_t pci_irqs[] = {10, 11, 5, 9};

#define PCI_BAR_MAX_LEN 0x100 /* window / (VMM_PCI_MAX_SLOTS + 1) rounded down */

/* Type 0 header offsets (PCI Local Bus 3.0, 6.1). */
#define PCI_VENDOR_ID 0x00
#define PCI_DEVICE_ID 0x02
#define PCI_COMMAND 0x04
#define PCI_REVISION 0x08 /* class code in the 3 bytes above it */
#define PCI_CACHE_LINE 0x0c
#define PCI_LATENCY 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_INT_LINE 0x3c
#define PCI_INT_PIN 0x3d

#define PCI_STATUS 0x06
#define PCI_STATUS_INT 0x08 /* the function's INTx is asserted */
#define PCI_CMD_IO 0x1
#define PCI_CMD_INTX_OFF 0x400
#define PCI_CMD_WRITABLE 0x0507 /* I/O, memory, bus master, SERR, INTx disable */

struct pci_dev {
  uint8_t cfg[256];
  uint8_t wmask[256]; /* bits the guest may change */
  struct pci_bus *bus;
  unsigned slot, gsi;
  int level; /* this device's INTx */
  uint16_t bar0_len;
  vmm_pio_fn fn;
  void *opaque;
};

struct pci_bus {
  pthread_mutex_t lock; /* the address latch, every device's cfg and level */
  uint32_t addr;        /* last value written to 0xCF8 */
  void (*irq_line)(void *opaque, unsigned gsi, int level);
  void *irq_opaque;
  struct pci_dev *slot[VMM_PCI_MAX_SLOTS + 1];
  unsigned next_slot;
};

static void put16(uint8_t *p, uint16_t v)
{
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

static uint16_t get16(const uint8_t *p)
{
  return p[0] | (uint16_t)p[1] << 8;
}

static void put32(uint8_t *p, uint32_t v)
{
  put16(p, v & 0xffff);
  put16(p + 2, v >> 16);
}

static struct pci_dev *pci__new(unsigned slot, uint16_t vendor, uint16_t device,
                                uint32_t class_code)
{
  struct pci_dev *d = xcalloc(1, sizeof(*d));
  d->slot = slot;
  put16(d->cfg + PCI_VENDOR_ID, vendor);
  put16(d->cfg + PCI_DEVICE_ID, device);
  put32(d->cfg + PCI_REVISION, class_code << 8); /* revision 0 */
  d->cfg[PCI_HEADER_TYPE] = 0;                   /* type 0, single function */
  put16(d->wmask + PCI_COMMAND, PCI_CMD_WRITABLE);
  d->wmask[PCI_CACHE_LINE] = 0xff;
  d->wmask[PCI_LATENCY] = 0xff;
  d->wmask[PCI_INT_LINE] = 0xff;
  return d;
}

/* Which function the latch selects, or NULL (reads then return all ones,
 * which is how a guest learns a slot is empty). */
static struct pci_dev *pci__selected(struct pci_bus *bus)
{
  uint32_t a = bus->addr;
  unsigned busno = (a >> 16) & 0xff, dev = (a >> 11) & 0x1f, fn = (a >> 8) & 7;
  if (!(a & 0x80000000u) || busno != 0 || fn != 0 || (a & 0x0f000000u))
    return NULL; /* disabled, other bus/function, or AMD extended registers */
  if (dev > VMM_PCI_MAX_SLOTS)
    return NULL;
  return bus->slot[dev];
}

static void pci__cfg_write(struct pci_dev *d, unsigned off, const uint8_t *data, unsigned size)
{
  for (unsigned i = 0; i < size; i++) {
    uint8_t m = d->wmask[off + i];
    d->cfg[off + i] = (d->cfg[off + i] & ~m) | (data[i] & m);
  }
}

/* Latch at 0xCF8: only whole-dword accesses count.  Linux's type-1 probe
 * also writes a byte to 0xCFB (a chipset mode register): ignored. */
static void pci__addr_io(struct pci_bus *bus, unsigned off, bool is_write, uint8_t *data,
                         unsigned size)
{
  if (is_write) {
    if (off == 0 && size == 4)
      bus->addr = data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
    return;
  }
  for (unsigned i = 0; i < size; i++)
    data[i] = off + i < 4 ? (bus->addr >> (8 * (off + i))) & 0xff : 0xff;
}

static void pci__update_line(struct pci_bus *bus, unsigned gsi);

static void pci__data_io(struct pci_bus *bus, unsigned off, bool is_write, uint8_t *data,
                         unsigned size)
{
  struct pci_dev *d = pci__selected(bus);
  unsigned reg = (bus->addr & 0xfc) + off;
  if (!d || off + size > 4) { /* absent, or an access straddling the dword */
    if (!is_write)
      memset(data, 0xff, size);
    return;
  }
  if (is_write) {
    pci__cfg_write(d, reg, data, size);
    if (d->slot && reg <= PCI_COMMAND + 1 && reg + size > PCI_COMMAND)
      pci__update_line(bus, d->gsi); /* INTx Disable may have changed */
  } else
    memcpy(data, d->cfg + reg, size);
}

void pci_bus__conf_io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct pci_bus *bus = opaque;
  unsigned off = (port - PCI_CONF_ADDR) & 7;
  pthread_mutex_lock(&bus->lock);
  if (off < 4)
    pci__addr_io(bus, off, is_write, data, size);
  else
    pci__data_io(bus, off - 4, is_write, data, size);
  pthread_mutex_unlock(&bus->lock);
}

static uint16_t pci__bar0(const struct pci_dev *d)
{
  return get16(d->cfg + PCI_BAR0) & 0xfffc;
}

/* The I/O window: finds the device whose enabled BAR0 holds the port and
 * calls it with the offset in the BAR, outside the bus lock (devices lock
 * themselves, and may take time). */
void pci_bus__window_io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct pci_bus *bus = opaque;
  struct pci_dev *hit = NULL;
  unsigned abs = port, off = 0;
  pthread_mutex_lock(&bus->lock);
  for (unsigned s = 1; s < bus->next_slot && !hit; s++) {
    struct pci_dev *d = bus->slot[s];
    unsigned base = pci__bar0(d);
    if ((get16(d->cfg + PCI_COMMAND) & PCI_CMD_IO) && abs >= base &&
        abs + size <= base + d->bar0_len) {
      hit = d;
      off = abs - base;
    }
  }
  pthread_mutex_unlock(&bus->lock);
  if (hit)
    hit->fn(hit->opaque, off, is_write, data, size);
  else if (!is_write)
    memset(data, 0xff, size);
}

unsigned pci__slot_gsi(unsigned slot)
{
  return pci_irqs[(slot - 1) % ARRAY_SIZE(pci_irqs)];
}

/* A shared line is the OR of its devices: KVM keeps one level per source
 * and we are one source, so the last write would win otherwise.  A device
 * whose INTx Disable bit is set does not count; its Interrupt Status bit
 * still shows what it wants.  Bus lock held. */
static void pci__update_line(struct pci_bus *bus, unsigned gsi)
{
  int line = 0;
  for (unsigned s = 1; s < bus->next_slot; s++) {
    struct pci_dev *d = bus->slot[s];
    line |= d->gsi == gsi && d->level && !(get16(d->cfg + PCI_COMMAND) & PCI_CMD_INTX_OFF);
  }
  if (bus->irq_line)
    bus->irq_line(bus->irq_opaque, gsi, line);
}

void pci__set_irq(struct pci_dev *d, int level)
{
  struct pci_bus *bus = d->bus;
  pthread_mutex_lock(&bus->lock);
  d->level = !!level;
  d->cfg[PCI_STATUS] = (d->cfg[PCI_STATUS] & ~PCI_STATUS_INT) | (d->level ? PCI_STATUS_INT : 0);
  pci__update_line(bus, d->gsi);
  pthread_mutex_unlock(&bus->lock);
}

void pci_bus__set_irq_fn(struct pci_bus *bus, void (*fn)(void *, unsigned, int), void *opaque)
{
  bus->irq_line = fn;
  bus->irq_opaque = opaque;
}

struct pci_bus *pci_bus__new(void)
{
  struct pci_bus *bus = xcalloc(1, sizeof(*bus));
  pthread_mutex_init(&bus->lock, NULL);
  /* i440FX host bridge: class 06/00/00, what pci_sanity_check() looks for. */
  bus->slot[0] = pci__new(0, 0x8086, 0x1237, 0x060000);
  bus->next_slot = 1;
  return bus;
}

void pci_bus__free(struct pci_bus *bus)
{
  if (!bus)
    return;
  for (unsigned s = 0; s < bus->next_slot; s++)
    free(bus->slot[s]);
  pthread_mutex_destroy(&bus->lock);
  free(bus);
}

struct pci_dev *pci_bus__add(struct pci_bus *bus, uint16_t vendor, uint16_t device,
                             uint16_t subsys_id, uint32_t class_code, uint16_t bar0_len,
                             vmm_pio_fn fn, void *opaque, vmbox_error_t *err)
{
  if (bar0_len < 4 || bar0_len > PCI_BAR_MAX_LEN || (bar0_len & (bar0_len - 1))) {
    vmbox_error_set(err, 0, "pci: BAR0 length %u is not a power of two in 4..%u", bar0_len,
                    PCI_BAR_MAX_LEN);
    return NULL;
  }
  if (bus->next_slot > VMM_PCI_MAX_SLOTS) {
    vmbox_error_set(err, 0, "pci: all %d slots in use", VMM_PCI_MAX_SLOTS);
    return NULL;
  }
  unsigned slot = bus->next_slot;
  struct pci_dev *d = pci__new(slot, vendor, device, class_code);
  d->bar0_len = bar0_len;
  d->fn = fn;
  d->opaque = opaque;
  put16(d->cfg + PCI_SUBSYS_VENDOR, vendor);
  put16(d->cfg + PCI_SUBSYS_ID, subsys_id);
  /* Slot s gets [window + s*256, +len): aligned to len since len <= 256. */
  put32(d->cfg + PCI_BAR0, (PCI_IO_WINDOW + slot * PCI_BAR_MAX_LEN) | 1); /* bit 0: I/O */
  /* Sizing (write ~0, read back) yields ~(len-1); I/O decoders here are 16 bit. */
  put16(d->wmask + PCI_BAR0, ~(bar0_len - 1) & 0xfffc);
  d->bus = bus;
  d->gsi = pci__slot_gsi(slot);
  d->cfg[PCI_INT_LINE] = d->gsi;
  d->cfg[PCI_INT_PIN] = 1; /* INTA# */
  pthread_mutex_lock(&bus->lock);
  bus->slot[slot] = d;
  bus->next_slot++;
  pthread_mutex_unlock(&bus->lock);
  return d;
}

unsigned pci_bus__slots(const struct pci_bus *bus, unsigned *slots, unsigned max)
{
  unsigned n = 0;
  for (unsigned s = 1; s < bus->next_slot && n < max; s++)
    slots[n++] = s;
  return n;
}

/* --- vmm.h: the bus of one VM --------------------------------------------- */

static void pci__irq_line(void *vm, unsigned gsi, int level)
{
  vmm__irq_line(vm, gsi, level);
}

int pci__init(struct vmm *vm, vmbox_error_t *err)
{
  struct pci_bus *bus = pci_bus__new();
  pci_bus__set_irq_fn(bus, pci__irq_line, vm);
  vmm__set_slot(vm, VMM_SLOT_PCI, bus);
  if (vmm__register_pio(vm, PCI_CONF_ADDR, 8, pci_bus__conf_io, bus) < 0)
    return vmbox_error_set(err, 0, "pci: cannot claim config ports 0xcf8-0xcff");
  if (vmm__register_pio(vm, PCI_IO_WINDOW, PCI_IO_WINDOW_LEN, pci_bus__window_io, bus) < 0)
    return vmbox_error_set(err, 0, "pci: cannot claim I/O window 0x%x", PCI_IO_WINDOW);
  return 0;
}

void pci__exit(struct vmm *vm)
{
  pci_bus__free(vmm__slot(vm, VMM_SLOT_PCI));
  vmm__set_slot(vm, VMM_SLOT_PCI, NULL);
}

struct pci_dev *pci__add(struct vmm *vm, uint16_t vendor, uint16_t device, uint16_t subsys_id,
                         uint32_t class_code, uint16_t bar0_len, vmm_pio_fn fn, void *opaque,
                         vmbox_error_t *err)
{
  struct pci_bus *bus = vmm__slot(vm, VMM_SLOT_PCI);
  if (!bus) {
    vmbox_error_set(err, 0, "pci: bus not initialised");
    return NULL;
  }
  return pci_bus__add(bus, vendor, device, subsys_id, class_code, bar0_len, fn, opaque, err);
}

unsigned pci__slot(const struct pci_dev *d)
{
  return d->slot;
}

unsigned pci__gsi(const struct pci_dev *d)
{
  return d->gsi;
}

unsigned pci__slots(struct vmm *vm, unsigned *slots, unsigned max)
{
  struct pci_bus *bus = vmm__slot(vm, VMM_SLOT_PCI);
  return bus ? pci_bus__slots(bus, slots, max) : 0;
}
