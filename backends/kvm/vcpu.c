/* vCPUs: one thread each.  Set-up gives every vCPU the CPUID KVM supports
 * (hypervisor bit set, its own APIC id, a topology that matches the MP
 * table), a few MSRs, the FPU and LAPIC reset state; the BSP also gets the
 * boot registers (boot.c).  The exit loop hands port and MMIO accesses to
 * the buses and turns shutdowns and KVM failures into the VM's outcome.
 *
 * Stopping: vm__finish sets vm->stopping, then every vCPU's immediate_exit
 * and a signal (VCPU_KICK_SIGNAL) to its thread.  A thread about to enter
 * KVM_RUN sees immediate_exit, one inside it is interrupted by the signal. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "core.h"

#define VCPU_KICK_SIGNAL (SIGRTMIN + 5)
#define VCPU_CPUID_MAX 256
#define VCPU_STACK_SIZE (256u << 10)

#define MSR_IA32_TSC 0x10
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

static __thread bool vcpu__self;

bool vcpu__on_vcpu_thread(void)
{
  return vcpu__self;
}

/* --- CPUID ------------------------------------------------------------------------ */

static int vcpu__supported_cpuid(struct vmm *vm, vmbox_error_t *err)
{
  size_t sz = sizeof(struct kvm_cpuid2) + VCPU_CPUID_MAX * sizeof(struct kvm_cpuid_entry2);
  vm->cpuid = xcalloc(1, sz);
  vm->cpuid->nent = VCPU_CPUID_MAX;
  if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) < 0)
    return vmbox_error_sys(err, "KVM_GET_SUPPORTED_CPUID");
  return 0;
}

static unsigned vcpu__order(unsigned n)
{
  unsigned o = 0;
  while ((1u << o) < n && o < 31)
    o++;
  return o;
}

/* One package, one thread per core, n cores: what the MP table says. */
static void vcpu__patch_cpuid(struct kvm_cpuid_entry2 *e, unsigned id, unsigned n, bool tsc_dl)
{
  switch (e->function) {
  case 1:
    /* The in-kernel LAPIC emulates the TSC-deadline timer, which spares
     * Linux calibrating the LAPIC timer; KVM reports it as a capability
     * only. */
    if (tsc_dl)
      e->ecx |= 1u << 24;
    e->ebx = (e->ebx & 0xffff) | (id << 24) | ((n > 255 ? 255 : n) << 16);
    /* Linux only uses kvmclock (and so boots without calibrating the TSC
     * against the PIT for seconds) when it knows it runs on a hypervisor. */
    e->ecx |= 1u << 31;
    if (n > 1)
      e->edx |= 1u << 28; /* HTT: the count in EBX[23:16] is valid */
    break;
  case 4: e->eax = (e->eax & 0x3ffffff) | ((n - 1) << 26); break;
  case 0xb:
  case 0x1f:
    e->edx = id;
    if (e->index == 0) {
      e->eax = 0, e->ebx = 1, e->ecx = (1 << 8) | 0; /* SMT level: one thread */
    } else if (e->index == 1) {
      e->eax = vcpu__order(n), e->ebx = n, e->ecx = (2 << 8) | 1; /* core level */
    } else {
      e->eax = e->ebx = 0, e->ecx = e->index;
    }
    break;
  case 0x80000008: e->ecx = (e->ecx & ~0xf0ffu) | (n - 1); break;
  case 0x8000001e: e->eax = id, e->ebx = id & 0xff, e->ecx = 0; break;
  default: break;
  }
}

static int vcpu__cpuid(struct vmm *vm, struct core_vcpu *c, vmbox_error_t *err)
{
  size_t sz = sizeof(struct kvm_cpuid2) + vm->cpuid->nent * sizeof(struct kvm_cpuid_entry2);
  cleanup_free struct kvm_cpuid2 *mine = xmalloc(sz);
  memcpy(mine, vm->cpuid, sz);
  bool tsc_dl = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;
  for (unsigned i = 0; i < mine->nent; i++)
    vcpu__patch_cpuid(&mine->entries[i], c->id, vm->nvcpus, tsc_dl);
  if (ioctl(c->fd, KVM_SET_CPUID2, mine) < 0)
    return vmbox_error_sys(err, "vCPU %u: KVM_SET_CPUID2", c->id);
  return 0;
}

/* --- MSRs, FPU, LAPIC ------------------------------------------------------------ */

static int vcpu__msrs(struct core_vcpu *c, vmbox_error_t *err)
{
  static const struct {
    uint32_t index;
    uint64_t data;
  } init[] = {
      {MSR_IA32_SYSENTER_CS, 0},
      {MSR_IA32_SYSENTER_ESP, 0},
      {MSR_IA32_SYSENTER_EIP, 0},
      {MSR_STAR, 0},
      {MSR_LSTAR, 0},
      {MSR_CSTAR, 0},
      {MSR_SYSCALL_MASK, 0},
      {MSR_KERNEL_GS_BASE, 0},
      {MSR_IA32_MISC_ENABLE, 1},          /* fast strings */
      {MSR_MTRR_DEF_TYPE, (1 << 11) | 6}, /* MTRRs on, write-back */
  };
  struct {
    struct kvm_msrs h;
    struct kvm_msr_entry e[ARRAY_SIZE(init)];
  } m;
  memset(&m, 0, sizeof m);
  m.h.nmsrs = ARRAY_SIZE(init);
  for (size_t i = 0; i < ARRAY_SIZE(init); i++) {
    m.e[i].index = init[i].index;
    m.e[i].data = init[i].data;
  }
  int n = ioctl(c->fd, KVM_SET_MSRS, &m);
  if (n < 0)
    return vmbox_error_sys(err, "vCPU %u: KVM_SET_MSRS", c->id);
  if ((size_t)n != ARRAY_SIZE(init))
    return vmbox_error_set(err, 0, "vCPU %u: KVM refused MSR 0x%x", c->id, init[n].index);
  return 0;
}

static int vcpu__fpu_lapic(struct core_vcpu *c, vmbox_error_t *err)
{
  struct kvm_fpu fpu = {.fcw = 0x37f, .mxcsr = 0x1f80};
  if (ioctl(c->fd, KVM_SET_FPU, &fpu) < 0)
    return vmbox_error_sys(err, "vCPU %u: KVM_SET_FPU", c->id);
  /* Virtual wire: LINT0 takes the 8259's ExtINT, LINT1 is NMI, as the MP
   * table's local interrupt entries say. */
  struct kvm_lapic_state l;
  if (ioctl(c->fd, KVM_GET_LAPIC, &l) < 0)
    return vmbox_error_sys(err, "vCPU %u: KVM_GET_LAPIC", c->id);
  uint32_t v;
  memcpy(&v, l.regs + APIC_LVT_LINT0, 4);
  v = (v & ~0x700u) | (APIC_MODE_EXTINT << 8);
  memcpy(l.regs + APIC_LVT_LINT0, &v, 4);
  memcpy(&v, l.regs + APIC_LVT_LINT1, 4);
  v = (v & ~0x700u) | (APIC_MODE_NMI << 8);
  memcpy(l.regs + APIC_LVT_LINT1, &v, 4);
  if (ioctl(c->fd, KVM_SET_LAPIC, &l) < 0)
    return vmbox_error_sys(err, "vCPU %u: KVM_SET_LAPIC", c->id);
  return 0;
}

/* --- creation ---------------------------------------------------------------------- */

static int vcpu__create(struct vmm *vm, struct core_vcpu *c, vmbox_error_t *err)
{
  c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)c->id);
  if (c->fd < 0)
    return vmbox_error_sys(err, "KVM_CREATE_VCPU %u", c->id);
  void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
  if (run == MAP_FAILED)
    return vmbox_error_sys(err, "vCPU %u: cannot map kvm_run", c->id);
  c->run = run;
  if (vcpu__cpuid(vm, c, err) < 0 || vcpu__msrs(c, err) < 0 || vcpu__fpu_lapic(c, err) < 0)
    return -1;
  /* Application processors wait for INIT/SIPI from the BSP in the
   * in-kernel LAPIC; only the BSP starts at the kernel's entry. */
  if (c->id == 0 && boot__bsp_regs(vm, c->fd, err) < 0)
    return -1;
  return 0;
}

int vcpu__create_all(struct vmm *vm, vmbox_error_t *err)
{
  if (vcpu__supported_cpuid(vm, err) < 0)
    return -1;
  vm->vcpus = xcalloc(vm->nvcpus, sizeof *vm->vcpus);
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    vm->vcpus[i].vm = vm;
    vm->vcpus[i].id = i;
    vm->vcpus[i].fd = -1;
  }
  for (unsigned i = 0; i < vm->nvcpus; i++)
    if (vcpu__create(vm, &vm->vcpus[i], err) < 0)
      return -1;
  return 0;
}

/* --- the exit loop ----------------------------------------------------------------- */

static uint64_t vcpu__rip(struct core_vcpu *c)
{
  struct kvm_regs r;
  return ioctl(c->fd, KVM_GET_REGS, &r) < 0 ? 0 : r.rip;
}

static void vcpu__io(struct core_vcpu *c)
{
  struct kvm_run *run = c->run;
  unsigned size = run->io.size;
  uint64_t len = (uint64_t)size * run->io.count;
  /* KVM fills these, but a bad offset would be a wild write: check. */
  if ((size != 1 && size != 2 && size != 4) || run->io.data_offset > c->vm->run_size ||
      len > c->vm->run_size - run->io.data_offset) {
    vm__finish(c->vm, VMM_EXIT_ERROR, 0, "vCPU %u: malformed I/O exit", c->id);
    return;
  }
  uint8_t *data = (uint8_t *)run + run->io.data_offset;
  bool out = run->io.direction == KVM_EXIT_IO_OUT;
  for (uint32_t i = 0; i < run->io.count; i++)
    ioport__pio(c->vm, run->io.port, out, data + (size_t)i * size, size);
}

static void vcpu__exit_error(struct core_vcpu *c, const char *what, unsigned long long detail)
{
  vm__finish(c->vm, VMM_EXIT_ERROR, 0, "vCPU %u: %s 0x%llx at rip 0x%llx", c->id, what, detail,
             (unsigned long long)vcpu__rip(c));
}

static void vcpu__handle_exit(struct core_vcpu *c)
{
  struct kvm_run *run = c->run;
  if (c->vm->pio_stats) {
    atomic_fetch_add(&c->vm->exit_stats[run->exit_reason & 63], 1);
    if (run->exit_reason == KVM_EXIT_IO)
      atomic_fetch_add(&c->vm->pio_stats[run->io.port], 1);
  }
  switch (run->exit_reason) {
  case KVM_EXIT_IO: vcpu__io(c); break;
  case KVM_EXIT_MMIO:
    if (run->mmio.len > sizeof run->mmio.data || run->mmio.len == 0)
      vcpu__exit_error(c, "malformed MMIO exit, length", run->mmio.len);
    else
      ioport__mmio(c->vm, run->mmio.phys_addr, run->mmio.is_write, run->mmio.data, run->mmio.len);
    break;
  case KVM_EXIT_INTR: break;
  case KVM_EXIT_SHUTDOWN:
    vm__finish(c->vm, VMM_EXIT_RESET, 0, "guest reset (triple fault) on vCPU %u", c->id);
    break;
  case KVM_EXIT_SYSTEM_EVENT:
    if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
      vm__finish(c->vm, VMM_EXIT_POWEROFF, 0, "guest powered off");
    else
      vm__finish(c->vm, VMM_EXIT_RESET, 0, "guest system event %u", run->system_event.type);
    break;
  case KVM_EXIT_FAIL_ENTRY:
    vcpu__exit_error(c, "KVM_EXIT_FAIL_ENTRY, hardware entry failure reason",
                     run->fail_entry.hardware_entry_failure_reason);
    break;
  case KVM_EXIT_INTERNAL_ERROR:
    vcpu__exit_error(c, "KVM_EXIT_INTERNAL_ERROR, suberror", run->internal.suberror);
    break;
  default: vcpu__exit_error(c, "unexpected KVM exit reason", run->exit_reason); break;
  }
}

static void vcpu__kick_handler(int sig)
{
  (void)sig; /* its only job is to make KVM_RUN return EINTR */
}

static void *vcpu__thread(void *arg)
{
  struct core_vcpu *c = arg;
  struct vmm *vm = c->vm;
  vcpu__self = true;
  vmbox_error_t err = NULL;
  if (jail__thread(JAIL_THREAD_VCPU, &err) < 0) {
    vm__finish(vm, VMM_EXIT_ERROR, 0, "vCPU %u: %s", c->id, err->msg);
    vmbox_error_free(&err);
    return NULL;
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, VCPU_KICK_SIGNAL);
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  while (!atomic_load(&vm->stopping)) {
    if (ioctl(c->fd, KVM_RUN, 0) < 0) {
      if (errno == EINTR || errno == EAGAIN)
        continue;
      vm__finish(vm, VMM_EXIT_ERROR, 0, "vCPU %u: KVM_RUN: %s", c->id, strerror(errno));
      break;
    }
    vcpu__handle_exit(c);
  }
  return NULL;
}

int vcpu__start_all(struct vmm *vm, vmbox_error_t *err)
{
  struct sigaction sa = {.sa_handler = vcpu__kick_handler};
  sigemptyset(&sa.sa_mask);
  if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
    return vmbox_error_sys(err, "sigaction for the vCPU kick signal");
  /* Under the VM lock: a vm__finish racing with us kicks either before a
   * thread exists (it then sees `stopping`) or after `started` is set. */
  int ret = 0;
  /* glibc's default 8 MiB stack is a THP candidate: on "always" hosts the
   * first touch costs 2 MiB of RSS per vCPU.  Below 2 MiB it cannot be; the
   * exit path needs a few KiB. */
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, VCPU_STACK_SIZE);
  pthread_mutex_lock(&vm->lock);
  for (unsigned i = 0; i < vm->nvcpus && ret == 0; i++) {
    struct core_vcpu *c = &vm->vcpus[i];
    int rc = pthread_create(&c->thread, &attr, vcpu__thread, c);
    if (rc != 0) {
      errno = rc;
      ret = vmbox_error_sys(err, "cannot start the thread of vCPU %u", i);
    } else {
      c->started = true;
    }
  }
  pthread_mutex_unlock(&vm->lock);
  pthread_attr_destroy(&attr);
  return ret;
}

void vcpu__kick_all(struct vmm *vm)
{
  if (!vm->vcpus)
    return;
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    struct core_vcpu *c = &vm->vcpus[i];
    if (c->run)
      c->run->immediate_exit = 1;
    if (c->started)
      pthread_kill(c->thread, VCPU_KICK_SIGNAL);
  }
}

void vcpu__destroy_all(struct vmm *vm)
{
  if (!vm->vcpus)
    return;
  atomic_store(&vm->stopping, true);
  vcpu__kick_all(vm);
  for (unsigned i = 0; i < vm->nvcpus; i++) {
    struct core_vcpu *c = &vm->vcpus[i];
    if (c->started)
      pthread_join(c->thread, NULL);
    c->started = false;
    if (c->run)
      munmap(c->run, vm->run_size);
    c->run = NULL;
    if (c->fd >= 0)
      close(c->fd);
    c->fd = -1;
  }
  free(vm->vcpus);
  vm->vcpus = NULL;
}
