/* The VMM core's private state: shared by vm.c, vcpu.c, boot.c, mptable.c,
 * ioport.c and serial.c only.  Devices (pci.c, virtio/, disk.c) and the
 * backend glue see the VM through vmm.h alone. */
#ifndef VMBOX_KVM_CORE_H
#define VMBOX_KVM_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm.h"

/* Guest-physical layout below 1 MiB: what the 64-bit boot protocol needs
 * before the kernel builds its own tables.  All of it is plain RAM the
 * kernel may reuse once it has copied boot_params and the command line. */
#define CORE_GDT_GPA 0x500ULL
#define CORE_ZERO_PAGE_GPA 0x7000ULL
#define CORE_PML4_GPA 0x9000ULL
#define CORE_PDPT_GPA 0xa000ULL
#define CORE_PD_GPA 0xb000ULL /* 4 pages: 2 MiB pages for the first 4 GiB */
#define CORE_BOOT_STACK 0x8ff0ULL
#define CORE_CMDLINE_GPA 0x20000ULL
#define CORE_CMDLINE_MAX 0x10000ULL
#define CORE_EBDA_GPA 0x9fc00ULL /* e820: RAM ends here, as on a PC */
#define CORE_ACPI_GPA 0xe0000ULL /* reserved up to 1 MiB: ACPI tables, */
#define CORE_ACPI_SIZE 0x10000ULL
#define CORE_BIOS_GPA 0xf0000ULL       /* then the MP table */
#define CORE_KERNEL_GPA 0x100000ULL    /* protected-mode kernel, 1 MiB */
#define CORE_LOW_RAM_MAX 0xc0000000ULL /* 3 GiB; the rest goes above 4 GiB */
#define CORE_HIGH_RAM_GPA 0x100000000ULL
#define CORE_IDENT_MAP_GPA 0xfffbc000ULL /* KVM's private pages (VMX only) */
#define CORE_TSS_GPA 0xfffbd000ULL
#define CORE_IOAPIC_GPA 0xfec00000ULL
#define CORE_LAPIC_GPA 0xfee00000ULL

#define CORE_MAX_VCPUS 64
#define CORE_MIN_MEM (32ULL << 20)
#define CORE_MAX_MEM (1ULL << 40)
#define CORE_BUS_MAX 32

struct core_bus_range {
  uint64_t base, len;
  vmm_pio_fn pio_fn; /* one of the two, by bus */
  vmm_mmio_fn mmio_fn;
  void *opaque;
};

/* Ranges are registered before any vCPU runs and never change afterwards,
 * so vCPU threads read them without a lock. */
struct core_bus {
  struct core_bus_range r[CORE_BUS_MAX];
  unsigned n;
};

struct core_vcpu {
  struct vmm *vm;
  unsigned id;
  int fd;
  struct kvm_run *run;
  pthread_t thread;
  bool started;
};

struct serial;
struct ioport_legacy;
struct acpi_pm;

struct vmm {
  const struct vmm_config *cfg;
  int kvm_fd, vm_fd;
  uint8_t *ram;
  uint64_t ram_size, low_size; /* low_size: bytes mapped at gpa 0 */
  size_t run_size;
  struct kvm_cpuid2 *cpuid; /* KVM_GET_SUPPORTED_CPUID, patched per vCPU */
  unsigned nvcpus;
  struct core_vcpu *vcpus;
  struct core_bus pio, mmio;
  bool frozen; /* buses closed: vCPUs may run */
  void *slots[VMM_SLOT_COUNT];
  struct serial *com1, *com2;
  struct ioport_legacy *legacy;
  uint64_t boot_rip, boot_rsi;
  uint64_t acpi_rsdp;
  struct acpi_pm *acpi_pm;

  /* VMBOX_VMM_STATS=1: exit counts printed to stderr at the end, to find
   * what a boot spends its (expensive, when nested) exits on. */
  _Atomic uint32_t *pio_stats; /* per port; NULL when off */
  _Atomic uint64_t exit_stats[64];

  pthread_mutex_t lock; /* guards done/result */
  pthread_cond_t cond;
  bool done;
  struct vmm_result result;
  atomic_bool stopping; /* vCPU loops and blocked injectors leave */
};

/* vm.c: records the first outcome, wakes vmm__run; later calls are no-ops. */
void vm__finish(struct vmm *vm, enum vmm_exit_kind kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* boot.c */
struct boot_kernel {
  uint8_t *data;
  size_t size;
  size_t setup_size; /* real-mode part; the protected-mode kernel follows */
  size_t hdr_end;    /* end of the setup header in the file */
};
int boot__read_kernel(const char *path, struct boot_kernel *k, vmbox_error_t *err);
void boot__free_kernel(struct boot_kernel *k);
int boot__setup(struct vmm *vm, const struct boot_kernel *k, vmbox_error_t *err);
int boot__bsp_regs(struct vmm *vm, int vcpu_fd, vmbox_error_t *err);

/* mptable.c */
int mptable__setup(struct vmm *vm, vmbox_error_t *err);

/* acpi.c: RSDP, XSDT, FADT, DSDT, MADT and the PM1 registers */
int acpi__setup(struct vmm *vm, vmbox_error_t *err);
void acpi__teardown(struct vmm *vm);

/* vcpu.c */
int vcpu__create_all(struct vmm *vm, vmbox_error_t *err);
int vcpu__start_all(struct vmm *vm, vmbox_error_t *err);
void vcpu__kick_all(struct vmm *vm);
void vcpu__destroy_all(struct vmm *vm);
bool vcpu__on_vcpu_thread(void);

/* ioport.c: the buses and the legacy stubs */
int ioport__setup(struct vmm *vm, vmbox_error_t *err);
void ioport__teardown(struct vmm *vm);
void ioport__pio(struct vmm *vm, uint16_t port, bool is_write, uint8_t *data, unsigned size);
void ioport__mmio(struct vmm *vm, uint64_t addr, bool is_write, uint8_t *data, unsigned size);

/* serial.c */
int serial__setup(struct vmm *vm, vmbox_error_t *err);
void serial__teardown(struct vmm *vm);

#endif
