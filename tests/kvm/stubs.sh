#!/usr/bin/env bash
# Prints the outer @test stubs that relay every test of an inner bats suite:
#   tests/kvm/stubs.sh kvm/inner/smoke.bats >> tests/kvm.bats   (then edit)
# The path is relative to tests/, as kvm_inner_result takes it.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: stubs.sh INNER.bats (relative to tests/)" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
file=$here/../$1
[ -f "$file" ] || { echo "stubs.sh: $file not found" >&2; exit 1; }
label=$(basename "$1" .bats)
sed -nE 's/^[[:blank:]]*@test[[:blank:]]+"(.*)"[[:blank:]]*\{.*$/\1/p' "$file" |
  while IFS= read -r n; do
    printf '@test "inner %s: %s" {\n  kvm_inner_result %s "%s"\n}\n\n' "$label" "$n" "$1" "$n"
  done
