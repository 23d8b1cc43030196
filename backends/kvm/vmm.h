/* The VMM's internal contract, shared by the files of backends/kvm/ only.
 * Nothing outside backends/kvm/ includes this: the rest of vmbox sees the kvm
 * backend through backend.h alone.
 *
 * Layout (kvmtool style, one file per concern):
 *   vm.c        VM fd, guest RAM (MAP_NORESERVE), irqchip + PIT, run/stop
 *   boot.c      bzImage (Linux x86 boot protocol), boot_params, e820, cmdline,
 *               initrd, page tables + GDT, 64-bit entry
 *   mptable.c   MP table: CPUs, IOAPIC, ISA and PCI interrupt routing
 *   vcpu.c      vCPU threads, CPUID, MSRs, the exit loop
 *   ioport.c    port I/O bus + the legacy stubs a Linux guest probes (CMOS,
 *               i8042, PIC/PIT leftovers, the vmbox exit port)
 *   serial.c    8250 UARTs: COM1 = kernel console, COM2 = the fallback channel
 *               (VMBOX_KVM_NO_VSOCK=1, VMBOX_KVM_VMM=qemu: no exec, no cp)
 *   pci.c       PCI config space (0xCF8/0xCFC), BAR allocation, INTx
 *   virtio/ring.c  virtqueue access, every guest value checked
 *   virtio/pci.c   virtio-pci transport
 *   virtio/blk.c   virtio-blk
 *   virtio/vsock.c virtio-vsock, Firecracker's Unix-socket host side: the
 *                  control channel (kvm.c, session.c; backends/guest/README.md)
 *   virtio/net.c   virtio-net on a TAP fd (tap.c opens it, in its netns)
 *   jail.c      the VMM's confinement: namespaces, pivot, uid, seccomp per thread
 *   disk.c      the box disk: read-only base + copy-on-write overlay
 *   chan.c      record framing between the host and vmbox-init (vsock or COM2)
 *   kernel.c, initramfs.c  finding a kernel, building the initramfs
 *   kvm.c       backend_ops for "kvm"
 *
 * Threads: one per vCPU plus one I/O thread (chan stdin, signals).  Device
 * state is guarded by the device's own mutex; handlers run on vCPU threads. */
#ifndef VMBOX_KVM_VMM_H
#define VMBOX_KVM_VMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../lib/err.h"

/* Fixed guest-physical / port layout. */
#define VMM_COM1_PORT 0x3f8 /* IRQ 4: ttyS0, kernel console */
#define VMM_COM2_PORT 0x2f8 /* IRQ 3: ttyS1, control channel (chan.c) */
#define VMM_EXIT_PORT                                                                              \
  0x501 /* vmbox-init writes a byte here after its last                                            \
         * frame: the VM stops (VMM_EXIT_POWEROFF) */
/* OBSOLETE, kept so mptable.c builds: PCI INTx are ISA IRQs now, see
 * pci__slot_gsi().  Debian's cloud kernel has no CONFIG_X86_MPPARSE: it
 * ignores the MP table, and without ACPI accepts PCI IRQs below 16 only. */
#define VMM_PCI_IRQ_BASE 16
#define VMM_PCI_MAX_SLOTS 8

struct vmm; /* one VM; owned by vmm__run */

struct vmm_config {
  const char *kernel;  /* bzImage */
  const char *initrd;  /* NULL = none */
  const char *cmdline; /* kernel command line */
  uint64_t mem_bytes;  /* guest RAM */
  unsigned vcpus;      /* >= 1 */
  /* The box disk (virtio-blk, /dev/vda): base is opened read-only and never
   * written; writes go to overlay (created if missing, sparse, same size)
   * with its map in overlay_map.  overlay NULL = read-only disk. */
  const char *disk_base;
  const char *disk_overlay;
  const char *disk_overlay_map;
  int console_fd; /* COM1 output goes here; -1 = dropped */
  /* virtio-vsock (virtio/vsock.c), Firecracker's host side: present when
   * vsock_cid != 0 (the guest's CID, >= 3).  vsock_listen_fd is a listening
   * AF_UNIX stream socket (the VMM does not own it): a host client connects,
   * writes "CONNECT <port>\n", gets "OK <host_port>\n" once the guest
   * accepted, then it is a byte stream; refused = closed without OK.  A
   * guest connect() to CID 2 port P goes to the Unix socket "<vsock_uds>_P"
   * (NULL: refused). */
  uint32_t vsock_cid;
  int vsock_listen_fd;
  const char *vsock_uds;
  /* virtio-net (virtio/net.c): present when net is set; tap_fd is an open
   * TAP (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, the VMM does not own it); mac is
   * the guest's. */
  bool net;
  int tap_fd;
  uint8_t mac[6];
  /* Called once every device and fd is set up and before any thread of the
   * VMM exists (vCPUs, device I/O, on_ready's): the place to confine the
   * process (jail.c: namespaces, chroot, uid).  Non-zero fails the run. */
  int (*jail)(void *opaque, vmbox_error_t *err);
  /* COM2: bytes the guest writes go to chan_guest_out(); host bytes for the
   * guest are queued with vmm__com2_inject(). */
  void (*chan_guest_out)(void *opaque, const uint8_t *buf, size_t n);
  void *chan_opaque;
  /* Called once the VM exists, before any vCPU runs (e.g. to start an I/O
   * thread holding the vmm pointer for vmm__com2_inject / vmm__stop). */
  void (*on_ready)(struct vmm *vm, void *opaque);
  /* Called once the vCPUs have stopped, before the VM is freed (only when
   * on_ready was called): stop and join every thread holding the vmm
   * pointer here.  vmm__com2_inject / vmm__stop are harmless no-ops from
   * vmm__stop or the guest's exit until this returns. */
  void (*on_exit)(struct vmm *vm, void *opaque);
};

enum vmm_exit_kind {
  VMM_EXIT_POWEROFF, /* byte written to VMM_EXIT_PORT; code = that byte */
  VMM_EXIT_RESET,    /* triple fault / reboot (reboot=t panic=-1): a panic
                      * or a crashed init when no exit frame came first */
  VMM_EXIT_STOPPED,  /* vmm__stop() from the host */
  VMM_EXIT_ERROR,    /* the VMM failed (KVM error, bad exit); reason says */
};

struct vmm_result {
  enum vmm_exit_kind kind;
  int code;
  char reason[256];
};

/* Builds the VM, boots the kernel, runs until the guest stops.  Returns 0
 * with *res filled once the VM ran; -1 with *err when setup failed (bad
 * kernel file, no /dev/kvm, ...). */
int vmm__run(const struct vmm_config *cfg, struct vmm_result *res, vmbox_error_t *err);

/* Thread-safe, from any thread while the VM runs (until on_exit returns).
 * vmm__com2_inject queues up to 64 KiB; when that is full it waits for the
 * guest to read (never on a vCPU thread: there the excess is dropped). */
void vmm__com2_inject(struct vmm *vm, const uint8_t *buf, size_t n);
void vmm__stop(struct vmm *vm);

/* --- for devices (called on vCPU threads) ------------------------------------ */

/* Host pointer to guest-physical [gpa, gpa+len), or NULL when any byte of it
 * lies outside guest RAM (or the sum overflows).  Never trust a guest value
 * without this. */
void *vmm__gpa(struct vmm *vm, uint64_t gpa, uint64_t len);
/* Raises (level 1) or lowers (0) a GSI through KVM_IRQ_LINE. */
void vmm__irq_line(struct vmm *vm, unsigned gsi, int level);

/* Port I/O handlers: data is `size` bytes (1, 2, 4), little endian. */
typedef void (*vmm_pio_fn)(void *opaque, uint16_t port, bool is_write, uint8_t *data,
                           unsigned size);
int vmm__register_pio(struct vmm *vm, uint16_t base, uint16_t len, vmm_pio_fn fn, void *opaque);
typedef void (*vmm_mmio_fn)(void *opaque, uint64_t addr, bool is_write, uint8_t *data,
                            unsigned size);
int vmm__register_mmio(struct vmm *vm, uint64_t base, uint64_t len, vmm_mmio_fn fn, void *opaque);

/* --- PCI (pci.c) -------------------------------------------------------------- */
struct pci_dev;
/* Claims the next slot; BAR0 is an I/O BAR of bar0_len bytes (power of two,
 * <= 256) served by fn, which gets the offset in BAR0 as `port` (the guest
 * may move the BAR).  The device's INTx is GSI pci__slot_gsi(slot). */
struct pci_dev *pci__add(struct vmm *vm, uint16_t vendor, uint16_t device, uint16_t subsys_id,
                         uint32_t class_code, uint16_t bar0_len, vmm_pio_fn fn, void *opaque,
                         vmbox_error_t *err);
unsigned pci__slot(const struct pci_dev *d);
unsigned pci__gsi(const struct pci_dev *d);
/* The INTx GSI of slot s: ISA IRQ 10, 11, 5, 9, then shared round-robin;
 * level, active high; config-space Interrupt Line says the same.  (For an
 * MP table / ACPI _PRT: the pin is this GSI.) */
unsigned pci__slot_gsi(unsigned slot);
/* Asserts (1) or deasserts (0) the device's INTx; shared lines are ORed. */
void pci__set_irq(struct pci_dev *d, int level);
/* For mptable.c: the slots in use, in order; returns the count. */
unsigned pci__slots(struct vmm *vm, unsigned *slots, unsigned max);
int pci__init(struct vmm *vm, vmbox_error_t *err);
/* Frees the bus and its devices' config space; after the vCPUs stopped and
 * after the devices' own __exit. */
void pci__exit(struct vmm *vm);

/* Per-VM state slots for modules that keep state (pci.c's bus, ...), so no
 * module needs globals and vm.c never sees their structs. */
enum vmm_slot { VMM_SLOT_PCI, VMM_SLOT_BLK, VMM_SLOT_VSOCK, VMM_SLOT_NET, VMM_SLOT_COUNT };
void *vmm__slot(struct vmm *vm, enum vmm_slot s);
void vmm__set_slot(struct vmm *vm, enum vmm_slot s, void *p);

/* --- devices vm.c brings up, in this order, before the MP table ------------- */
/* pci__init, then virtio_blk__init (when cfg->disk_base), then the MP table.
 * virtio_blk__exit flushes the overlay map; called after the vCPUs stop. */
int virtio_blk__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err);
void virtio_blk__exit(struct vmm *vm);
/* Then virtio_vsock__init (cfg->vsock_cid) and virtio_net__init (cfg->net).
 * Their __exit run after the vCPUs stopped, and stop the device's own
 * threads; a device thread is started from vmm__run's on_start hook below. */
int virtio_vsock__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err);
void virtio_vsock__exit(struct vmm *vm);
int virtio_net__init(struct vmm *vm, const struct vmm_config *cfg, vmbox_error_t *err);
void virtio_net__exit(struct vmm *vm);
/* Device threads (not vCPUs) start here, after cfg->jail, before the vCPUs. */
int virtio_vsock__start(struct vmm *vm, vmbox_error_t *err);
int virtio_net__start(struct vmm *vm, vmbox_error_t *err);

/* --- the jail (jail.c) ----------------------------------------------------- */
/* Each VMM thread calls this first thing, with its kind: it installs that
 * kind's seccomp allowlist when the process was jailed (a no-op otherwise). */
enum jail_thread { JAIL_THREAD_VCPU, JAIL_THREAD_IO, JAIL_THREAD_MAIN };
int jail__thread(enum jail_thread kind, vmbox_error_t *err);

#endif
