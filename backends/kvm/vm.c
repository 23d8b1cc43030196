/* The VM: /dev/kvm, guest RAM, the in-kernel irqchip and PIT, device
 * bring-up in the order vmm.h gives, and the run/stop life cycle. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "core.h"

/* --- outcome ------------------------------------------------------------------ */

void vm__finish(struct vmm *vm, enum vmm_exit_kind kind, int code, const char *fmt, ...)
{
  pthread_mutex_lock(&vm->lock);
  if (!vm->done) {
    vm->done = true;
    vm->result.kind = kind;
    vm->result.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(vm->result.reason, sizeof vm->result.reason, fmt, ap);
    va_end(ap);
    /* Every vCPU leaves KVM_RUN now, not at its next exit: a guest
     * spinning in a loop would otherwise keep the VM alive.  Under the
     * lock, so vmm__run cannot free the vCPUs while we kick them. */
    atomic_store(&vm->stopping, true);
    vcpu__kick_all(vm);
    pthread_cond_broadcast(&vm->cond);
  }
  pthread_mutex_unlock(&vm->lock);
}

void vmm__stop(struct vmm *vm)
{
  vm__finish(vm, VMM_EXIT_STOPPED, 0, "stopped by the host");
}

/* --- guest memory ------------------------------------------------------------- */

void *vmm__gpa(struct vmm *vm, uint64_t gpa, uint64_t len)
{
  uint64_t end;
  if (__builtin_add_overflow(gpa, len, &end))
    return NULL;
  if (end <= vm->low_size)
    return vm->ram + gpa;
  uint64_t high = vm->ram_size - vm->low_size;
  if (gpa >= CORE_HIGH_RAM_GPA && end - CORE_HIGH_RAM_GPA <= high)
    return vm->ram + vm->low_size + (gpa - CORE_HIGH_RAM_GPA);
  return NULL;
}

static int vm__set_region(struct vmm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *host,
                          vmbox_error_t *err)
{
  struct kvm_userspace_memory_region r = {
      .slot = slot,
      .guest_phys_addr = gpa,
      .memory_size = size,
      .userspace_addr = (uintptr_t)host,
  };
  if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
    return vmbox_error_sys(err, "KVM_SET_USER_MEMORY_REGION (slot %u, %llu MiB)", slot,
                           (unsigned long long)(size >> 20));
  return 0;
}

/* RAM is one anonymous mapping; MAP_NORESERVE so an idle guest costs only
 * the pages it touched.  Above 3 GiB it continues at 4 GiB, leaving the hole
 * where the IOAPIC, the local APICs and KVM's private pages live. */
/* 2 MiB-aligned, so transparent huge pages can back guest RAM: KVM then
 * maps it with 2 MiB stage-2 entries, which saves most of the page faults
 * (each one a full exit, very dear when nested) while the kernel
 * decompresses itself and fills its memory. */
static uint8_t *vm__map_ram(uint64_t size)
{
  const uint64_t align = 2ULL << 20;
  uint8_t *raw = mmap(NULL, size + align, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED)
    return NULL;
  uint8_t *ram = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
  if (ram > raw)
    munmap(raw, (size_t)(ram - raw));
  if (raw + align > ram)
    munmap(ram + size, (size_t)(raw + align - ram));
  (void)madvise(ram, size, MADV_HUGEPAGE); /* a hint; "never" hosts refuse */
  return ram;
}

static int vm__memory(struct vmm *vm, vmbox_error_t *err)
{
  vm->ram_size = vm->cfg->mem_bytes;
  vm->ram = vm__map_ram(vm->ram_size);
  if (!vm->ram)
    return vmbox_error_sys(err, "cannot map %llu MiB of guest memory",
                           (unsigned long long)(vm->ram_size >> 20));
  vm->low_size = vm->ram_size < CORE_LOW_RAM_MAX ? vm->ram_size : CORE_LOW_RAM_MAX;
  if (vm__set_region(vm, 0, 0, vm->low_size, vm->ram, err) < 0)
    return -1;
  if (vm->ram_size > vm->low_size &&
      vm__set_region(vm, 1, CORE_HIGH_RAM_GPA, vm->ram_size - vm->low_size, vm->ram + vm->low_size,
                     err) < 0)
    return -1;
  return 0;
}

/* --- the VM fd ---------------------------------------------------------------- */

static int vm__check_cap(struct vmm *vm, long cap, const char *name, vmbox_error_t *err)
{
  if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, cap) <= 0)
    return vmbox_error_set(err, 0, "/dev/kvm lacks %s", name);
  return 0;
}

static int vm__open(struct vmm *vm, vmbox_error_t *err)
{
  vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (vm->kvm_fd < 0) {
    vmbox_error_sys(err, "cannot open /dev/kvm");
    return vmbox_error_hint(err, "the kvm backend needs KVM: load kvm-intel or kvm-amd, and "
                                 "run as a user who may open /dev/kvm (group kvm)");
  }
  int v = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
  if (v != KVM_API_VERSION)
    return vmbox_error_set(err, 0, "/dev/kvm speaks API version %d, not %d", v, KVM_API_VERSION);
  if (vm__check_cap(vm, KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP", err) < 0 ||
      vm__check_cap(vm, KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", err) < 0 ||
      vm__check_cap(vm, KVM_CAP_PIT2, "KVM_CAP_PIT2", err) < 0 ||
      vm__check_cap(vm, KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT", err) < 0)
    return -1;
  int n = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (n < (int)sizeof(struct kvm_run))
    return vmbox_error_sys(err, "KVM_GET_VCPU_MMAP_SIZE");
  vm->run_size = (size_t)n;
  do
    vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
  while (vm->vm_fd < 0 && errno == EINTR);
  if (vm->vm_fd < 0)
    return vmbox_error_sys(err, "KVM_CREATE_VM");
  return 0;
}

/* KVM's private pages and the interrupt controllers must exist before the
 * first vCPU does. */
static int vm__chips(struct vmm *vm, vmbox_error_t *err)
{
  if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)CORE_TSS_GPA) < 0)
    return vmbox_error_sys(err, "KVM_SET_TSS_ADDR");
  uint64_t ident = CORE_IDENT_MAP_GPA;
  if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
    return vmbox_error_sys(err, "KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
    return vmbox_error_sys(err, "KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = {.flags = 0};
  if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
    return vmbox_error_sys(err, "KVM_CREATE_PIT2");
  return 0;
}

void vmm__irq_line(struct vmm *vm, unsigned gsi, int level)
{
  struct kvm_irq_level l = {.irq = gsi, .level = level ? 1 : 0};
  /* Nothing useful to do on failure: the line is the device's only way
   * to the guest, and KVM_IRQ_LINE only fails for a bad GSI. */
  (void)ioctl(vm->vm_fd, KVM_IRQ_LINE, &l);
}

void *vmm__slot(struct vmm *vm, enum vmm_slot s)
{
  return (unsigned)s < VMM_SLOT_COUNT ? vm->slots[s] : NULL;
}

void vmm__set_slot(struct vmm *vm, enum vmm_slot s, void *p)
{
  if ((unsigned)s < VMM_SLOT_COUNT)
    vm->slots[s] = p;
}

/* --- life cycle ---------------------------------------------------------------- */

static int vm__check_config(const struct vmm_config *cfg, vmbox_error_t *err)
{
  if (!cfg->kernel)
    return vmbox_error_set(err, 0, "no kernel given");
  if (cfg->vcpus < 1 || cfg->vcpus > CORE_MAX_VCPUS)
    return vmbox_error_set(err, 0, "%u vCPUs: the VM takes 1 to %u", cfg->vcpus, CORE_MAX_VCPUS);
  if (cfg->mem_bytes < CORE_MIN_MEM || cfg->mem_bytes > CORE_MAX_MEM)
    return vmbox_error_set(err, 0, "guest memory of %llu MiB: the VM takes %llu MiB to %llu GiB",
                           (unsigned long long)(cfg->mem_bytes >> 20), CORE_MIN_MEM >> 20,
                           CORE_MAX_MEM >> 30);
  if (cfg->mem_bytes & ((1ULL << 20) - 1))
    return vmbox_error_set(err, 0, "guest memory of %llu bytes is not a whole number of MiB",
                           (unsigned long long)cfg->mem_bytes);
  return 0;
}

static struct vmm *vm__new(const struct vmm_config *cfg)
{
  struct vmm *vm = xcalloc(1, sizeof *vm);
  vm->cfg = cfg;
  vm->kvm_fd = vm->vm_fd = -1;
  vm->nvcpus = cfg->vcpus;
  const char *stats = getenv("VMBOX_VMM_STATS");
  if (stats && *stats == '1')
    vm->pio_stats = xcalloc(0x10000, sizeof *vm->pio_stats);
  pthread_mutex_init(&vm->lock, NULL);
  pthread_cond_init(&vm->cond, NULL);
  atomic_init(&vm->stopping, false);
  return vm;
}

static void vm__print_stats(struct vmm *vm)
{
  if (!vm->pio_stats)
    return;
  for (unsigned i = 0; i < 64; i++)
    if (atomic_load(&vm->exit_stats[i]))
      fprintf(stderr, "vmm-stats: exit_reason=%u count=%llu\n", i,
              (unsigned long long)atomic_load(&vm->exit_stats[i]));
  for (unsigned p = 0; p < 0x10000; p++)
    if (atomic_load(&vm->pio_stats[p]) >= 16)
      fprintf(stderr, "vmm-stats: port=0x%x count=%u\n", p, atomic_load(&vm->pio_stats[p]));
}

static void vm__free(struct vmm *vm)
{
  vm__print_stats(vm);
  free(vm->pio_stats);
  vcpu__destroy_all(vm);
  serial__teardown(vm);
  acpi__teardown(vm);
  ioport__teardown(vm);
  if (vm->ram)
    munmap(vm->ram, vm->ram_size);
  if (vm->vm_fd >= 0)
    close(vm->vm_fd);
  if (vm->kvm_fd >= 0)
    close(vm->kvm_fd);
  free(vm->cpuid);
  pthread_cond_destroy(&vm->cond);
  pthread_mutex_destroy(&vm->lock);
  free(vm);
}

/* Everything up to, not including, the first KVM_RUN.  *blk_up says whether
 * virtio_blk__exit is owed. */
static int vm__build(struct vmm *vm, const struct boot_kernel *k, bool *blk_up, vmbox_error_t *err)
{
  const struct vmm_config *cfg = vm->cfg;
  if (vm__open(vm, err) < 0 || vm__chips(vm, err) < 0 || vm__memory(vm, err) < 0)
    return -1;
  if (ioport__setup(vm, err) < 0 || serial__setup(vm, err) < 0)
    return -1;
  if (pci__init(vm, err) < 0)
    return vmbox_error_wrap(err, "PCI");
  if (cfg->disk_base) {
    if (virtio_blk__init(vm, cfg, err) < 0)
      return vmbox_error_wrap(err, "disk %s", cfg->disk_base);
    *blk_up = true;
  }
  if (cfg->vsock_cid && virtio_vsock__init(vm, cfg, err) < 0)
    return vmbox_error_wrap(err, "vsock device");
  if (cfg->net && virtio_net__init(vm, cfg, err) < 0)
    return vmbox_error_wrap(err, "network device");
  /* Both tables list the PCI slots, so they come after the devices; the
   * zero page points at the RSDP, so before the kernel. */
  if (mptable__setup(vm, err) < 0 || acpi__setup(vm, err) < 0)
    return -1;
  if (boot__setup(vm, k, err) < 0)
    return vmbox_error_wrap(err, "kernel %s", cfg->kernel);
  return vcpu__create_all(vm, err);
}

/* The jail first, while the VMM is one thread; then device threads, the
 * caller's (on_ready) and the vCPUs, each of which jails itself. */
static int vm__confine_and_start(struct vmm *vm, vmbox_error_t *err)
{
  const struct vmm_config *cfg = vm->cfg;
  if (cfg->jail && cfg->jail(cfg->chan_opaque, err) != 0)
    return vmbox_error_wrap(err, "jail");
  if (cfg->vsock_cid && virtio_vsock__start(vm, err) < 0)
    return -1;
  if (cfg->net && virtio_net__start(vm, err) < 0)
    return -1;
  if (cfg->on_ready)
    cfg->on_ready(vm, cfg->chan_opaque);
  if (vcpu__start_all(vm, err) < 0)
    return vmbox_error_wrap(err, "vCPU threads");
  /* Last: a filter is inherited by the threads created after it. */
  return jail__thread(JAIL_THREAD_MAIN, err);
}

static void vm__wait(struct vmm *vm)
{
  pthread_mutex_lock(&vm->lock);
  while (!vm->done)
    pthread_cond_wait(&vm->cond, &vm->lock);
  pthread_mutex_unlock(&vm->lock);
}

int vmm__run(const struct vmm_config *cfg, struct vmm_result *res, vmbox_error_t *err)
{
  if (vm__check_config(cfg, err) < 0)
    return -1;
  /* A bad kernel file is the commonest mistake: say so before touching KVM. */
  struct boot_kernel k = {0};
  if (boot__read_kernel(cfg->kernel, &k, err) < 0)
    return -1;
  struct vmm *vm = vm__new(cfg);
  bool blk_up = false;
  int rc = vm__build(vm, &k, &blk_up, err);
  boot__free_kernel(&k);
  if (rc == 0) {
    vm->frozen = true;
    rc = vm__confine_and_start(vm, err);
    if (rc < 0)
      vm__finish(vm, VMM_EXIT_ERROR, 0, "%s", *err ? (*err)->msg : "start failed");
    vm__wait(vm);
    atomic_store(&vm->stopping, true);
    vcpu__destroy_all(vm); /* kicks and joins */
    if (cfg->on_exit)
      cfg->on_exit(vm, cfg->chan_opaque);
  }
  if (cfg->net)
    virtio_net__exit(vm);
  if (cfg->vsock_cid)
    virtio_vsock__exit(vm);
  if (blk_up)
    virtio_blk__exit(vm);
  pci__exit(vm); /* a no-op when pci__init never ran */
  if (rc == 0)
    *res = vm->result;
  vm__free(vm);
  return rc;
}
