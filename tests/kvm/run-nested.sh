#!/usr/bin/env bash
# Runs a script as root inside a first-level QEMU/TCG guest that has
# /dev/kvm (nested KVM on an emulated AMD SVM CPU), streams the guest's
# console to stdout and exits with the script's status.
#
#   tests/kvm/run-nested.sh SCRIPT [ARGS...]
#   tests/kvm/run-nested.sh -c 'COMMANDS' [ARGS...]
#
# The script runs with bash in the repo's directory (same absolute path as on
# the host; the build outputs are there too, see mkinitramfs.sh), stdin
# /dev/null, after the kvm modules are loaded and proc/sys/dev/tmp mounted.
#
# Never hangs: a run that prints nothing on the console for
# VMBOX_KVM_IDLE_TIMEOUT seconds, or runs past VMBOX_KVM_TIMEOUT, has QEMU
# killed and is retried once ("retrying after hang: <reason>" on stderr); so
# is a guest that dies without reporting a status.  Exit status: the script's;
# 124 when the last attempt hung; 125 when the harness itself failed.
#
# Harness notes go to stderr, prefixed "vmbox-kvm:", and include
#   vmbox-kvm: attempt N/M
#   vmbox-kvm: qemu-start-to-init=S.SSs
#   vmbox-kvm: status=N elapsed=S.SSs
# A consumer that parses the stream (tests/kvm/lib.bash) restarts its parse
# at every "attempt" line.
#
# Knobs (environment), defaults in brackets:
#   VMBOX_KVM_NATIVE       0: always nested; 1: run SCRIPT directly on this
#                          host (needs /dev/kvm); auto: native when /dev/kvm
#                          can be opened here [0]
#   VMBOX_KVM_TIMEOUT      overall seconds per attempt [900]
#   VMBOX_KVM_IDLE_TIMEOUT seconds without console output, once /init runs,
#                          = hang [120]
#   VMBOX_KVM_BOOT_TIMEOUT seconds from QEMU start to /init = hang [90]
#   VMBOX_KVM_RETRIES      extra attempts after a hang [1]
#   VMBOX_KVM_SMP [1]  VMBOX_KVM_MEM [3G]  VMBOX_KVM_CPU [max]  VMBOX_KVM_ACCEL [tcg]
#   VMBOX_KVM_MACHINE      QEMU machine type [pc]
#   VMBOX_KVM_KERNEL       guest kernel [newest /boot/vmlinuz-*-cloud-amd64]
#   VMBOX_KVM_APPEND       extra kernel command line
#   VMBOX_KVM_QEMU_ARGS    extra QEMU arguments (word-split)
#   VMBOX_KVM_AMD_OPTS     kvm-amd module options, e.g. "nested=1 npt=1"
#   VMBOX_KVM_PASS_ENV     names of variables to export into the guest
#                          [ASAN_OPTIONS UBSAN_OPTIONS NO_COLOR]
#   VMBOX_KVM_CWD          directory the script starts in [the repo]
#   VMBOX_BUILD and the knobs of mkinitramfs.sh choose what the guest holds.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

note() { echo "vmbox-kvm: $*" >&2; }
die() { note "$*"; exit 125; }
now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }
secs() { printf '%d.%02d' $(($1 / 1000000)) $(($1 % 1000000 / 10000)); }

usage() { die "usage: run-nested.sh SCRIPT [ARGS...] | run-nested.sh -c 'COMMANDS' [ARGS...]"; }

# --- the script ------------------------------------------------------------------
[ $# -ge 1 ] || usage
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmbox-kvm.XXXXXX") || die "mktemp failed"
qpid=
cleanup() {
  [ -n "$qpid" ] && kill -9 "$qpid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'note "interrupted"; exit 130' INT TERM

if [ "$1" = -c ]; then
  [ $# -ge 2 ] || usage
  printf '#!/bin/bash\n%s\n' "$2" >"$tmp/script"
  shift 2
else
  [ -f "$1" ] || die "script $1 not found"
  cp "$1" "$tmp/script"
  shift
fi
chmod 755 "$tmp/script"
args=("$@")

timeout_s=${VMBOX_KVM_TIMEOUT:-900}
idle_s=${VMBOX_KVM_IDLE_TIMEOUT:-120}
boot_s=${VMBOX_KVM_BOOT_TIMEOUT:-90}
retries=${VMBOX_KVM_RETRIES:-1}

# --- native mode -------------------------------------------------------------------
native=${VMBOX_KVM_NATIVE:-0}
if [ "$native" = auto ]; then
  if (exec 3<>/dev/kvm) 2>/dev/null; then native=1; else native=0; fi
fi
if [ "$native" = 1 ]; then
  [ -c /dev/kvm ] || die "VMBOX_KVM_NATIVE=1 but there is no /dev/kvm here"
  note "native mode: running on this host's /dev/kvm"
  build=${VMBOX_BUILD:-$repo/build}
  case $build in /*) ;; *) build=$repo/$build ;; esac
  export VMBOX_REPO=$repo VMBOX_BUILD=$build
  export VMBOX=${VMBOX:-$build/asan/vmbox}
  cd "${VMBOX_KVM_CWD:-$repo}" || die "cannot cd to ${VMBOX_KVM_CWD:-$repo}"
  t0=$(now_us)
  timeout -k 10 "$timeout_s" "$tmp/script" "${args[@]}" </dev/null
  st=$?
  note "status=$st elapsed=$(secs $(($(now_us) - t0)))s"
  exit "$st"
fi

# --- nested mode: the guest ----------------------------------------------------------
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing; run scripts/deps.sh --test"
kernel=${VMBOX_KVM_KERNEL:-$(ls -1 /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -n1)}
[ -n "$kernel" ] && [ -r "$kernel" ] ||
  die "no guest kernel (/boot/vmlinuz-*-cloud-amd64); run scripts/deps.sh --test"
kver=${kernel##*/vmlinuz-}
t_build=$(now_us)
mapfile -t archives < <(VMBOX_KVM_KVER=$kver "$here/mkinitramfs.sh"; echo "rc=$?")
[ "${archives[-1]}" = rc=0 ] || die "building the initramfs failed"
unset 'archives[-1]'
cpios=() disks=()
for a in "${archives[@]}"; do
  case $a in *.ext4) disks+=("$a") ;; *) cpios+=("$a") ;; esac
done
note "initramfs ready in $(secs $(($(now_us) - t_build)))s"

# The per-run part rides as a second cpio archive appended to the cached one:
# the kernel unpacks concatenated archives in order.
nonce=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mkdir -p "$tmp/rd/vmbox"
cp "$tmp/script" "$tmp/rd/vmbox/script"
{
  echo '#!/bin/bash'
  for v in ${VMBOX_KVM_PASS_ENV-ASAN_OPTIONS UBSAN_OPTIONS NO_COLOR}; do
    [ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
  done
  printf 'exec /vmbox/script'
  [ ${#args[@]} -gt 0 ] && printf ' %q' "${args[@]}"
  echo
} >"$tmp/rd/vmbox/cmd"
chmod 755 "$tmp/rd/vmbox/cmd"
{
  echo "VMBOX_KVM_NONCE=$nonce"
  echo "VMBOX_KVM_AMD_OPTS='${VMBOX_KVM_AMD_OPTS:-}'"
  [ ${#disks[@]} -gt 0 ] && echo "VMBOX_KVM_PAYLOAD_DISK=1"
  [ -n "${VMBOX_KVM_CWD:-}" ] && echo "VMBOX_KVM_CWD='$VMBOX_KVM_CWD'"
} >"$tmp/rd/vmbox/env"
(cd "$tmp/rd" && find . -mindepth 1 | cpio -o -H newc --quiet -R 0:0) >"$tmp/run.cpio" ||
  die "cpio of the per-run archive failed"
cat "${cpios[@]}" "$tmp/run.cpio" >"$tmp/initrd" || die "cannot write $tmp/initrd"

qemu_cmd=("$qemu" -accel "${VMBOX_KVM_ACCEL:-tcg}" -M "${VMBOX_KVM_MACHINE:-pc}"
  -cpu "${VMBOX_KVM_CPU:-max}" -smp "${VMBOX_KVM_SMP:-1}" -m "${VMBOX_KVM_MEM:-3G}"
  -nodefaults -no-user-config -display none -monitor none -serial stdio -no-reboot
  -kernel "$kernel" -initrd "$tmp/initrd"
  -append "console=ttyS0 quiet panic=-1 mitigations=off ${VMBOX_KVM_APPEND:-}")
# snapshot=on: the guest may write to its payload; the cached image stays.
for d in "${disks[@]}"; do
  qemu_cmd+=(-drive "file=$d,format=raw,if=virtio,snapshot=on,cache=unsafe")
done
# shellcheck disable=SC2206 # extra args are words on purpose
qemu_cmd+=(${VMBOX_KVM_QEMU_ARGS:-})

# One boot.  Sets: status (script's), outcome (ok|hang|crash), reason.
attempt() {
  local fifo=$tmp/console line partial='' rc t0 now last init_seen=0 blank=0
  rm -f "$fifo" && mkfifo "$fifo" || die "mkfifo $fifo failed"
  status='' outcome='' reason=''
  t0=$(now_us)
  "${qemu_cmd[@]}" </dev/null >"$fifo" 2>"$tmp/qemu.err" &
  qpid=$!
  exec {cfd}<"$fifo"
  last=$t0
  while :; do
    if IFS= read -r -t 1 -u "$cfd" line; then
      line=$partial$line partial=''
      now=${EPOCHREALTIME/./} last=$now
      line=${line//$'\r'/}
      # init prints "\nVMBOX-KVM-EXIT ..."; hold a blank line until we know
      # it is not that one.
      if [ -z "$line" ]; then
        [ $blank = 1 ] && echo
        blank=1
        continue
      fi
      case $line in
      *"VMBOX-KVM-EXIT $nonce "*)
        status=${line##*"VMBOX-KVM-EXIT $nonce "}
        status=${status%%[!0-9]*}
        blank=0
        continue ;;
      "vmbox-kvm-guest: init reached"*)
        [ $init_seen = 1 ] || note "qemu-start-to-init=$(secs $((now - t0)))s"
        init_seen=1 ;;
      esac
      [ $blank = 1 ] && echo
      blank=0
      printf '%s\n' "$line"
      # A guest that never stops talking is bounded too.
      if [ $((now - t0)) -ge $((timeout_s * 1000000)) ]; then
        reason="overall timeout of ${timeout_s}s"
        break
      fi
    else
      rc=$?
      now=${EPOCHREALTIME/./}
      if [ $rc -le 128 ]; then # EOF: QEMU is gone
        [ -n "$partial$line" ] && printf '%s\n' "${partial//$'\r'/}${line//$'\r'/}"
        break
      fi
      [ -n "$line" ] && partial+=$line last=$now
      if [ -n "$status" ] && [ $((now - last)) -gt 10000000 ]; then
        note "guest reported status $status but did not power off in 10s; killing QEMU"
        break
      fi
      # With "quiet" the console is silent until /init, so the boot has
      # a bound of its own.
      if [ $init_seen = 0 ] && [ $((now - t0)) -ge $((boot_s * 1000000)) ]; then
        reason="guest /init not reached in ${boot_s}s"
        break
      fi
      if [ $init_seen = 1 ] && [ $((now - last)) -ge $((idle_s * 1000000)) ]; then
        reason="no console output for ${idle_s}s"
        break
      fi
      if [ $((now - t0)) -ge $((timeout_s * 1000000)) ]; then
        reason="overall timeout of ${timeout_s}s"
        break
      fi
    fi
  done
  exec {cfd}<&-
  if kill -0 "$qpid" 2>/dev/null; then
    kill -TERM "$qpid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$qpid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$qpid" 2>/dev/null
  fi
  wait "$qpid" 2>/dev/null
  qpid=
  elapsed=$(($(now_us) - t0))
  if [ -n "$status" ]; then
    outcome=ok
  elif [ -n "$reason" ]; then
    outcome=hang
  else
    outcome=crash
    reason="guest ended without an exit status"
    [ -s "$tmp/qemu.err" ] && reason+=" (qemu: $(tr '\n' ' ' <"$tmp/qemu.err" | head -c 300))"
  fi
}

n=$((retries + 1))
for ((i = 1; i <= n; i++)); do
  note "attempt $i/$n"
  attempt
  if [ "$outcome" = ok ]; then
    note "status=$status elapsed=$(secs "$elapsed")s"
    exit "$status"
  fi
  if [ $i -lt $n ]; then
    note "retrying after hang: $reason (attempt $i, elapsed $(secs "$elapsed")s)"
  else
    note "giving up: $reason (attempt $i, elapsed $(secs "$elapsed")s)"
  fi
done
[ "$outcome" = hang ] && exit 124
exit 125
