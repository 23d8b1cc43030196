#!/usr/bin/env bash
# Builds what tests/kvm/inner/virtio_blk.bats boots, on the host, into
# $VMBOX_BUILD/kvm-blk/ (add that directory to VMBOX_KVM_PAYLOAD):
#   vmlinuz      the Debian cloud kernel (the one the harness boots)
#   initrd.cpio  busybox-static + the virtio modules + blk_guest_init.sh
#   base.ext4    64 MiB ext4 holding hello.txt, and base.sha (its sha256)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${VMBOX_BUILD:-$here/../../build}
kernel=${VMBOX_KVM_KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 | sort -V | tail -1)}
kver=${kernel#/boot/vmlinuz-}
mods=/lib/modules/$kver/kernel/drivers
out=$build/kvm-blk
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp"/root/{bin,m,proc,sys,dev,mnt} "$tmp/fs"
cp "$(command -v busybox)" "$tmp/root/bin/busybox"
for m in virtio/virtio virtio/virtio_ring virtio/virtio_pci_legacy_dev \
  virtio/virtio_pci_modern_dev virtio/virtio_pci block/virtio_blk; do
  if [ -f "$mods/$m.ko" ]; then cp "$mods/$m.ko" "$tmp/root/m/"
  elif [ -f "$mods/$m.ko.xz" ]; then xz -dc "$mods/$m.ko.xz" > "$tmp/root/m/${m##*/}.ko"
  elif [ -f "$mods/$m.ko.zst" ]; then zstd -qdc "$mods/$m.ko.zst" > "$tmp/root/m/${m##*/}.ko"
  else echo "mkblkguest: $mods/$m.ko not found" >&2; exit 1; fi
done
install -m 755 "$here/blk_guest_init.sh" "$tmp/root/init"
(cd "$tmp/root" && find . | cpio -o -H newc --quiet) > "$out/initrd.cpio.tmp"
mv "$out/initrd.cpio.tmp" "$out/initrd.cpio"
echo hello-from-base > "$tmp/fs/hello.txt"
rm -f "$out/base.ext4"
mke2fs -q -t ext4 -d "$tmp/fs" "$out/base.ext4" 64M
sha256sum "$out/base.ext4" | cut -d' ' -f1 > "$out/base.sha"
cp "$kernel" "$out/vmlinuz"
echo "$out"
