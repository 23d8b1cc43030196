/* ACPI tables, because stock distribution kernels (Debian's cloud kernel
 * among them) are built without CONFIG_X86_MPPARSE: for them the MP table
 * does not exist, and only ACPI tells Linux about the other CPUs, the
 * IOAPIC and how PCI INTx reaches it.
 *
 *   RSDP -> XSDT -> FADT -> DSDT   \_SB.PCI0 (PNP0A03) with _PRT: slot s,
 *                                  INTA# -> GSI pci__slot_gsi(s);
 *                                  \_S5 so ACPI power-off works
 *                -> MADT           one local APIC per vCPU, the IOAPIC,
 *                                  LINT1 = NMI
 *
 * The FADT describes full (not "reduced") hardware, so Linux keeps its
 * legacy PIC/PIT set-up and ISA IRQs stay one to one on IOAPIC pins, as
 * KVM's default routing has them.  That needs the fixed PM1 registers,
 * served here on ports 0x600-0x605: SCI_EN reads as set (no SMM, always
 * in ACPI mode), and sleep type 5 written with SLP_EN powers the VM off. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../../lib/util.h"
#include "core.h"

#define ACPI_PM1_EVT 0x600 /* PM1_STS, PM1_EN: 2 bytes each */
#define ACPI_PM1_CNT 0x604 /* 2 bytes */
#define ACPI_SCI_IRQ 9
#define ACPI_SLP_EN (1u << 13)
#define ACPI_SCI_EN 1u
#define ACPI_S5 5

struct acpi_header {
  char sig[4];
  uint32_t length;
  uint8_t revision, checksum;
  char oem[6], oem_table[8];
  uint32_t oem_revision;
  char creator[4];
  uint32_t creator_revision;
} __attribute__((packed));

struct acpi_rsdp {
  char sig[8];
  uint8_t checksum;
  char oem[6];
  uint8_t revision;
  uint32_t rsdt;
  uint32_t length;
  uint64_t xsdt;
  uint8_t ext_checksum, reserved[3];
} __attribute__((packed));

static void put32(uint8_t *t, size_t off, uint32_t v)
{
  memcpy(t + off, &v, 4);
}

/* --- a bump allocator over the reserved area ------------------------------------------ */

struct acpi_out {
  uint8_t *base;
  uint64_t gpa, used, cap;
};

static uint64_t acpi__alloc(struct acpi_out *o, uint64_t len, void **p)
{
  uint64_t at = (o->used + 15) & ~15ULL;
  if (at + len > o->cap)
    return 0;
  o->used = at + len;
  *p = o->base + at;
  return o->gpa + at;
}

static uint8_t acpi__sum(const void *p, size_t len)
{
  uint8_t s = 0;
  for (size_t i = 0; i < len; i++)
    s += ((const uint8_t *)p)[i];
  return (uint8_t)(0x100 - s);
}

static void acpi__header(void *table, const char *sig, uint32_t len, uint8_t rev)
{
  struct acpi_header *h = table;
  memcpy(h->sig, sig, 4);
  h->length = len;
  h->revision = rev;
  memcpy(h->oem, "VMBOX ", 6);
  memcpy(h->oem_table, "VMBOXKVM", 8);
  h->oem_revision = 1;
  memcpy(h->creator, "VMBX", 4);
  h->creator_revision = 1;
  h->checksum = 0;
  h->checksum = acpi__sum(table, len);
}

/* --- AML for the DSDT --------------------------------------------------------------------- */

struct aml {
  uint8_t b[1024];
  size_t n;
};

static void aml__put(struct aml *a, const void *p, size_t len)
{
  if (a->n + len > sizeof a->b)
    return; /* bounded by VMM_PCI_MAX_SLOTS: cannot happen */
  memcpy(a->b + a->n, p, len);
  a->n += len;
}

static void aml__byte(struct aml *a, uint8_t v)
{
  aml__put(a, &v, 1);
}

static void aml__dword(struct aml *a, uint32_t v)
{
  aml__byte(a, 0x0c); /* DWordPrefix */
  aml__put(a, &v, 4);
}

/* Appends op, PkgLength (which counts its own bytes) and the body. */
static void aml__wrap(struct aml *a, const uint8_t *op, size_t oplen, const struct aml *body)
{
  aml__put(a, op, oplen);
  size_t len = body->n + 1;
  if (len < 0x40) {
    aml__byte(a, (uint8_t)len);
  } else {
    len = body->n + 2;
    aml__byte(a, (uint8_t)(0x40 | (len & 0xf)));
    aml__byte(a, (uint8_t)(len >> 4));
  }
  aml__put(a, body->b, body->n);
}

static void aml__name_int(struct aml *a, const char *seg, uint32_t v)
{
  aml__byte(a, 0x08); /* NameOp */
  aml__put(a, seg, 4);
  if (v == 0)
    aml__byte(a, 0x00); /* ZeroOp */
  else
    aml__dword(a, v);
}

/* Name(_PRT, Package() { Package() { 0xSSSSFFFF, 0, Zero, GSI }, ... }) */
static void aml__prt(struct vmm *vm, struct aml *a)
{
  static const uint8_t pkg_op = 0x12;
  unsigned slots[VMM_PCI_MAX_SLOTS];
  unsigned n = pci__slots(vm, slots, VMM_PCI_MAX_SLOTS);
  struct aml list = {.n = 0};
  uint8_t count = 0;
  aml__byte(&list, 0); /* NumElements, patched below */
  for (unsigned i = 0; i < n && i < VMM_PCI_MAX_SLOTS; i++) {
    if (slots[i] < 1 || slots[i] > 31)
      continue;
    struct aml e = {.n = 0};
    aml__byte(&e, 4);
    aml__dword(&e, (slots[i] << 16) | 0xffff);
    aml__byte(&e, 0x00); /* pin INTA# */
    aml__byte(&e, 0x00); /* no link device: the next value is a GSI */
    aml__dword(&e, pci__slot_gsi(slots[i]));
    aml__wrap(&list, &pkg_op, 1, &e);
    count++;
  }
  list.b[0] = count;
  aml__byte(a, 0x08);
  aml__put(a, "_PRT", 4);
  aml__wrap(a, &pkg_op, 1, &list);
}

static void acpi__dsdt_aml(struct vmm *vm, struct aml *out)
{
  static const uint8_t device_op[] = {0x5b, 0x82}, scope_op = 0x10, pkg_op = 0x12;
  struct aml dev = {.n = 0}, pci = {.n = 0}, sb = {.n = 0}, s5 = {.n = 0};
  aml__put(&pci, "PCI0", 4);
  aml__name_int(&pci, "_HID", 0x030ad041); /* EisaId("PNP0A03") */
  aml__name_int(&pci, "_ADR", 0);
  aml__name_int(&pci, "_UID", 0);
  aml__prt(vm, &pci);
  aml__wrap(&dev, device_op, 2, &pci);
  aml__put(&sb, "\\_SB_", 5);
  aml__put(&sb, dev.b, dev.n);
  aml__wrap(out, &scope_op, 1, &sb);
  /* Name(_S5, Package() { 5, 5, 0, 0 }): SLP_TYP for soft-off. */
  static const uint8_t s5_body[] = {4, 0x0a, ACPI_S5, 0x0a, ACPI_S5, 0x00, 0x00};
  aml__put(&s5, s5_body, sizeof s5_body);
  aml__byte(out, 0x08);
  aml__put(out, "_S5_", 4);
  aml__wrap(out, &pkg_op, 1, &s5);
}

/* --- the tables ---------------------------------------------------------------------------- */

static uint64_t acpi__dsdt(struct vmm *vm, struct acpi_out *o)
{
  struct aml a = {.n = 0};
  acpi__dsdt_aml(vm, &a);
  void *t;
  uint32_t len = (uint32_t)(sizeof(struct acpi_header) + a.n);
  uint64_t gpa = acpi__alloc(o, len, &t);
  if (!gpa)
    return 0;
  memcpy((uint8_t *)t + sizeof(struct acpi_header), a.b, a.n);
  acpi__header(t, "DSDT", len, 2);
  return gpa;
}

/* Full hardware has a FACS (no waking vector: we never sleep). */
static uint64_t acpi__facs(struct acpi_out *o)
{
  uint8_t *t;
  o->used = (o->used + 63) & ~63ULL; /* 64-byte aligned */
  uint64_t gpa = acpi__alloc(o, 64, (void **)&t);
  if (!gpa)
    return 0;
  memcpy(t, "FACS", 4);
  put32(t, 4, 64);
  t[32] = 2; /* version */
  return gpa;
}

static uint64_t acpi__fadt(struct acpi_out *o, uint64_t dsdt)
{
  enum { FADT_LEN = 276 };
  uint64_t facs = acpi__facs(o);
  uint8_t *t;
  uint64_t gpa = acpi__alloc(o, FADT_LEN, (void **)&t);
  if (!gpa || !facs)
    return 0;
  put32(t, 36, (uint32_t)facs);
  put32(t, 40, (uint32_t)dsdt);
  t[46] = ACPI_SCI_IRQ; /* SCI_INT (16 bits; high byte stays 0) */
  put32(t, 56, ACPI_PM1_EVT);
  put32(t, 64, ACPI_PM1_CNT);
  t[88] = 4; /* PM1_EVT_LEN */
  t[89] = 2; /* PM1_CNT_LEN */
  /* IAPC_BOOT_ARCH: no 8042 (bit 1 clear: Linux skips the i8042 probe), no VGA. */
  t[109] = 1u << 2;
  /* Flags: WBINVD works; power and sleep buttons are not fixed features. */
  put32(t, 112, (1u << 0) | (1u << 4) | (1u << 5));
  memcpy(t + 140, &dsdt, 8); /* X_DSDT */
  acpi__header(t, "FACP", FADT_LEN, 6);
  return gpa;
}

static void madt__put(uint8_t *t, size_t *off, const uint8_t *e, size_t len)
{
  memcpy(t + *off, e, len);
  *off += len;
}

static uint64_t acpi__madt(struct vmm *vm, struct acpi_out *o)
{
  size_t len = sizeof(struct acpi_header) + 8 + 8 * vm->nvcpus + 12 + 6;
  uint8_t *t;
  uint64_t gpa = acpi__alloc(o, len, (void **)&t);
  if (!gpa)
    return 0;
  size_t off = sizeof(struct acpi_header);
  put32(t, off, (uint32_t)CORE_LAPIC_GPA);
  put32(t, off + 4, 1); /* PCAT_COMPAT: there are 8259s (KVM's) */
  off += 8;
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    uint8_t lapic[8] = {0, 8, (uint8_t)i, (uint8_t)i, 1, 0, 0, 0}; /* enabled */
    madt__put(t, &off, lapic, sizeof lapic);
  }
  uint8_t ioapic[12] = {1, 12, (uint8_t)vm->nvcpus, 0};
  put32(ioapic, 4, (uint32_t)CORE_IOAPIC_GPA); /* GSI base 0 follows */
  madt__put(t, &off, ioapic, sizeof ioapic);
  /* No interrupt source overrides: ISA IRQs are GSIs one to one, as in
   * KVM's default routing.  The SCI (never raised) keeps Linux's default,
   * level / active low, which is what _PRT gives the PCI IRQ it may share. */
  uint8_t nmi[6] = {4, 6, 0xff, 0, 0, 1}; /* all CPUs, LINT1 */
  madt__put(t, &off, nmi, sizeof nmi);
  acpi__header(t, "APIC", (uint32_t)len, 4);
  return gpa;
}

static uint64_t acpi__xsdt(struct acpi_out *o, const uint64_t *tables, unsigned n)
{
  size_t len = sizeof(struct acpi_header) + 8 * n;
  uint8_t *t;
  uint64_t gpa = acpi__alloc(o, len, (void **)&t);
  if (!gpa)
    return 0;
  memcpy(t + sizeof(struct acpi_header), tables, 8 * n);
  acpi__header(t, "XSDT", (uint32_t)len, 1);
  return gpa;
}

/* --- PM1 fixed registers ------------------------------------------------------------------ */

struct acpi_pm {
  pthread_mutex_t lock;
  struct vmm *vm;
  uint16_t reg[3]; /* PM1_STS, PM1_EN, PM1_CNT */
};

static void acpi__pm_io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct acpi_pm *pm = opaque;
  bool off = false;
  pthread_mutex_lock(&pm->lock);
  for (unsigned i = 0; i < size; i++) {
    unsigned at = (unsigned)(port - ACPI_PM1_EVT) + i;
    if (at >= 6) {
      if (!is_write)
        data[i] = 0xff;
      continue;
    }
    uint16_t *r = &pm->reg[at / 2];
    unsigned shift = (at % 2) * 8;
    if (!is_write) {
      uint16_t v = at / 2 == 2 ? (uint16_t)(*r | ACPI_SCI_EN) : at / 2 == 0 ? 0 : *r;
      data[i] = (uint8_t)(v >> shift);
    } else if (at / 2 != 0) { /* PM1_STS is write-1-to-clear: nothing to clear */
      *r = (uint16_t)((*r & ~(0xff << shift)) | (data[i] << shift));
    }
  }
  uint16_t cnt = pm->reg[2];
  if (is_write && (cnt & ACPI_SLP_EN) && ((cnt >> 10) & 7) == ACPI_S5)
    off = true;
  pm->reg[2] &= (uint16_t)~ACPI_SLP_EN;
  pthread_mutex_unlock(&pm->lock);
  if (off)
    vm__finish(pm->vm, VMM_EXIT_POWEROFF, 0, "guest ACPI power-off (S5)");
}

/* --- set-up --------------------------------------------------------------------------------- */

int acpi__setup(struct vmm *vm, vmbox_error_t *err)
{
  struct acpi_out o = {.gpa = CORE_ACPI_GPA, .cap = CORE_ACPI_SIZE};
  o.base = vmm__gpa(vm, o.gpa, o.cap);
  if (!o.base)
    return vmbox_error_set(err, 0, "no guest memory for the ACPI tables");
  memset(o.base, 0, o.cap);
  struct acpi_rsdp *rsdp;
  uint64_t rsdp_gpa = acpi__alloc(&o, sizeof *rsdp, (void **)&rsdp);
  uint64_t dsdt = acpi__dsdt(vm, &o);
  uint64_t tables[2] = {acpi__fadt(&o, dsdt), acpi__madt(vm, &o)};
  uint64_t xsdt = acpi__xsdt(&o, tables, 2);
  if (!rsdp_gpa || !dsdt || !tables[0] || !tables[1] || !xsdt)
    return vmbox_error_set(err, 0, "the ACPI tables do not fit in %llu bytes",
                           (unsigned long long)CORE_ACPI_SIZE);
  memcpy(rsdp->sig, "RSD PTR ", 8);
  memcpy(rsdp->oem, "VMBOX ", 6);
  rsdp->revision = 2;
  rsdp->length = sizeof *rsdp;
  rsdp->xsdt = xsdt;
  rsdp->checksum = acpi__sum(rsdp, 20);
  rsdp->ext_checksum = acpi__sum(rsdp, sizeof *rsdp);
  vm->acpi_rsdp = rsdp_gpa;

  struct acpi_pm *pm = xcalloc(1, sizeof *pm);
  pthread_mutex_init(&pm->lock, NULL);
  pm->vm = vm;
  vm->acpi_pm = pm;
  if (vmm__register_pio(vm, ACPI_PM1_EVT, 6, acpi__pm_io, pm) < 0)
    return vmbox_error_set(err, 0, "cannot register the ACPI PM1 ports");
  return 0;
}

void acpi__teardown(struct vmm *vm)
{
  struct acpi_pm *pm = vm->acpi_pm;
  if (!pm)
    return;
  pthread_mutex_destroy(&pm->lock);
  free(pm);
  vm->acpi_pm = NULL;
}
