#!/usr/bin/env bats
# INNER suite: the VMM's jail (backends/kvm/jail.c), inside the first-level
# guest of tests/kvm/run-nested.sh.  While a `-d` kvm box runs, the VMM
# process is looked at from outside through /proc: seccomp on every thread,
# its uid, capabilities, namespaces, root and fds.  A forced violation
# (VMBOX_JAIL_SELFTEST) must end the box with a clear error.  Relayed by
# tests/kvm_jail.bats.  Not for the host.

load ../../lib/common

JAIL_UID=64800

# One jailed box for the tests that only look at its VMM (a nested boot is
# dear); the others start their own.
setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export VMBOX_ROOT=$BATS_FILE_TMPDIR/root
  SHARED_ID=$("$VMBOX" run --backend kvm -d --name jailed busybox sleep 3000) || return 1
  export SHARED_ID
}

rm_boxes() { # KEEP_ID
  local s id
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    id=$(basename "$(dirname "$s")")
    [ "$id" = "${1:-}" ] || "$VMBOX" rm -f "$id" >/dev/null 2>&1 || true
  done
}

teardown() { rm_boxes "$SHARED_ID"; }
teardown_file() { rm_boxes; }

kvm() {
  local rc=0
  "$VMBOX" run --backend kvm "$@" || rc=$?
  echo "# kvm box ended: $rc" >&3
  return $rc
}

# The pids of every process named vmbox-vmm (at most one box runs here).
vmm_pids() {
  local d
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2>/dev/null)" = vmbox-vmm ] && echo "${d#/proc/}"
  done
  return 0
}

# Starts box NAME (-d, sleeping; "jailed" is the file's, already up) and
# sets VMM to its VMM's pid, KDIR to its kvm state dir.
start_box() {
  local id=$SHARED_ID
  if [ "$1" != jailed ]; then
    rm_boxes # one VMM at a time
    run kvm -d --name "$1" busybox sleep 300
    assert_status 0
    id=$output
  fi
  KDIR=$VMBOX_ROOT/boxes/$id/kvm
  VMM=$(vmm_pids)
  [ -n "$VMM" ] && [ "$(echo "$VMM" | wc -l)" -eq 1 ] || {
    echo "VMM processes: '$VMM'"
    return 1
  }
}

field() { sed -nE "s/^$1:[[:blank:]]*//p" "$2"; }

@test "every VMM thread runs under its own seccomp filter" {
  start_box jailed
  local t n=0
  for t in /proc/"$VMM"/task/*; do
    echo "thread ${t##*/} $(cat "$t/comm"): Seccomp=$(field Seccomp "$t/status") filters=$(field Seccomp_filters "$t/status") NoNewPrivs=$(field NoNewPrivs "$t/status")"
    [ "$(field Seccomp "$t/status")" = 2 ]
    [ "$(field NoNewPrivs "$t/status")" = 1 ]
    # one filter each: its kind's, none inherited from the main thread
    [ "$(field Seccomp_filters "$t/status")" = 1 ]
    n=$((n + 1))
  done
  # main + vCPU + the I/O thread at least
  [ "$n" -ge 3 ]
}

@test "the VMM runs as an unprivileged uid with no capabilities" {
  start_box jailed
  local s=/proc/$VMM/status
  grep -E '^(Uid|Gid|Groups|Cap[A-Za-z]+):' "$s"
  [ "$(field Uid "$s")" = "$JAIL_UID	$JAIL_UID	$JAIL_UID	$JAIL_UID" ]
  [ "$(field Gid "$s")" = "$JAIL_UID	$JAIL_UID	$JAIL_UID	$JAIL_UID" ]
  [ -z "$(field Groups "$s")" ]
  local c
  for c in CapInh CapPrm CapEff CapBnd CapAmb; do
    [ "$(field $c "$s")" = 0000000000000000 ]
  done
}

@test "the VMM has its own mount, pid, net, ipc and uts namespaces" {
  start_box jailed
  local n
  for n in mnt pid net ipc uts; do
    echo "$n: host $(readlink /proc/self/ns/$n) vmm $(readlink /proc/"$VMM"/ns/$n)"
    [ "$(readlink /proc/self/ns/$n)" != "$(readlink /proc/"$VMM"/ns/$n)" ]
  done
  # pid 1 of its namespace: it sees no other process
  grep -E '^NSpid:[[:blank:]]+[0-9]+[[:blank:]]+1$' /proc/"$VMM"/status
  # its network namespace has nothing but a loopback (its TAP is an fd)
  cat /proc/"$VMM"/net/dev
  [ "$(tail -n +3 /proc/"$VMM"/net/dev | wc -l)" -eq 1 ]
  tail -n +3 /proc/"$VMM"/net/dev | grep -qE '^[[:blank:]]*lo:'
}

@test "the VMM's root holds its state dir only; the host is out of sight" {
  start_box jailed
  local r=/proc/$VMM/root
  echo "root: $(ls -A "$r")"
  # the state dir, at its own path, with what the VMM writes
  [ -f "$r$KDIR/console.log" ]
  [ -d "$r$KDIR" ]
  # the top level is the first component of that path, nothing else
  local top=${KDIR#/}
  top=${top%%/*}
  [ "$(ls -A "$r")" = "$top" ]
  # nothing of the host: no /proc, /dev, /etc, the vmbox binary, the store
  local p
  for p in /proc/self /dev/kvm /etc /bin/sh "$VMBOX" "$VMBOX_ROOT/boxes"/*/state.json; do
    [ ! -e "$r$p" ] || {
      echo "visible in the jail: $p"
      return 1
    }
  done
  # only the state dir of this box, not its siblings
  [ "$(ls -A "$r$VMBOX_ROOT/boxes")" = "$(basename "$(dirname "$KDIR")")" ]
  [ "$(ls -A "$r$VMBOX_ROOT/boxes/$(basename "$(dirname "$KDIR")")")" = kvm ]
}

@test "the VMM holds only the fds it needs" {
  start_box jailed
  local f l bad=0
  for f in /proc/"$VMM"/fd/*; do
    l=$(readlink "$f")
    echo "${f##*/} -> $l"
    case $l in
    /dev/kvm | anon_inode:kvm-vm | anon_inode:kvm-vcpu:* | anon_inode:\[eventfd\] | \
      anon_inode:\[eventpoll\] | pipe:* | socket:* | /dev/null | /dev/net/tun | \
      "$KDIR/console.log" | "$KDIR/disk.overlay" | "$VMBOX_ROOT"/ext4/*.ext4) ;;
    *)
      echo "   ^ unexpected"
      bad=1
      ;;
    esac
    # never a directory: one would be a way out of the jail
    [ ! -d "$f" ] || {
      echo "   ^ a directory"
      bad=1
    }
  done
  [ "$bad" = 0 ]
}

@test "the jailed VMM still writes its disk map and timing, as the jail's uid" {
  rm_boxes
  run kvm -d --name disk busybox sh -c 'echo persisted >/f; sync; sleep 300'
  assert_status 0
  local k=$VMBOX_ROOT/boxes/$output/kvm i
  # the guest's sync is a FLUSH: the map is renamed into the state dir
  for i in $(seq 1 120); do
    [ -s "$k/disk.map" ] && break
    sleep 0.5
  done
  ls -ln "$k"
  [ "$(head -c 8 "$k/disk.map")" = VMBOXMAP ]
  [ "$(stat -c %u "$k/disk.map")" = "$JAIL_UID" ]
  grep -q '^boot_to_init_ms=' "$k/timing"
  [ "$(stat -c %u "$k/timing")" = "$JAIL_UID" ]
}

@test "a forbidden syscall on a vCPU thread ends the box: 125, a clear error, nothing left" {
  rm_boxes
  VMBOX_JAIL_SELFTEST=ptrace run kvm --rm busybox echo never
  echo "$output"
  assert_status 125
  assert_contains "$output" "the VMM was killed by its seccomp filter (syscall 101, ptrace)"
  refute_contains "$output" never
  [ -z "$(vmm_pids)" ]
  [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
}

@test "a forbidden syscall on an I/O thread or the main thread ends the box too" {
  rm_boxes
  VMBOX_JAIL_SELFTEST=execve@io run kvm --rm busybox echo never
  assert_status 125
  assert_contains "$output" "seccomp filter (syscall 59, execve)"
  VMBOX_JAIL_SELFTEST=mount@main run kvm --rm busybox echo never
  assert_status 125
  assert_contains "$output" "seccomp filter (syscall 165, mount)"
  [ -z "$(vmm_pids)" ]
}

@test "VMBOX_KVM_JAIL=0 runs the VMM unconfined (the debugging escape hatch)" {
  VMBOX_KVM_JAIL=0 start_box free
  local s=/proc/$VMM/status
  [ "$(field Seccomp "$s")" = 0 ]
  [ "$(field Uid "$s" | cut -f1)" = 0 ]
  [ "$(readlink /proc/self/ns/mnt)" = "$(readlink /proc/"$VMM"/ns/mnt)" ]
  # the selftest needs a jail: without one the syscall just runs (and fails)
  VMBOX_KVM_JAIL=0 VMBOX_JAIL_SELFTEST=ptrace run kvm --rm busybox echo fine
  assert_status 0
  [ "$output" = fine ]
}

# The jail's cost: boot-to-init (the VMM's own clock) and `run` end to end
# (to the exit status; the rm after it is not timed), medians of 3, jail on
# and off.
@test "the jail's cost on boot and run (medians of 3)" {
  rm_boxes
  local mode i t0 t1
  for mode in 1 0; do
    : >"$BATS_TEST_TMPDIR/boot.$mode"
    : >"$BATS_TEST_TMPDIR/run.$mode"
    for i in 1 2 3; do
      t0=${EPOCHREALTIME/./}
      VMBOX_KVM_JAIL=$mode kvm --name "t$mode$i" busybox true
      t1=${EPOCHREALTIME/./}
      echo $(((t1 - t0) / 1000)) >>"$BATS_TEST_TMPDIR/run.$mode"
      sed -nE 's/^boot_to_init_ms=//p' "$VMBOX_ROOT"/boxes/*/kvm/timing >>"$BATS_TEST_TMPDIR/boot.$mode"
      "$VMBOX" rm "t$mode$i" >/dev/null
    done
  done
  median() { sort -n "$1" | sed -n 2p; }
  for mode in 1 0; do
    echo "# jail=$mode boot_to_init_ms=$(median "$BATS_TEST_TMPDIR/boot.$mode") (runs: $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/boot.$mode")) run_true_ms=$(median "$BATS_TEST_TMPDIR/run.$mode") (runs: $(tr '\n' ' ' <"$BATS_TEST_TMPDIR/run.$mode"))" >&3
  done
  [ "$(wc -l <"$BATS_TEST_TMPDIR/boot.1")" -eq 3 ]
  [ "$(wc -l <"$BATS_TEST_TMPDIR/boot.0")" -eq 3 ]
}
