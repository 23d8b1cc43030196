/* The MP table (Intel MultiProcessor Specification 1.4): how a kernel
 * built with CONFIG_X86_MPPARSE and booted without ACPI learns its CPUs,
 * its IOAPIC and how ISA and PCI interrupts reach IOAPIC pins.  Kernels
 * with ACPI prefer acpi.c's MADT and _PRT (and Debian's cloud kernel has
 * no MPPARSE at all); both describe the same machine.  Linux finds the
 * floating pointer by scanning 0xF0000-0xFFFFF. */
#include <string.h>

#include "../../lib/util.h"
#include "core.h"

enum {
  MP_PROCESSOR = 0,
  MP_BUS = 1,
  MP_IOAPIC = 2,
  MP_INTSRC = 3,
  MP_LINTSRC = 4,
};
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
enum { MP_BUS_PCI = 0, MP_BUS_ISA = 1 };
enum { MP_CPU_ENABLED = 1, MP_CPU_BSP = 2 };
/* Interrupt flags: polarity in bits 1:0, trigger mode in bits 3:2. */
#define MP_IRQ_CONFORMING 0x0
#define MP_IRQ_PCI (0x1 | (0x3 << 2)) /* active high, level */
#define MP_LAPIC_VERSION 0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_ISA_IRQS 16

struct mp_floating {
  char signature[4]; /* "_MP_" */
  uint32_t physptr;
  uint8_t length; /* in 16-byte units */
  uint8_t specrev;
  uint8_t checksum;
  uint8_t feature[5];
} __attribute__((packed));

struct mp_config {
  char signature[4]; /* "PCMP" */
  uint16_t length;
  uint8_t specrev;
  uint8_t checksum;
  char oem[8];
  char product[12];
  uint32_t oem_ptr;
  uint16_t oem_size;
  uint16_t count;
  uint32_t lapic;
  uint16_t ext_length;
  uint8_t ext_checksum;
  uint8_t reserved;
} __attribute__((packed));

struct mp_cpu {
  uint8_t type, apic_id, apic_ver, flags;
  uint32_t signature, features;
  uint32_t reserved[2];
} __attribute__((packed));

struct mp_bus {
  uint8_t type, id;
  char name[6];
} __attribute__((packed));

struct mp_ioapic {
  uint8_t type, id, version, flags;
  uint32_t addr;
} __attribute__((packed));

struct mp_irq { /* both MP_INTSRC and MP_LINTSRC */
  uint8_t type, irq_type;
  uint16_t flags;
  uint8_t src_bus, src_irq, dst_apic, dst_pin;
} __attribute__((packed));

struct mp_writer {
  uint8_t *p, *end;
  uint16_t count;
};

static void mp__put(struct mp_writer *w, const void *entry, size_t len)
{
  if (w->p + len > w->end)
    return; /* cannot happen: the size is bounded by CORE_MAX_VCPUS */
  memcpy(w->p, entry, len);
  w->p += len;
  w->count++;
}

static uint8_t mp__checksum(const uint8_t *p, size_t len)
{
  uint8_t sum = 0;
  for (size_t i = 0; i < len; i++)
    sum += p[i];
  return (uint8_t)(0x100 - sum);
}

static void mp__irq(struct mp_writer *w, uint8_t type, uint8_t irq_type, uint16_t flags,
                    uint8_t bus, uint8_t src, uint8_t dst_apic, uint8_t pin)
{
  struct mp_irq e = {type, irq_type, flags, bus, src, dst_apic, pin};
  mp__put(w, &e, sizeof e);
}

static void mp__cpus_buses(struct vmm *vm, struct mp_writer *w, uint8_t ioapic_id)
{
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    struct mp_cpu c = {
        .type = MP_PROCESSOR,
        .apic_id = (uint8_t)i,
        .apic_ver = MP_LAPIC_VERSION,
        .flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0),
        .signature = 0x600, /* family 6; Linux takes the real one from CPUID */
        .features = 0x201,  /* FPU, APIC */
    };
    mp__put(w, &c, sizeof c);
  }
  struct mp_bus pci = {.type = MP_BUS, .id = MP_BUS_PCI}, isa = {.type = MP_BUS, .id = MP_BUS_ISA};
  memcpy(pci.name, "PCI   ", 6);
  memcpy(isa.name, "ISA   ", 6);
  mp__put(w, &pci, sizeof pci);
  mp__put(w, &isa, sizeof isa);
  struct mp_ioapic io = {MP_IOAPIC, ioapic_id, MP_IOAPIC_VERSION, 1, (uint32_t)CORE_IOAPIC_GPA};
  mp__put(w, &io, sizeof io);
}

static void mp__interrupts(struct vmm *vm, struct mp_writer *w, uint8_t ioapic_id)
{
  unsigned slots[VMM_PCI_MAX_SLOTS];
  unsigned n = pci__slots(vm, slots, VMM_PCI_MAX_SLOTS);
  if (n > VMM_PCI_MAX_SLOTS)
    n = VMM_PCI_MAX_SLOTS;
  uint32_t pci_pins = 0;
  for (unsigned i = 0; i < n; i++)
    if (slots[i] >= 1 && slots[i] <= 31 && pci__slot_gsi(slots[i]) < 32)
      pci_pins |= 1u << pci__slot_gsi(slots[i]);
  /* KVM's default routing sends GSI n to IOAPIC pin n, the PIT's IRQ 0
   * included, so ISA IRQs map one to one; the ones PCI devices use are
   * theirs alone (level, not ISA edge). */
  for (uint8_t irq = 0; irq < MP_ISA_IRQS; irq++)
    if (!(pci_pins & (1u << irq)))
      mp__irq(w, MP_INTSRC, MP_INT, MP_IRQ_CONFORMING, MP_BUS_ISA, irq, ioapic_id, irq);
  for (unsigned i = 0; i < n; i++) {
    if (slots[i] < 1 || slots[i] > 31)
      continue;
    /* Source IRQ: device number in bits 6:2, INTA# (0) in bits 1:0. */
    mp__irq(w, MP_INTSRC, MP_INT, MP_IRQ_PCI, MP_BUS_PCI, (uint8_t)(slots[i] << 2), ioapic_id,
            (uint8_t)pci__slot_gsi(slots[i]));
  }
  mp__irq(w, MP_LINTSRC, MP_EXTINT, MP_IRQ_CONFORMING, MP_BUS_ISA, 0, 0xff, 0);
  mp__irq(w, MP_LINTSRC, MP_NMI, MP_IRQ_CONFORMING, MP_BUS_ISA, 0, 0xff, 1);
}

int mptable__setup(struct vmm *vm, vmbox_error_t *err)
{
  const size_t room = 0x10000; /* the reserved BIOS area */
  uint8_t *base = vmm__gpa(vm, CORE_BIOS_GPA, room);
  if (!base)
    return vmbox_error_set(err, 0, "no guest memory for the MP table");
  memset(base, 0, room);
  struct mp_floating *mpf = (void *)base;
  struct mp_config *mpc = (void *)(base + sizeof *mpf);
  struct mp_writer w = {(uint8_t *)(mpc + 1), base + room, 0};
  uint8_t ioapic_id = (uint8_t)vm->nvcpus; /* clear of every local APIC id */
  mp__cpus_buses(vm, &w, ioapic_id);
  mp__interrupts(vm, &w, ioapic_id);

  memcpy(mpc->signature, "PCMP", 4);
  mpc->length = (uint16_t)(w.p - (uint8_t *)mpc);
  mpc->specrev = 4;
  memcpy(mpc->oem, "VMBOX   ", 8);
  memcpy(mpc->product, "VMBOX-KVM   ", 12);
  mpc->count = w.count;
  mpc->lapic = (uint32_t)CORE_LAPIC_GPA;
  mpc->checksum = mp__checksum((uint8_t *)mpc, mpc->length);

  memcpy(mpf->signature, "_MP_", 4);
  mpf->physptr = (uint32_t)(CORE_BIOS_GPA + sizeof *mpf);
  mpf->length = 1;
  mpf->specrev = 4;
  mpf->checksum = mp__checksum((uint8_t *)mpf, sizeof *mpf);
  return 0;
}
