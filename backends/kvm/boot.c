/* Booting a bzImage through the Linux x86 64-bit boot protocol: the
 * protected-mode kernel at 1 MiB, boot_params ("zero page") with the setup
 * header copied from the file, an e820 map, the command line and the
 * initrd, identity-mapped page tables and a GDT, and the BSP entering
 * startup_64 (load address + 0x200) in long mode with RSI = boot_params. */
#include <asm/bootparam.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "core.h"

#define BOOT_HDR_OFF 0x1f1
#define BOOT_MAGIC_HDRS 0x53726448 /* "HdrS" */
#define BOOT_FLAG 0xaa55
#define BOOT_MIN_VERSION 0x020c /* 2.12: xloadflags, 64-bit entry */
#define BOOT_ENTRY_64 0x200
#define BOOT_MAX_KERNEL (512ULL << 20)
#define BOOT_LOADER_UNDEFINED 0xff
#define BOOT_DEFAULT_INITRD_MAX 0x37ffffffULL
#define BOOT_LOAD_PHYSICAL 0x1000000ULL /* where a relocatable kernel decompresses */

#define E820_RAM 1
#define E820_RESERVED 2

/* --- reading and checking the file ---------------------------------------------- */

static int boot__read_fd(int fd, const char *path, uint8_t *buf, size_t len, vmbox_error_t *err)
{
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, buf + done, len - done, (off_t)done);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return vmbox_error_sys(err, "cannot read %s", path);
    if (r == 0)
      return vmbox_error_set(err, 0, "%s shrank while being read", path);
    done += (size_t)r;
  }
  return 0;
}

static int boot__bad(vmbox_error_t *err, const char *path, const char *why)
{
  vmbox_error_set(err, 0, "kernel %s is not a usable bzImage: %s", path, why);
  return vmbox_error_hint(err, "give an x86-64 Linux bzImage (boot protocol 2.12 or later, "
                               "64-bit), e.g. /boot/vmlinuz-*");
}

static int boot__check(const char *path, struct boot_kernel *k, vmbox_error_t *err)
{
  struct setup_header h;
  if (k->size < 0x1000)
    return boot__bad(err, path, "file too small");
  memcpy(&h, k->data + BOOT_HDR_OFF, sizeof h);
  if (h.boot_flag != BOOT_FLAG || h.header != BOOT_MAGIC_HDRS)
    return boot__bad(err, path, "no \"HdrS\" setup header");
  if (h.version < BOOT_MIN_VERSION)
    return boot__bad(err, path, "boot protocol older than 2.12");
  if (!(h.loadflags & LOADED_HIGH) || !(h.xloadflags & XLF_KERNEL_64))
    return boot__bad(err, path, "not a 64-bit kernel loadable at 1 MiB");
  unsigned sects = h.setup_sects ? h.setup_sects : 4;
  k->setup_size = (size_t)(sects + 1) * 512;
  /* The header says its own length: 0x202 + the jump's displacement. */
  k->hdr_end = 0x202 + k->data[0x201];
  if (k->setup_size >= k->size || k->hdr_end > k->setup_size)
    return boot__bad(err, path, "setup header sizes out of range");
  if (k->hdr_end - BOOT_HDR_OFF > sizeof h)
    k->hdr_end = BOOT_HDR_OFF + sizeof h; /* newer than we know: keep what we know */
  return 0;
}

int boot__read_kernel(const char *path, struct boot_kernel *k, vmbox_error_t *err)
{
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return vmbox_error_sys(err, "cannot open kernel %s", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    return vmbox_error_sys(err, "cannot stat kernel %s", path);
  if (!S_ISREG(st.st_mode))
    return boot__bad(err, path, "not a regular file");
  if ((uint64_t)st.st_size > BOOT_MAX_KERNEL)
    return boot__bad(err, path, "larger than 512 MiB");
  k->size = (size_t)st.st_size;
  k->data = xmalloc(k->size ? k->size : 1);
  if (boot__read_fd(fd, path, k->data, k->size, err) < 0 || boot__check(path, k, err) < 0) {
    boot__free_kernel(k);
    return -1;
  }
  return 0;
}

void boot__free_kernel(struct boot_kernel *k)
{
  free(k->data);
  k->data = NULL;
}

/* --- placing things in guest memory ------------------------------------------------ */

static void boot__e820_add(struct boot_params *bp, uint64_t addr, uint64_t size, uint32_t type)
{
  if (bp->e820_entries >= E820_MAX_ENTRIES_ZEROPAGE)
    return;
  struct boot_e820_entry *e = &bp->e820_table[bp->e820_entries++];
  e->addr = addr;
  e->size = size;
  e->type = type;
}

static void boot__e820(struct vmm *vm, struct boot_params *bp)
{
  boot__e820_add(bp, 0, CORE_EBDA_GPA, E820_RAM);
  boot__e820_add(bp, CORE_EBDA_GPA, 0xa0000 - CORE_EBDA_GPA, E820_RESERVED);
  boot__e820_add(bp, CORE_ACPI_GPA, 0x100000 - CORE_ACPI_GPA, E820_RESERVED);
  boot__e820_add(bp, CORE_KERNEL_GPA, vm->low_size - CORE_KERNEL_GPA, E820_RAM);
  if (vm->ram_size > vm->low_size)
    boot__e820_add(bp, CORE_HIGH_RAM_GPA, vm->ram_size - vm->low_size, E820_RAM);
}

/* The initrd goes as high as the kernel allows, clear of the area the
 * kernel decompresses into ([16 MiB or its load address] + init_size). */
static int boot__initrd(struct vmm *vm, const struct setup_header *h, uint64_t kernel_end,
                        struct boot_params *bp, vmbox_error_t *err)
{
  const char *path = vm->cfg->initrd;
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0)
    return vmbox_error_sys(err, "cannot open initrd %s", path);
  uint64_t size = (uint64_t)st.st_size;
  uint64_t max = h->initrd_addr_max ? h->initrd_addr_max : BOOT_DEFAULT_INITRD_MAX;
  if (max > vm->low_size - 1)
    max = vm->low_size - 1;
  if (!S_ISREG(st.st_mode) || size == 0 || size > max + 1 ||
      ((max + 1 - size) & ~0xfffULL) < kernel_end) {
    vmbox_error_set(err, 0,
                    "initrd %s (%llu MiB) does not fit in %llu MiB of guest memory "
                    "next to the kernel",
                    path, (unsigned long long)(size >> 20),
                    (unsigned long long)(vm->ram_size >> 20));
    return vmbox_error_hint(err, "give the VM more memory");
  }
  uint64_t at = (max + 1 - size) & ~0xfffULL;
  if (boot__read_fd(fd, path, vmm__gpa(vm, at, size), size, err) < 0)
    return -1;
  bp->hdr.ramdisk_image = (uint32_t)at;
  bp->hdr.ramdisk_size = (uint32_t)size;
  return 0;
}

static int boot__cmdline(struct vmm *vm, const struct setup_header *h, struct boot_params *bp,
                         vmbox_error_t *err)
{
  const char *cmd = vm->cfg->cmdline ? vm->cfg->cmdline : "";
  size_t len = strlen(cmd);
  uint64_t limit = h->cmdline_size ? h->cmdline_size : 255;
  if (limit > CORE_CMDLINE_MAX - 1)
    limit = CORE_CMDLINE_MAX - 1;
  if (len > limit)
    return vmbox_error_set(err, 0,
                           "kernel command line of %zu bytes is longer than the "
                           "kernel's limit of %llu",
                           len, (unsigned long long)limit);
  memcpy(vmm__gpa(vm, CORE_CMDLINE_GPA, len + 1), cmd, len + 1);
  bp->hdr.cmd_line_ptr = (uint32_t)CORE_CMDLINE_GPA;
  return 0;
}

/* Identity map of the first 4 GiB with 2 MiB pages: enough for the
 * kernel, boot_params, the command line and the initrd, which all live
 * below 3 GiB; the kernel builds its own tables right away. */
static void boot__page_tables(struct vmm *vm)
{
  uint64_t *pml4 = vmm__gpa(vm, CORE_PML4_GPA, 4096);
  uint64_t *pdpt = vmm__gpa(vm, CORE_PDPT_GPA, 4096);
  uint64_t *pd = vmm__gpa(vm, CORE_PD_GPA, 4 * 4096);
  memset(pml4, 0, 4096);
  memset(pdpt, 0, 4096);
  pml4[0] = CORE_PDPT_GPA | 0x3; /* present, writable */
  for (uint64_t i = 0; i < 4; i++)
    pdpt[i] = (CORE_PD_GPA + i * 4096) | 0x3;
  for (uint64_t i = 0; i < 4 * 512; i++)
    pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
}

/* GDT entry from access byte + flags nibble (as `flags`: 0xF0AA layout
 * with the flags nibble in bits 15..12), base and 20-bit limit. */
static uint64_t boot__gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
  return ((uint64_t)(base & 0xff000000) << 32) | ((uint64_t)(base & 0x00ffffff) << 16) |
         (uint64_t)(limit & 0xffff) | ((uint64_t)(limit & 0xf0000) << 32) |
         ((uint64_t)(flags & 0xf0ff) << 40);
}

/* The boot protocol wants __BOOT_CS = 0x10 and __BOOT_DS = 0x18. */
enum { BOOT_CS = 0x10, BOOT_DS = 0x18, BOOT_TSS = 0x20, BOOT_GDT_ENTRIES = 5 };

static void boot__gdt(struct vmm *vm)
{
  uint64_t *gdt = vmm__gpa(vm, CORE_GDT_GPA, BOOT_GDT_ENTRIES * 8);
  gdt[0] = 0;
  gdt[1] = 0;
  gdt[BOOT_CS / 8] = boot__gdt_entry(0xa09b, 0, 0xfffff); /* 64-bit code */
  gdt[BOOT_DS / 8] = boot__gdt_entry(0xc093, 0, 0xfffff); /* flat data */
  gdt[BOOT_TSS / 8] = boot__gdt_entry(0x008b, 0, 0x67);   /* busy TSS */
}

int boot__setup(struct vmm *vm, const struct boot_kernel *k, vmbox_error_t *err)
{
  const struct setup_header *fh = (const void *)(k->data + BOOT_HDR_OFF);
  struct setup_header h;
  memcpy(&h, fh, sizeof h);
  uint64_t pm_size = k->size - k->setup_size;
  uint64_t base = h.pref_address > CORE_KERNEL_GPA && h.pref_address < vm->low_size
                      ? h.pref_address
                      : BOOT_LOAD_PHYSICAL;
  uint64_t kernel_end = base + h.init_size;
  if (kernel_end < CORE_KERNEL_GPA + pm_size)
    kernel_end = CORE_KERNEL_GPA + pm_size;
  if (kernel_end > vm->low_size) {
    vmbox_error_set(err, 0, "the kernel needs %llu MiB of memory, the VM has %llu MiB",
                    (unsigned long long)(kernel_end >> 20) + 1,
                    (unsigned long long)(vm->ram_size >> 20));
    return vmbox_error_hint(err, "give the VM more memory");
  }
  memcpy(vmm__gpa(vm, CORE_KERNEL_GPA, pm_size), k->data + k->setup_size, pm_size);

  struct boot_params *bp = vmm__gpa(vm, CORE_ZERO_PAGE_GPA, sizeof *bp);
  memset(bp, 0, sizeof *bp);
  memcpy((uint8_t *)bp + BOOT_HDR_OFF, k->data + BOOT_HDR_OFF, k->hdr_end - BOOT_HDR_OFF);
  bp->hdr.type_of_loader = BOOT_LOADER_UNDEFINED;
  bp->hdr.code32_start = (uint32_t)CORE_KERNEL_GPA;
  bp->hdr.vid_mode = 0xffff;          /* "normal": no video mode switch */
  bp->acpi_rsdp_addr = vm->acpi_rsdp; /* saves the kernel the scan */
  if (boot__cmdline(vm, &h, bp, err) < 0)
    return -1;
  if (vm->cfg->initrd && boot__initrd(vm, &h, kernel_end, bp, err) < 0)
    return -1;
  boot__e820(vm, bp);
  boot__page_tables(vm);
  boot__gdt(vm);
  vm->boot_rip = CORE_KERNEL_GPA + BOOT_ENTRY_64;
  vm->boot_rsi = CORE_ZERO_PAGE_GPA;
  return 0;
}

/* --- the BSP's registers ------------------------------------------------------------- */

static struct kvm_segment boot__segment(uint16_t sel, uint8_t type, bool code)
{
  return (struct kvm_segment){
      .base = 0,
      .limit = 0xffffffff,
      .selector = sel,
      .type = type,
      .present = 1,
      .dpl = 0,
      .db = code ? 0 : 1,
      .s = 1,
      .l = code ? 1 : 0,
      .g = 1,
  };
}

int boot__bsp_regs(struct vmm *vm, int vcpu_fd, vmbox_error_t *err)
{
  struct kvm_sregs s;
  if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
    return vmbox_error_sys(err, "KVM_GET_SREGS");
  s.cs = boot__segment(BOOT_CS, 0xb, true);
  s.ds = s.es = s.fs = s.gs = s.ss = boot__segment(BOOT_DS, 0x3, false);
  s.tr = (struct kvm_segment){.limit = 0x67, .selector = BOOT_TSS, .type = 0xb, .present = 1};
  s.gdt.base = CORE_GDT_GPA;
  s.gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
  s.idt.base = 0;
  s.idt.limit = 0;
  s.cr0 = 0x80000011; /* PG | ET | PE */
  s.cr3 = CORE_PML4_GPA;
  s.cr4 = 0x20;   /* PAE */
  s.efer = 0x500; /* LMA | LME */
  if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
    return vmbox_error_sys(err, "KVM_SET_SREGS");
  struct kvm_regs r = {
      .rflags = 0x2, /* interrupts off, as the protocol wants */
      .rip = vm->boot_rip,
      .rsi = vm->boot_rsi,
      .rsp = CORE_BOOT_STACK,
  };
  if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
    return vmbox_error_sys(err, "KVM_SET_REGS");
  return 0;
}
