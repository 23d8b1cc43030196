#!/usr/bin/env bats
# OUTER suite: the VMM's virtio-vsock device (backends/kvm/virtio/vsock.c)
# under the real Linux driver, nested; tests/kvm/inner/vsock.bats runs inside
# the first-level guest, one outer result per inner test.
# Needs scripts/deps.sh --test, root and `make asan unit`.

load kvm/lib

setup_file() {
  export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}
  local k
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  export VMBOX_KVM_PAYLOAD="${VMBOX_KVM_PAYLOAD:-} $k"
  # The first level loads them, so the inner suite finds the .ko files.
  export VMBOX_KVM_MODULES="${VMBOX_KVM_MODULES:-} vmw_vsock_virtio_transport"
  export VMBOX_KVM_TIMEOUT=${VMBOX_KVM_TIMEOUT:-1200}
  export VMBOX_KVM_IDLE_TIMEOUT=${VMBOX_KVM_IDLE_TIMEOUT:-300}
}

@test "every inner test of kvm/inner/vsock.bats has an outer result here" {
  run kvm_inner_unrelayed kvm/inner/vsock.bats "$BATS_TEST_FILENAME"
  [ "$status" -eq 0 ]
  [ -z "$output" ] || { echo "not relayed: $output"; return 1; }
}

@test "inner vsock: host to guest: 1 MiB echoed back intact (sha256), then host-to-guest throughput" {
  run kvm_inner_result kvm/inner/vsock.bats "host to guest: 1 MiB echoed back intact (sha256), then host-to-guest throughput"
  echo "$output"
  # the figure, as the inner test printed it (TAP diagnostics, nested)
  grep -h '^# host->guest' "$BATS_FILE_TMPDIR/kvm-inner/vsock/tap" >&3 || true
  [ "$status" -eq 0 ]
}

@test "inner vsock: guest to host: connect to CID 2 port P reaches <uds>_P; a port nobody serves is refused" {
  kvm_inner_result kvm/inner/vsock.bats "guest to host: connect to CID 2 port P reaches <uds>_P; a port nobody serves is refused"
}

@test "inner vsock: 40 concurrent streams each echo 64 KiB intact" {
  kvm_inner_result kvm/inner/vsock.bats "40 concurrent streams each echo 64 KiB intact"
}

@test "inner vsock: a host connect to a port nobody listens on is refused, the device keeps serving" {
  kvm_inner_result kvm/inner/vsock.bats "a host connect to a port nobody listens on is refused, the device keeps serving"
}

@test "inner vsock: bad or missing CONNECT lines are closed without an answer" {
  kvm_inner_result kvm/inner/vsock.bats "bad or missing CONNECT lines are closed without an answer"
}

@test "inner vsock: a client that disconnects mid-stream: the stream is torn down, others go on" {
  kvm_inner_result kvm/inner/vsock.bats "a client that disconnects mid-stream: the stream is torn down, others go on"
}

@test "inner vsock: the guest powers off with streams open: clients see EOF, the VMM exits cleanly" {
  kvm_inner_result kvm/inner/vsock.bats "the guest powers off with streams open: clients see EOF, the VMM exits cleanly"
}

