#!/usr/bin/env bash
# Runs libFuzzer targets for a bounded time each (`make fuzz`):
#   scripts/fuzz.sh FUZZ_DIR BIN...
# FUZZ_SECONDS (default 60) per target.  Per target BIN (name N):
#   FUZZ_DIR/corpus/N     the corpus, kept between runs (seeds: tests/fuzz/seeds/N, if any)
#   FUZZ_DIR/crashes/N/   this run's crash/leak/timeout/oom inputs (emptied first)
#   FUZZ_DIR/N.log        libFuzzer's output
# tests/fuzz/N.options, if present, holds extra libFuzzer flags (one line).
# and prints "fuzz: N executions=E crashes=C", then a summary line; exits 1
# when any target crashed, 2 on bad usage.
# Adding a target (e.g. helper-built virtio-net): write tests/fuzz/fuzz_net.c
# (LLVMFuzzerTestOneInput) and add to the Makefile
#   FUZZ_SRC_fuzz_net := <the vmbox .c files it needs>
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: scripts/fuzz.sh FUZZ_DIR BIN..." >&2; exit 2; }
secs=${FUZZ_SECONDS:-60}
[[ $secs =~ ^[0-9]+$ ]] && [ "$secs" -gt 0 ] || { echo "fuzz: FUZZ_SECONDS=$secs is not a positive integer" >&2; exit 2; }
dir=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
total_execs=0 total_crashes=0 n=0
for bin in "$@"; do
  name=$(basename "$bin")
  corpus=$dir/corpus/$name crashes=$dir/crashes/$name log=$dir/$name.log
  mkdir -p "$corpus" "$crashes"
  rm -f "$crashes"/*
  seeds=()
  [ -d "$repo/tests/fuzz/seeds/$name" ] && seeds=("$repo/tests/fuzz/seeds/$name")
  opts=(-max_len=65536)
  [ -f "$repo/tests/fuzz/$name.options" ] && read -r -a opts <"$repo/tests/fuzz/$name.options"
  # -timeout: one input taking 10 s is a hang; the outer timeout bounds a
  # target that ignores -max_total_time.
  timeout -k 10 $((secs + 60)) "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -len_control=0 "${opts[@]}" -print_final_stats=1 -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
  found=$(find "$crashes" -maxdepth 1 -type f | wc -l)
  # A non-zero status without an artifact (build or start-up failure) counts too.
  [ "$rc" -ne 0 ] && [ "$found" -eq 0 ] && found=1
  printf 'fuzz: %-12s executions=%s crashes=%s seconds=%s corpus=%s\n' "$name" "${execs:-0}" \
    "$found" "$secs" "$(find "$corpus" -type f | wc -l)"
  if [ "$found" -ne 0 ]; then
    echo "fuzz: $name: see $log and $crashes/" >&2
    grep -m3 -E "ERROR|SUMMARY|runtime error" "$log" | sed "s/^/fuzz: $name: /" >&2
  fi
  total_execs=$((total_execs + ${execs:-0}))
  total_crashes=$((total_crashes + found))
  n=$((n + 1))
done
echo "fuzz: summary targets=$n executions=$total_execs crashes=$total_crashes seconds_each=$secs"
[ "$total_crashes" -eq 0 ]
