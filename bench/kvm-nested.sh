#!/usr/bin/env bash
# `make bench-kvm`: runs bench/kvm-boot.sh, kvm-mem.sh and kvm-density.sh
# in the first-level guest of tests/kvm/run-nested.sh (where /dev/kvm
# works), one boot for the three.  The payload disk carries, besides the
# build: bench/, the guest kernel and the modules vmbox and the QEMU peer
# load, qemu-system-x86_64 (its libraries follow by ldd) and microvm's
# firmware (qboot).
#
#   bench/kvm-nested.sh [SCRIPT...]     # default: the three, in that order
#   KERNEL=/path/bzImage   guest kernel for the benchmarks (default: what
#                          vmbox picks: $VMBOX_BUILD/kernel/vmlinuz-vmbox
#                          from `make kernel`, else the stock
#                          /boot/vmlinuz-*-cloud-amd64)
#   N=5, VMS=20            runs per figure (kvm-boot.sh), boxes (kvm-density.sh)
#   VMBOX_BUILD            build dir (absolute; make bench-kvm sets it)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VMBOX_BUILD=${VMBOX_BUILD:-$repo/build}
[ -x "$VMBOX_BUILD/vmbox" ] || { echo "bench-kvm: $VMBOX_BUILD/vmbox missing: make all" >&2; exit 1; }
[ -x "$VMBOX_BUILD/tools/vmm_guest_init" ] || { echo "bench-kvm: make unit first" >&2; exit 1; }
qemu=$(command -v qemu-system-x86_64) || { echo "bench-kvm: qemu-system-x86_64 missing (scripts/deps.sh --test)" >&2; exit 1; }

payload="bench $qemu"
# microvm boots qboot (bios-microvm.bin is a link to it in Debian).
for f in /usr/share/qemu/qboot.rom /usr/share/qemu/bios-microvm.bin; do
  [ -e "$f" ] && payload+=" $f"
done
[ -d "$VMBOX_BUILD/bench" ] && payload+=" $VMBOX_BUILD/bench"
# vmbox's own kernel (make kernel), which it and the scripts prefer.
[ -f "$VMBOX_BUILD/kernel/vmlinuz-vmbox" ] && payload+=" $VMBOX_BUILD/kernel/vmlinuz-vmbox"
k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
[ -n "$k" ] || { echo "bench-kvm: no /boot/vmlinuz-*-cloud-amd64 (scripts/deps.sh --test)" >&2; exit 1; }
payload+=" $k"
if [ -n "${KERNEL:-}" ]; then
  case $KERNEL in /*) ;; *) KERNEL=$repo/$KERNEL ;; esac
  payload+=" $KERNEL"
  export KERNEL
fi
# The modules of the stock kernel that vmbox's initramfs (the wanted[] list
# of backends/kvm/initramfs.c) and the QEMU peer (virtio_mmio) load, with
# their modules.dep dependencies.
kver=${k#/boot/vmlinuz-}
m=/usr/lib/modules/$kver
wanted=$(sed -n '/wanted\[\] = {/,/};/p' "$repo/backends/kvm/initramfs.c" | grep -oE '"[A-Za-z0-9_-]+"' | tr -d '"')
payload+=" $m/modules.dep $m/modules.builtin"
for w in ${wanted:-virtio_pci virtio_blk} virtio_mmio; do
  line=$(grep -E "(^|/)${w//[-_]/[-_]}\.ko(\.xz|\.zst|\.gz)?:" "$m/modules.dep" | head -n1) || continue
  for f in ${line/:/}; do payload+=" $m/$f"; done
done
export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $payload"
export VMBOX_KVM_PASS_ENV="${VMBOX_KVM_PASS_ENV-NO_COLOR} KERNEL N VMS"
# 20 VMs booting at once on the guest's one vCPU are silent for minutes.
export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-600}
export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-3000}
export VMBOX_KVM_RETRIES=${VMBOX_KVM_RETRIES:-0}

[ $# -gt 0 ] || set -- bench/kvm-boot.sh bench/kvm-mem.sh bench/kvm-density.sh
# shellcheck disable=SC2016 # expanded in the guest
exec "$repo/tests/kvm/run-nested.sh" -c '
rc=0
for s in "$@"; do
  echo "=== $s"
  "$s" || { r=$?; echo "=== $s failed: status $r"; rc=1; }
done
exit $rc' "$@"
