#!/usr/bin/env bats
# INNER suite: runs inside the first-level guest (tests/kvm/run-nested.sh).
# The VMM's virtio-vsock device (backends/kvm/virtio/vsock.c) under the real
# Linux driver: build/tools/vmm_run boots the Debian kernel with
# build/tools/vmm_guest_init (vmmtest=vsock: echo on port 5000, sink on
# 5001, power-off on 5002) and build/tools/vsock_client speaks the host side
# (Firecracker's "CONNECT <port>\n" / "OK <n>\n").  The outer suite
# (tests/kvm_vsock.bats) loads the vsock modules in the first level so they
# are in /lib/modules/$(uname -r)/vmbox.

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export VMM_RUN=$VMBOX_BUILD/tools/vmm_run CLIENT=$VMBOX_BUILD/tools/vsock_client
  export VMM_KERNEL
  VMM_KERNEL=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  export VMM_CPIO=$BATS_FILE_TMPDIR/vsock.cpio
  local m=/lib/modules/$(uname -r)/vmbox d=$BATS_FILE_TMPDIR/rd k
  mkdir -p "$d/mod"
  cp "$VMBOX_BUILD/tools/vmm_guest_init" "$d/init"
  for k in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci vsock \
    vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport; do
    cp "$m/$k.ko" "$d/mod/" && echo "$k.ko" >>"$d/mod/order"
  done
  (cd "$d" && find . -mindepth 1 | cpio -o -H newc) >"$VMM_CPIO" 2>/dev/null
}

setup() {
  [ -x "$VMM_RUN" ] && [ -x "$CLIENT" ] || { echo "vmm_run / vsock_client missing: make unit"; return 1; }
  [ -n "$VMM_KERNEL" ] || { echo "no /boot/vmlinuz-*-cloud-amd64 in the guest payload"; return 1; }
  [ "$(wc -l <"$BATS_FILE_TMPDIR/rd/mod/order")" -eq 8 ] || { echo "vsock modules missing"; return 1; }
  SOCK=$BATS_TEST_TMPDIR/v.sock
  UDS=$BATS_TEST_TMPDIR/g
  OUT=$BATS_TEST_TMPDIR/vm.out
  VM_PID=
}

teardown() {
  [ -z "$VM_PID" ] || kill "$VM_PID" 2>/dev/null || true
}

vm_start() { # [APPEND WORDS...]: boots the guest, waits (bounded) for its vsock ports
  timeout 300 "$VMM_RUN" --kernel "$VMM_KERNEL" --initrd "$VMM_CPIO" --mem 256 \
    --com2-out "$BATS_TEST_TMPDIR/com2" --vsock-cid 3 --vsock-listen "$SOCK" --vsock-uds "$UDS" \
    --append "console=ttyS0 reboot=t panic=-1 quiet vmmtest=vsock $*" >"$OUT" 2>&1 &
  VM_PID=$!
  local i
  for ((i = 0; i < 600; i++)); do
    grep -q "vmm-init: vsock ready" "$OUT" && return 0
    kill -0 "$VM_PID" 2>/dev/null || break
    sleep 0.2
  done
  cat "$OUT"
  echo "the guest never got its vsock ports up"
  return 1
}

vm_stop() { # asks the guest to power off (port 5002); the VMM must end cleanly
  "$CLIENT" "$SOCK" 5002 </dev/null >/dev/null 2>&1 || true
  local rc=0
  wait "$VM_PID" || rc=$?
  VM_PID=
  cat "$OUT"
  [ "$rc" -eq 0 ]
  if grep -qE "AddressSanitizer|runtime error|LeakSanitizer" "$OUT"; then return 1; fi
  grep -q "vmm: kind=poweroff code=42 " "$OUT"
}

echo_ok() { # BYTES: one echo stream of BYTES random bytes, checked by sha256
  head -c "$1" /dev/urandom >"$BATS_TEST_TMPDIR/in"
  "$CLIENT" "$SOCK" 5000 <"$BATS_TEST_TMPDIR/in" >"$BATS_TEST_TMPDIR/back" 2>"$BATS_TEST_TMPDIR/err" ||
    { cat "$BATS_TEST_TMPDIR/err"; return 1; }
  cat "$BATS_TEST_TMPDIR/err"
  [ "$(sha256sum <"$BATS_TEST_TMPDIR/in")" = "$(sha256sum <"$BATS_TEST_TMPDIR/back")" ]
}

@test "host to guest: 1 MiB echoed back intact (sha256), then host-to-guest throughput" {
  vm_start
  echo_ok 1048576
  local mbs=() i
  head -c 8388608 /dev/urandom >"$BATS_TEST_TMPDIR/big"
  for i in 1 2 3; do
    "$CLIENT" "$SOCK" 5001 <"$BATS_TEST_TMPDIR/big" >"$BATS_TEST_TMPDIR/n" 2>"$BATS_TEST_TMPDIR/err"
    cat "$BATS_TEST_TMPDIR/err"
    [ "$(cat "$BATS_TEST_TMPDIR/n")" = 8388608 ]
    mbs+=("$(sed -nE 's/.* in_MB\/s=([0-9.]+) .*/\1/p' "$BATS_TEST_TMPDIR/err")")
  done
  echo "# host->guest 8 MiB: ${mbs[*]} MB/s (median $(printf '%s\n' "${mbs[@]}" | sort -n | sed -n 2p))" >&3
  vm_stop
}

@test "guest to host: connect to CID 2 port P reaches <uds>_P; a port nobody serves is refused" {
  "$CLIENT" --serve "${UDS}_6000" 2>"$BATS_TEST_TMPDIR/serve.err" &
  local srv=$!
  vm_start vsockout=6000
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q "vmm-init: vsock-refused" "$OUT" && break
    sleep 0.2
  done
  wait "$srv"
  cat "$BATS_TEST_TMPDIR/serve.err"
  grep -q "vmm-init: vsock-out got=hello-from-host hello-from-guest" "$OUT"
  grep -q "vmm-init: vsock-refused errno=104" "$OUT" # ECONNRESET: our RST
  vm_stop
}

@test "40 concurrent streams each echo 64 KiB intact" {
  vm_start
  run "$CLIENT" "$SOCK" 5000 --parallel 40
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"parallel ok 40"* ]]
  echo_ok 65536
  vm_stop
}

@test "a host connect to a port nobody listens on is refused, the device keeps serving" {
  vm_start
  run "$CLIENT" "$SOCK" 7777 </dev/null
  echo "$output"
  [ "$status" -eq 3 ]
  [[ "$output" == *"port 7777 refused"* ]]
  echo_ok 4096
  vm_stop
}

@test "bad or missing CONNECT lines are closed without an answer" {
  vm_start
  run "$CLIENT" "$SOCK" --line $'HELLO 5000\n'
  echo "$output"
  [ "$status" -eq 0 ]
  run "$CLIENT" "$SOCK" --line $'CONNECT 99999999999\n'
  echo "$output"
  [ "$status" -eq 0 ]
  run "$CLIENT" "$SOCK" --line "CONNECT 5000 and a line far too long for the device to take"
  echo "$output"
  [ "$status" -eq 0 ]
  run "$CLIENT" "$SOCK" --line "CONNECT 50"
  echo "$output"
  [ "$status" -eq 0 ]
  local t=${output##*closed after }
  t=${t%% s*}
  [ "${t%.*}" -ge 4 ] && [ "${t%.*}" -le 15 ] # the 5 s line timeout
  echo_ok 4096
  vm_stop
}

@test "a client that disconnects mid-stream: the stream is torn down, others go on" {
  vm_start
  head -c 1048576 /dev/urandom >"$BATS_TEST_TMPDIR/in"
  local i
  for i in 1 2 3; do
    run "$CLIENT" "$SOCK" 5000 --abort 300000 <"$BATS_TEST_TMPDIR/in"
    echo "$output"
    [ "$status" -eq 0 ]
  done
  echo_ok 262144
  vm_stop
}

@test "the guest powers off with streams open: clients see EOF, the VMM exits cleanly" {
  vm_start
  local pids=() i n
  mkfifo "$BATS_TEST_TMPDIR/fifo"
  sleep 60 >"$BATS_TEST_TMPDIR/fifo" 3>&- & # holds the clients' stdin open
  local hold=$!
  for i in 1 2 3 4; do
    "$CLIENT" "$SOCK" 5000 <"$BATS_TEST_TMPDIR/fifo" >/dev/null 2>"$BATS_TEST_TMPDIR/c$i.err" 3>&- &
    pids+=($!)
  done
  for ((i = 0; i < 100; i++)); do
    n=$(cat "$BATS_TEST_TMPDIR"/c*.err 2>/dev/null | grep -c '^vsock_client: OK' || true)
    [ "$n" -eq 4 ] && break
    sleep 0.2
  done
  echo "streams open: $n"
  vm_stop
  [ "$n" -eq 4 ]
  for i in "${!pids[@]}"; do # closed by the VMM's exit, long before sleep 60 ends
    for ((n = 0; n < 50; n++)); do
      kill -0 "${pids[$i]}" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "${pids[$i]}" 2>/dev/null; then echo "client $i still running"; return 1; fi
    wait "${pids[$i]}" # a stream that ended at EOF: status 0
  done
  kill "$hold" 2>/dev/null || true
}
