#!/usr/bin/env bats
# OUTER suite: the ns backend's cgroup v2 path, for real.  This host binds its
# controllers to cgroup v1 (hybrid), so tests/kvm/inner/ns_cgroup2.bats runs
# inside the nested guest of tests/kvm/run-nested.sh, whose /init mounts
# cgroup2 with every controller; one outer result per inner test.
#
# Needs what tests/kvm.bats needs (scripts/deps.sh --test, root) plus
# `make asan unit` (vmbox and seccomp_probe go into the guest's payload).
# VMBOX_BUILD picks another build dir.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  # The ns backend loop-mounts the image and puts an overlay on it.
  export VMBOX_KVM_MODULES="loop overlay"
  # ASan vmbox under TCG: a box takes seconds; the whole suite one boot.
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-900}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-240}
}

@test "every inner test of kvm/inner/ns_cgroup2.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/ns_cgroup2.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner ns_cgroup2: the guest has cgroup2 at /sys/fs/cgroup with memory, pids and cpu" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "the guest has cgroup2 at /sys/fs/cgroup with memory, pids and cpu"
}

@test "inner ns_cgroup2: run -d: the box is in vmbox/ID with memory.max, pids.max and cpu.max written" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "run -d: the box is in vmbox/ID with memory.max, pids.max and cpu.max written"
}

@test "inner ns_cgroup2: --memory: an OOM kill exits 137 and inspect says oom_killed (from memory.events)" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "--memory: an OOM kill exits 137 and inspect says oom_killed (from memory.events)"
}

@test "inner ns_cgroup2: --pids-limit: a fork bomb is held at pids.max and the box still answers" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "--pids-limit: a fork bomb is held at pids.max and the box still answers"
}

@test "inner ns_cgroup2: --cpus: a busy loop is throttled by cpu.max" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "--cpus: a busy loop is throttled by cpu.max"
}

@test "inner ns_cgroup2: cleanup: --rm, stop + rm, and a killed monitor leave no cgroup" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "cleanup: --rm, stop + rm, and a killed monitor leave no cgroup"
}

@test "inner ns_cgroup2: seccomp: an i386 system call (int 0x80) is killed by the filter" {
  kvm_inner_result kvm/inner/ns_cgroup2.bats "seccomp: an i386 system call (int 0x80) is killed by the filter"
}

@test "inner ns_cgroup2: the inner run ended with status 0 and a complete plan" {
  kvm_inner_suite kvm/inner/ns_cgroup2.bats
  local dir
  dir=$(_kvm_inner_dir ns_cgroup2)
  cat "$dir/tap"
  [ "$(cat "$dir/rc")" -eq 0 ]
  grep -qx "1\.\.$(grep -c '^@test' "$KVM_REPO/tests/kvm/inner/ns_cgroup2.bats")" "$dir/tap"
}
