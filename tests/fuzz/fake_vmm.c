/* Stand-ins for the VMM functions (vmm.h) and the log, so a fuzz target
 * links the device code it tests without a VM around it: guest memory is
 * the target's own buffer, there is no PCI bus, no IRQ line, no jail, and
 * warnings are dropped (a fuzzer makes millions of them). */
#include <stdlib.h>

#include "../../backends/kvm/vmm.h"
#include "../../lib/log.h"

bool log__debug_enabled;
void log__debug(const char *fmt, ...)
{
  (void)fmt;
}
void log__warn(const char *fmt, ...)
{
  (void)fmt;
}

void *vmm__gpa(struct vmm *vm, uint64_t gpa, uint64_t len)
{
  (void)vm, (void)gpa, (void)len;
  return NULL;
}

void vmm__irq_line(struct vmm *vm, unsigned gsi, int level)
{
  (void)vm, (void)gsi, (void)level;
}

struct pci_dev *pci__add(struct vmm *vm, uint16_t vendor, uint16_t device, uint16_t subsys_id,
                         uint32_t class_code, uint16_t bar0_len, vmm_pio_fn fn, void *opaque,
                         vmbox_error_t *err)
{
  (void)vm, (void)vendor, (void)device, (void)subsys_id, (void)class_code, (void)bar0_len;
  (void)fn, (void)opaque;
  vmbox_error_set(err, 0, "no PCI bus in a fuzz target");
  return NULL;
}

void pci__set_irq(struct pci_dev *d, int level)
{
  (void)d, (void)level;
}

static void *slots[VMM_SLOT_COUNT];
void *vmm__slot(struct vmm *vm, enum vmm_slot s)
{
  (void)vm;
  return slots[s];
}
void vmm__set_slot(struct vmm *vm, enum vmm_slot s, void *p)
{
  (void)vm;
  slots[s] = p;
}

int jail__thread(enum jail_thread kind, vmbox_error_t *err)
{
  (void)kind, (void)err;
  return 0;
}
