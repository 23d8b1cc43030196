#!/usr/bin/env bash
# `make demo`: imports the busybox image built from Debian's busybox-static
# and shows it.  No network.  Uses a throw-away store unless VMBOX_ROOT is set.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
vmbox=${VMBOX:-$repo/build/vmbox}
tarball=${BUSYBOX_TAR:-$repo/build/busybox-image.tar}
[ -x "$vmbox" ] || { echo "demo: $vmbox is not built; run make" >&2; exit 1; }
[ -f "$tarball" ] || { echo "demo: $tarball is missing; run make" >&2; exit 1; }

if [ -z "${VMBOX_ROOT:-}" ]; then
  VMBOX_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-demo.XXXXXX")
  trap 'rm -rf "$VMBOX_ROOT"' EXIT
fi
export VMBOX_ROOT

step() {
  printf '\n$ vmbox %s\n' "$*"
  "$vmbox" "$@"
}

echo "vmbox demo (store: $VMBOX_ROOT)"
step version
step import "$tarball" busybox
step images
step image inspect busybox
step run --rm busybox echo hello from vmbox
