/* What kvm.c (the backend glue) uses from the guest-side helpers of
 * backends/kvm/: kernel lookup, the initramfs, and a QEMU runner for
 * debugging.  Like vmm.h, nothing outside backends/kvm/ includes this. */
#ifndef VMBOX_KVM_KVMBOX_H
#define VMBOX_KVM_KVMBOX_H

#include <stddef.h>
#include <stdint.h>

#include "../../lib/err.h"
#include "vmm.h"

/* --- kernel.c ----------------------------------------------------------------- */
/* Finds the guest kernel: `flag` (--kernel), $VMBOX_KERNEL, <root>/kernels/
 * (root may be NULL), then the newest /boot/vmlinuz-*.  Checks that it is a
 * bzImage and reads its release ("6.1.0-56-cloud-amd64").  *source says
 * where it came from, for messages. */
int kernel__find(const char *flag, const char *root, char **path, char **release,
                 const char **source, vmbox_error_t *err);
/* Just the header check + release of one file. */
int kernel__inspect(const char *path, char **release, vmbox_error_t *err);

/* --- initramfs.c -------------------------------------------------------------- */
/* The shared part (vmbox-init as /init, the kernel's virtio/ext4 modules),
 * built once per kernel release + init and cached in cache_dir; *out is its
 * path. */
int initramfs__base(const char *cache_dir, const char *release, char **out, vmbox_error_t *err);
/* Writes dst = base + a small archive holding /vmbox/config (`cfg`). */
int initramfs__for_box(const char *base, const void *cfg, size_t cfg_len, const char *dst,
                       vmbox_error_t *err);
/* The vmbox-init binary linked into vmbox (backends/kvm/guest_init.S). */
extern const unsigned char vmbox_guest_init[], vmbox_guest_init_end[];

/* --- qemu.c: VMBOX_KVM_VMM=qemu runs the same guest under qemu-system-x86_64
 * (a debugging aid and a reference for our VMM; same contract as vmm__run). */
int qemu__run(const struct vmm_config *cfg, struct vmm_result *res, vmbox_error_t *err);
void qemu__com2_inject(struct vmm *vm, const uint8_t *buf, size_t n);

/* --- session.c: exec and cp into a running box over vsock (proto.h) --------- */
struct box_process;
struct box_proc;
struct box_proc_io;
struct box_exit;
struct box_cp;
/* A pty pair; returns the master, *slave set (both CLOEXEC). */
int session__openpty(int *slave, vmbox_error_t *err);
/* A connected stream to vmbox-init's vsock `port`, through the VMM socket
 * in dir (the box's kvm state dir); name is for messages. */
int session__connect(const char *dir, const char *name, unsigned port, vmbox_error_t *err);
int session__exec(const char *dir, const char *name, const struct box_process *p,
                  struct box_proc **out, struct box_proc_io *io, vmbox_error_t *err);
int session__exec_wait(struct box_proc *p, struct box_exit *out, vmbox_error_t *err);
void session__exec_free(struct box_proc *p);
/* vmbox cp for a running box (backend_ops.cp_out / cp_in). */
int session__cp_out(const char *dir, const struct box_cp *c, vmbox_error_t *err);
int session__cp_in(const char *dir, const struct box_cp *c, vmbox_error_t *err);

#endif
