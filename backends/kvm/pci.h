/* The PCI bus without a VM around it: pci.c's vmm.h functions are thin
 * wrappers over these, and unit tests drive the bus directly. */
#ifndef VMBOX_KVM_PCI_H
#define VMBOX_KVM_PCI_H

#include "vmm.h"

#define PCI_CONF_ADDR 0xcf8  /* config mechanism #1: address latch ... */
#define PCI_CONF_DATA 0xcfc  /* ... and data window */
#define PCI_IO_WINDOW 0x6000 /* where BARs are assigned: far from legacy ISA ports */
#define PCI_IO_WINDOW_LEN 0x1000

struct pci_bus;
struct pci_bus *pci_bus__new(void);
void pci_bus__free(struct pci_bus *bus);
struct pci_dev *pci_bus__add(struct pci_bus *bus, uint16_t vendor, uint16_t device,
                             uint16_t subsys_id, uint32_t class_code, uint16_t bar0_len,
                             vmm_pio_fn fn, void *opaque, vmbox_error_t *err);
/* Where INTx goes (the VMM's irq line; tests pass their own). */
void pci_bus__set_irq_fn(struct pci_bus *bus, void (*fn)(void *opaque, unsigned gsi, int level),
                         void *opaque);
unsigned pci_bus__slots(const struct pci_bus *bus, unsigned *slots, unsigned max);
/* vmm_pio_fn handlers (opaque = the bus) for 0xCF8..0xCFF and the window;
 * port is absolute. */
void pci_bus__conf_io(void *bus, uint16_t port, bool is_write, uint8_t *data, unsigned size);
void pci_bus__window_io(void *bus, uint16_t port, bool is_write, uint8_t *data, unsigned size);

#endif
