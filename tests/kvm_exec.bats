#!/usr/bin/env bats
# OUTER suite: the kvm backend's vsock channel (exec, -t, stop, cp,
# throughput), nested; tests/kvm/inner/kvm_exec.bats runs inside the
# first-level guest, one outer result per inner test.  Needs
# scripts/deps.sh --test, root, tmux and `make asan unit`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-900}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-240}
  kvm_exec_payload
}

# As tests/kvm.bats's kvm_backend_payload, plus the vsock modules, tmux and
# script for the -t tests.
kvm_exec_payload() {
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
  for d in /usr/bin/tmux /usr/bin/script /usr/lib/locale/C.utf8; do
    [ -e "$d" ] && extra+=" $d"
  done
  VMBOX_KVM_TEST_IMAGE=$(VMBOX_REPO=$KVM_REPO bash -c 'source "$VMBOX_REPO/tests/lib/mkimages.sh" && image_busybox') ||
    return 1
  export VMBOX_KVM_TEST_IMAGE
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $k$extra $VMBOX_KVM_TEST_IMAGE"
  export VMBOX_KVM_PASS_ENV="${VMBOX_KVM_PASS_ENV-ASAN_OPTIONS UBSAN_OPTIONS NO_COLOR} VMBOX_KVM_TEST_IMAGE VMBOX_KVM_JAIL"
}

@test "every inner test of kvm/inner/kvm_exec.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/kvm_exec.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner kvm_exec: exec into a running box: output, exit codes 0, 3, 126, 127" {
  kvm_inner_result kvm/inner/kvm_exec.bats "exec into a running box: output, exit codes 0, 3, 126, 127"
}

@test "inner kvm_exec: exec -e, -w, -u" {
  kvm_inner_result kvm/inner/kvm_exec.bats "exec -e, -w, -u"
}

@test "inner kvm_exec: 10 concurrent execs each get their own output and exit code" {
  kvm_inner_result kvm/inner/kvm_exec.bats "10 concurrent execs each get their own output and exit code"
}

@test "inner kvm_exec: exec -i: stdin round trip, 8-bit clean, EOF reaches the process" {
  kvm_inner_result kvm/inner/kvm_exec.bats "exec -i: stdin round trip, 8-bit clean, EOF reaches the process"
}

@test "inner kvm_exec: a signal to an exec's pump process reaches the exec'd process" {
  kvm_inner_result kvm/inner/kvm_exec.bats "a signal to an exec's pump process reaches the exec'd process"
}

@test "inner kvm_exec: run -it: a pty in the guest, its size follows, Ctrl-C ends the command with 130" {
  kvm_inner_result kvm/inner/kvm_exec.bats "run -it: a pty in the guest, its size follows, Ctrl-C ends the command with 130"
}

@test "inner kvm_exec: exec -t and -it: a pty in the guest; Ctrl-C reaches the process" {
  kvm_inner_result kvm/inner/kvm_exec.bats "exec -t and -it: a pty in the guest; Ctrl-C reaches the process"
}

@test "inner kvm_exec: stop: the command handles TERM, the guest syncs and powers off cleanly" {
  kvm_inner_result kvm/inner/kvm_exec.bats "stop: the command handles TERM, the guest syncs and powers off cleanly"
}

@test "inner kvm_exec: stop escalates: a command that ignores TERM is killed after -t" {
  kvm_inner_result kvm/inner/kvm_exec.bats "stop escalates: a command that ignores TERM is killed after -t"
}

@test "inner kvm_exec: an exec'd process ends with its box (137), and exec into a stopped box is a clear error" {
  kvm_inner_result kvm/inner/kvm_exec.bats "an exec'd process ends with its box (137), and exec into a stopped box is a clear error"
}

@test "inner kvm_exec: cp into and out of a running box, files and directories" {
  kvm_inner_result kvm/inner/kvm_exec.bats "cp into and out of a running box, files and directories"
}

@test "inner kvm_exec: 1 MiB of stdout through exec and run, sha256 intact; throughput" {
  kvm_inner_result kvm/inner/kvm_exec.bats "1 MiB of stdout through exec and run, sha256 intact; throughput"
}

@test "inner kvm_exec: timings (exec, stop, 1 MiB)" {
  kvm_inner_result kvm/inner/kvm_exec.bats "timings (exec, stop, 1 MiB)"
  local log
  log=$(_kvm_inner_dir kvm_exec)/log
  while IFS= read -r l; do kvm_diag "nested kvm box: $l"; done < <(sed -nE 's/^# kvm-timing: //p' "$log")
}
