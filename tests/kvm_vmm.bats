#!/usr/bin/env bats
# OUTER suite: the VMM core alone (vmm__run through build/tools/vmm_run),
# booting Debian's stock cloud kernel nested; tests/kvm/inner/vmm.bats runs
# inside the first-level guest of tests/kvm/run-nested.sh, one outer result
# per inner test.  Needs scripts/deps.sh --test, root and `make asan unit`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  local k
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $k"
  # ten nested boots of the stock kernel under TCG: a few minutes
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-900}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-240}
}

@test "every inner test of kvm/inner/vmm.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/vmm.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner vmm: boots the kernel to /init and powers off through the exit port" {
  kvm_inner_result kvm/inner/vmm.bats "boots the kernel to /init and powers off through the exit port"
}

@test "inner vmm: two vCPUs: the guest brings both online" {
  kvm_inner_result kvm/inner/vmm.bats "two vCPUs: the guest brings both online"
}

@test "inner vmm: RAM above the 3 GiB PCI hole is usable (3.5 GiB guest)" {
  kvm_inner_result kvm/inner/vmm.bats "RAM above the 3 GiB PCI hole is usable (3.5 GiB guest)"
}

@test "inner vmm: a kernel panic (panic=-1 reboot=t, init exits) ends as kind=reset" {
  kvm_inner_result kvm/inner/vmm.bats "a kernel panic (panic=-1 reboot=t, init exits) ends as kind=reset"
}

@test "inner vmm: COM2 is a raw byte channel both ways; the exit byte is the code" {
  kvm_inner_result kvm/inner/vmm.bats "COM2 is a raw byte channel both ways; the exit byte is the code"
}

@test "inner vmm: the guest's own power-off (ACPI S5) ends as kind=poweroff code=0" {
  kvm_inner_result kvm/inner/vmm.bats "the guest's own power-off (ACPI S5) ends as kind=poweroff code=0"
}

@test "inner vmm: vmm__stop ends a running guest as kind=stopped" {
  kvm_inner_result kvm/inner/vmm.bats "vmm__stop ends a running guest as kind=stopped"
}

@test "inner vmm: virtio-blk through PCI INTx: reads the base, writes land in the overlay" {
  kvm_inner_result kvm/inner/vmm.bats "virtio-blk through PCI INTx: reads the base, writes land in the overlay"
}

@test "inner vmm: a corrupt kernel file is a clear error, not a crash" {
  kvm_inner_result kvm/inner/vmm.bats "a corrupt kernel file is a clear error, not a crash"
}

@test "inner vmm: a bad memory size is refused with what the VM needs" {
  kvm_inner_result kvm/inner/vmm.bats "a bad memory size is refused with what the VM needs"
}

