#!/usr/bin/env bats
# The ns backend's default seccomp profile (backends/ns/seccomp.c): Docker's
# allowlist with its argument filters, EPERM by default, ENOSYS for calls
# newer than libseccomp knows, native arch only.
#
# Two views.  `seccomp_probe compare` makes each call on the host as root,
# once bare and once under the profile: root has every capability, so a
# refusal under the profile is the filter's own work and the bare column
# shows the kernel would have allowed it.  Then the same and everyday
# commands inside real boxes (vmbox run), where the filter is loaded for
# every process.  Needs root (as run.bats) and `make unit` (seccomp_probe).

VMBOX_SETUP_ROOT=1
load lib/common

PROBE=$VMBOX_BUILD/tools/seccomp_probe

setup_file() {
  [ -x "$VMBOX_BUILD/tools/seccomp_probe" ] || {
    echo "seccomp_probe not built: make unit" >&2
    return 1
  }
}

teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

# expect_probe LINE... : every "PROBE bare=X filtered=Y" line must be in $output.
expect_probe() {
  local want rc=0
  for want in "$@"; do
    grep -qxF -- "$want" <<<"$output" || {
      echo "want: $want"
      rc=1
    }
  done
  [ "$rc" -eq 0 ] || echo "got:"$'\n'"$output"
  return "$rc"
}

# The probe tool inside a box: host libraries read-only, the tool's dir.
box_probe() {
  vmbox run --rm -e ASAN_OPTIONS=detect_leaks=0 \
    -v /usr/lib:/usr/lib:ro -v /lib64:/lib64:ro -v /usr/lib:/lib:ro \
    -v "$VMBOX_BUILD/tools":/probe:ro busybox /probe/seccomp_probe run "$@"
}

@test "seccomp: the profile compiles; allowed calls still work under it" {
  run "$PROBE" time
  assert_status 0
  echo "# compile: $output" >&3
  run "$PROBE" compare getpid socket_inet chroot fchmodat2 personality:0 personality:8 \
    personality:0xffffffff clone:0
  assert_status 0
  expect_probe "getpid bare=ok filtered=ok" "socket_inet bare=ok filtered=ok" \
    "chroot bare=ok filtered=ok" "fchmodat2 bare=ENOENT filtered=ENOENT" \
    "personality:0 bare=ok filtered=ok" "personality:8 bare=ok filtered=ok" \
    "personality:0xffffffff bare=ok filtered=ok" "clone:0 bare=ok filtered=ok"
}

@test "seccomp: mounts, swap, reboot, kexec, modules, acct: EPERM from the filter" {
  run "$PROBE" compare mount umount2 pivot_root fsopen swapon swapoff reboot kexec_load \
    init_module acct
  assert_status 0
  expect_probe "mount bare=ENOENT filtered=EPERM" "umount2 bare=ENOENT filtered=EPERM" \
    "pivot_root bare=ENOENT filtered=EPERM" "fsopen bare=ENODEV filtered=EPERM" \
    "swapon bare=ENOENT filtered=EPERM" "swapoff bare=ENOENT filtered=EPERM" \
    "reboot bare=EINVAL filtered=EPERM" "acct bare=ENOENT filtered=EPERM"
  # EINVAL for the bad flags / ENOEXEC for the empty module, or ENOSYS on a
  # kernel built without kexec or modules (as this host's).
  grep -qE '^kexec_load bare=(EINVAL|ENOSYS) filtered=EPERM$' <<<"$output"
  grep -qE '^init_module bare=(ENOEXEC|ENOSYS) filtered=EPERM$' <<<"$output"
}

@test "seccomp: keys, bpf, perf, syslog, clocks, handles, userfaultfd, io_uring: EPERM" {
  run "$PROBE" compare add_key keyctl bpf perf_event_open syslog clock_settime \
    open_by_handle_at userfaultfd io_uring_setup
  assert_status 0
  expect_probe "add_key bare=ok filtered=EPERM" "keyctl bare=ok filtered=EPERM" \
    "bpf bare=EINVAL filtered=EPERM" "perf_event_open bare=EFAULT filtered=EPERM" \
    "syslog bare=ok filtered=EPERM" "clock_settime bare=EINVAL filtered=EPERM" \
    "open_by_handle_at bare=EFAULT filtered=EPERM" "userfaultfd bare=ok filtered=EPERM"
  grep -qE '^io_uring_setup bare=(EFAULT|EINVAL) filtered=EPERM$' <<<"$output"
}

@test "seccomp: no new namespaces: clone/unshare with any ns flag, setns; clone3 ENOSYS" {
  local f probes=() want=()
  # CLONE_NEWNS NEWCGROUP NEWUTS NEWIPC NEWUSER NEWPID NEWNET
  for f in 0x20000 0x2000000 0x4000000 0x8000000 0x10000000 0x20000000 0x40000000; do
    probes+=("clone:$f" "unshare:$f")
    want+=("clone:$f bare=ok filtered=EPERM" "unshare:$f bare=ok filtered=EPERM")
  done
  run "$PROBE" compare "${probes[@]}" setns clone3
  assert_status 0
  expect_probe "${want[@]}" "setns bare=EBADF filtered=EPERM" "clone3 bare=EINVAL filtered=ENOSYS"
}

@test "seccomp: personality only with Docker's values; AF_VSOCK refused" {
  # 0x40000 ADDR_NO_RANDOMIZE, 0x400000 READ_IMPLIES_EXEC, 0x20000 UNAME26
  run "$PROBE" compare personality:0x40000 personality:0x400000 personality:0x20000 \
    personality:0x20008 socket_vsock
  assert_status 0
  expect_probe "personality:0x40000 bare=ok filtered=EPERM" \
    "personality:0x400000 bare=ok filtered=EPERM" "personality:0x20000 bare=ok filtered=ok" \
    "personality:0x20008 bare=ok filtered=ok"
  # vsock: this host has the transport (ok) or not (an address family error)
  grep -qE '^socket_vsock bare=(ok|EAFNOSUPPORT) filtered=EPERM$' <<<"$output"
}

@test "seccomp: unknown numbers EPERM; newer than libseccomp ENOSYS; x32 killed" {
  # 400: no such syscall on x86_64, inside the known range: the default EPERM.
  # 1000: beyond every known syscall: ENOSYS, so libc would fall back.
  run "$PROBE" compare nr:400 nr:1000 x32_getpid
  assert_status 0
  expect_probe "nr:400 bare=ENOSYS filtered=EPERM" "nr:1000 bare=ENOSYS filtered=ENOSYS"
  # x32: this kernel may lack the ABI (ENOSYS); the filter kills either way.
  grep -qE '^x32_getpid bare=(ok|ENOSYS) filtered=SIGSYS$' <<<"$output"
}

@test "seccomp: the filter is on in a box and everyday commands work" {
  run vmbox run --rm busybox sh -c '
    grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status | tr -s "\t " " "
    cd /tmp && echo data >f && cat f && mkdir d && chmod 700 d && chown 65534:65534 f &&
    ln -s f l && readlink l && mv f g && cp g h && rm g && ls && tar czf t.tgz /etc 2>/dev/null &&
    gzip -t t.tgz && sha256sum h | cut -c1-8 && date +%Y >/dev/null && sleep 0.1 &&
    find /etc -name passwd && ps -o pid,comm | grep -c ps && uname -s && nproc >/dev/null &&
    su nobody -s /bin/sh -c "id -u" && chroot / true && echo chroot ok &&
    (nc -l -p 7777 >/tmp/got & sleep 0.3; echo over loopback | nc 127.0.0.1 7777; wait) &&
    cat /tmp/got && linux32 uname -m && echo done'
  assert_status 0
  [ "$output" = "NoNewPrivs: 1
Seccomp: 2
data
f
d
h
l
6667b2d1
/etc/passwd
1
Linux
65534
chroot ok
over loopback
i686
done" ]
}

@test "seccomp: in a box: unshare -U/-n/-m, mount, swapon, reboot -f fail with EPERM" {
  run vmbox run --rm busybox unshare -U true
  [ "$status" -ne 0 ]
  assert_contains "$output" "unshare(0x10000000): Operation not permitted"
  run vmbox run --rm busybox unshare -n true
  [ "$status" -ne 0 ]
  assert_contains "$output" "unshare(0x40000000): Operation not permitted"
  run vmbox run --rm busybox unshare -m true
  [ "$status" -ne 0 ]
  assert_contains "$output" "Operation not permitted"
  run vmbox run --rm busybox sh -c 'mkdir -p /mnt; mount -t tmpfs none /mnt'
  [ "$status" -ne 0 ]
  assert_contains "$output" "mount: permission denied" # busybox's words for EPERM
  run vmbox run --rm busybox sh -c 'dd if=/dev/zero of=/tmp/sw bs=1k count=64 2>/dev/null;
    mkswap /tmp/sw >/dev/null; swapon /tmp/sw'
  [ "$status" -ne 0 ]
  assert_contains "$output" "Operation not permitted"
  # busybox reboot -f calls reboot(2) at once; the box must survive it.
  run vmbox run --rm busybox sh -c 'reboot -f 2>&1; echo "reboot: $?"'
  assert_status 0
  [ "${lines[0]}" = "reboot: (null): Operation not permitted" ] # busybox's words
  [ "${lines[1]}" = "reboot: 1" ]
}

@test "seccomp: in a box: keys, kexec, bad personality, vsock refused; clone3 ENOSYS; ptrace" {
  run box_probe add_key keyctl kexec_load personality:0x40000 personality:8 socket_vsock \
    clone3 clone:0x10000000 clone:0 ptrace_child ptrace_pid1 nr:1000
  assert_status 0
  expect_probe "add_key EPERM" "keyctl EPERM" "kexec_load EPERM" "personality:0x40000 EPERM" \
    "personality:8 ok" "socket_vsock EPERM" "clone3 ENOSYS" "clone:0x10000000 EPERM" \
    "clone:0 ok" "ptrace_child ok" "ptrace_pid1 EPERM" "nr:1000 ENOSYS"
}

@test "seccomp: in a box: an x32 system call kills the process (SIGSYS, 159)" {
  run box_probe x32_getpid
  assert_status 0
  [ "$output" = "x32_getpid SIGSYS" ]
  # The process itself, not just a child of the probe: exit status 159.
  run vmbox run --rm -e ASAN_OPTIONS=detect_leaks=0 -v /usr/lib:/usr/lib:ro \
    -v /lib64:/lib64:ro -v /usr/lib:/lib:ro -v "$VMBOX_BUILD/tools":/probe:ro \
    busybox sh -c '/probe/seccomp_probe run getpid >/dev/null; echo alive;
      exec /probe/seccomp_probe direct x32_getpid'
  assert_status 159
  [ "$output" = alive ]
}

@test "seccomp: vmbox exec gets the same filter" {
  run vmbox run -d --name ex busybox sleep 300
  assert_status 0
  run vmbox exec ex sh -c 'grep -E "^Seccomp:" /proc/self/status | tr -s "\t " " "; unshare -U true'
  [ "$status" -ne 0 ]
  assert_contains "$output" "Seccomp: 2"
  assert_contains "$output" "unshare(0x10000000): Operation not permitted"
  vmbox rm -f ex >/dev/null
}
