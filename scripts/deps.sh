#!/usr/bin/env bash
# Installs what vmbox needs to build and test, from Debian's packages only.
# Idempotent: packages already installed are not touched, and apt-get runs
# only when something is missing.
set -euo pipefail

build_pkgs=(build-essential pkg-config libcurl4-openssl-dev libarchive-dev
  libjansson-dev libssl-dev libnl-3-dev libnl-route-3-dev libext2fs-dev
  libseccomp-dev libzstd-dev busybox-static e2fsprogs)
test_pkgs=(bats docker-registry skopeo umoci apache2-utils python3 jq curl
  tmux bubblewrap util-linux iproute2 attr libcap2-bin uidmap
  qemu-system-x86 linux-image-cloud-amd64 cpio zstd xz-utils runc)
# The minimal guest kernel (scripts/kernel.sh); make test builds it too.
kernel_pkgs=(linux-source-6.1 flex bison bc libelf-dev libssl-dev lz4 xz-utils make)
# make fuzz: clang with libFuzzer (scripts/fuzz.sh).
fuzz_pkgs=(clang-14 libclang-rt-14-dev)

want=("${build_pkgs[@]}")
case ${1:-} in
--test) want+=("${test_pkgs[@]}" "${kernel_pkgs[@]}") ;;
--kernel) want+=("${kernel_pkgs[@]}") ;;
--fuzz) want+=("${fuzz_pkgs[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
  command -v sudo >/dev/null || { echo "deps: missing packages (${missing[*]}) and not root; install them with apt-get as root" >&2; exit 1; }
else
  SUDO=
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; refresh them once when a lookup fails.
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
  $SUDO apt-get update >&2
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >&2
fi
