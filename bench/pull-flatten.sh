#!/usr/bin/env bash
# Benchmark: registry -> ext4 disk image.
#
#   vmbox: `vmbox pull` into a fresh root (downloads and streams the layers
#          straight into an ext4 file with libext2fs)
#   peer:  `skopeo copy docker://... oci:DIR` + `umoci unpack` +
#          `mke2fs -t ext4 -d ROOTFS` (the usual unpack-then-build pipeline)
#
# Both pull the same "big" image (BIG_MB MiB over BIG_LAYERS layers, mixed
# random and compressible files, built from a fixed seed) from a local
# docker-registry on 127.0.0.1.  Runs alternate vmbox/peer, N times each; the
# page cache is left alone for both.  Prints every run, both medians, and the
# ratio vmbox/peer as the last line.  Goal: ratio <= 0.5.
#
#   bench/pull-flatten.sh              # N=5, BIG_MB=300, BIG_LAYERS=5
#   N=3 BIG_MB=100 bench/pull-flatten.sh
#   VMBOX=build/vmbox (default; the optimized binary, not ASan)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VMBOX_REPO=$repo
export VMBOX=${VMBOX:-$repo/build/vmbox}
N=${N:-5}
export BIG_MB=${BIG_MB:-300} BIG_LAYERS=${BIG_LAYERS:-5}

for tool in docker-registry skopeo umoci mke2fs jq curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/deps.sh --test" >&2; exit 1; }
done
[ -x "$VMBOX" ] || { echo "bench: $VMBOX not built; run make" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/vmbox-bench.XXXXXX")
export VMBOX_TEST_STATE=$work/state
export TMPDIR=$work # registry storage and every temp file under $work
export VMBOX_IMAGE_CACHE=${VMBOX_IMAGE_CACHE:-$work/images}
# shellcheck source=../tests/lib/common.bash
source "$repo/tests/lib/common.bash"
unset ASAN_OPTIONS UBSAN_OPTIONS
cleanup() {
  set +e
  mountpoint -q "$work/mnt" 2>/dev/null && umount "$work/mnt"
  registry_stop_all
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# building the big image (${BIG_MB} MiB, ${BIG_LAYERS} layers + busybox)..." >&2
layout=$(image_big)
registry_start
ref=$REGISTRY/bench/big:latest
push_layout "$layout" latest "$ref"
content_mb=$(( $(jq '[.layers[].size] | add' "$layout/blobs/sha256/$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="latest") | .digest' "$layout/index.json" | cut -d: -f2)") >> 20 ))
echo "# image $ref: ${content_mb} MiB compressed" >&2
# The peer's mke2fs needs a size up front: twice the content plus headroom.
peer_size=$((BIG_MB * 2 + 256))M

now() { date +%s%N; }
secs() { awk -v ns="$1" 'BEGIN { printf "%.3f", ns / 1e9 }'; }

run_vmbox() {
  local root=$work/vmbox-root t0 t1
  rm -rf "$root"
  t0=$(now)
  "$VMBOX" --root "$root" pull -q "$ref" >"$work/vmbox.out" 2>"$work/vmbox.err" || {
    echo "bench: vmbox pull failed:" >&2; cat "$work/vmbox.err" >&2; return 1; }
  t1=$(now)
  if ! compgen -G "$root/ext4/*.ext4" >/dev/null; then
    echo "bench: vmbox pull left no ext4 disk under $root/ext4; the pull must flatten" >&2
    return 1
  fi
  echo $((t1 - t0))
}

run_peer() {
  local d=$work/peer t0 t1
  rm -rf "$d"
  mkdir -p "$d"
  t0=$(now)
  skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$d/oci:latest" >/dev/null
  umoci unpack --image "$d/oci:latest" "$d/bundle" >/dev/null
  mke2fs -q -t ext4 -d "$d/bundle/rootfs" -F "$d/disk.ext4" "$peer_size" >/dev/null
  t1=$(now)
  echo $((t1 - t0))
}

# Untimed first round: both pipelines must produce the same tree (a fast
# wrong answer is no answer), and it warms the page cache for both alike.
verify() {
  local mnt=$work/mnt disk
  run_vmbox >/dev/null
  run_peer >/dev/null
  if [ "$(id -u)" -ne 0 ]; then
    echo "# not root: vmbox's disk not compared with the peer's tree" >&2
    return 0
  fi
  disk=$(compgen -G "$work/vmbox-root/ext4/*.ext4" | head -1)
  mkdir -p "$mnt"
  mount -o loop,ro "$disk" "$mnt"
  if ! python3 "$repo/tests/lib/compare_trees.py" -q "$work/peer/bundle/rootfs" "$mnt" >&2; then
    python3 "$repo/tests/lib/compare_trees.py" "$work/peer/bundle/rootfs" "$mnt" | head -20 >&2
    umount "$mnt"
    echo "bench: vmbox's disk differs from the peer's tree" >&2
    return 1
  fi
  umount "$mnt"
}
verify

vm=()
peer=()
for i in $(seq 1 "$N"); do
  v=$(run_vmbox)
  p=$(run_peer)
  vm+=("$v")
  peer+=("$p")
  echo "run $i: vmbox $(secs "$v")s  peer $(secs "$p")s"
done
rm -rf "$work/vmbox-root" "$work/peer"

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mv_=$(median "${vm[@]}")
mp=$(median "${peer[@]}")
echo "median vmbox $(secs "$mv_")s (vmbox pull -> ext4)"
echo "median peer $(secs "$mp")s (skopeo copy + umoci unpack + mke2fs -d)"
awk -v a="$mv_" -v b="$mp" 'BEGIN { printf "ratio %.2f\n", a / b }'
