#!/usr/bin/env bash
# Benchmark: boot latency of the kvm backend against QEMU microvm, on the
# same kernel, initrd and disk, in the same place (natively, or in the
# nested guest: make bench-kvm).  Runs alternate, N of each:
#
#   boot-to-init  process start -> the first line of the same /init on the
#                 console ("vmm-init: hello", tests/kvm/vmm_guest_init.c),
#                 which then powers off at once (port 0x501)
#       vmbox:  build/bench/vmm_run (release), the VMM core alone
#       qemu:   qemu-system-x86_64 -M microvm -accel kvm -cpu host
#     both with the box's ext4 image as a read-only/snapshot virtio-blk
#     disk (virtio-pci in ours, virtio-mmio in microvm), MEM MiB, 1 vCPU
#   run --rm      process start -> exit
#       vmbox:  vmbox run --rm --backend kvm busybox /bin/true (release)
#       qemu:   microvm booting an initrd of busybox + virtio modules whose
#               /init mounts that same ext4 image, chroots into it, runs
#               /bin/true and resets the VM (bench/kvm-lib.bash)
#
# Prints every run, the medians and, last, the ratios vmbox/qemu (goal
# <= 0.5 each).
#
#   N=5 MEM=512 KERNEL=/path/bzImage bench/kvm-boot.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kvm-lib.bash"
N=${N:-5}
MEM=${MEM:-512} # vmbox's default guest RAM
VMM_RUN=${VMM_RUN:-$VMBOX_BUILD/bench/vmm_run}
bench_need_kvm
bench_kernel
command -v "$QEMU" >/dev/null || bench_die "$QEMU not found"
[ -x "$VMM_RUN" ] || bench_die "$VMM_RUN missing: make bench-kvm builds it (release vmm_run)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-bench-boot.XXXXXX")
export VMBOX_ROOT=$work/root BENCH_LOG=$work/log
cleanup() {
  set +e
  for b in $("$VMBOX" ps -aq 2>/dev/null); do "$VMBOX" rm -f "$b" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "bench: $*; the log ends:" >&2; tail -n 30 "$BENCH_LOG" >&2; exit 1; }

bench_load
echo "# kernel $KERNEL ($KVER), $MEM MiB, 1 vCPU, $N runs each"
# Warm-up: the image import, vmbox's cached initramfs, the image's ext4.
t0=$EPOCHREALTIME
"$VMBOX" run --rm --backend kvm busybox /bin/true >>"$BENCH_LOG" 2>&1 || fail "vmbox run failed"
echo "# vmbox warm-up run (image import, initramfs): $(ms_of "$t0" "$EPOCHREALTIME") ms"
disk=$(ls -1 "$VMBOX_ROOT"/ext4/*.ext4 2>/dev/null | head -n1)
[ -n "$disk" ] || fail "no ext4 image in $VMBOX_ROOT/ext4 after a kvm run"
bench_init_cpio "$work/init.cpio"
bench_box_cpio "$work/box.cpio"

boot_vmbox() {
  time_marker "vmm-init: hello" "$VMM_RUN" --kernel "$KERNEL" --initrd "$work/init.cpio" \
    --mem "$MEM" --disk "$disk" --append "$GUEST_APPEND"
}
boot_qemu() { time_marker "vmm-init: hello" qemu_microvm "$MEM" "$work/init.cpio" "$disk"; }
run_vmbox() { time_marker "" "$VMBOX" run --rm --backend kvm busybox /bin/true; }
run_qemu() { time_marker "qemu-init: rc=0" qemu_microvm "$MEM" "$work/box.cpio" "$disk"; }

declare -A t
for i in $(seq "$N"); do
  line="run $i:"
  for what in boot_vmbox boot_qemu run_vmbox run_qemu; do
    read -r mark total rc < <($what)
    case $what in
    boot_vmbox) [ "$rc" = 0 ] && [ "$mark" != -1 ] || fail "vmm_run: status $rc, marker $mark" ;;
    boot_qemu) [ "$rc" = 85 ] && [ "$mark" != -1 ] || fail "qemu boot: status $rc (want 85), marker $mark" ;;
    run_vmbox) [ "$rc" = 0 ] || fail "vmbox run: status $rc" ;;
    run_qemu) [ "$mark" != -1 ] || fail "qemu run: status $rc, no 'qemu-init: rc=0'" ;;
    esac
    case $what in boot_*) v=$mark ;; *) v=$total ;; esac
    t[$what]+="$v "
    line+=" $what $v ms"
  done
  echo "$line"
done

declare -A med
for what in boot_vmbox boot_qemu run_vmbox run_qemu; do
  med[$what]=$(tr ' ' '\n' <<<"${t[$what]}" | grep . | median)
  echo "median $what: ${med[$what]} ms ($N runs)"
done
echo "ratio boot-to-init vmbox/qemu: $(ratio "${med[boot_vmbox]}" "${med[boot_qemu]}") (goal <= 0.5)"
echo "ratio run --rm vmbox/qemu: $(ratio "${med[run_vmbox]}" "${med[run_qemu]}") (goal <= 0.5)"
