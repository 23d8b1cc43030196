#!/usr/bin/env bats
# OUTER suite: virtio-net on a TAP (`run --backend kvm --net tap:...`),
# nested; tests/kvm/inner/kvm_net.bats runs inside the first-level guest, one
# outer result per inner test.  Its TAP lives in a network namespace the
# inner suite makes.  Needs scripts/deps.sh --test, root and `make asan unit`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-1200}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-300}
  # iproute2 for netns + tuntap in the first level; tun for the TAP.
  export VMBOX_KVM_BINS="${VMBOX_KVM_BINS:-} ip"
  export VMBOX_KVM_MODULES="${VMBOX_KVM_MODULES:-} tun"
  net_payload
}

# The guest kernel and the modules vmbox puts in the box's initramfs
# (virtio-pci/blk, ext4, vsock and virtio_net with their dependencies).
net_payload() {
  local k kver m d extra=
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  [ -n "$k" ] || return 0 # the inner run reports the missing kernel
  kver=${k#/boot/vmlinuz-}
  m=/usr/lib/modules/$kver
  for d in modules.dep modules.builtin kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko \
    kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/lib/crc16.ko kernel/crypto/crc32c_generic.ko \
    kernel/net/vmw_vsock kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko \
    kernel/net/core/failover.ko; do
    [ -e "$m/$d" ] && extra+=" $m/$d"
  done
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $k$extra"
}

@test "every inner test of kvm/inner/kvm_net.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/kvm_net.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner kvm_net: eth0 gets the address, netmask, route and MAC asked for; ping the namespace, 0% loss" {
  kvm_inner_result kvm/inner/kvm_net.bats "eth0 gets the address, netmask, route and MAC asked for; ping the namespace, 0% loss"
}

@test "inner kvm_net: the namespace pings the box; the MAC is derived from the box id when not given" {
  kvm_inner_result kvm/inner/kvm_net.bats "the namespace pings the box; the MAC is derived from the box id when not given"
}

@test "inner kvm_net: TCP guest -> namespace: 1 MiB arrives intact (sha256), and 16 MiB timed" {
  kvm_inner_result kvm/inner/kvm_net.bats "TCP guest -> namespace: 1 MiB arrives intact (sha256), and 16 MiB timed"
}

@test "inner kvm_net: TCP namespace -> guest: a -d box listens; 1 MiB intact (sha256), 16 MiB timed" {
  kvm_inner_result kvm/inner/kvm_net.bats "TCP namespace -> guest: a -d box listens; 1 MiB intact (sha256), 16 MiB timed"
}

@test "inner kvm_net: a bad TAP name fails with 125 before boot and leaves nothing behind" {
  kvm_inner_result kvm/inner/kvm_net.bats "a bad TAP name fails with 125 before boot and leaves nothing behind"
}

@test "inner kvm_net: a box without --net has only lo, and lo is up" {
  kvm_inner_result kvm/inner/kvm_net.bats "a box without --net has only lo, and lo is up"
}

