#!/usr/bin/env bats
# OUTER suite: vmbox's own minimal guest kernel (`make kernel`) and the stock
# Debian cloud kernel under our VMM, nested; tests/kvm/inner/kvm_kernel.bats
# runs inside the first-level guest, one outer result per inner test.  The
# last one prints boot-to-init medians of both kernels as "# kvm-kernel-timing".
# Needs scripts/deps.sh --test, root and `make asan unit kernel`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-1200}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-240}
  kernel_payload
}

# Both kernels and the stock one's modules (vmbox puts them in its
# initramfs; under /usr/lib: /lib is a symlink in the guest's base).  The
# boxes run vmbox's built-in busybox image.
kernel_payload() {
  local own=$VMBOX_BUILD/kernel/vmlinuz-vmbox k kver m d extra=
  [ -f "$own" ] || return 0 # the inner setup names what is missing
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  [ -n "$k" ] || return 0
  kver=${k#/boot/vmlinuz-}
  m=/usr/lib/modules/$kver
  for d in modules.dep modules.builtin kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko \
    kernel/net/vmw_vsock kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/lib/crc16.ko kernel/crypto/crc32c_generic.ko; do
    [ -e "$m/$d" ] && extra+=" $m/$d"
  done
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $own $k$extra"
}

@test "make kernel's output is a bzImage vmbox accepts, and the rerun is cached" {
  local own=$VMBOX_BUILD/kernel/vmlinuz-vmbox t0
  [ -f "$own" ] || { echo "$own missing: run make kernel"; return 1; }
  t0=$SECONDS
  run "$KVM_REPO/scripts/kernel.sh" "$VMBOX_BUILD"
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  [ "${lines[-1]}" = "$own" ]
  [ $((SECONDS - t0)) -le 30 ] # cached: no kernel make ran
  [ "$(head -c 2 <(tail -c +511 "$own") | od -An -tx1 | tr -d ' ')" = 55aa ]
  [ "$(tail -c +515 "$own" | head -c 4)" = HdrS ]
}

@test "every inner test of kvm/inner/kvm_kernel.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/kvm_kernel.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner kvm_kernel: vmbox picks the minimal kernel by default: no modules, release -vmbox" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "vmbox picks the minimal kernel by default: no modules, release -vmbox"
}

@test "inner kvm_kernel: the stock kernel still works with --kernel" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "the stock kernel still works with --kernel"
}

@test "inner kvm_kernel: minimal kernel: exit codes 0, 3, 127, 126, 143" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "minimal kernel: exit codes 0, 3, 127, 126, 143"
}

@test "inner kvm_kernel: minimal kernel: --memory OOM kill exits 137 (cgroup v2 memory controller)" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "minimal kernel: --memory OOM kill exits 137 (cgroup v2 memory controller)"
}

@test "inner kvm_kernel: minimal kernel: --cpus 2 brings up both vCPUs (SMP via ACPI MADT)" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "minimal kernel: --cpus 2 brings up both vCPUs (SMP via ACPI MADT)"
}

@test "inner kvm_kernel: minimal kernel: the guest has devpts, tmpfs, ext4 root, unix and inet sockets" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "minimal kernel: the guest has devpts, tmpfs, ext4 root, unix and inet sockets"
}

@test "inner kvm_kernel: boot-to-init: 3 boots of each kernel, medians" {
  kvm_inner_result kvm/inner/kvm_kernel.bats "boot-to-init: 3 boots of each kernel, medians"
  # The medians reach the outer TAP stream (a passing test's output is not shown).
  grep -h 'kvm-kernel-timing' "$(_kvm_inner_dir "$KVM_REPO/tests/kvm/inner/kvm_kernel.bats")/tap" >&3 || true
}

