#!/usr/bin/env bats
# INNER suite: runs inside the first-level guest (tests/kvm/run-nested.sh),
# where /dev/kvm exists.  tests/kvm.bats relays each test as its own result.
# Not for the host: tests/run.sh only runs tests/*.bats.

setup() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  PROBE=$VMBOX_BUILD/tools/kvm_probe
}

@test "/dev/kvm is the kvm misc device" {
  [ -c /dev/kvm ]
  [ "$(stat -c '%t:%T' /dev/kvm)" = "a:e8" ] # 10:232
}

@test "kvm-amd has nested paging" {
  [ "$(cat /sys/module/kvm_amd/parameters/npt)" = Y ]
}

@test "kvm_probe runs real-mode code on one vCPU" {
  run "$PROBE" --iters 100
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vcpu=0 io_exit port=0x10 dir=out size=1 data=0x42"* ]]
  [[ "$output" == *"vcpu=0 io_exits=101 hlt_exits=1"* ]]
}

@test "kvm_probe runs two vCPUs at once" {
  run "$PROBE" --iters 100 --vcpus 2
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vcpu=1 io_exit port=0x10 dir=out size=1 data=0x43"* ]]
  [[ "$output" == *"vcpu=1 io_exits=101 hlt_exits=1"* ]]
}

@test "kvm_probe refuses a bad iteration count" {
  run "$PROBE" --iters 1
  [ "$status" -eq 2 ]
  [[ "$output" == *usage:* ]]
}
