#!/usr/bin/env bats
# OUTER suite: the VMM's jail (seccomp per thread, namespaces, root, uid,
# capabilities) around running kvm boxes, nested; tests/kvm/inner/kvm_jail.bats
# runs inside the first-level guest, one outer result per inner test.
# Needs scripts/deps.sh --test, root and `make asan unit`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-1200}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-240}
  jail_payload
}

# What a `vmbox run --backend kvm` needs in the guest besides the build: the
# guest kernel and its virtio/ext4 modules, and the OCI test image (as
# tests/kvm.bats gives its kvm_backend suite).
jail_payload() {
  local k kver m d extra=
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  [ -n "$k" ] || return 1
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

@test "every inner test of kvm/inner/kvm_jail.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/kvm_jail.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner kvm_jail: every VMM thread runs under its own seccomp filter" {
  kvm_inner_result kvm/inner/kvm_jail.bats "every VMM thread runs under its own seccomp filter"
}

@test "inner kvm_jail: the VMM runs as an unprivileged uid with no capabilities" {
  kvm_inner_result kvm/inner/kvm_jail.bats "the VMM runs as an unprivileged uid with no capabilities"
}

@test "inner kvm_jail: the VMM has its own mount, pid, net, ipc and uts namespaces" {
  kvm_inner_result kvm/inner/kvm_jail.bats "the VMM has its own mount, pid, net, ipc and uts namespaces"
}

@test "inner kvm_jail: the VMM's root holds its state dir only; the host is out of sight" {
  kvm_inner_result kvm/inner/kvm_jail.bats "the VMM's root holds its state dir only; the host is out of sight"
}

@test "inner kvm_jail: the VMM holds only the fds it needs" {
  kvm_inner_result kvm/inner/kvm_jail.bats "the VMM holds only the fds it needs"
}

@test "inner kvm_jail: the jailed VMM still writes its disk map and timing, as the jail's uid" {
  kvm_inner_result kvm/inner/kvm_jail.bats "the jailed VMM still writes its disk map and timing, as the jail's uid"
}

@test "inner kvm_jail: a forbidden syscall on a vCPU thread ends the box: 125, a clear error, nothing left" {
  kvm_inner_result kvm/inner/kvm_jail.bats "a forbidden syscall on a vCPU thread ends the box: 125, a clear error, nothing left"
}

@test "inner kvm_jail: a forbidden syscall on an I/O thread or the main thread ends the box too" {
  kvm_inner_result kvm/inner/kvm_jail.bats "a forbidden syscall on an I/O thread or the main thread ends the box too"
}

@test "inner kvm_jail: VMBOX_KVM_JAIL=0 runs the VMM unconfined (the debugging escape hatch)" {
  kvm_inner_result kvm/inner/kvm_jail.bats "VMBOX_KVM_JAIL=0 runs the VMM unconfined (the debugging escape hatch)"
}

@test "inner kvm_jail: the jail's cost on boot and run (medians of 3)" {
  kvm_inner_result kvm/inner/kvm_jail.bats "the jail's cost on boot and run (medians of 3)"
  # the figures (the inner test prints them as TAP comments)
  local l
  sed -n 's/^# jail=/jail=/p' "$(_kvm_inner_dir "$KVM_REPO/tests/kvm/inner/kvm_jail.bats")/tap" |
    while IFS= read -r l; do kvm_diag "$l"; done
}
