# Helpers for the OUTER suites that drive tests/kvm/run-nested.sh (load with
# `load kvm/lib` from tests/*.bats).
#
# Relaying an INNER bats suite (one that needs /dev/kvm, kept under
# tests/kvm/inner/ so tests/run.sh does not run it on the host): bats 1.8
# gathers test names statically, so the outer file names every inner test:
#
#   @test "inner smoke: /dev/kvm is a character device" {
#     kvm_inner_result kvm/inner/smoke.bats "/dev/kvm is a character device"
#   }
#
# The first kvm_inner_result call for a file boots the guest once and runs
# `bats --tap` on it there; later calls read the saved TAP.  Each call passes
# or fails with its inner test, printing the inner test's diagnostics.
# kvm_inner_unrelayed lists inner tests the outer file forgot, so a suite can
# assert that the two lists agree.  tests/kvm/stubs.sh prints the stubs.

KVM_DIR=${KVM_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
KVM_REPO=${KVM_REPO:-$(cd "$KVM_DIR/../.." && pwd)}
export VMBOX_BUILD=${VMBOX_BUILD:-$KVM_REPO/build}

# TAP diagnostics: visible in `bats --tap` output as "# ..." lines.
kvm_diag() { printf '# %s\n' "$@" >&3; }

# Runs SCRIPT-or--c-CMD in the guest; output (stdout+stderr, in order) lands
# in $output / $status as with bats `run`.
kvm_run() { run "$KVM_DIR/run-nested.sh" "$@"; }

# The part of a run-nested log after its last "attempt" line (a retried
# run's earlier output is not a result).
kvm_last_attempt() { # LOG
  awk '/^vmbox-kvm: attempt [0-9]+\/[0-9]+$/ { n = NR } { l[NR] = $0 }
       END { for (i = n + 1; i <= NR; i++) print l[i] }' "$1"
}

# Seconds from QEMU start to the guest's /init, from a run's output.
kvm_boot_time() { # TEXT
  sed -nE 's/^vmbox-kvm: qemu-start-to-init=([0-9.]+)s$/\1/p' <<<"$1" | tail -n1
}

_kvm_inner_dir() { echo "$BATS_FILE_TMPDIR/kvm-inner/$(basename "$1" .bats)"; }

# Runs inner bats FILE (repo-relative to tests/, or absolute) in the guest,
# once per outer file.
kvm_inner_suite() { # FILE
  local file=$1 dir rc
  case $file in /*) ;; *) file=$KVM_REPO/tests/$file ;; esac
  dir=$(_kvm_inner_dir "$file")
  [ -f "$dir/rc" ] && return 0
  mkdir -p "$dir"
  [ -f "$file" ] || { echo "inner suite $file does not exist"; return 1; }
  "$KVM_DIR/run-nested.sh" -c 'bats --tap "$1"' "$file" >"$dir/log" 2>&1
  rc=$?
  kvm_last_attempt "$dir/log" >"$dir/tap"
  echo "$rc" >"$dir/rc"
}

# Passes iff inner test NAME of FILE passed (and did not skip: no test passes
# by skipping).
kvm_inner_result() { # FILE NAME
  local file=$1 name=$2 dir rc
  kvm_inner_suite "$file" || return 1
  case $file in /*) ;; *) file=$KVM_REPO/tests/$file ;; esac
  dir=$(_kvm_inner_dir "$file")
  rc=$(cat "$dir/rc")
  awk -v name="$name" -v rc="$rc" '
    function flush() { if (found) { for (i = 1; i <= nd; i++) print d[i] } }
    /^(not )?ok [0-9]+ / {
      if (found) { done = 1 }
      if (!done) {
        line = $0; ok = (line ~ /^ok /)
        sub(/^(not )?ok [0-9]+ /, "", line)
        skipped = (line ~ / # skip( |$)/); sub(/ # skip.*$/, "", line)
        if (line == name) { found = 1; pass = ok && !skipped; head = $0; nd = 0; next }
      }
    }
    /^#/ && found && !done { d[++nd] = $0; next }
    END {
      if (!found) {
        printf "inner test \"%s\" was not reported (inner run status %s); the run ended:\n", name, rc
        exit 2
      }
      print head; flush()
      if (!pass) exit 1
    }' "$dir/tap" || {
    local st=$?
    [ $st = 2 ] && tail -n 25 "$dir/log"
    return 1
  }
}

# Inner test names of FILE that OUTER_FILE never passes to kvm_inner_result.
kvm_inner_unrelayed() { # FILE OUTER_FILE
  local file=$1 outer=$2 n
  case $file in /*) ;; *) file=$KVM_REPO/tests/$file ;; esac
  while IFS= read -r n; do
    grep -qF "kvm_inner_result ${1} \"$n\"" "$outer" || echo "$n"
  done < <(sed -nE 's/^[[:blank:]]*@test[[:blank:]]+"(.*)"[[:blank:]]*\{.*$/\1/p' "$file")
}
