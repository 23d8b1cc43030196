#!/usr/bin/env bash
# Benchmark: start-to-exit latency of /bin/true in a sandbox.
#
#   vmbox: `vmbox run --rm busybox /bin/true` (the embedded busybox image, ns
#          backend: CLI, monitor, create, start, wait, delete)
#   peer:  `bwrap --unshare-all` on the same root, unpacked from the same
#          image archive with umoci; and runc (crun too when installed) on
#          that umoci bundle, when they can run on this host's cgroups.
#
# Runs alternate vmbox/bwrap(/runc/crun), N each, wall clock per run.  Also
# `vmbox version` (vmbox-exec): what merely starting the vmbox binary costs.
# Prints every run, the medians, and the ratio vmbox/bwrap as the last line.
# Goal: ratio <= 1.0.
#
#   bench/start.sh                  # N=20
#   VMBOX=build/vmbox (default; the optimized binary, not ASan)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMBOX=${VMBOX:-$repo/build/vmbox}
N=${N:-20}
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the ns backend needs it)" >&2; exit 1; }
for tool in bwrap umoci jq; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing; run scripts/deps.sh --test" >&2; exit 1; }
done
[ -x "$VMBOX" ] || { echo "bench: $VMBOX not built; run make" >&2; exit 1; }
tar=$(dirname "$VMBOX")/busybox-image.tar
[ -f "$tar" ] || { echo "bench: $tar missing; run make" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/var/tmp}/vmbox-bench.XXXXXX")
cleanup() {
  set +e
  for b in $("$VMBOX" --root "$work/root" ps -aq 2>/dev/null); do
    "$VMBOX" --root "$work/root" rm -f "$b" >/dev/null 2>&1
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export VMBOX_ROOT=$work/root
unset ASAN_OPTIONS UBSAN_OPTIONS

# The peers' root: the image archive vmbox embeds, unpacked by umoci.
mkdir "$work/oci"
tar -xf "$tar" -C "$work/oci"
tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$work/oci/index.json")
umoci unpack --image "$work/oci:$tag" "$work/bundle" >/dev/null
jq '.process.args = ["/bin/true"] | .process.terminal = false' "$work/bundle/config.json" \
  >"$work/bundle/c.json" && mv "$work/bundle/c.json" "$work/bundle/config.json"
root=$work/bundle/rootfs

now() { date +%s%N; }
# Other load on the host stretches every figure; say how much there was.
echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
ms() { awk -v ns="$1" 'BEGIN { printf "%.1f", ns / 1e6 }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

run_vmbox() { "$VMBOX" run --rm busybox /bin/true; }
run_vmbox_exec() { "$VMBOX" version >/dev/null; }
run_bwrap() { bwrap --unshare-all --ro-bind "$root" / --proc /proc --dev /dev /bin/true; }
n_oci=0
run_oci() { # runc|crun
  n_oci=$((n_oci + 1))
  "$1" run --bundle "$work/bundle" "vmbox-bench-$$-$n_oci" </dev/null
}

# Which OCI runtimes can run here (crun 1.8 refuses hybrid cgroup hosts).
peers=(vmbox bwrap vmbox-exec)
for rt in runc crun; do
  if ! command -v "$rt" >/dev/null; then
    echo "# $rt: not installed"
  elif err=$(run_oci "$rt" 2>&1); then
    peers+=("$rt")
  else
    echo "# $rt: cannot run on this host: $(tr '\n' ' ' <<<"$err")"
  fi
done

# Warm-up: vmbox imports its builtin image on first use; page cache for all.
run_vmbox
run_bwrap
declare -A times
for i in $(seq "$N"); do
  for p in "${peers[@]}"; do
    t0=$(now)
    case $p in
    vmbox) run_vmbox ;;
    bwrap) run_bwrap ;;
    vmbox-exec) run_vmbox_exec ;;
    *) run_oci "$p" ;;
    esac
    t1=$(now)
    times[$p]+="$(ms $((t1 - t0))) "
  done
  line="run $i:"
  for p in "${peers[@]}"; do line+=" $p $(awk '{ print $NF }' <<<"${times[$p]}") ms"; done
  echo "$line"
done

declare -A med
for p in "${peers[@]}"; do
  med[$p]=$(tr ' ' '\n' <<<"${times[$p]}" | grep . | median)
  echo "median $p: ${med[$p]} ms ($N runs)"
done
for p in "${peers[@]:3}"; do
  echo "ratio vmbox/$p: $(awk -v a="${med[vmbox]}" -v b="${med[$p]}" 'BEGIN { printf "%.2f", a / b }')"
done
echo "ratio vmbox/bwrap: $(awk -v a="${med[vmbox]}" -v b="${med[bwrap]}" 'BEGIN { printf "%.2f", a / b }') (goal <= 1.0)"
