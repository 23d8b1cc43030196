# Shared by bench/kvm-*.sh (sourced): the guest kernel, the guest initrds
# the QEMU peer boots, timing and statistics.  These scripts run where
# /dev/kvm works: natively, or inside the nested guest (`make bench-kvm`).
#
#   KERNEL   guest kernel (default, as vmbox picks: $VMBOX_KERNEL, else
#            $VMBOX_BUILD/kernel/vmlinuz-vmbox from `make kernel`, else the
#            newest /boot/vmlinuz-*); exported as VMBOX_KERNEL so vmbox
#            boots the same one
#   VMBOX    release vmbox (default $VMBOX_BUILD/vmbox, else build/vmbox)
#   QEMU     qemu-system-x86_64

bench_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMBOX_BUILD=${VMBOX_BUILD:-$bench_repo/build}
VMBOX=${VMBOX_RELEASE:-$VMBOX_BUILD/vmbox}
QEMU=${QEMU:-qemu-system-x86_64}
unset ASAN_OPTIONS UBSAN_OPTIONS

bench_die() { echo "bench: $*" >&2; exit 1; }

bench_kernel() {
  local own=$VMBOX_BUILD/kernel/vmlinuz-vmbox # `make kernel`
  [ -f "$own" ] || own=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
  KERNEL=${KERNEL:-${VMBOX_KERNEL:-$own}}
  [ -n "$KERNEL" ] && [ -f "$KERNEL" ] || bench_die "no guest kernel: set KERNEL=/path/to/bzImage"
  export VMBOX_KERNEL=$KERNEL
  # The release string from the bzImage header (kernel_version at 0x20e).
  local off
  off=$(od -An -tu2 -j526 -N2 "$KERNEL" | tr -d ' ')
  KVER=$(dd if="$KERNEL" bs=1 skip=$((off + 512)) count=80 2>/dev/null | tr '\0' ' ' | cut -d' ' -f1)
  [ -n "$KVER" ] || bench_die "$KERNEL: no release string in its header"
}

bench_need_kvm() {
  [ "$(id -u)" = 0 ] || bench_die "run as root"
  [ -c /dev/kvm ] || bench_die "no /dev/kvm here: run through make bench-kvm (nested)"
  [ -x "$VMBOX" ] || bench_die "$VMBOX not built: make all"
}

ms_of() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }
bench_load() { echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPU(s), $(awk '/MemTotal/ { print int($2 / 1024) }' /proc/meminfo) MiB"; }

# Runs CMD..., its stdout+stderr read line by line; prints
# "MARKER_MS TOTAL_MS STATUS": process start to the first line containing
# MARKER (-1 if none), to its exit.  The output goes to $BENCH_LOG.
time_marker() { # MARKER CMD...
  local marker=$1 t0 tm=-1 line pid rc=0
  shift
  t0=$EPOCHREALTIME
  exec {fd}< <("$@" 2>&1 </dev/null)
  pid=$!
  while IFS= read -r line <&$fd; do
    if [ "$tm" = -1 ] && [[ $line == *"$marker"* ]]; then tm=$EPOCHREALTIME; fi
    printf '%s\n' "$line" >>"${BENCH_LOG:-/dev/null}"
  done
  exec {fd}<&-
  wait "$pid" || rc=$?
  local t1=$EPOCHREALTIME
  [ "$tm" = -1 ] && echo "-1 $(ms_of "$t0" "$t1") $rc" || echo "$(ms_of "$t0" "$tm") $(ms_of "$t0" "$t1") $rc"
}

# The modules (in load order, deps first) that carry MODS for kernel $KVER;
# nothing when the kernel has no module tree (a kernel with them built in).
declare -A bench_seen_mod=()
bench_mods() { # MODS...
  local dep=/lib/modules/$KVER/modules.dep m rel d
  [ -f "$dep" ] || return 0
  for m in "$@"; do
    rel=$(grep -E "(^|/)${m//[-_]/[-_]}\.ko(\.xz|\.zst|\.gz)?:" "$dep" | head -n1 | cut -d: -f1)
    if [ -z "$rel" ] || [ -n "${bench_seen_mod[$rel]:-}" ]; then continue; fi
    bench_seen_mod[$rel]=1
    for d in $(grep -E "^${rel//./\\.}:" "$dep" | cut -d: -f2-); do
      d=${d##*/}
      bench_mods "${d%%.ko*}"
    done
    echo "/lib/modules/$KVER/$rel"
  done
}

# The boot-to-init initrd: tests/kvm/vmm_guest_init.c alone as /init.  It
# prints "vmm-init: hello" on the console first thing and powers off
# through port 0x501 (QEMU: isa-debug-exit there).
bench_init_cpio() { # OUT
  local d
  d=$(mktemp -d)
  cp "$VMBOX_BUILD/tools/vmm_guest_init" "$d/init" || bench_die "make unit builds tools/vmm_guest_init"
  (cd "$d" && echo init | cpio -o -H newc 2>/dev/null) >"$1"
  rm -rf "$d"
}

# The QEMU peer's box initrd: busybox + the virtio-mmio/blk modules and an
# /init that mounts /dev/vda (the box's ext4 image), runs CMD there in a
# chroot with /proc and /dev, then resets the VM (reboot=t: a triple fault,
# QEMU -no-reboot exits).  vmbox-init does the same and more (cgroup, the
# control channel, the exit status).
bench_box_cpio() { # OUT
  local d m
  d=$(mktemp -d)
  mkdir -p "$d"/{bin,m,dev,proc,sys,mnt}
  cp "$(command -v busybox)" "$d/bin/busybox"
  for m in $(bench_mods virtio_mmio virtio_blk ext4 crc32c_generic); do
    case $m in
    *.xz) xz -dc "$m" >"$d/m/$(basename "${m%.xz}")" ;;
    *.zst) zstd -qdc "$m" >"$d/m/$(basename "${m%.zst}")" ;;
    *) cp "$m" "$d/m/" ;;
    esac
    basename "${m%.xz}" | sed 's/\.zst$//' >>"$d/m/order"
  done
  touch "$d/m/order"
  cat >"$d/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
echo "qemu-init: up"
/bin/busybox mount -t proc proc /proc
while read -r m; do /bin/busybox insmod "/m/$m" || echo "qemu-init: insmod $m failed"; done </m/order
i=0
while [ ! -b /dev/vda ] && [ $i -lt 500 ]; do /bin/busybox usleep 10000; i=$((i + 1)); done
if /bin/busybox mount -t ext4 /dev/vda /mnt; then
  /bin/busybox mount -t proc proc /mnt/proc 2>/dev/null
  /bin/busybox mount --bind /dev /mnt/dev 2>/dev/null
  /bin/busybox chroot /mnt ${BENCH_CMD:-/bin/true}
  echo "qemu-init: rc=$?"
else
  echo "qemu-init: cannot mount /dev/vda"
fi
/bin/busybox reboot -f
EOF
  chmod 755 "$d/init"
  (cd "$d" && find . | cpio -o -H newc 2>/dev/null) >"$1"
  rm -rf "$d"
}

GUEST_APPEND="console=ttyS0 reboot=t panic=-1 quiet"

# qemu-system-x86_64 -M microvm with KVM: the kernel, an initrd, a disk as
# virtio-blk over virtio-mmio (described in ACPI), console on stdout.
qemu_microvm() { # MEM_MIB INITRD DISK [APPEND]
  local accel=${QEMU_ACCEL:-kvm} cpu=host
  [ "$accel" = kvm ] || cpu=max
  "$QEMU" -M microvm -accel "$accel" -cpu "$cpu" -smp 1 -m "$1" -nodefaults -no-user-config \
    -no-reboot -display none -monitor none -serial stdio \
    -device isa-debug-exit,iobase=0x501,iosize=1 \
    -kernel "$KERNEL" -initrd "$2" -append "$GUEST_APPEND${4:+ $4}" \
    -drive "id=d0,file=$3,format=raw,if=none,snapshot=on" -device virtio-blk-device,drive=d0
}
