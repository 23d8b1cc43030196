#!/usr/bin/env bats
# INNER suite: runs inside the first-level guest (tests/kvm/run-nested.sh),
# where /dev/kvm exists.  The VMM core alone (build/tools/vmm_run driving
# vmm__run), booting the stock Debian cloud kernel with a one-file
# initramfs whose /init is build/tools/vmm_guest_init
# (tests/kvm/vmm_guest_init.c).  Needs the kernel in the payload
# (VMBOX_KVM_PAYLOAD, as tests/kvm.bats sets it).

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export VMM_RUN=$VMBOX_BUILD/tools/vmm_run
  export VMM_KERNEL
  VMM_KERNEL=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)
  export VMM_CPIO=$BATS_FILE_TMPDIR/vmm-test.cpio
  local d=$BATS_FILE_TMPDIR/rd
  mkdir -p "$d"
  cp "$VMBOX_BUILD/tools/vmm_guest_init" "$d/init"
  (cd "$d" && echo init | cpio -o -H newc) >"$VMM_CPIO" 2>/dev/null
}

setup() {
  [ -x "$VMM_RUN" ] || { echo "$VMM_RUN missing: make unit"; return 1; }
  [ -n "$VMM_KERNEL" ] || { echo "no /boot/vmlinuz-*-cloud-amd64 in the guest payload"; return 1; }
  [ -s "$VMM_CPIO" ] || { echo "building the test initramfs failed"; return 1; }
  COM2=$BATS_TEST_TMPDIR/com2
  APPEND="console=ttyS0 reboot=t panic=-1 quiet"
}

vmm() { # ARGS... : vmm_run with the test kernel and initramfs, bounded
  run timeout 120 "$VMM_RUN" --kernel "$VMM_KERNEL" --initrd "$VMM_CPIO" --mem 256 \
    --com2-out "$COM2" --time "$@"
  echo "$output"
  echo "--- COM2:"
  cat "$COM2" 2>/dev/null || true
  [[ "$output" != *AddressSanitizer* && "$output" != *"runtime error"* ]]
}

@test "boots the kernel to /init and powers off through the exit port" {
  vmm --append "$APPEND"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm-init: hello"* ]]
  [[ "$output" == *"vmm: kind=poweroff code=42 "* ]]
  grep -q "vmm-init: up" "$COM2"
  # boot-to-init: the first COM2 byte is /init's first write
  local t=${output##*first_com2_ms=}
  echo "# boot-to-init ${t%% *} ms (nested)" >&3
}

@test "two vCPUs: the guest brings both online" {
  vmm --cpus 2 --append "$APPEND"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm-init: cpus=0-1"* ]]
  [[ "$output" == *"vmm: kind=poweroff code=42 "* ]]
}

@test "RAM above the 3 GiB PCI hole is usable (3.5 GiB guest)" {
  run timeout 120 "$VMM_RUN" --kernel "$VMM_KERNEL" --initrd "$VMM_CPIO" --mem 3584 \
    --com2-out "$COM2" --append "$APPEND"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm: kind=poweroff code=42 "* ]]
  local kb=${output##*memtotal_kb=}
  kb=${kb%%[!0-9]*}
  [ "$kb" -gt $((3200 * 1024)) ] # 3 GiB below the hole + 512 MiB above 4 GiB, less the kernel's
}

@test "a kernel panic (panic=-1 reboot=t, init exits) ends as kind=reset" {
  vmm --append "$APPEND vmmtest=panic"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm: kind=reset "* ]]
}

@test "COM2 is a raw byte channel both ways; the exit byte is the code" {
  vmm --append "$APPEND vmmtest=echo vmmcode=7" --com2-in $'ping-123\n'
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm-init: got=ping-123"* ]]
  grep -q "^echo:ping-123$" "$COM2"
  [[ "$output" == *"vmm: kind=poweroff code=7 "* ]]
}

@test "the guest's own power-off (ACPI S5) ends as kind=poweroff code=0" {
  vmm --append "$APPEND vmmtest=acpioff"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm: kind=poweroff code=0 reason=guest ACPI power-off"* ]]
}

@test "vmm__stop ends a running guest as kind=stopped" {
  vmm --append "$APPEND vmmtest=spin" --timeout 3
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm: kind=stopped "* ]]
}

@test "virtio-blk through PCI INTx: reads the base, writes land in the overlay" {
  # The guest kernel's virtio modules, as the first level loaded them.
  local m=/lib/modules/$(uname -r)/vmbox d=$BATS_TEST_TMPDIR/rd k
  mkdir -p "$d/mod"
  cp "$VMBOX_BUILD/tools/vmm_guest_init" "$d/init"
  for k in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
    cp "$m/$k.ko" "$d/mod/" && echo "$k.ko" >>"$d/mod/order"
  done
  (cd "$d" && find . -mindepth 1 | cpio -o -H newc) >"$BATS_TEST_TMPDIR/blk.cpio" 2>/dev/null
  local base=$BATS_TEST_TMPDIR/base.img ov=$BATS_TEST_TMPDIR/ov
  printf 'BASE-DISK-HEAD!!' >"$base"
  truncate -s 8M "$base"
  local sum
  sum=$(md5sum <"$base")
  run timeout 120 "$VMM_RUN" --kernel "$VMM_KERNEL" --initrd "$BATS_TEST_TMPDIR/blk.cpio" \
    --mem 256 --com2-out "$COM2" --disk "$base" --overlay "$ov" --map "$ov.map" \
    --append "$APPEND vmmtest=blk"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ "$output" == *"vmm-init: vda=BASE-DISK-HEAD!!"* ]]
  [[ "$output" == *"vmm-init: vda write ok"* ]]
  [[ "$output" == *"vmm: kind=poweroff code=42 "* ]]
  [ "$(dd if="$ov" bs=1 skip=4096 count=14 2>/dev/null)" = vmm-init-wrote ]
  [ "$(md5sum <"$base")" = "$sum" ]
}

@test "a corrupt kernel file is a clear error, not a crash" {
  head -c 100000 /dev/urandom >"$BATS_TEST_TMPDIR/bad"
  run "$VMM_RUN" --kernel "$BATS_TEST_TMPDIR/bad" --append "$APPEND"
  echo "$output"
  [ "$status" -eq 125 ]
  [[ "$output" == *"is not a usable bzImage: no \"HdrS\" setup header"* ]]
  head -c 3000 "$VMM_KERNEL" >"$BATS_TEST_TMPDIR/short"
  run "$VMM_RUN" --kernel "$BATS_TEST_TMPDIR/short"
  [ "$status" -eq 125 ]
  [[ "$output" == *"not a usable bzImage"* ]]
}

@test "a bad memory size is refused with what the VM needs" {
  run "$VMM_RUN" --kernel "$VMM_KERNEL" --mem 4
  echo "$output"
  [ "$status" -eq 125 ]
  [[ "$output" == *"guest memory of 4 MiB: the VM takes 32 MiB"* ]]
  run "$VMM_RUN" --kernel "$VMM_KERNEL" --initrd "$VMM_CPIO" --mem 48
  echo "$output"
  [ "$status" -eq 125 ]
  [[ "$output" == *"the kernel needs"*"MiB of memory, the VM has 48 MiB"* ]]
}
