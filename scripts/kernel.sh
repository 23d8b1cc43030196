#!/usr/bin/env bash
# Builds vmbox's minimal guest kernel (`make kernel`):
#
#   scripts/kernel.sh BUILD_DIR
#
# from Debian's linux-source-6.1 package and backends/guest/kernel/vmbox.config
# (`allnoconfig` plus that fragment), into BUILD_DIR/kernel/vmlinuz-vmbox,
# where a vmbox built in BUILD_DIR looks for it (backends/kvm/kernel.c).
# Cached: BUILD_DIR/kernel/key holds a hash of the fragment, this script,
# the source package's version and the compiler; when it matches, a rerun
# does nothing.  Otherwise the tree in BUILD_DIR/kernel/linux-source-6.1 is
# (re)configured and make rebuilds what changed (a new source package
# version unpacks a fresh tree).  Prints the kernel's path last.
#
# Knobs: VMBOX_KERNEL_JOBS (make -j, default: the CPU count).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
frag=$repo/backends/guest/kernel/vmbox.config
pkg=linux-source-6.1
tarball=/usr/src/$pkg.tar.xz

die() { echo "kernel: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: scripts/kernel.sh BUILD_DIR"
case $1 in /*) build=$1 ;; *) build=$repo/$1 ;; esac
out=$build/kernel
src=$out/$pkg
image=$out/vmlinuz-vmbox

"$here/deps.sh" --kernel
version=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) || die "$pkg is not installed (scripts/deps.sh --kernel)"
[ -f "$tarball" ] || die "$tarball missing; reinstall $pkg"
cc=$(${CC:-cc} --version | head -n1)
key=$({ sha256sum "$frag" "$self"; echo "$pkg $version"; echo "$cc"; } | sha256sum | cut -c1-16)

if [ -s "$image" ] && [ "$(cat "$out/key" 2>/dev/null)" = "$key" ]; then
  echo "$image"
  exit 0
fi
mkdir -p "$out"
rm -f "$out/key"

# A fresh tree per source version; the same version keeps its objects.
if [ "$(cat "$src/.vmbox-source" 2>/dev/null)" != "$version" ]; then
  echo "kernel: unpacking $tarball ($version)" >&2
  rm -rf "$src"
  nice tar -C "$out" -xJf "$tarball" || die "unpacking $tarball failed"
  [ -d "$src" ] || die "$tarball did not unpack to $pkg/"
  echo "$version" >"$src/.vmbox-source"
fi

# From `make kernel`, the parent make's flags and variables (B=, CFLAGS=)
# would reach Kbuild through MAKEFLAGS.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
kmake() { nice make -C "$src" ARCH=x86_64 "$@"; }
echo "kernel: configuring (allnoconfig + $frag)" >&2
kmake -s KCONFIG_ALLCONFIG="$frag" allnoconfig >&2 || die "allnoconfig failed"

# Kconfig drops a fragment option whose dependencies are unmet without a
# word: every option the fragment sets must be in the result as written.
bad=0
while IFS='=' read -r k v; do
  case $k in CONFIG_*) ;; *) continue ;; esac
  if [ "$v" = n ]; then
    if grep -q "^$k=" "$src/.config"; then
      echo "kernel: $frag wants $k off, the config has $(grep "^$k=" "$src/.config")" >&2
      bad=1
    fi
  elif ! grep -qxF "$k=$v" "$src/.config"; then
    echo "kernel: $frag sets $k=$v, the config has: $(grep -E "^$k=|^# $k is not set" "$src/.config" || echo nothing)" >&2
    bad=1
  fi
done <"$frag"
[ "$bad" -eq 0 ] || die "the config fragment does not apply to $pkg $version (a dependency missing?)"

jobs=${VMBOX_KERNEL_JOBS:-$(nproc)}
echo "kernel: building bzImage (make -j$jobs, $pkg $version)" >&2
t0=$(date +%s)
kmake -j"$jobs" bzImage >&2 || die "building the kernel failed (see the output above)"
cp "$src/arch/x86/boot/bzImage" "$image.tmp.$$"
mv -f "$image.tmp.$$" "$image"
echo "$key" >"$out/key"
echo "kernel: $image ($(kmake -s kernelrelease), $(stat -c %s "$image") bytes) in $(($(date +%s) - t0))s" >&2
echo "$image"
