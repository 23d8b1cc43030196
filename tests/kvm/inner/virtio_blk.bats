#!/usr/bin/env bats
# INNER suite: the VMM's virtio-blk device and the box disk (base + overlay)
# with the real Linux driver: vmm_run boots the Debian cloud kernel with a
# tiny initramfs (tests/kvm/blk_guest_init.sh) that mounts /dev/vda.
# Needs $VMBOX_BUILD/kvm-blk from tests/kvm/mkblkguest.sh in the payload
# (VMBOX_KVM_PAYLOAD).  Not for the host: tests/run.sh only runs tests/*.bats.

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export BLK=$VMBOX_BUILD/kvm-blk
  [ -f "$BLK/initrd.cpio" ] || { echo "$BLK missing: run tests/kvm/mkblkguest.sh" >&2; return 1; }
  export W=$BATS_FILE_TMPDIR/blk
  mkdir -p "$W"
  cp "$BLK/base.ext4" "$W/base.ext4"
}

# boot STEP [vmm_run disk args...]: one guest run; output in $output.
boot() {
  run timeout 300 "$VMBOX_BUILD/tools/vmm_run" --kernel "$BLK/vmlinuz" \
    --initrd "$BLK/initrd.cpio" --mem 256 --timeout 240 \
    --append "console=ttyS0 reboot=t panic=-1 blktest=$1" --disk "$W/base.ext4" "${@:2}"
  echo "$output" | grep -E "blk-guest|vmm:|virtio|vda|EXT4|ERROR|Sanitizer" || true
}

@test "guest mounts /dev/vda read-write and writes 16 MiB into a new overlay" {
  boot write --overlay "$W/ovl" --map "$W/ovl.map"
  [[ "$output" == *"blk-guest: vda sectors=131072 ro=0"* ]]
  [[ "$output" == *"blk-guest: mounted rw"* ]]
  [[ "$output" == *"blk-guest: hello=hello-from-base"* ]]
  [[ "$output" == *"blk-guest: umounted"* ]]
  [[ "$output" == *"blk-guest: done"* ]]
  [[ "$output" != *Sanitizer* ]]
  [ -f "$W/ovl.map" ]
  # Sparse: only what the guest wrote takes space (16 MiB file + metadata).
  [ "$(du -k "$W/ovl" | cut -f1)" -lt 40000 ]
}

@test "a second boot on the same overlay sees the first one's files" {
  boot read --overlay "$W/ovl" --map "$W/ovl.map"
  [[ "$output" == *"blk-guest: new=guest-was-here"* ]]
  [[ "$output" == *"blk-guest: big ok"* ]]
}

@test "without an overlay the disk is read-only to the guest" {
  boot ro
  [[ "$output" == *"blk-guest: vda sectors=131072 ro=1"* ]]
  [[ "$output" == *"blk-guest: hello=hello-from-base"* ]]
  [[ "$output" == *"blk-guest: raw write refused"* ]]
}

@test "the base image was never written" {
  [ "$(sha256sum "$W/base.ext4" | cut -d' ' -f1)" = "$(cat "$BLK/base.sha")" ]
}
