#!/usr/bin/env bash
# Benchmark: VMS (20) kvm boxes started at once, each
# `vmbox run --rm --backend kvm --memory 128m busybox /bin/true` (256 MiB
# guests, 1 vCPU), release build, after one warm-up run (image import and
# the cached initramfs).  Prints each box as it ends, then how many
# completed (status 0), the wall time of the whole batch and the median
# time per box, start to exit; that summary is the last line.
#
#   VMS=20 KERNEL=/path/bzImage bench/kvm-density.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kvm-lib.bash"
VMS=${VMS:-20}
# Each box's own bound (vmbox's boot timeout is 180 s by default: twenty
# guests sharing the nested guest's one vCPU boot slower than that).
PER_VM_TIMEOUT=${PER_VM_TIMEOUT:-1500}
export VMBOX_KVM_BOOT_TIMEOUT=$PER_VM_TIMEOUT
bench_need_kvm
bench_kernel

work=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-bench-density.XXXXXX")
export VMBOX_ROOT=$work/root BENCH_LOG=$work/log
cleanup() {
  set +e
  jobs -p | xargs -r kill 2>/dev/null
  wait 2>/dev/null
  for b in $("$VMBOX" ps -aq 2>/dev/null); do "$VMBOX" rm -f "$b" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_load
echo "# kernel $KERNEL ($KVER), $VMS boxes at once"
"$VMBOX" run --rm --backend kvm --memory 128m busybox /bin/true >>"$BENCH_LOG" 2>&1 || {
  tail -n 30 "$BENCH_LOG" >&2
  bench_die "the warm-up run failed"
}

one() { # I: one box; "I STATUS MS" on stdout when it ends
  local t0=$EPOCHREALTIME rc=0
  timeout -k 10 "$PER_VM_TIMEOUT" "$VMBOX" run --rm --backend kvm --memory 128m busybox /bin/true \
    >"$work/box$1.log" 2>&1 || rc=$?
  echo "$1 $rc $(ms_of "$t0" "$EPOCHREALTIME")"
}

t0=$EPOCHREALTIME
for i in $(seq "$VMS"); do one "$i" >>"$work/results" & done
# Progress as boxes end (the nested harness counts silence as a hang).
seen=0
while [ -n "$(jobs -rp)" ]; do
  sleep 1
  n=$(wc -l <"$work/results" 2>/dev/null || echo 0)
  while [ "$seen" -lt "$n" ]; do
    seen=$((seen + 1))
    read -r i rc ms < <(sed -n "${seen}p" "$work/results")
    echo "box $i: status $rc, $ms ms (at $(ms_of "$t0" "$EPOCHREALTIME") ms)"
  done
done
wait || true
wall=$(ms_of "$t0" "$EPOCHREALTIME")
while [ "$seen" -lt "$(wc -l <"$work/results")" ]; do
  seen=$((seen + 1))
  read -r i rc ms < <(sed -n "${seen}p" "$work/results")
  echo "box $i: status $rc, $ms ms"
done
ok=$(awk '$2 == 0' "$work/results" | wc -l)
for f in "$work"/box*.log; do
  [ -s "$f" ] && { echo "--- $(basename "$f"):"; tail -n 5 "$f"; }
done
med=$(awk '{ print $3 }' "$work/results" | median)
echo "density: $ok/$VMS completed, wall $wall ms, per-box median $med ms"
