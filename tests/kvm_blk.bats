#!/usr/bin/env bats
# OUTER suite: the VMM's virtio-blk device and the box disk (base + COW
# overlay) under the real Linux driver, nested; tests/kvm/inner/virtio_blk.bats
# runs inside the first-level guest, one outer result per inner test.
# Needs scripts/deps.sh --test, root and `make asan unit`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  "$KVM_REPO/tests/kvm/mkblkguest.sh" >&2
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $VMBOX_BUILD/kvm-blk"
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-900}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-240}
}

@test "every inner test of kvm/inner/virtio_blk.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/virtio_blk.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner virtio_blk: guest mounts /dev/vda read-write and writes 16 MiB into a new overlay" {
  kvm_inner_result kvm/inner/virtio_blk.bats "guest mounts /dev/vda read-write and writes 16 MiB into a new overlay"
}

@test "inner virtio_blk: a second boot on the same overlay sees the first one's files" {
  kvm_inner_result kvm/inner/virtio_blk.bats "a second boot on the same overlay sees the first one's files"
}

@test "inner virtio_blk: without an overlay the disk is read-only to the guest" {
  kvm_inner_result kvm/inner/virtio_blk.bats "without an overlay the disk is read-only to the guest"
}

@test "inner virtio_blk: the base image was never written" {
  kvm_inner_result kvm/inner/virtio_blk.bats "the base image was never written"
}

