#!/usr/bin/env bats
# The ns backend (Linux namespaces) through the backend ops table, driven by
# tests/tools/ns_run the way the per-box monitor will drive it.  The image is
# a busybox rootfs made into ext4 with mke2fs -d: the backend alone, without
# the pull/flatten pipeline.  Needs root, loop devices, overlayfs, cgroups.

bats_require_minimum_version 1.5.0

setup_file() {
  REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
  export NS_RUN=${NS_RUN:-${VMBOX_BUILD:-$REPO/build}/tools/ns_run}
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:print_summary=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  [ -x "$NS_RUN" ] || { echo "ns_run not built: make asan unit" >&2; return 1; }
  local root=$BATS_FILE_TMPDIR/rootfs
  "$VMBOX_REPO/scripts/mkbusybox.sh" --rootfs "$root"
  echo "image file" >"$root/etc/motd"
  ln -s ../../../../../../../../../../tmp "$root/escape" # tries to leave the root
  printf '#!/bin/sh\necho script\n' >"$root/bin/noexec.sh" # mode 644: not executable
  export NS_IMG=$BATS_FILE_TMPDIR/img.ext4
  mke2fs -q -t ext4 -d "$root" -F "$NS_IMG" 64M
  export NS_IMG_SUM
  NS_IMG_SUM=$(sha256sum <"$NS_IMG")
}

setup() {
  ID=nsbats-$$-$BATS_TEST_NUMBER
  STATE=$BATS_TEST_TMPDIR/box
}

# A failed test must not leave cgroups or state behind for the next run.
teardown() {
  "$NS_RUN" --cleanup --id "$ID" --state "$STATE" >/dev/null 2>&1 || true
  [ -z "${NOBODY_DIR:-}" ] || rm -rf "$NOBODY_DIR"
}

# box [ns_run options] -- CMD...   (one box, created, run, waited, deleted)
box() { "$NS_RUN" --image "$NS_IMG" --state "$STATE" --id "$ID" "$@"; }

no_cgroups_left() {
  local d
  for d in /sys/fs/cgroup/*/vmbox/"$1" /sys/fs/cgroup/vmbox/"$1"; do
    [ ! -e "$d" ] || { echo "left behind: $d"; return 1; }
  done
}

@test "ns: echo runs in a box and exits 0" {
  run box -- echo hello from the box
  [ "$status" -eq 0 ]
  [ "$output" = "hello from the box" ]
}

@test "ns: exit codes: the command's, 126 not executable, 127 not found" {
  run box -- sh -c 'exit 3'
  [ "$status" -eq 3 ]
  run box -- /bin/noexec.sh
  [ "$status" -eq 126 ]
  [[ "$output" == *"exec /bin/noexec.sh"*"ermission denied"* ]]
  run -127 box -- no-such-command
  [ "$status" -eq 127 ]
  [[ "$output" == *"no-such-command: executable file not found"* ]]
  run -127 box -- /no/such/path
  [ "$status" -eq 127 ]
}

@test "ns: a memory limit OOM-kills the command: 137 and the oom flag" {
  run box --memory 32m -- sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived'
  [ "$status" -eq 137 ]
  [[ "$output" == *"ns_run: oom"* ]]
  [[ "$output" != *survived* ]]
}

@test "ns: env, workdir (created) and user with additional groups" {
  run box -e FOO=bar -w /work/dir -u 1000:1001:5,7 -- sh -c 'echo $FOO; pwd; id'
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = bar ]
  [ "${lines[1]}" = /work/dir ]
  [ "${lines[2]}" = "uid=1000 gid=1001 groups=5,7" ]
}

@test "ns: hostname, /etc/hostname, /etc/hosts, /etc/resolv.conf" {
  run box --hostname mybox -- sh -c 'hostname; cat /etc/hostname; grep mybox /etc/hosts; grep -c nameserver /etc/resolv.conf'
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = mybox ]
  [ "${lines[1]}" = mybox ]
  [[ "${lines[2]}" == *"mybox"* ]]
  [ "${lines[3]}" -ge 1 ]
  run box -- hostname
  [ "$output" = "${ID:0:12}" ]
}

@test "ns: writes stay in the box: not in the image, not in another box" {
  run box -- sh -c 'echo changed > /etc/motd; echo new > /newfile; rm /bin/ls; cat /etc/motd /newfile'
  [ "$status" -eq 0 ]
  [ "$output" = $'changed\nnew' ]
  run box -- sh -c 'cat /etc/motd; test ! -e /newfile && test -e /bin/ls && echo clean'
  [ "$output" = $'image file\nclean' ]
  [ "$(sha256sum <"$NS_IMG")" = "$NS_IMG_SUM" ]
}

@test "ns: --read-only: the root cannot be written, --tmpfs can" {
  run box --read-only --tmpfs /scratch -- sh -c 'touch /x 2>&1; touch /etc/motd 2>&1; touch /scratch/ok && echo tmpfs ok'
  [[ "$output" == *"/x: Read-only file system"* ]]
  [[ "$output" == *"/etc/motd: Read-only file system"* ]]
  [[ "$output" == *"tmpfs ok"* ]]
}

@test "ns: -v bind mounts, read-write and :ro" {
  mkdir -p "$BATS_TEST_TMPDIR/vol"
  echo from-host >"$BATS_TEST_TMPDIR/vol/f"
  run box -v "$BATS_TEST_TMPDIR/vol:/data" -v "$BATS_TEST_TMPDIR/vol:/ro:ro" -- \
    sh -c 'cat /data/f; echo w > /data/g; echo w > /ro/h 2>&1 || echo ro refused'
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = from-host ]
  [[ "$output" == *"ro refused"* ]]
  [ "$(cat "$BATS_TEST_TMPDIR/vol/g")" = w ]
  [ ! -e "$BATS_TEST_TMPDIR/vol/h" ]
}

@test "ns: a symlink in the image cannot move a -v mount out of the root" {
  mkdir -p "$BATS_TEST_TMPDIR/vol"
  echo from-host >"$BATS_TEST_TMPDIR/vol/f"
  run box -v "$BATS_TEST_TMPDIR/vol:/escape/$ID" -- cat "/tmp/$ID/f"
  [ "$status" -eq 0 ]
  [ "$output" = from-host ]
  [ ! -e "/tmp/$ID" ]
}

@test "ns: an image that is not ext4 is a clear error" {
  head -c 1048576 /dev/zero >"$BATS_TEST_TMPDIR/bad.img"
  run "$NS_RUN" --image "$BATS_TEST_TMPDIR/bad.img" --state "$STATE" --id "$ID" -- true
  [ "$status" -eq 125 ]
  [[ "$output" == *"mount image"*"ext4"*"Invalid argument"* ]]
  [[ "$output" == *"must be a clean ext4"* ]]
  no_cgroups_left "$ID"
}

@test "ns: masked /proc and /sys paths are empty, read-only ones refuse writes" {
  run box -- sh -c 'for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/interrupts; do
      [ -e $f ] && printf "%s:%s\n" $f "$(head -c 64 $f | wc -c)"; done
    for d in /proc/acpi /proc/scsi /sys/firmware; do [ -d $d ] && echo $d:$(ls -A $d | wc -l); done
    echo 1 > /proc/sys/kernel/domainname 2>&1; echo 1 > /proc/sysrq-trigger 2>/dev/null || echo sysrq refused'
  [ "$status" -eq 0 ]
  [[ "$output" == *"/proc/keys:0"* ]]
  [[ "$output" == *"/proc/timer_list:0"* ]]
  [[ "$output" == *"/sys/firmware:0"* ]]
  [[ "$output" == *"Read-only file system"* ]]
  [[ "$output" == *"sysrq refused"* ]]
  [[ "$output" != *":[1-9]"* ]]
  ! grep -E ':[1-9][0-9]*$' <<<"$output"
}

@test "ns: device nodes the box makes open nothing; its /dev nodes work" {
  mkdir -p "$BATS_TEST_TMPDIR/vol"
  run box -v "$BATS_TEST_TMPDIR/vol:/vol" -- sh -c 'echo x > /dev/null && head -c 3 /dev/zero | wc -c && head -c 3 /dev/urandom | wc -c
      for d in /dev /tmp /vol /dev/shm; do
        mknod $d/disk b 254 0 && { head -c 1 $d/disk >/dev/null 2>&1 && echo "$d: OPENED" || echo "$d: refused"; }
      done; rm -f /vol/disk'
  [ "$status" -eq 0 ]
  [ "$(echo $output)" = "3 3 /dev: refused /tmp: refused /vol: refused /dev/shm: refused" ]
}

@test "ns: /proc/self/fd holds only 0, 1, 2 and the fd of ls itself" {
  run box -- ls /proc/self/fd
  [ "$status" -eq 0 ]
  [ "$(echo $output)" = "0 1 2 3" ]
}

@test "ns: only lo in the net namespace, and it is up" {
  run box -- sh -c 'ip -o link | cut -d: -f2; tail -n +3 /proc/net/dev | cut -d: -f1; ip -o link show lo'
  [ "$status" -eq 0 ]
  [ "$(echo ${lines[0]})" = lo ]
  [ "$(echo ${lines[1]})" = lo ]
  [[ "${lines[2]}" == *"UP"* ]]
  [ "${#lines[@]}" -eq 3 ]
}

@test "ns: capabilities are Docker's default set, none for a non-root user" {
  run box -- grep Cap /proc/self/status
  [ "$status" -eq 0 ]
  [ "$(echo $output)" = "CapInh: 0000000000000000 CapPrm: 00000000a80425fb CapEff: 00000000a80425fb CapBnd: 00000000a80425fb CapAmb: 0000000000000000" ]
  run box -u 1000:1000 -- grep -E 'Cap(Prm|Eff|Bnd)' /proc/self/status
  [ "$(echo $output)" = "CapPrm: 0000000000000000 CapEff: 0000000000000000 CapBnd: 00000000a80425fb" ]
}

@test "ns: no_new_privs is set and the seccomp filter is on" {
  run box -- grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status
  [ "$(echo $output)" = "NoNewPrivs: 1 Seccomp: 2" ]
}

@test "ns: seccomp: new user namespaces and mount fail with EPERM" {
  # Outside a box an unprivileged user namespace works here.
  unshare -U true
  run box -- unshare -U true
  [ "$status" -ne 0 ]
  [[ "$output" == *"unshare(0x10000000): Operation not permitted"* ]]
  run box -- sh -c 'mkdir -p /mnt; mount -t tmpfs none /mnt'
  [ "$status" -ne 0 ]
  run box -- sh -c 'umount /proc/keys'
  [ "$status" -ne 0 ]
}

@test "ns: a fork bomb is contained by the pids limit" {
  run box --pids 64 --timeout 60 -- sh -c 'b() { b | b & }; b 2>/dev/null; sleep 1; echo still here'
  [ "$status" -eq 0 ]
  [[ "$output" == *"still here"* ]]
  no_cgroups_left "$ID"
}

@test "ns: the box cannot write the host binary through /proc/*/exe" {
  local before
  before=$(sha256sum <"$NS_RUN")
  run box -- sh -c 'echo x >> /proc/self/exe 2>&1; cat /proc/1/exe >/dev/null 2>&1 || echo pid1 exe refused;
      ls -l /proc/1/exe 2>&1; tr "\0" " " </proc/1/cmdline; echo; cat /proc/1/comm'
  [[ "$output" == *"/proc/self/exe: Text file busy"* ]]
  [[ "$output" == *"pid1 exe refused"* ]]
  [[ "$output" == *"vmbox-init"* ]]
  [[ "$output" != *ns_run* ]]
  [ "$(sha256sum <"$NS_RUN")" = "$before" ]
}

@test "ns: nothing of the host file system is visible" {
  run box -- sh -c 'ls -A /; cat /proc/self/mountinfo; tr "\0" " " </proc/1/cmdline'
  [ "$status" -eq 0 ]
  [[ "$output" != *"$BATS_TEST_TMPDIR"* ]]
  [[ "$output" != *"$BATS_FILE_TMPDIR"* ]]
  [[ "$output" != *"/dev/loop"* ]]
  run box -- ls -A /
  [ "$(echo $output)" = "bin dev escape etc home linuxrc lost+found proc root run sbin sys tmp usr var" ]
}

@test "ns: PID 1 reaps orphans and forwards SIGTERM to the command" {
  run box --exec 'sleep 0.3; kill -TERM 1' -- sh -c 'trap "echo got TERM; exit 7" TERM; (sleep 0.1 &); i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done'
  [ "$status" -eq 7 ]
  [[ "$output" == *"got TERM"* ]]
  run box -- sh -c '(sleep 0.1 &); (true &); sleep 0.5; ps -o stat,comm | grep -c "^Z" || true'
  [ "${lines[-1]}" = 0 ]
}

@test "ns: the monitor's signal reaches the command through PID 1" {
  run box --signal 15@500 -- sh -c 'trap "echo got TERM; exit 9" TERM; i=0; while [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done'
  [ "$status" -eq 9 ]
  [[ "$output" == *"got TERM"* ]]
  run box --signal 9@300 -- sleep 30
  [ "$status" -eq 137 ]
}

@test "ns: exec runs a second process in the same box" {
  run box --exec 'i=0; while [ ! -e /tmp/ready ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; cat /tmp/ready; hostname; id -u;
      grep -E "^(CapEff|NoNewPrivs|Seccomp):" /proc/self/status | tr -s "\t" " "; ls /proc/self/fd | tr "\n" " "; echo' \
    --hostname samebox -- sh -c 'echo main > /tmp/ready; sleep 1'
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = main ]
  [ "${lines[1]}" = samebox ]
  [ "${lines[2]}" = 0 ]
  [ "${lines[3]}" = "CapEff: 00000000a80425fb" ]
  [ "${lines[4]}" = "NoNewPrivs: 1" ]
  [ "${lines[5]}" = "Seccomp: 2" ]
  [ "${lines[6]}" = "0 1 2 3 " ]
  [ "${lines[7]}" = "exec 0: exit 0" ]
}

@test "ns: stats report cpu, memory and tasks of the box" {
  run box --memory 256m --stats --exec 'true' -- sleep 0.5
  [ "$status" -eq 0 ]
  [[ "$output" =~ stats:\ cpu_ns=[0-9]+\ mem=[1-9][0-9]*\ limit=268435456\ pids=[1-9] ]]
}

@test "ns: --timeout kills the box: 137" {
  run box --timeout 1 -- sleep 30
  [ "$status" -eq 137 ]
  [[ "$output" == *"timed out"* ]]
}

@test "ns: cgroups and state are gone after the box; one loop device per image" {
  run box --memory 64m --pids 100 --cpus 0.5 -- sh -c 'cat /proc/self/cgroup | grep -E "memory|pids"'
  [ "$status" -eq 0 ]
  [[ "$output" == *"memory:/"* ]]
  no_cgroups_left "$ID"
  [ ! -e "$STATE/ns" ]
  # One loop device stays: the image's mount in vmbox's own namespace.
  [ "$(losetup -j "$NS_IMG" | wc -l)" -le 1 ]
}

@test "ns: limits are written to the box's cgroups (cpu quota, pids)" {
  run box --keep --cpus 0.5 --pids 77 -- true
  [ "$status" -eq 0 ]
  if [ -d /sys/fs/cgroup/cpu ]; then
    [ "$(cat /sys/fs/cgroup/cpu/vmbox/$ID/cpu.cfs_quota_us)" = 50000 ]
    [ "$(cat /sys/fs/cgroup/pids/vmbox/$ID/pids.max)" = 77 ]
  else
    [ "$(cat /sys/fs/cgroup/vmbox/$ID/cpu.max)" = "50000 100000" ]
  fi
  run "$NS_RUN" --cleanup --id "$ID" --state "$STATE"
  [ "$status" -eq 0 ]
  no_cgroups_left "$ID"
  [ ! -e "$STATE/ns" ]
}

@test "ns: a 1 GiB image boxes as fast as a small one (no copy)" {
  local big=$BATS_TEST_TMPDIR/big.ext4
  mke2fs -q -t ext4 -d "$BATS_FILE_TMPDIR/rootfs" -F "$big" 1G
  run "$NS_RUN" --image "$big" --state "$STATE" --id "$ID" --keep --time -- sh -c 'echo x > /w'
  [ "$status" -eq 0 ]
  local ms
  ms=$(sed -n 's/.*total \([0-9]*\)\..*/\1/p' <<<"$output")
  echo "# 1 GiB image: $output" >&3
  [ "$ms" -lt 3000 ]
  # The box's own state is its writes, not a copy of the image.
  [ "$(du -sk "$STATE/ns" | cut -f1)" -lt 1024 ]
  "$NS_RUN" --cleanup --id "$ID" --state "$STATE"
}

@test "ns: --backend kvm without /dev/kvm, sentry not available yet" {
  if [ ! -e /dev/kvm ]; then
    run box --backend kvm -- true
    [ "$status" -eq 125 ]
    [[ "$output" == *"cannot open /dev/kvm"* ]]
  fi
  run box --backend sentry -- true
  [[ "$output" == *"backend sentry is not available yet"* ]]
  run box --backend nope -- true
  [[ "$output" == *"unknown backend nope"* ]]
}

@test "ns: bad input: missing image, relative state dir, bad id, bad mounts" {
  run "$NS_RUN" --image "$BATS_TEST_TMPDIR/none.ext4" --state "$STATE" --id "$ID" -- true
  [ "$status" -eq 125 ]
  [[ "$output" == *"none.ext4"*"No such file"* ]]
  [ ! -e "$STATE/ns" ]
  no_cgroups_left "$ID"
  run "$NS_RUN" --image "$NS_IMG" --state rel/dir --id "$ID" -- true
  [[ "$output" == *"state dir must be absolute"* ]]
  run "$NS_RUN" --image "$NS_IMG" --state "$STATE" --id "../x" -- true
  [[ "$output" == *"invalid box id"* ]]
  run box -v "$BATS_TEST_TMPDIR:/" -- true
  [ "$status" -eq 125 ]
  [[ "$output" == *"want /HOST/PATH:/BOX/PATH (not /)"* ]]
  run box -v "$BATS_TEST_TMPDIR:rel" -- true
  [ "$status" -eq 125 ]
  run box --tmpfs / -- true
  [[ "$output" == *"tmpfs /: want an absolute path other than /"* ]]
  [ ! -e "$STATE/ns" ]
  no_cgroups_left "$ID"
}

@test "ns: -t gives the command a pty from the box's own devpts" {
  run box -t -- sh -c 'tty; test -t 0 && test -t 1 && echo isatty; exit 4'
  [ "$status" -eq 4 ]
  [[ "${lines[0]}" == "/dev/pts/0"* ]]
  [[ "${lines[1]}" == "isatty"* ]]
}

@test "ns: a second box with the same id is refused, the first keeps its cgroups" {
  run box --keep -- true
  [ "$status" -eq 0 ]
  run "$NS_RUN" --image "$NS_IMG" --state "$BATS_TEST_TMPDIR/other" --id "$ID" -- true
  [ "$status" -eq 125 ]
  [[ "$output" == *"cgroup vmbox/$ID"*"exists"* ]]
  [ -n "$(ls -d /sys/fs/cgroup/*/vmbox/"$ID" /sys/fs/cgroup/vmbox/"$ID" 2>/dev/null)" ]
  [ ! -e "$BATS_TEST_TMPDIR/other/ns" ]
  "$NS_RUN" --cleanup --id "$ID" --state "$STATE"
  no_cgroups_left "$ID"
}

@test "ns: not root: a rootless box in a user namespace; limits are a clear error" {
  # nobody must reach the tool and the image: a dir of our own in /tmp
  local d
  d=$(mktemp -d /tmp/vmbox-ns-rootless.XXXXXX)
  NOBODY_DIR=$d
  chmod 755 "$d"
  install -m 755 "$NS_RUN" "$d/ns_run"
  mkdir "$d/img" "$d/rootimg" "$d/state"
  cp "$NS_IMG" "$d/img/img.ext4"
  cp "$NS_IMG" "$d/rootimg/img.ext4"
  chown -R 65534:65534 "$d/img" "$d/state"
  nobody() { # IMAGE_DIR ns_run-args...
    local img=$1
    shift
    (cd "$d" && setpriv --reuid 65534 --regid 65534 --clear-groups \
      "$d/ns_run" --image "$img/img.ext4" --state "$d/state/box" --id "$ID" "$@")
  }
  run nobody "$d/img" -- sh -c 'id -u; cat /etc/motd'
  [ "$status" -eq 0 ]
  [ "$output" = "$(printf '0\nimage file')" ]
  [ -d "$d/img/img.rootfs" ] # the image, unpacked once beside it
  run nobody "$d/img" --memory 64m -- true
  [ "$status" -eq 125 ]
  [[ "$output" == *"--memory needs a cgroup, and rootless boxes run without one"* ]]
  no_cgroups_left "$ID"
  # an image in a dir nobody may not write: the error says what to do
  run nobody "$d/rootimg" -- true
  [ "$status" -eq 125 ]
  [[ "$output" == *"rootless boxes unpack the image beside it"* ]]
  [ ! -e "$d/state/box/ns" ]
}

@test "ns: timing of create+start+wait+delete for /bin/true" {
  # ASan build: slower than a release build; the log shows medians and the
  # ratio to bubblewrap in the same run (goal later: <= bwrap).
  local i t0 t1 ours=() peer=()
  for i in 1 2 3 4 5 6 7; do
    run box --time -- /bin/true
    [ "$status" -eq 0 ]
    ours+=("$(sed -n 's/.*total \([0-9]*\)\..*/\1/p' <<<"$output")")
    t0=$(date +%s%N)
    bwrap --unshare-all --ro-bind "$BATS_FILE_TMPDIR/rootfs" / --proc /proc --dev /dev /bin/true
    t1=$(date +%s%N)
    peer+=($(((t1 - t0) / 1000000)))
  done
  echo "# last: ${output#ns_run: }" >&3
  local mo mp
  mo=$(printf '%s\n' "${ours[@]}" | sort -n | sed -n 4p)
  mp=$(printf '%s\n' "${peer[@]}" | sort -n | sed -n 4p)
  echo "# /bin/true median: ns_run (ASan) ${mo} ms, bwrap ${mp} ms, ratio $(awk "BEGIN{printf \"%.2f\", $mo/($mp>0?$mp:1)}")" >&3
}
