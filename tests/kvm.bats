#!/usr/bin/env bats
# OUTER suite for nested KVM: boots Debian's cloud kernel under QEMU/TCG with
# an emulated AMD SVM CPU (tests/kvm/run-nested.sh) and checks that /dev/kvm
# inside really runs guest code.  Timings are printed as TAP "# " lines.
# Also relays tests/kvm/inner/*.bats, one outer result per inner test.
#
# Needs: scripts/deps.sh --test (qemu-system-x86, linux-image-cloud-amd64,
# cpio) and `make unit` (build/tools/kvm_probe).  VMBOX_BUILD picks another
# build dir.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  # Keep any one boot from eating the suite's budget; a hang is retried once.
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-300}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-90}
  kvm_backend_payload
}

# What the kvm_backend inner suite needs besides the build: the guest kernel
# (the same stock Debian cloud kernel the first level runs), the modules
# vmbox puts in its initramfs (under /usr/lib: /lib is a symlink in the
# guest's base), and an OCI test image (tests/lib/mkimages.sh needs umoci,
# which the guest lacks).
kvm_backend_payload() {
  local k kver m d extra=
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  [ -n "$k" ] || return 0 # the harness tests report the missing kernel
  kver=${k#/boot/vmlinuz-}
  m=/usr/lib/modules/$kver
  for d in modules.dep modules.builtin kernel/drivers/virtio kernel/drivers/block/virtio_blk.ko \
    kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/mbcache.ko kernel/lib/crc16.ko kernel/crypto/crc32c_generic.ko \
    kernel/net/vmw_vsock kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko \
    kernel/net/core/failover.ko; do
    [ -e "$m/$d" ] && extra+=" $m/$d"
  done
  VMBOX_KVM_TEST_IMAGE=$(VMBOX_REPO=$KVM_REPO bash -c 'source "$VMBOX_REPO/tests/lib/mkimages.sh" && image_busybox') ||
    return 1
  export VMBOX_KVM_TEST_IMAGE
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $k$extra $VMBOX_KVM_TEST_IMAGE"
  export VMBOX_KVM_PASS_ENV="${VMBOX_KVM_PASS_ENV-ASAN_OPTIONS UBSAN_OPTIONS NO_COLOR} VMBOX_KVM_TEST_IMAGE VMBOX_KVM_JAIL"
}

setup() {
  PROBE=$VMBOX_BUILD/tools/kvm_probe
  [ -x "$PROBE" ] || {
    echo "$PROBE missing: run make unit (or set VMBOX_BUILD)"
    return 1
  }
}

@test "kvm_probe without /dev/kvm on the host fails clearly, or runs natively" {
  run "$PROBE" --iters 10
  if [ -c /dev/kvm ]; then
    [ "$status" -eq 0 ]
    [[ "$output" == *"kvm_probe: ok"* ]]
  else
    [ "$status" -eq 2 ]
    [[ "$output" == *"cannot open /dev/kvm"* ]]
  fi
}

@test "/dev/kvm appears inside the first-level guest, with nested paging" {
  kvm_run -c 'ls -l /dev/kvm; echo "npt=$(cat /sys/module/kvm_amd/parameters/npt)"
              [ -c /dev/kvm ] && grep -qw svm /proc/cpuinfo'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"npt=Y"* ]]
  [[ "$output" != *"retrying after hang"* ]] || kvm_diag "note: a boot hung and was retried"
  kvm_diag "qemu-start-to-init $(kvm_boot_time "$output")s"
}

@test "kvm_probe executes a real guest instruction stream under nested KVM" {
  kvm_run -c '"$1" --iters 2000 && "$1" --iters 500 --vcpus 2' "$PROBE"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"api_version=12"* ]]
  [[ "$output" == *"vcpu=0 io_exit port=0x10 dir=out size=1 data=0x42"* ]]
  [[ "$output" == *"vcpu=0 io_exits=2001 hlt_exits=1"* ]]
  [[ "$output" == *"vcpu=1 io_exit port=0x10 dir=out size=1 data=0x43"* ]]
  [[ "$output" == *"vcpu=1 io_exits=501 hlt_exits=1"* ]]
  [ "$(grep -c '^kvm_probe: ok$' <<<"$output")" -eq 2 ]
  local rtt create
  rtt=$(sed -nE 's/.*vcpu=0 io_round_trip_ns median=([0-9]+) .*samples=1999$/\1/p' <<<"$output")
  create=$(sed -nE 's/^kvm_probe: create_vm_ns=([0-9]+)$/\1/p' <<<"$output" | head -n1)
  [ -n "$rtt" ]
  kvm_diag "qemu-start-to-init $(kvm_boot_time "$output")s"
  kvm_diag "KVM I/O exit round trip (nested, median of 1999) $((rtt / 1000)).$((rtt % 1000 / 100))us"
  kvm_diag "KVM_CREATE_VM (nested) $((create / 1000000))ms"
}

@test "run-nested passes arguments and returns the script's exit status" {
  kvm_run -c 'printf "<%s>" "$@"; echo; exit 7' one 'two words'
  echo "$output"
  [ "$status" -eq 7 ]
  [[ "$output" == *"<one><two words>"* ]]
  [[ "$output" == *"vmbox-kvm: status=7 "* ]]
  # The exit frame itself is not relayed.
  [[ "$output" != *VMBOX-KVM-EXIT* ]]
}

@test "run-nested: the guest may write to its payload; the cached disk stays as it was" {
  local img before
  img=$("$KVM_DIR/mkinitramfs.sh" | grep '\.ext4$')
  before=$(sha256sum <"$img")
  kvm_run -c 'echo scribble >>tests/kvm/README.md && tail -n1 tests/kvm/README.md &&
              echo new >"$VMBOX_BUILD/new-file" && cat "$VMBOX_BUILD/new-file"'
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *scribble*new* ]]
  [ "$(sha256sum <"$img")" = "$before" ]
  [ ! -e "$VMBOX_BUILD/new-file" ]
  ! grep -q scribble "$KVM_REPO/tests/kvm/README.md"
}

@test "run-nested: VMBOX_KVM_PAYLOAD_MODE=cpio carries the same payload in the initrd" {
  VMBOX_KVM_PAYLOAD_MODE=cpio kvm_run -c '! grep -q " /vmbox/payload " /proc/mounts && "$1" --iters 10' "$PROBE"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"kvm_probe: ok"* ]]
}

@test "run-nested: a script that prints a fake exit frame cannot fake its status" {
  kvm_run -c 'echo "VMBOX-KVM-EXIT 0000 0"; exit 3'
  [ "$status" -eq 3 ]
}

@test "run-nested never hangs: no output kills QEMU, retries once, then fails 124" {
  VMBOX_KVM_IDLE_TIMEOUT=4 kvm_run -c 'echo going quiet; sleep 600'
  echo "$output"
  [ "$status" -eq 124 ]
  [ "$(grep -c '^vmbox-kvm: retrying after hang: no console output for 4s' <<<"$output")" -eq 1 ]
  [ "$(grep -c '^vmbox-kvm: attempt ' <<<"$output")" -eq 2 ]
  [[ "$output" == *"vmbox-kvm: giving up: no console output for 4s"* ]]
  [ "$(grep -c '^going quiet$' <<<"$output")" -eq 2 ]
}

@test "run-nested: a guest that dies without a status is retried once, then fails 125" {
  kvm_run -c 'echo panicking; echo c >/proc/sysrq-trigger; sleep 60'
  echo "$output"
  [ "$status" -eq 125 ]
  [ "$(grep -c '^vmbox-kvm: retrying after hang: guest ended without an exit status' <<<"$output")" -eq 1 ]
  [[ "$output" == *"vmbox-kvm: giving up: guest ended without an exit status"* ]]
  [ "$(grep -c '^panicking$' <<<"$output")" -eq 2 ]
}

@test "run-nested: the overall timeout bounds a chatty run too" {
  VMBOX_KVM_RETRIES=0 VMBOX_KVM_TIMEOUT=25 kvm_run -c 'while :; do echo tick; sleep 0.2; done'
  [ "$status" -eq 124 ]
  [[ "$output" == *"giving up: overall timeout of 25s"* ]]
}

@test "run-nested: VMBOX_KVM_NATIVE=1 runs on the host's /dev/kvm, or says there is none" {
  VMBOX_KVM_NATIVE=1 kvm_run -c '"$1" --iters 10' "$PROBE"
  echo "$output"
  if [ -c /dev/kvm ]; then
    [ "$status" -eq 0 ]
    [[ "$output" == *"native mode"* ]]
  else
    [ "$status" -eq 125 ]
    [[ "$output" == *"VMBOX_KVM_NATIVE=1 but there is no /dev/kvm here"* ]]
  fi
}

@test "run-nested: a bad script path is a clear error" {
  run "$KVM_DIR/run-nested.sh" /nonexistent/script.sh
  [ "$status" -eq 125 ]
  [[ "$output" == *"script /nonexistent/script.sh not found"* ]]
}

# --- inner suites, one outer result per inner test ------------------------------

@test "relay: inner passes pass; inner failures, skips and missing tests fail" {
  local dir=$BATS_FILE_TMPDIR/kvm-inner/fake
  mkdir -p "$dir"
  printf '%s\n' 'vmbox-kvm: attempt 1/2' 'ok 1 from the first attempt' 'not ok 2 gone' \
    'vmbox-kvm: retrying after hang: no console output for 9s' 'vmbox-kvm: attempt 2/2' \
    '1..4' 'ok 1 passes' 'not ok 2 fails' '# (in test file x.bats, line 3)' '#   `false'"'"' failed' \
    '[   12.3] a kernel line' 'ok 3 skipped # skip no reason' 'ok 4 passes too' \
    'vmbox-kvm: status=1 elapsed=9.00s' >"$dir/log"
  kvm_last_attempt "$dir/log" >"$dir/tap"
  echo 1 >"$dir/rc"
  run kvm_inner_result /nowhere/fake.bats "passes"
  [ "$status" -eq 0 ]
  run kvm_inner_result /nowhere/fake.bats "passes too"
  [ "$status" -eq 0 ]
  run kvm_inner_result /nowhere/fake.bats "fails"
  [ "$status" -eq 1 ]
  [[ "$output" == *'`false'"'"' failed'* ]]
  [[ "$output" != *"kernel line"* ]]
  run kvm_inner_result /nowhere/fake.bats "skipped"
  [ "$status" -eq 1 ]
  # Output of an attempt that was retried is not a result.
  run kvm_inner_result /nowhere/fake.bats "from the first attempt"
  [ "$status" -eq 1 ]
  [[ "$output" == *'was not reported (inner run status 1)'* ]]
}

@test "every inner test of kvm/inner/smoke.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/smoke.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner smoke: /dev/kvm is the kvm misc device" {
  kvm_inner_result kvm/inner/smoke.bats "/dev/kvm is the kvm misc device"
  kvm_diag "inner smoke suite: qemu-start-to-init $(kvm_boot_time "$(cat "$(_kvm_inner_dir smoke)/log")")s"
}

@test "inner smoke: kvm-amd has nested paging" {
  kvm_inner_result kvm/inner/smoke.bats "kvm-amd has nested paging"
}

@test "inner smoke: kvm_probe runs real-mode code on one vCPU" {
  kvm_inner_result kvm/inner/smoke.bats "kvm_probe runs real-mode code on one vCPU"
}

@test "inner smoke: kvm_probe runs two vCPUs at once" {
  kvm_inner_result kvm/inner/smoke.bats "kvm_probe runs two vCPUs at once"
}

@test "inner smoke: kvm_probe refuses a bad iteration count" {
  kvm_inner_result kvm/inner/smoke.bats "kvm_probe refuses a bad iteration count"
}

@test "inner smoke: the inner run ended with status 0 and a complete plan" {
  kvm_inner_suite kvm/inner/smoke.bats
  local dir
  dir=$(_kvm_inner_dir smoke)
  cat "$dir/tap"
  [ "$(cat "$dir/rc")" -eq 0 ]
  grep -qx '1\.\.5' "$dir/tap"
}

# --- inner kvm_backend: vmbox run --backend kvm under nested KVM ------------------

@test "every inner test of kvm/inner/kvm_backend.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/kvm_backend.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner kvm_backend: run --backend kvm: echo, and the boot is timed" {
  # ~30 nested boots in one first-level guest: more than the 300 s one
  # harness run gets by default (hangs are still caught by the idle timeout).
  VMBOX_KVM_TIMEOUT=${VMBOX_KVM_BACKEND_TIMEOUT:-1800} kvm_inner_result kvm/inner/kvm_backend.bats "run --backend kvm: echo, and the boot is timed"
}

@test "inner kvm_backend: exit codes: 0, 3, 127 not found, 126 cannot run, 143 by signal" {
  kvm_inner_result kvm/inner/kvm_backend.bats "exit codes: 0, 3, 127 not found, 126 cannot run, 143 by signal"
}

@test "inner kvm_backend: run --rm busybox true: wall time" {
  kvm_inner_result kvm/inner/kvm_backend.bats "run --rm busybox true: wall time"
}

@test "inner kvm_backend: stdout and stderr stay apart; binary output survives the channel" {
  kvm_inner_result kvm/inner/kvm_backend.bats "stdout and stderr stay apart; binary output survives the channel"
}

@test "inner kvm_backend: -i passes stdin into the VM" {
  kvm_inner_result kvm/inner/kvm_backend.bats "-i passes stdin into the VM"
}

@test "inner kvm_backend: Env, WorkingDir, User and Entrypoint/Cmd come from the image config; flags override" {
  kvm_inner_result kvm/inner/kvm_backend.bats "Env, WorkingDir, User and Entrypoint/Cmd come from the image config; flags override"
}

@test "inner kvm_backend: a file written in one box is absent from the base and from another box" {
  kvm_inner_result kvm/inner/kvm_backend.bats "a file written in one box is absent from the base and from another box"
}

@test "inner kvm_backend: -d, then ps, logs, stop, rm" {
  kvm_inner_result kvm/inner/kvm_backend.bats "-d, then ps, logs, stop, rm"
}

@test "inner kvm_backend: kill: SIGKILL ends the VM with 137" {
  kvm_inner_result kvm/inner/kvm_backend.bats "kill: SIGKILL ends the VM with 137"
}

@test "inner kvm_backend: --timeout kills the box: 137, timed_out" {
  kvm_inner_result kvm/inner/kvm_backend.bats "--timeout kills the box: 137, timed_out"
}

@test "inner kvm_backend: --memory: an OOM kill inside the guest exits 137, oom_killed" {
  kvm_inner_result kvm/inner/kvm_backend.bats "--memory: an OOM kill inside the guest exits 137, oom_killed"
}

@test "inner kvm_backend: --cpus 2 is seen by nproc" {
  kvm_inner_result kvm/inner/kvm_backend.bats "--cpus 2 is seen by nproc"
}

@test "inner kvm_backend: missing kernel: a clear error that says how to get one" {
  kvm_inner_result kvm/inner/kvm_backend.bats "missing kernel: a clear error that says how to get one"
}

@test "inner kvm_backend: a corrupt kernel file is refused clearly" {
  kvm_inner_result kvm/inner/kvm_backend.bats "a corrupt kernel file is refused clearly"
}

@test "inner kvm_backend: a guest kernel panic ends the box with 125 and says why" {
  kvm_inner_result kvm/inner/kvm_backend.bats "a guest kernel panic ends the box with 125 and says why"
}

@test "inner kvm_backend: an init that crashes during boot is a clear error, not a hang" {
  kvm_inner_result kvm/inner/kvm_backend.bats "an init that crashes during boot is a clear error, not a hang"
}

@test "inner kvm_backend: timings (boot-to-init of the stock kernel, run --rm true)" {
  kvm_inner_result kvm/inner/kvm_backend.bats "timings (boot-to-init of the stock kernel, run --rm true)"
  local log
  log=$(_kvm_inner_dir kvm_backend)/log
  kvm_diag "inner kvm_backend suite: first-level qemu-start-to-init $(kvm_boot_time "$(cat "$log")")s"
  while IFS= read -r l; do kvm_diag "nested kvm box: $l"; done < <(sed -nE 's/^# kvm-timing: //p' "$log")
}

