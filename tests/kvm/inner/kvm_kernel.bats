#!/usr/bin/env bats
# INNER suite: vmbox's own minimal guest kernel (`make kernel`,
# backends/guest/kernel/) against the stock Debian cloud kernel, inside the
# first-level guest of tests/kvm/run-nested.sh.  tests/kvm_kernel.bats relays
# each test and puts both kernels, the stock one's modules and a test image
# into the payload.  Not for the host: tests/run.sh only runs tests/*.bats.

load ../../lib/common

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export VMBOX_ROOT=$BATS_FILE_TMPDIR/root
  # Where `make kernel` leaves it, which is where vmbox looks (kernel.c).
  export OWN_KERNEL=$VMBOX_BUILD/kernel/vmlinuz-vmbox
  STOCK_KERNEL=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  export STOCK_KERNEL
  export KVM_TIMES=$BATS_FILE_TMPDIR/times
}

setup() {
  [ -f "$OWN_KERNEL" ] || flunk "$OWN_KERNEL missing: run make kernel (the outer suite adds it to the payload)"
  [ -n "$STOCK_KERNEL" ] || flunk "no /boot/vmlinuz-*-cloud-amd64 in the guest's payload"
  unset VMBOX_KERNEL VMBOX_GUEST_APPEND
}

teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

# One TAP comment per finished box keeps the harness's idle timer fed.
kvm() {
  local rc=0
  "$VMBOX" run --backend kvm "$@" || rc=$?
  echo "# kvm box ended: $rc" >&3
  return $rc
}

state() { "$VMBOX" inspect "$2" | tr -d ' \n' | sed -nE "s/.*\"$1\":\"?([^,\"}]*).*/\1/p"; }
kvm_dir() { echo "$VMBOX_ROOT/boxes/$("$VMBOX" inspect "$1" | tr -d ' \n' | sed -nE 's/.*"id":"([0-9a-f]{64})".*/\1/p')/kvm"; }

# Boots one box NAME with ARGS..., records its boot_to_init_ms under LABEL.
timed_boot() { # LABEL NAME ARGS...
  local label=$1 name=$2 ms
  shift 2
  kvm --name "$name" "$@" busybox true || return 1
  ms=$(sed -n 's/^boot_to_init_ms=//p' "$(kvm_dir "$name")/timing")
  [ -n "$ms" ] || { echo "no boot_to_init_ms for $name"; return 1; }
  echo "$label $ms" >>"$KVM_TIMES"
  "$VMBOX" rm "$name" >/dev/null
}

flunk() { echo "$*"; return 1; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }

@test "vmbox picks the minimal kernel by default: no modules, release -vmbox" {
  run kvm --name own busybox uname -r
  assert_status 0
  [[ "$output" == *-vmbox ]] || flunk "guest runs $output, not the minimal kernel"
  # Its initramfs carries no modules (everything is built in).
  local cpio
  cpio=$(ls "$VMBOX_ROOT"/kvm/initramfs-*.cpio)
  ! cpio -t <"$cpio" 2>/dev/null | grep -q '\.ko$'
  grep -q '^boot_to_init_ms=[0-9]' "$(kvm_dir own)/timing"
}

@test "the stock kernel still works with --kernel" {
  local rel=${STOCK_KERNEL#/boot/vmlinuz-}
  run kvm --rm --kernel "$STOCK_KERNEL" busybox uname -r
  assert_status 0
  [ "$output" = "$rel" ]
}

@test "minimal kernel: exit codes 0, 3, 127, 126, 143" {
  run kvm --rm busybox true
  assert_status 0
  run kvm --rm busybox sh -c 'exit 3'
  assert_status 3
  run -127 kvm --rm busybox no-such-command
  assert_status 127
  run kvm --rm busybox /etc/passwd
  assert_status 126
  run kvm --rm busybox sh -c 'kill -TERM $$'
  assert_status 143
}

@test "minimal kernel: --memory OOM kill exits 137 (cgroup v2 memory controller)" {
  run kvm --name hog --memory 32m busybox sh -c 'tail /dev/zero; echo survived'
  assert_status 137
  refute_contains "$output" survived
  [ "$(state oom_killed hog)" = true ]
  run kvm --rm --pids-limit 5 busybox cat /sys/fs/cgroup/box/pids.max
  assert_status 0
  [ "$output" = 5 ]
}

@test "minimal kernel: --cpus 2 brings up both vCPUs (SMP via ACPI MADT)" {
  run kvm --rm --cpus 2 busybox nproc
  assert_status 0
  [ "$output" = 2 ]
}

@test "minimal kernel: the guest has devpts, tmpfs, ext4 root, unix and inet sockets" {
  run kvm --rm busybox sh -c 'grep -E " (/|/dev/pts|/tmp|/sys/fs/cgroup) " /proc/mounts | cut -d" " -f2,3 | sort | tr "\n" " "; [ -e /proc/net/unix ] && echo unix; [ -e /proc/net/tcp ] && echo inet'
  assert_status 0
  assert_contains "$output" "/ ext4"
  assert_contains "$output" "/dev/pts devpts"
  assert_contains "$output" "/tmp tmpfs"
  assert_contains "$output" "/sys/fs/cgroup cgroup2"
  assert_contains "$output" unix
  assert_contains "$output" inet
}

@test "boot-to-init: 3 boots of each kernel, medians" {
  local i
  for i in 1 2 3; do
    timed_boot own "own$i"
    timed_boot stock "stock$i" --kernel "$STOCK_KERNEL"
  done
  cat "$KVM_TIMES"
  local own stock
  own=$(awk '$1 == "own" { print $2 }' "$KVM_TIMES" | median)
  stock=$(awk '$1 == "stock" { print $2 }' "$KVM_TIMES" | median)
  [ -n "$own" ] && [ -n "$stock" ]
  printf '# kvm-kernel-timing: boot_to_init_ms median of 3: minimal=%s stock=%s (all: %s)\n' \
    "$own" "$stock" "$(tr '\n' ' ' <"$KVM_TIMES")" >&3
  # The point of the minimal kernel: it boots faster than the stock one.
  [ "$own" -lt "$stock" ] || flunk "minimal kernel ${own}ms is not faster than stock ${stock}ms"
}
