#!/usr/bin/env bash
# Where the time of `vmbox run --rm --backend kvm busybox /bin/true` goes,
# N runs (a profile for kvm-boot.sh's run --rm figure, not a figure of its
# own).  Each run is the same box without --rm, then `vmbox rm` timed
# apart; the guest kernel logs at loglevel 7 so console.log carries its
# clock.  All host times in ms from the start of `vmbox run`:
#
#   init(vmm), started(vmm)   boot_to_init_ms, started_ms of the timing
#               file: from the VMM process's start, not from `vmbox run`
#   poweroff    console.log's last write: the guest's last words
#               ("reboot: Power down" / "Restarting system")
#   exit        `vmbox run` returned
#   rm          how long `vmbox rm` took
#   guest       guest clock: "Run /init" -> its last console line (kernel
#               timestamps), i.e. init's whole life in the guest
#
#   N=3 bench/kvm-phases.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kvm-lib.bash"
N=${N:-3}
bench_need_kvm
bench_kernel
work=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-bench-phases.XXXXXX")
export VMBOX_ROOT=$work/root VMBOX_GUEST_APPEND="loglevel=7"
cleanup() {
  set +e
  for b in $("$VMBOX" ps -aq 2>/dev/null); do "$VMBOX" rm -f "$b" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bench_load
"$VMBOX" run --rm --backend kvm busybox /bin/true >"$work/log" 2>&1 || { cat "$work/log" >&2; bench_die "warm-up failed"; }
declare -A t
for i in $(seq "$N"); do
  t0=$EPOCHREALTIME
  "$VMBOX" run --backend kvm --name "ph$i" busybox /bin/true >"$work/log" 2>&1 || { cat "$work/log" >&2; bench_die "run failed"; }
  t1=$EPOCHREALTIME
  id=$("$VMBOX" inspect "ph$i" | tr -d ' \n' | sed -nE 's/.*"id":"([0-9a-f]{64})".*/\1/p')
  d=$VMBOX_ROOT/boxes/$id/kvm
  boot=$(sed -n 's/^boot_to_init_ms=//p' "$d/timing" 2>/dev/null || echo -1)
  started=$(sed -n 's/^started_ms=//p' "$d/timing" 2>/dev/null || echo -1)
  # mtime with its nanoseconds (busybox stat has no %.Y)
  last=$(stat -c %Y "$d/console.log").$(stat -c %y "$d/console.log" | sed -E 's/.*\.([0-9]+) .*/\1/')
  g_init=$(sed -nE 's/^\[ *([0-9.]+)\] Run \/init.*/\1/p' "$d/console.log" | head -n1)
  g_last=$(sed -nE 's/^\[ *([0-9.]+)\].*/\1/p' "$d/console.log" | tail -n1)
  cp "$d/console.log" "$work/console$i.log"
  t2=$EPOCHREALTIME
  "$VMBOX" rm "ph$i" >/dev/null 2>&1
  t3=$EPOCHREALTIME
  off=$(ms_of "$t0" "$last")
  line="run $i: exit $(ms_of "$t0" "$t1") poweroff $off init(vmm) $boot started(vmm) $started rm $(ms_of "$t2" "$t3")"
  line+=" guest ${g_init:-?}->${g_last:-?} s; after poweroff $(ms_of "$last" "$t1")"
  echo "$line"
  t[exit]+="$(ms_of "$t0" "$t1") " t[after]+="$(ms_of "$last" "$t1") " t[rm]+="$(ms_of "$t2" "$t3") "
  t[guest]+="$(awk -v a="${g_init:-0}" -v b="${g_last:-0}" 'BEGIN { printf "%.1f", (b - a) * 1000 }') "
done
echo "--- last console (run $N):"
tail -n 15 "$work/console$N.log"
for k in exit guest after rm; do
  echo "median $k: $(tr ' ' '\n' <<<"${t[$k]}" | grep . | median) ms"
done
