#!/usr/bin/env bash
# Benchmark: box creation from a 100 MiB and a 1 GiB image.  Creation must
# not copy the image (loop mount of the cached ext4 + overlay), so its time
# should not depend on the image size.
#
# Images: busybox + one incompressible file (/dev/urandom) of ~100 MiB and
# ~1 GiB, imported with `vmbox import` from a rootfs tar.  Two measurements,
# N each per image, the two images alternating:
#
#   run -d:  `vmbox run -d IMAGE sleep` until it returns (CLI, monitor,
#            create, start: the box is running).  vmbox has no separate
#            `create` command (yet), so this bounds create from above.
#   create:  the ns backend's create alone (tests/tools/ns_run --time: loop
#            attach, state dirs, cgroups, seccomp compile), with the
#            optimized ns_run `make bench` builds ($B/bench/ns_run).
#
# Prints every run, the medians, and the ratio 1 GiB / 100 MiB of create as
# the last line.  Goals: create <= 50 ms; ratio ~1.0.
#
#   bench/create.sh            # N=10
#   VMBOX=build/vmbox NS_RUN=build/bench/ns_run SMALL_MB=100 BIG_MB=1024
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMBOX=${VMBOX:-$repo/build/vmbox}
NS_RUN=${NS_RUN:-$(dirname "$VMBOX")/bench/ns_run}
N=${N:-10}
SMALL_MB=${SMALL_MB:-100} BIG_MB=${BIG_MB:-1024}
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the ns backend needs it)" >&2; exit 1; }
[ -x "$VMBOX" ] || { echo "bench: $VMBOX not built; run make" >&2; exit 1; }
[ -x "$NS_RUN" ] || { echo "bench: $NS_RUN not built; run make bench" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/vmbox-bench.XXXXXX")
export VMBOX_ROOT=$work/root
cleanup() {
  set +e
  for b in $("$VMBOX" ps -aq 2>/dev/null); do "$VMBOX" rm -f "$b" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
unset ASAN_OPTIONS UBSAN_OPTIONS

now() { date +%s%N; }
# Other load on the host stretches every figure; say how much there was.
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A ext4
make_image() { # NAME MB
  local root=$work/rootfs-$1 before
  "$repo/scripts/mkbusybox.sh" --rootfs "$root"
  head -c "$(($2 << 20))" /dev/urandom >"$root/big.bin"
  tar -C "$root" -cf "$work/$1.tar" .
  rm -rf "$root"
  before=$(ls "$VMBOX_ROOT/ext4" 2>/dev/null || true)
  local t0 t1
  t0=$(now)
  "$VMBOX" import -q "$work/$1.tar" "$1" >/dev/null
  t1=$(now)
  rm -f "$work/$1.tar"
  ext4[$1]=$VMBOX_ROOT/ext4/$(comm -13 <(echo "$before") <(ls "$VMBOX_ROOT/ext4") | grep '\.ext4$')
  echo "# image $1: $(du -m --apparent-size "${ext4[$1]}" | cut -f1) MiB ext4, imported in $(ms $((t1 - t0))) ms"
}
make_image small "$SMALL_MB"
make_image big "$BIG_MB"

declare -A rund create
n=0
for i in $(seq "$N"); do
  line="run $i:"
  for img in small big; do
    n=$((n + 1))
    t0=$(now)
    "$VMBOX" run -d --name "b$n" "$img" sleep 600 >/dev/null
    t1=$(now)
    "$VMBOX" rm -f "b$n" >/dev/null
    rund[$img]+="$(ms $((t1 - t0))) "
    out=$("$NS_RUN" --image "${ext4[$img]}" --state "$work/ns-$n" --id "bench-$$-$n" --time \
      -- /bin/true 2>&1 || true)
    c=$(sed -n 's/.*ns_run: create \([0-9.]*\) ms.*/\1/p' <<<"$out")
    [ -n "$c" ] || { echo "bench: ns_run failed: $out" >&2; exit 1; }
    create[$img]+="$c "
    line+=" $img run-d $(ms $((t1 - t0))) ms create $c ms"
  done
  echo "$line"
done

med() { tr ' ' '\n' <<<"$1" | grep . | median; }
for img in small big; do
  mb=$SMALL_MB
  [ "$img" = big ] && mb=$BIG_MB
  echo "median $img (${mb} MiB): run -d $(med "${rund[$img]}") ms, create $(med "${create[$img]}") ms"
done
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN { printf "%.2f", a / b }'; }
echo "ratio run -d ${BIG_MB}/${SMALL_MB} MiB: $(ratio "${rund[big]}" "${rund[small]}")"
echo "ratio create ${BIG_MB}/${SMALL_MB} MiB: $(ratio "${create[big]}" "${create[small]}") (goal ~1.0; create <= 50 ms)"
