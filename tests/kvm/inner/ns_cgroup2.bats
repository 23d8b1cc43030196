#!/usr/bin/env bats
# INNER suite: the ns backend on a pure cgroup2 host.  Runs inside the
# first-level guest of tests/kvm/run-nested.sh (Debian's 6.1 kernel, /init
# mounts cgroup2 at /sys/fs/cgroup with every controller), because the test
# host binds its controllers to cgroup v1.  tests/ns_cgroup2.bats relays each
# test; it boots the guest with VMBOX_KVM_MODULES="loop overlay".
# Not for the host: tests/run.sh only runs tests/*.bats.

load ../../lib/common

# The guest's / is the initramfs (rootfs), where pivot_root(2) fails with
# EINVAL (runc needs --no-pivot there).  So vmbox runs, as switch_root does
# on a real boot, from a bind of / moved onto / in a mount namespace of its
# own and chrooted into; boxes started from there can pivot.
vmbox() {
  unshare -m sh -c 'mkdir -p /.vmbox-root && mount -o rbind / /.vmbox-root && cd /.vmbox-root &&
    mount -o move . / && exec chroot . "$@"' sh "$VMBOX" "$@"
}

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  # One store for the file: the builtin image is imported once (TCG is slow).
  export VMBOX_ROOT=$BATS_FILE_TMPDIR/root
}

teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    vmbox rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

CG=/sys/fs/cgroup

# Nothing of ours under vmbox/ but the (empty) parent.
no_box_cgroups() {
  local d left=0
  for d in "$CG"/vmbox/*/; do
    [ -d "$d" ] || continue
    echo "left behind: $d"
    left=1
  done
  return "$left"
}

@test "the guest has cgroup2 at /sys/fs/cgroup with memory, pids and cpu" {
  grep -q "^[^ ]* $CG cgroup2 " /proc/mounts
  local c
  for c in memory pids cpu; do
    grep -qw "$c" "$CG/cgroup.controllers" || { echo "no $c in $(cat "$CG/cgroup.controllers")"; return 1; }
  done
}

@test "run -d: the box is in vmbox/ID with memory.max, pids.max and cpu.max written" {
  local id cg
  id=$(vmbox run -d --memory 48m --pids-limit 40 --cpus 0.5 busybox sleep 300)
  cg=$CG/vmbox/$id
  [ -d "$cg" ]
  [ "$(cat "$cg/memory.max")" = 50331648 ]
  [ ! -e "$cg/memory.swap.max" ] || [ "$(cat "$cg/memory.swap.max")" = 0 ]
  [ "$(cat "$cg/pids.max")" = 40 ]
  [ "$(cat "$cg/cpu.max")" = "50000 100000" ]
  # vmbox/ hands the controllers down to the boxes
  for c in memory pids cpu; do grep -qw "$c" "$CG/vmbox/cgroup.subtree_control"; done
  # PID 1 (vmbox-init) and sleep
  [ "$(wc -l <"$cg/cgroup.procs")" -eq 2 ]
  # The box sees its cgroup as the root of its own cgroup namespace.
  run vmbox exec "$id" cat /proc/self/cgroup
  assert_status 0
  [ "$output" = "0::/" ]
  [ "$(wc -l <"$cg/cgroup.procs")" -eq 2 ] # the exec'd process is gone again
  run vmbox rm -f "$id"
  assert_status 0
  [ ! -e "$cg" ]
}

@test "--memory: an OOM kill exits 137 and inspect says oom_killed (from memory.events)" {
  # tail buffers /dev/zero looking for a newline: anonymous memory grows
  # fast.  (A shell variable fed through a pipe grows so slowly that, near
  # the limit, reclaim thrashes the page cache for minutes under TCG.)
  # --timeout bounds a run that never hits the limit: exit 137 but no oom.
  # The hog is the command itself, so its OOM kill is the box's exit.
  run vmbox run --name hog --memory 32m --timeout 120 busybox tail /dev/zero
  assert_status 137
  run vmbox inspect hog
  assert_contains "$output" '"oom_killed": true'
  assert_contains "$output" '"exit_code": 137'
  vmbox rm hog
  no_box_cgroups
}

@test "--pids-limit: a fork bomb is held at pids.max and the box still answers" {
  local id cg
  id=$(vmbox run -d --pids-limit 30 busybox sh -c 'b() { b | b & }; b 2>/dev/null; sleep 600')
  cg=$CG/vmbox/$id
  local i
  for i in $(seq 100); do # until the bomb has hit the limit
    [ "$(awk '$1 == "max" { print $2 }' "$cg/pids.events")" -gt 0 ] && break
    sleep 0.2
  done
  [ "$(awk '$1 == "max" { print $2 }' "$cg/pids.events")" -gt 0 ]
  [ "$(cat "$cg/pids.current")" -le 30 ]
  run vmbox inspect "$id"
  assert_contains "$output" '"status": "running"'
  run vmbox rm -f "$id"
  assert_status 0
  [ ! -e "$cg" ]
}

@test "--cpus: a busy loop is throttled by cpu.max" {
  local id cg
  id=$(vmbox run -d --cpus 0.2 busybox sh -c 'while :; do :; done')
  cg=$CG/vmbox/$id
  [ "$(cat "$cg/cpu.max")" = "20000 100000" ]
  sleep 3
  local thr
  thr=$(awk '$1 == "nr_throttled" { print $2 }' "$cg/cpu.stat")
  echo "nr_throttled=$thr"
  [ "$thr" -gt 0 ]
  vmbox rm -f "$id"
  [ ! -e "$cg" ]
}

@test "cleanup: --rm, stop + rm, and a killed monitor leave no cgroup" {
  run vmbox run --rm --memory 32m busybox true
  assert_status 0
  no_box_cgroups
  local id pid
  id=$(vmbox run -d busybox sleep 300)
  vmbox stop -t 1 "$id"
  vmbox rm "$id"
  no_box_cgroups
  id=$(vmbox run -d busybox sleep 300)
  pid=$(vmbox inspect "$id" | sed -n 's/.*"monitor_pid": \([0-9]*\).*/\1/p')
  [ -n "$pid" ]
  kill -9 "$pid"
  run vmbox rm -f "$id"
  assert_status 0
  no_box_cgroups
}

@test "seccomp: an i386 system call (int 0x80) is killed by the filter" {
  # This kernel has the i386 ABI (the test host's does not): bare it works,
  # under the ns backend's profile the process dies with SIGSYS.
  run "$VMBOX_BUILD/tools/seccomp_probe" compare i386_getpid x32_getpid
  assert_status 0
  grep -qx "i386_getpid bare=ok filtered=SIGSYS" <<<"$output" || { echo "$output"; return 1; }
  grep -qE '^x32_getpid bare=(ok|ENOSYS) filtered=SIGSYS$' <<<"$output"
}
