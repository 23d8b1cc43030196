#!/usr/bin/env bash
# Runs the unit binaries (build/unit/test_*) and the bats suites (tests/*.bats),
# streams their TAP, and ends with exactly one line "N passed, N failed".
#
#   tests/run.sh                      # everything
#   tests/run.sh tests/pull.bats      # just these (bats files or unit binaries)
#
# Counting is strict: "ok N # skip" is a failure (no test passes by skipping);
# a unit binary that exits non-zero without a "not ok" line counts one
# failure; tests a plan announced but that never ran count as failures; a
# suite that prints no TAP at all counts one failure.
#
# Environment: VMBOX_BUILD (build dir, default build), VMBOX (binary under
# test, default $VMBOX_BUILD/asan/vmbox),
# VMBOX_SUITE_TIMEOUT (seconds per bats suite, default 1800),
# VMBOX_UNIT_TIMEOUT (seconds per unit binary, default 300).
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VMBOX_REPO=$repo
# VMBOX_BUILD: the build directory (make's B), for the unit binaries, tools and vmbox.
VMBOX_BUILD=${VMBOX_BUILD:-build}
case $VMBOX_BUILD in /*) ;; *) VMBOX_BUILD=$repo/$VMBOX_BUILD ;; esac
export VMBOX_BUILD
export VMBOX=${VMBOX:-$VMBOX_BUILD/asan/vmbox}
# Leaks fail the tests: every vmbox command must free what it allocates.
# abort_on_error turns any sanitizer report into a signal exit status.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export NO_COLOR=1
suite_timeout=${VMBOX_SUITE_TIMEOUT:-1800}
unit_timeout=${VMBOX_UNIT_TIMEOUT:-300}

work=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-tests.XXXXXX")
# One image cache for the whole run: suites share the built test images.
export VMBOX_IMAGE_CACHE=$work/images
cleanup() {
  kill_leftovers "$work"
  # Loop mounts a failed suite left behind under our temp dir.
  grep -o " ${work}[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Kills registries a suite recorded (common.bash writes their pids there).
kill_leftovers() {
  local f pid
  for f in "$1"/state.*/registry.pids; do
    [ -f "$f" ] || continue
    while read -r pid; do
      [ -n "$pid" ] && kill "$pid" 2>/dev/null
    done <"$f"
    rm -f "$f"
  done
}

passed=0
failed=0

# tally NAME LOGFILE EXIT_STATUS: counts the TAP in LOGFILE.
tally() {
  local name=$1 log=$2 rc=$3 plan=0 ok=0 notok=0 skipped=0 line
  while IFS= read -r line; do
    case $line in
      1..*) plan=${line#1..}; plan=${plan%% *} ;;
      "not ok "*) notok=$((notok + 1)) ;;
      "ok "*)
        if [[ $line =~ ^ok\ [0-9]+.*\#\ (skip|SKIP) ]]; then
          skipped=$((skipped + 1))
        elif [[ $line =~ ^ok\ [0-9]+.*\#\ (todo|TODO) ]]; then
          skipped=$((skipped + 1))
        else
          ok=$((ok + 1))
        fi
        ;;
    esac
  done <"$log"
  [[ $plan =~ ^[0-9]+$ ]] || plan=0
  local ran=$((ok + notok + skipped)) extra=0
  local f=$((notok + skipped))
  if [ "$skipped" -gt 0 ]; then
    echo "# $name: $skipped skipped test(s) count as failed (no test may pass by skipping)"
  fi
  if [ "$plan" -gt "$ran" ]; then
    extra=$((plan - ran))
    echo "# $name: plan said $plan tests, $ran ran; $extra missing count as failed"
  fi
  if [ "$ran" -eq 0 ] && [ "$plan" -eq 0 ]; then
    extra=$((extra + 1))
    echo "# $name: no TAP output (exit status $rc); counts as 1 failure"
  elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$extra" -eq 0 ]; then
    extra=1
    if [ "$rc" -eq 124 ]; then
      echo "# $name: timed out; counts as 1 failure"
    else
      echo "# $name: exited with status $rc without a failing test; counts as 1 failure"
    fi
  fi
  passed=$((passed + ok))
  failed=$((failed + f + extra))
}

run_unit() {
  local bin=$1 name log rc
  name=unit/$(basename "$bin")
  log=$work/$(basename "$bin").tap
  echo "# --- $name"
  timeout -k 10 "$unit_timeout" "$bin" 2>&1 </dev/null | tee "$log"
  rc=${PIPESTATUS[0]}
  tally "$name" "$log" "$rc"
}

run_bats() {
  local suite=$1 name log rc state
  name=$(basename "$suite")
  log=$work/$name.tap
  state=$(mktemp -d "$work/state.XXXXXX")
  echo "# --- $name"
  if ! command -v bats >/dev/null; then
    echo "not ok 1 - $name: bats is not installed (run scripts/deps.sh --test)" | tee "$log"
    tally "$name" "$log" 1
    return
  fi
  # bats' temp dirs (and any loop mount a dying suite leaves) go under $work.
  mkdir -p "$work/tmp"
  TMPDIR=$work/tmp VMBOX_TEST_STATE=$state \
    timeout -k 20 "$suite_timeout" bats --tap "$suite" 2>&1 </dev/null | tee "$log"
  rc=${PIPESTATUS[0]}
  kill_leftovers "$work"
  tally "$name" "$log" "$rc"
}

cd "$repo" || exit 1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for b in "$VMBOX_BUILD"/unit/test_*; do
    [ -x "$b" ] && [ -f "$b" ] && targets+=("$b")
  done
  for s in tests/*.bats; do
    [ -f "$s" ] && targets+=("$s")
  done
  # A unit source without its binary is a build problem, not a pass.
  for c in tests/unit/test_*.c; do
    [ -f "$c" ] || continue
    b=$VMBOX_BUILD/unit/$(basename "$c" .c)
    if [ ! -x "$b" ]; then
      echo "not ok 1 - $b was not built from $c (run make unit)"
      failed=$((failed + 1))
    fi
  done
fi

if [ ! -x "$VMBOX" ]; then
  echo "# warning: $VMBOX is missing (run make asan); suites that need it will fail"
fi

for t in "${targets[@]}"; do
  case $t in
    *.bats) run_bats "$t" ;;
    tests/unit/*.c) run_unit "$VMBOX_BUILD/unit/$(basename "$t" .c)" ;;
    *)
      if [ -x "$t" ]; then
        run_unit "$t"
      else
        echo "not ok 1 - $t: no such suite or unit binary"
        failed=$((failed + 1))
      fi
      ;;
  esac
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
