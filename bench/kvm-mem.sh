#!/usr/bin/env bash
# Benchmark: the VMM process's memory overhead, i.e. its RSS outside guest
# RAM, from /proc/PID/smaps once the guest runs (1 vCPU), release builds:
#
#   vmm_run   build/bench/vmm_run: the VMM core alone (vmm__run), 128 MiB,
#             /init = tests/kvm/vmm_guest_init (vmmtest=spin: idles)
#   vmbox     the VMM process of `vmbox run -d --backend kvm busybox sleep`
#             (forked from vmbox: it inherits the CLI's heap and libraries);
#             --memory 128m (its smallest guest: 256 MiB)
#
# Guest RAM is the one anonymous mapping at least as large as the guest's
# memory; everything else counts.  The breakdown: the binary's text and
# data, heap, shared libraries, stacks (the main one and every mapping a
# thread's stack pointer is in, from /proc/PID/task/*/syscall), KVM's
# mappings (kvm_run), other anonymous memory (malloc arenas of threads,
# ...), other files; as RSS, PSS (shared pages split among their users)
# and private (Private_Clean + Private_Dirty: what the process alone costs;
# library text is shared with every process), and how much of it is
# transparent huge pages (a thread stack touched on a THP "always" host
# costs a whole 2 MiB page).
# The figure, last: the vmbox VMM's RSS outside guest RAM, goal <= 3 MiB
# (Firecracker: <= 5 MiB).
#
#   KERNEL=/path/bzImage bench/kvm-mem.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/kvm-lib.bash"
VMM_RUN=${VMM_RUN:-$VMBOX_BUILD/bench/vmm_run}
bench_need_kvm
bench_kernel
[ -x "$VMM_RUN" ] || bench_die "$VMM_RUN missing: make bench-kvm builds it (release vmm_run)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-bench-mem.XXXXXX")
export VMBOX_ROOT=$work/root BENCH_LOG=$work/log
vpid=
cleanup() {
  set +e
  [ -n "$vpid" ] && kill "$vpid" 2>/dev/null && wait "$vpid" 2>/dev/null
  for b in $("$VMBOX" ps -aq 2>/dev/null); do "$VMBOX" rm -f "$b" >/dev/null 2>&1; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "bench: $*; the log ends:" >&2; tail -n 30 "$BENCH_LOG" >&2; exit 1; }

# smaps of PID, guest RAM of MIB: prints the breakdown (KiB) and sets
# RSS_KB (outside guest RAM).
smaps_report() { # PID MIB
  local pid=$1 ram=$(($2 << 20)) exe tid sc a b f start end cat=
  local -a sps=()
  local -A rss=() priv=() pss=() thp=()
  exe=$(readlink "/proc/$pid/exe")
  for tid in /proc/"$pid"/task/*; do
    read -r -a sc <"$tid/syscall" 2>/dev/null || continue
    [ ${#sc[@]} -ge 8 ] && sps+=($((sc[7])))
  done
  while read -r a b _ _ _ f; do
    if [[ $a =~ ^([0-9a-f]+)-([0-9a-f]+)$ ]]; then
      start=$((16#${BASH_REMATCH[1]})) end=$((16#${BASH_REMATCH[2]}))
      case $f in
      "$exe") [[ $b == *x* ]] && cat=text || cat=data ;;
      *.so | *.so.*) cat=libs ;;
      "[heap]") cat=heap ;;
      "[stack]") cat=stacks ;;
      anon_inode:kvm*) cat=kvm ;;
      "[vdso]" | "[vvar]" | "[vsyscall]") cat=vdso ;;
      "")
        cat=anon
        [ $((end - start)) -ge "$ram" ] && cat=guest_ram
        for s in "${sps[@]}"; do
          if [ "$s" -ge "$start" ] && [ "$s" -lt "$end" ]; then cat=stacks; fi
        done
        ;;
      *) cat=files ;;
      esac
    elif [ "$a" = Rss: ]; then
      rss[$cat]=$((${rss[$cat]:-0} + b))
    elif [ "$a" = Pss: ]; then
      pss[$cat]=$((${pss[$cat]:-0} + b))
    elif [ "$a" = AnonHugePages: ]; then
      thp[$cat]=$((${thp[$cat]:-0} + b))
    elif [ "$a" = Private_Clean: ] || [ "$a" = Private_Dirty: ]; then
      priv[$cat]=$((${priv[$cat]:-0} + b))
    fi
  done <"/proc/$pid/smaps"
  local k tot=0 ptot=0 stot=0 htot=0 line=
  for k in text data heap libs stacks kvm anon files vdso; do
    tot=$((tot + ${rss[$k]:-0}))
    ptot=$((ptot + ${priv[$k]:-0}))
    stot=$((stot + ${pss[$k]:-0}))
    htot=$((htot + ${thp[$k]:-0}))
    line+=" $k=${rss[$k]:-0}"
  done
  echo "  rss KiB:$line (threads: $(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l))"
  line=
  for k in text data heap libs stacks kvm anon files; do line+=" $k=${priv[$k]:-0}"; done
  echo "  private KiB:$line"
  line=
  for k in text data heap libs stacks kvm anon files; do line+=" $k=${pss[$k]:-0}"; done
  echo "  pss KiB:$line"
  echo "  transparent huge pages outside guest RAM: $htot KiB"
  echo "  guest RAM rss: $((${rss[guest_ram]:-0} / 1024)) MiB (not counted)"
  echo "  outside guest RAM: rss $(awk -v k=$tot 'BEGIN { printf "%.2f", k / 1024 }') MiB, pss $(awk -v k=$stot 'BEGIN { printf "%.2f", k / 1024 }') MiB, private $(awk -v k=$ptot 'BEGIN { printf "%.2f", k / 1024 }') MiB"
  RSS_KB=$tot
}

# Waits (bounded) until FILE has a line containing TEXT.
wait_for() { # FILE TEXT SECONDS
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

bench_load
echo "# kernel $KERNEL ($KVER)"

# --- the VMM core alone -------------------------------------------------------------
bench_init_cpio "$work/init.cpio"
"$VMM_RUN" --kernel "$KERNEL" --initrd "$work/init.cpio" --mem 128 --timeout 300 \
  --append "$GUEST_APPEND vmmtest=spin" >"$work/vmm.out" 2>&1 &
vpid=$!
wait_for "$work/vmm.out" "vmm-init: cpus=" 120 || { cp "$work/vmm.out" "$BENCH_LOG"; fail "vmm_run's guest did not reach /init"; }
sleep 1
echo "vmm_run (VMM core alone, 1 vCPU, 128 MiB):"
smaps_report "$vpid" 128
kill "$vpid"
wait "$vpid" 2>/dev/null || true
vpid=

# --- vmbox's VMM process ------------------------------------------------------------
"$VMBOX" run -d --backend kvm --memory 128m --name membench busybox sleep 300 >>"$BENCH_LOG" 2>&1 ||
  fail "vmbox run -d failed"
# The VMM is the process holding the KVM VM fd.
pid=$(ls -l /proc/[0-9]*/fd 2>/dev/null | awk '/^\/proc\/[0-9]+\/fd:$/ { split($0, p, "/"); cur = p[3] }
  /anon_inode:kvm-vm/ { print cur }' | tail -n1)
[ -n "$pid" ] || fail "no process holds a kvm-vm fd"
sleep 1
echo "vmbox VMM process (pid $pid, $(tr '\0' ' ' <"/proc/$pid/cmdline"), 1 vCPU, 256 MiB):"
smaps_report "$pid" 256
"$VMBOX" rm -f membench >/dev/null 2>&1 || true
echo "vmbox VMM rss outside guest RAM: $(awk -v k="$RSS_KB" 'BEGIN { printf "%.2f", k / 1024 }') MiB (goal <= 3 MiB)"
