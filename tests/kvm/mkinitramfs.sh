#!/usr/bin/env bash
# Builds (or finds in the cache) what the first-level guest of
# tests/kvm/run-nested.sh boots with, and prints two paths, one a line:
#
#   base-<key>.cpio     the initramfs: busybox-static (applets linked by
#                       /init), bash + bats-core (inner suites are bats
#                       files), the guest kernel's kvm and virtio-blk modules
#                       with their dependencies, tests/kvm/init as /init
#   payload-<key>.ext4  tests/ and scripts/ of the repo plus the build
#                       outputs, at the same absolute paths as on the host,
#                       and every shared library ldd lists for the programs
#                       among them (the ASan runtime too) in /.vmbox-libs;
#                       attached as a virtio disk, grafted onto / by /init
#   (payload-<key>.cpio instead with VMBOX_KVM_PAYLOAD_MODE=cpio: a second
#    archive appended to the initrd: no virtio, but the whole payload is
#    copied into guest RAM at every boot, a cost that grows with it)
#
# Both live in $VMBOX_BUILD/kvm/.  Each key is a sha256 over its inputs'
# contents (and this script, and dpkg's status file for the host's libraries),
# so the base survives edits to the tests and the payload is rebuilt, cheaply,
# whenever a test or binary changes.  The two newest of each kind are kept.
#
# Modules are stored decompressed (.ko.xz/.ko.zst/.ko.gz -> .ko): busybox
# insmod reads plain ELF only.  Archives are uncompressed: the TCG-emulated
# kernel unpacks faster than it could decompress.
#
# Knobs (environment):
#   VMBOX_BUILD        build dir whose outputs go in (default $repo/build)
#   VMBOX_KVM_KVER     guest kernel release (default: newest *-cloud-amd64 in /boot)
#   VMBOX_KVM_MODULES  extra modules to load before the script, e.g. "tun veth"
#   VMBOX_KVM_BINS     extra host programs to include, e.g. "jq python3"
#   VMBOX_KVM_PAYLOAD  extra paths (repo-relative or absolute) to include
#   VMBOX_KVM_PAYLOAD_MODE  disk (default) or cpio
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self=$here/$(basename "${BASH_SOURCE[0]}")
repo=$(cd "$here/../.." && pwd)

die() { echo "mkinitramfs: $*" >&2; exit 1; }

build=${VMBOX_BUILD:-$repo/build}
case $build in /*) ;; *) build=$repo/$build ;; esac
[ -d "$build" ] || die "build dir $build does not exist; run make first"
build=$(cd "$build" && pwd)
cache=$build/kvm
mkdir -p "$cache"

kver=${VMBOX_KVM_KVER:-}
if [ -z "$kver" ]; then
  k=$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$k" ] || die "no /boot/vmlinuz-*-cloud-amd64; install linux-image-cloud-amd64 (scripts/deps.sh --test)"
  kver=${k#/boot/vmlinuz-}
fi
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || die "no $moddir/modules.dep for kernel $kver"
busybox=$(command -v busybox) || die "busybox not found; install busybox-static"
# The user-facing bats, not the libexec one a running bats puts first in PATH.
bats_bin=$(PATH=$(tr ':' '\n' <<<"$PATH" | grep -v '/libexec/bats-core' | paste -sd:) command -v bats) ||
  die "bats not found; scripts/deps.sh --test installs it"
command -v cpio >/dev/null || die "cpio not found; scripts/deps.sh --test installs it"

is_static() { ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
# Shared libraries (and the loader) the dynamically linked programs among
# FILES need; one ldd for all (scripts and static programs add nothing).
libs_of() { # FILES...
  [ $# -gt 0 ] || return 0
  { ldd "$@" 2>/dev/null || true; } |
    sed -nE 's/.*=> (\/[^ ]+) \(.*/\1/p; s/^[[:space:]]*(\/[^ ]+) \(.*/\1/p' | LC_ALL=C sort -u
}
# Content key of the files named on stdin, plus whatever else is on the command line.
key_of() {
  { printf '%s\n' "$@"; sha256sum "$self"; stat -c '%n %s %Y' /var/lib/dpkg/status 2>/dev/null
    xargs -r -d '\n' sha256sum; } | sha256sum | cut -c1-16
}
prune() { ls -1t "$cache"/"$1"-*."${2:-cpio}" 2>/dev/null | tail -n +3 | xargs -r rm -f; }

# --- base ------------------------------------------------------------------------
declare -A seen_mod=()
mod_order=()
mod_path() { # name -> path relative to $moddir (kvm-amd and kvm_amd both match)
  local n=${1//[-_]/[-_]}
  grep -E "(^|/)${n}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n1 | cut -d: -f1
}
want_mod() {
  local rel d
  rel=$(mod_path "$1")
  [ -n "$rel" ] || die "module $1 not found in $moddir/modules.dep"
  [ -z "${seen_mod[$rel]:-}" ] || return 0
  seen_mod[$rel]=1
  for d in $(grep -F "$rel:" "$moddir/modules.dep" | grep -E "^${rel//./\\.}:" | cut -d: -f2-); do
    d=${d##*/}
    want_mod "${d%%.ko*}"
  done
  mod_order+=("$rel")
}
# virtio_pci + virtio_blk carry the payload disk.
for m in irqbypass kvm kvm-amd virtio_pci virtio_blk ${VMBOX_KVM_MODULES:-}; do want_mod "$m"; done

base_bins=()
for p in bash ${VMBOX_KVM_BINS:-}; do
  bp=$(command -v "$p") || die "program $p not found on the host"
  base_bins+=("$bp")
done
bats_files=("$(readlink -f "$bats_bin")")
for d in /usr/lib/bats-core /usr/libexec/bats-core; do
  [ -d "$d" ] || die "$d missing (bats-core layout changed?)"
  while IFS= read -r f; do bats_files+=("$f"); done < <(find "$d" -type f | LC_ALL=C sort)
done
base_inputs=("$busybox" "$here/init" "${base_bins[@]}" "${bats_files[@]}")
for rel in "${mod_order[@]}"; do base_inputs+=("$moddir/$rel"); done
base_key=$(printf '%s\n' "${base_inputs[@]}" | key_of "base $kver ${mod_order[*]} ${base_bins[*]}")
base_out=$cache/base-$base_key.cpio

# Libraries already in the base need not be in the payload.
base_libs=$(libs_of "${base_bins[@]}")

build_base() {
  local stage src dest rel b
  stage=$(mktemp -d "$cache/stage.XXXXXX")
  (
    cd "$stage"
    mkdir -p usr/bin usr/sbin usr/lib usr/lib64 etc proc sys dev tmp run root mnt var/tmp
    ln -s usr/bin bin && ln -s usr/sbin sbin && ln -s usr/lib lib && ln -s usr/lib64 lib64
    put() { mkdir -p "$stage$(dirname "$2")" && cp -L --preserve=mode "$1" "$stage$2"; }
    put "$busybox" /usr/bin/busybox
    put "$here/init" /init
    for b in "${base_bins[@]}"; do put "$b" "$b"; done
    for f in $base_libs; do put "$f" "$f"; done
    put "${bats_files[0]}" /usr/bin/bats
    for f in "${bats_files[@]:1}"; do put "$f" "$f"; done
    dest=lib/modules/$kver/vmbox
    mkdir -p "$dest"
    for rel in "${mod_order[@]}"; do
      src=$moddir/$rel
      b=$(basename "$rel")
      b=${b%%.ko*}.ko
      case $src in
      *.ko.xz) xz -dc "$src" >"$dest/$b" ;;
      *.ko.zst) zstd -qdc "$src" >"$dest/$b" ;;
      *.ko.gz) gzip -dc "$src" >"$dest/$b" ;;
      *) cp "$src" "$dest/$b" ;;
      esac
      echo "$b" >>"$dest/load-order"
    done
    # /init links the other applets itself (busybox --install -s); a fork per
    # applet here costs seconds on a loaded host.
    ln -s busybox usr/bin/sh
    echo 'root:x:0:0:root:/root:/bin/sh' >etc/passwd
    echo 'root:x:0:' >etc/group
    echo vmbox-kvm >etc/hostname
    printf 'VMBOX_KVM_KVER=%s\nVMBOX_REPO=%s\nVMBOX_BUILD=%s\n' "$kver" "$repo" "$build" \
      >etc/vmbox-kvm.conf
    chmod 755 init
    find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 >"$base_out.tmp.$$"
  ) || { rm -rf "$stage" "$base_out.tmp.$$"; return 1; }
  rm -rf "$stage"
  mv -f "$base_out.tmp.$$" "$base_out"
}

# --- payload -------------------------------------------------------------------------
payload=("$repo/tests" "$repo/scripts")
for f in "$build"/* "$build"/asan/vmbox "$build"/tools/* "$build"/unit/*; do
  [ -f "$f" ] || continue
  case $f in *.a | *.o) continue ;; esac
  payload+=("$f")
done
for p in ${VMBOX_KVM_PAYLOAD:-}; do
  case $p in /*) ;; *) p=$repo/$p ;; esac
  [ -e "$p" ] || die "payload path $p does not exist"
  payload+=("$p")
done
payload_files=$(find "${payload[@]}" -path "$cache" -prune -o \( -type f -o -type l \) -print |
  LC_ALL=C sort -u)
mode=${VMBOX_KVM_PAYLOAD_MODE:-disk}
case $mode in disk) ext=ext4 ;; cpio) ext=cpio ;; *) die "VMBOX_KVM_PAYLOAD_MODE=$mode: want disk or cpio" ;; esac
payload_key=$(key_of "payload $mode $build" <<<"$payload_files")
payload_out=$cache/payload-$payload_key.$ext

# Libraries the payload's programs need beyond the base's.
payload_libs() {
  local f
  local -a progs=()
  # Only build outputs and extra payload are programs worth asking ldd about;
  # tests/ and scripts/ hold scripts.
  while IFS= read -r f; do
    case $f in "$repo"/tests/* | "$repo"/scripts/*) continue ;; esac
    if [ -x "$f" ]; then progs+=("$f"); fi
  done <<<"$payload_files"
  local dl
  dl=$(dlopen_libs "${progs[@]}")
  # shellcheck disable=SC2086 # one path a word
  { libs_of "${progs[@]}"; [ -z "$dl" ] || { echo "$dl"; libs_of $dl; }; } | LC_ALL=C sort -u |
    LC_ALL=C comm -23 - <(printf '%s\n' "$base_libs")
}

# Libraries the programs dlopen by soname (vmbox loads libcurl/libarchive on
# first use, lib/dl.c): ldd cannot see them, but their sonames are strings in
# the binary; ldconfig says where they live.
dlopen_libs() { # PROGS...
  [ $# -gt 0 ] || return 0
  local so p cache
  cache=$(ldconfig -p 2>/dev/null) || return 0
  for so in $(strings -a "$@" 2>/dev/null | grep -oE '^lib[A-Za-z0-9_+-]+\.so\.[0-9]+$' | LC_ALL=C sort -u); do
    p=$(awk -v s="$so" '$1 == s && /x86-64/ { print $NF; exit }' <<<"$cache")
    if [ -n "$p" ]; then echo "$p"; fi
  done
}

# The payload as an ext4 image (mke2fs -d): the guest reads only the blocks it
# touches, where an initramfs is copied whole into RAM at every boot (the
# ASan runtime and libicudata alone are 40 MB).  Files keep their absolute
# paths; libraries go flat into /.vmbox-libs (init puts it in LD_LIBRARY_PATH).
build_payload_disk() {
  local stage libs kb
  libs=$(payload_libs)
  stage=$(mktemp -d "$cache/stage.XXXXXX")
  (
    set -e
    sed 's|^/||' <<<"$payload_files" | (cd / && cpio -pdm --quiet --dereference "$stage")
    mkdir -p "$stage/.vmbox-libs"
    # shellcheck disable=SC2086 # one path a word
    [ -z "$libs" ] || cp -L $libs "$stage/.vmbox-libs/"
    # Room for what the tests write next to their files (QEMU's snapshot=on
    # keeps those writes off the image).
    kb=$(($(du -sk "$stage" | cut -f1) * 5 / 4 + 32768))
    : >"$payload_out.tmp.$$" # (mke2fs announces files it creates)
    mke2fs -q -F -t ext4 -O ^has_journal -L vmbox-payload -E root_owner=0:0 \
      -d "$stage" "$payload_out.tmp.$$" "${kb}k" >&2
  ) || { rm -rf "$stage" "$payload_out.tmp.$$"; return 1; }
  rm -rf "$stage"
  mv -f "$payload_out.tmp.$$" "$payload_out"
}

build_payload() {
  local libs f d
  # Only build outputs and extra payload are programs worth asking ldd about;
  # tests/ and scripts/ hold scripts.
  libs=$(payload_libs)
  # Names relative to /, parents first (the kernel's unpacker makes no
  # directories on its own); libraries under their canonical directory so no
  # name runs through the /lib -> usr/lib symlink.  Pure bash: a fork per
  # file costs tens of seconds on a loaded host.
  local -A canon=() dirs=()
  local -a names=()
  for f in $libs; do
    d=${f%/*}
    [ -n "${canon[$d]:-}" ] || canon[$d]=$(readlink -f "$d")
    names+=("${canon[$d]}/${f##*/}")
  done
  while IFS= read -r f; do names+=("$f"); done <<<"$payload_files"
  for f in "${names[@]}"; do
    d=${f%/*}
    while [ -n "$d" ] && [ -z "${dirs[$d]:-}" ]; do
      dirs[$d]=1
      d=${d%/*}
    done
  done
  { printf '%s\n' "${!dirs[@]}" "${names[@]}"; } | LC_ALL=C sort -u | sed 's|^/||' |
    (cd / && cpio -o -H newc --quiet -R 0:0 --dereference) >"$payload_out.tmp.$$" ||
    { rm -f "$payload_out.tmp.$$"; return 1; }
  mv -f "$payload_out.tmp.$$" "$payload_out"
}

if [ -s "$base_out" ]; then touch "$base_out"; else build_base || die "building $base_out failed"; prune base; fi
if [ -s "$payload_out" ]; then
  touch "$payload_out"
elif [ "$mode" = disk ]; then
  build_payload_disk || die "building $payload_out failed"
  prune payload ext4
else
  build_payload || die "building $payload_out failed"
  prune payload cpio
fi
echo "$base_out"
echo "$payload_out"
