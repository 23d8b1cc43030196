#!/usr/bin/env bats
# INNER suite: `vmbox run --backend kvm` end to end, inside the first-level
# guest of tests/kvm/run-nested.sh (where /dev/kvm exists): our VMM boots the
# stock Debian cloud kernel with vmbox's initramfs on the box's ext4 disk.
# tests/kvm.bats relays each test; it also puts the guest kernel, its virtio
# modules and a test image (VMBOX_KVM_TEST_IMAGE, from tests/lib/mkimages.sh)
# into the payload.  Not for the host: tests/run.sh only runs tests/*.bats.

load ../../lib/common

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  # One store for the file: the busybox image and the initramfs are built
  # once; each test still gets boxes of its own.
  export VMBOX_ROOT=$BATS_FILE_TMPDIR/root
  # Boot timings, printed by the last test.
  export KVM_TIMES=$BATS_FILE_TMPDIR/times
}

# Every box a test left running dies with the test.
teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

# One TAP comment per finished box: a test that boots five VMs still shows
# progress to the harness's idle timeout (a hung box still trips it).
kvm() {
  local rc=0
  "$VMBOX" run --backend kvm "$@" || rc=$?
  echo "# kvm box ended: $rc" >&3
  return $rc
}

# state FIELD BOX -> .state.FIELD of vmbox inspect (no jq in the guest)
state() { "$VMBOX" inspect "$2" | tr -d ' \n' | sed -nE "s/.*\"$1\":\"?([^,\"}]*).*/\1/p"; }

# The kvm state dir of box NAME (console.log, timing).
kvm_dir() { echo "$VMBOX_ROOT/boxes/$("$VMBOX" inspect "$1" | tr -d ' \n' | sed -nE 's/.*"id":"([0-9a-f]{64})".*/\1/p')/kvm"; }

@test "run --backend kvm: echo, and the boot is timed" {
  local t0 t1
  t0=${EPOCHREALTIME/./}
  run kvm --name first busybox echo hello from a VM
  t1=${EPOCHREALTIME/./}
  assert_status 0
  [ "$output" = "hello from a VM" ]
  local d
  d=$(kvm_dir first)
  cat "$d/timing"
  grep -q '^boot_to_init_ms=[0-9]' "$d/timing"
  echo "first_run_ms=$(((t1 - t0) / 1000)) $(tr '\n' ' ' <"$d/timing")" >>"$KVM_TIMES"
  # the cached initramfs is shared by all boxes
  [ "$(ls "$VMBOX_ROOT"/kvm/initramfs-*.cpio | wc -l)" -eq 1 ]
}

@test "exit codes: 0, 3, 127 not found, 126 cannot run, 143 by signal" {
  run kvm --rm busybox true
  assert_status 0
  run kvm --rm busybox sh -c 'exit 3'
  assert_status 3
  run -127 kvm --rm busybox no-such-command
  assert_status 127
  assert_contains "$output" "no-such-command: executable file not found"
  run kvm --rm busybox /etc/passwd
  assert_status 126
  assert_contains "$output" "Permission denied"
  run kvm --rm busybox sh -c 'kill -TERM $$'
  assert_status 143
}

@test "run --rm busybox true: wall time" {
  local t0 t1 i
  for i in 1 2 3; do
    t0=${EPOCHREALTIME/./}
    kvm --rm busybox true
    t1=${EPOCHREALTIME/./}
    echo "rm_true_ms=$(((t1 - t0) / 1000))" | tee -a "$KVM_TIMES"
  done
}

@test "stdout and stderr stay apart; binary output survives the channel" {
  run --separate-stderr kvm --rm busybox sh -c 'echo out1; echo err1 >&2; echo out2'
  assert_status 0
  [ "$output" = "out1
out2" ]
  [ "$stderr" = err1 ]
  # ~25 KB of awkward bytes: framing, no tty translation, order kept
  kvm --rm busybox sh -c 'i=0; while [ $i -lt 200 ]; do printf "\000\001\r\n\377\033%s" "$(seq -s, 1 40)"; i=$((i+1)); done' >"$BATS_TEST_TMPDIR/got"
  i=0
  while [ $i -lt 200 ]; do printf '\000\001\r\n\377\033%s' "$(seq -s, 1 40)"; i=$((i + 1)); done >"$BATS_TEST_TMPDIR/want"
  cmp "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got"
}

@test "-i passes stdin into the VM" {
  run bash -c 'seq 1 2000 | "$VMBOX" run --backend kvm --rm -i busybox sh -c "wc -l; echo done"'
  assert_status 0
  [ "$output" = "2000
done" ]
}

@test "Env, WorkingDir, User and Entrypoint/Cmd come from the image config; flags override" {
  vmbox import -q "$VMBOX_KVM_TEST_IMAGE" cfgbox >/dev/null
  run kvm --rm cfgbox
  assert_status 0
  [ "$output" = hello ]
  run kvm --rm cfgbox 'echo "$SPACED"; pwd; id -u; id -g; hostname'
  assert_status 0
  [ "${lines[0]}" = "a b  c" ]
  [ "${lines[1]}" = /srv/app ]
  [ "${lines[2]}" = 1000 ]
  [ "${lines[3]}" = 1000 ]
  run kvm --rm -e GREETING=bye -u 0:0 -w /made/up --hostname vmhost cfgbox 'echo $GREETING; pwd; id -u; hostname'
  [ "$output" = "bye
/made/up
0
vmhost" ]
}

@test "a file written in one box is absent from the base and from another box" {
  kvm --rm busybox true
  local img before
  img=$(ls "$VMBOX_ROOT"/ext4/*.ext4 | head -n1)
  before=$(sha256sum <"$img")
  run kvm --name w1 busybox sh -c 'echo mine >/etc/written; cat /etc/written'
  assert_status 0
  [ "$output" = mine ]
  run kvm --rm busybox sh -c 'cat /etc/written 2>&1 || echo absent'
  assert_contains "$output" absent
  # the cached ext4 image itself never changed
  [ "$(sha256sum <"$img")" = "$before" ]
  # --read-only: the root is not writable
  run kvm --rm --read-only busybox sh -c 'touch /x 2>&1; echo rc=$?'
  assert_contains "$output" "Read-only file system"
}

@test "-d, then ps, logs, stop, rm" {
  run kvm -d --name bg busybox sh -c 'echo one; echo two >&2; trap "echo got TERM; exit 7" TERM; while true; do sleep 0.1; done'
  assert_status 0
  local id=$output
  [[ $id =~ ^[0-9a-f]{64}$ ]]
  run vmbox ps
  assert_contains "$output" "${id:0:12}"
  assert_contains "$output" "Up "
  run --separate-stderr vmbox logs bg
  [ "$output" = one ]
  [ "$stderr" = two ]
  run vmbox exec bg sh -c 'echo in the box; exit 5'
  assert_status 5
  [ "$output" = "in the box" ]
  run vmbox stop bg
  assert_status 0
  [ "$(state exit_code bg)" = 7 ]
  run vmbox logs bg
  assert_contains "$output" "got TERM"
  run vmbox ps
  refute_contains "$output" "${id:0:12}"
  run vmbox rm bg
  assert_status 0
  [ ! -e "$VMBOX_ROOT/boxes/$id" ]
}

@test "kill: SIGKILL ends the VM with 137" {
  kvm -d --name k busybox sleep 100 >/dev/null
  run vmbox kill k
  assert_status 0
  run vmbox wait k
  [ "$output" = 137 ]
}

@test "--timeout kills the box: 137, timed_out" {
  local t0=$SECONDS
  run kvm --name slow --timeout 2 busybox sleep 100
  assert_status 137
  [ $((SECONDS - t0)) -le 60 ]
  [ "$(state timed_out slow)" = true ]
}

@test "--memory: an OOM kill inside the guest exits 137, oom_killed" {
  # tail keeps everything it reads from /dev/zero (no newline): anonymous
  # memory grows fast in one process.  (A pipeline building a shell string
  # thrashes the page cache for minutes under nested TCG before the OOM.)
  run kvm --name hog --memory 32m busybox sh -c 'tail /dev/zero; echo survived'
  assert_status 137
  refute_contains "$output" survived
  [ "$(state oom_killed hog)" = true ]
  # below the limit, fine: dd touches a 16 MiB buffer
  run kvm --rm --memory 64m busybox sh -c 'dd if=/dev/zero of=/dev/null bs=16M count=1 2>/dev/null && echo fits'
  assert_status 0
  [ "$output" = fits ]
}

@test "--cpus 2 is seen by nproc" {
  run kvm --rm --cpus 2 busybox nproc
  assert_status 0
  [ "$output" = 2 ]
  run kvm --rm busybox nproc
  [ "$output" = 1 ]
}

@test "missing kernel: a clear error that says how to get one" {
  run kvm --rm --kernel /nonexistent/vmlinuz busybox true
  assert_status 125
  assert_contains "$output" "/nonexistent/vmlinuz"
  VMBOX_KERNEL=/nonexistent/vmlinuz run kvm --rm busybox true
  assert_status 125
  assert_contains "$output" "guest kernel /nonexistent/vmlinuz"
  assert_contains "$output" "apt-get install linux-image-cloud-amd64"
  # nothing in --kernel, VMBOX_KERNEL, the store or /boot
  mount -t tmpfs none /boot
  run kvm --rm busybox true
  umount /boot
  assert_status 125
  assert_contains "$output" "no guest kernel found"
  assert_contains "$output" "apt-get install linux-image-cloud-amd64"
}

@test "a corrupt kernel file is refused clearly" {
  head -c 100000 /dev/urandom >"$BATS_TEST_TMPDIR/vmlinuz-bad"
  run kvm --rm --kernel "$BATS_TEST_TMPDIR/vmlinuz-bad" busybox true
  assert_status 125
  assert_contains "$output" "vmlinuz-bad is not a usable bzImage"
  # a real header with the rest cut off gets past our check; the VMM's
  # loader must refuse it, not boot garbage
  head -c 20000 "$(ls /boot/vmlinuz-* | head -n1)" >"$BATS_TEST_TMPDIR/vmlinuz-cut"
  run kvm --rm --kernel "$BATS_TEST_TMPDIR/vmlinuz-cut" busybox true
  assert_status 125
  assert_contains "$output" "vmlinuz-cut"
}

@test "a guest kernel panic ends the box with 125 and says why" {
  run --separate-stderr kvm --name panic busybox sh -c 'echo before; echo c >/proc/sysrq-trigger; sleep 100'
  assert_status 125
  [ "$output" = before ]
  assert_contains "$stderr" "guest kernel panicked"
  assert_contains "$stderr" "Kernel panic"
}

@test "an init that crashes during boot is a clear error, not a hang" {
  VMBOX_GUEST_APPEND=vmbox.test=crash run kvm --rm busybox echo never
  assert_status 125
  refute_contains "$output" never
  assert_contains "$output" "guest kernel"
  assert_contains "$output" "Attempted to kill init"
}

@test "timings (boot-to-init of the stock kernel, run --rm true)" {
  cat "$KVM_TIMES"
  grep -q boot_to_init_ms "$KVM_TIMES"
  # The outer suite prints these (TAP diagnostics reach its log).
  sed 's/^/# kvm-timing: /' "$KVM_TIMES" >&3
}
