#!/usr/bin/env bats
# INNER suite: the kvm backend's vsock channel -- exec into a running kvm
# box, -t with a pty inside the guest, stop, cp, and the channel's
# throughput -- inside the first-level guest of tests/kvm/run-nested.sh.
# tests/kvm_exec.bats relays each test and puts tmux, the guest kernel and
# its modules and a test image into the payload.  Not for the host.

load ../../lib/common

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export VMBOX_ROOT=$BATS_FILE_TMPDIR/root
  export KVM_TIMES=$BATS_FILE_TMPDIR/times
  export TMUX_TMPDIR=$BATS_FILE_TMPDIR LC_ALL=C.UTF-8
}

teardown() {
  tmux -L vmbox kill-server 2>/dev/null || true
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

kvm() {
  local rc=0
  "$VMBOX" run --backend kvm "$@" || rc=$?
  echo "# kvm box ended: $rc" >&3
  return $rc
}

state() { "$VMBOX" inspect "$2" | tr -d ' \n' | sed -nE "s/.*\"$1\":\"?([^,\"}]*).*/\1/p"; }

# A box that runs until stopped (TERM ends it with 42).
daemon() { # NAME
  kvm -d --name "$1" busybox sh -c 'trap "exit 42" TERM; while :; do sleep 0.2; done' >/dev/null
}

ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# tmux pane helpers: wait (bounded) until the pane shows TEXT.
pane() { tmux -L vmbox capture-pane -p -t t; }
pane_wait() { # TEXT [SECONDS]
  local i
  for ((i = 0; i < ${2:-60} * 5; i++)); do
    pane | grep -qF -- "$1" && return 0
    # a TAP comment now and then: the harness kills a run that goes quiet
    ((i % 50 == 49)) && echo "# waiting for the pane to show '$1'" >&3
    sleep 0.2
  done
  echo "pane never showed '$1':"
  pane
  return 1
}

@test "exec into a running box: output, exit codes 0, 3, 126, 127" {
  daemon ex
  run vmbox exec ex echo hello from exec
  assert_status 0
  [ "$output" = "hello from exec" ]
  run vmbox exec ex sh -c 'exit 3'
  assert_status 3
  run vmbox exec ex nosuchcmd
  assert_status 127
  assert_contains "$output" "executable file not found"
  run vmbox exec ex /etc/passwd
  assert_status 126
  run --separate-stderr vmbox exec ex sh -c 'echo out; echo err >&2'
  [ "$output" = out ]
  [ "$stderr" = err ]
  # the main command is untouched by its execs
  [ "$(state status ex)" = running ]
}

@test "exec -e, -w, -u" {
  daemon ew
  run vmbox exec -e FOO=bar -e N=1 ew sh -c 'echo $FOO$N'
  assert_status 0
  [ "$output" = bar1 ]
  run vmbox exec -w /var/new/dir ew pwd
  assert_status 0
  [ "$output" = /var/new/dir ]
  run vmbox exec -u 1000:1000 ew id
  assert_status 0
  assert_contains "$output" "uid=1000"
  assert_contains "$output" "gid=1000"
  run vmbox exec -u nobody ew id -un
  assert_status 0
  [ "$output" = nobody ]
}

@test "10 concurrent execs each get their own output and exit code" {
  daemon par
  local i d=$BATS_TEST_TMPDIR
  for i in $(seq 1 10); do
    (
      rc=0
      vmbox exec par sh -c "echo out$i; sleep 1; exit $i" >"$d/o$i" 2>&1 || rc=$?
      echo $rc >"$d/r$i"
    ) &
  done
  wait
  for i in $(seq 1 10); do
    [ "$(cat "$d/o$i")" = "out$i" ] || { echo "exec $i said: $(cat "$d/o$i")"; return 1; }
    [ "$(cat "$d/r$i")" = "$i" ]
  done
}

@test "exec -i: stdin round trip, 8-bit clean, EOF reaches the process" {
  daemon in
  head -c 200000 /dev/urandom >"$BATS_TEST_TMPDIR/in"
  local want
  want=$(sha256sum <"$BATS_TEST_TMPDIR/in" | cut -d' ' -f1)
  run vmbox exec -i in sha256sum <"$BATS_TEST_TMPDIR/in"
  assert_status 0
  [ "${output%% *}" = "$want" ]
  run vmbox exec -i in sh -c 'cat >/tmp/got; wc -c </tmp/got' <"$BATS_TEST_TMPDIR/in"
  [ "$output" = 200000 ]
}

@test "a signal to an exec's pump process reaches the exec'd process" {
  daemon sig
  vmbox exec sig sh -c 'trap "echo got TERM; exit 9" TERM; while :; do sleep 0.2; done' \
    >"$BATS_TEST_TMPDIR/out" &
  local pid=$! i
  sleep 3
  # the exec's pump process (in the monitor's tree) forwards what it gets
  local p c n=0
  for p in /proc/[0-9]*; do
    c=$(cat "$p/comm" 2>/dev/null) || continue
    if [ "$c" = vmbox-exec ]; then
      kill -TERM "${p#/proc/}"
      n=$((n + 1))
    fi
  done
  [ "$n" -ge 1 ] || { grep -H . /proc/[0-9]*/comm 2>/dev/null | grep -i vmbox; return 1; }
  for ((i = 0; i < 150; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
  run wait $pid
  assert_status 9
  assert_contains "$(cat "$BATS_TEST_TMPDIR/out")" "got TERM"
}

@test "run -it: a pty in the guest, its size follows, Ctrl-C ends the command with 130" {
  local rc=$BATS_TEST_TMPDIR/rc
  tmux -u -L vmbox new-session -d -s t -x 80 -y 24 \
    "$VMBOX run -it --backend kvm --name tty busybox sh; echo rc=\$? >$rc; sleep 600"
  pane_wait "/ #" 120
  tmux -L vmbox send-keys -t t 'tty; stty size' Enter
  pane_wait "/dev/pts/"
  pane_wait "24 80"
  tmux -L vmbox resize-window -t t -x 100 -y 30
  sleep 1
  tmux -L vmbox send-keys -t t 'clear; stty size' Enter
  pane_wait "30 100"
  tmux -L vmbox send-keys -t t 'exec sleep 600' Enter
  sleep 2
  tmux -L vmbox send-keys -t t C-c
  local i
  for ((i = 0; i < 300; i++)); do [ -s "$rc" ] && break; sleep 0.2; done
  [ "$(cat "$rc" 2>/dev/null)" = rc=130 ] || { pane; return 1; }
}

@test "exec -t and -it: a pty in the guest; Ctrl-C reaches the process" {
  daemon et
  run script -qec "$VMBOX exec -t et sh -c 'tty; stty size'" /dev/null
  assert_status 0
  assert_contains "$output" "/dev/pts/"
  local rc=$BATS_TEST_TMPDIR/rc
  tmux -u -L vmbox new-session -d -s t -x 90 -y 20 \
    "$VMBOX exec -it et sh; echo rc=\$? >$rc; sleep 600"
  pane_wait "#" 60
  tmux -L vmbox send-keys -t t 'stty size' Enter
  pane_wait "20 90"
  tmux -L vmbox send-keys -t t 'exec sleep 600' Enter
  sleep 2
  tmux -L vmbox send-keys -t t C-c
  local i
  for ((i = 0; i < 300; i++)); do [ -s "$rc" ] && break; sleep 0.2; done
  [ "$(cat "$rc" 2>/dev/null)" = rc=130 ] || { pane; return 1; }
}

@test "stop: the command handles TERM, the guest syncs and powers off cleanly" {
  kvm -d --name st busybox sh -c 'trap "echo bye >/data; sync; exit 42" TERM; while :; do sleep 0.2; done' >/dev/null
  local t0
  t0=$(ms)
  run vmbox stop -t 60 st
  assert_status 0
  echo "stop_clean_ms=$(($(ms) - t0))" >>"$KVM_TIMES"
  # the command's own code: TERM reached it, nothing was killed
  [ "$(state exit_code st)" = 42 ]
  [ "$(state oom_killed st)" = false ]
  [ $(($(ms) - t0)) -lt 60000 ]
  local d
  d=$VMBOX_ROOT/boxes/$("$VMBOX" inspect st | tr -d ' \n' | sed -nE 's/.*"id":"([0-9a-f]{64})".*/\1/p')/kvm
  ! grep -q "Kernel panic" "$d/console.log"
}

@test "stop escalates: a command that ignores TERM is killed after -t" {
  kvm -d --name deaf busybox sh -c 'trap "" TERM; while :; do sleep 0.2; done' >/dev/null
  local t0 took
  t0=$(ms)
  run vmbox stop -t 3 deaf
  assert_status 0
  took=$(($(ms) - t0))
  [ "$(state exit_code deaf)" = 137 ]
  [ "$took" -ge 3000 ] && [ "$took" -lt 60000 ]
}

@test "an exec'd process ends with its box (137), and exec into a stopped box is a clear error" {
  daemon gone
  vmbox exec gone sleep 600 &
  local pid=$!
  sleep 3
  vmbox kill gone
  local i
  for ((i = 0; i < 150; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.2; done
  run wait $pid
  assert_status 137
  run vmbox exec gone true
  [ "$status" -ne 0 ]
  assert_contains "$output" "not running"
}

@test "cp into and out of a running box, files and directories" {
  daemon cp
  local d=$BATS_TEST_TMPDIR
  mkdir -p "$d/tree/sub"
  head -c 300000 /dev/urandom >"$d/tree/sub/blob"
  echo hello >"$d/tree/note"
  ln -s note "$d/tree/link"
  run vmbox cp "$d/tree" cp:/srv
  assert_status 0
  run vmbox exec cp sh -c 'cat /srv/note; readlink /srv/link; sha256sum /srv/sub/blob'
  assert_status 0
  assert_contains "$output" hello
  assert_contains "$output" "$(sha256sum <"$d/tree/sub/blob" | cut -d' ' -f1)"
  run vmbox cp "$d/tree/note" cp:/etc/renamed
  assert_status 0
  run vmbox exec cp cat /etc/renamed
  [ "$output" = hello ]
  # and back out
  run vmbox cp cp:/srv "$d/back"
  assert_status 0
  cmp "$d/tree/sub/blob" "$d/back/sub/blob"
  [ "$(readlink "$d/back/link")" = note ]
  run vmbox cp cp:/etc/passwd "$d/host.txt"
  assert_status 0
  [ -s "$d/host.txt" ]
  # a tar stream out, and a missing path is a clear error
  vmbox cp cp:/srv - | tar -tf - | grep -q '^srv/sub/blob$'
  run vmbox cp cp:/nonexistent "$d/x"
  [ "$status" -ne 0 ]
  assert_contains "$output" "/nonexistent"
}

@test "1 MiB of stdout through exec and run, sha256 intact; throughput" {
  daemon big
  vmbox exec big sh -c 'head -c 1048576 /dev/urandom >/tmp/blob'
  local want got t0 t1 t2
  want=$(vmbox exec big sha256sum /tmp/blob | cut -d' ' -f1)
  t0=$(ms)
  vmbox exec big true
  t1=$(ms)
  got=$(vmbox exec big cat /tmp/blob | sha256sum | cut -d' ' -f1)
  t2=$(ms)
  [ "$got" = "$want" ]
  local net=$((t2 - t1 - (t1 - t0)))
  [ "$net" -gt 0 ] || net=1
  echo "exec_1MiB_ms=$((t2 - t1)) exec_true_ms=$((t1 - t0)) exec_KBps=$((1024 * 1000 / net))" >>"$KVM_TIMES"
  # the main command's channel too
  t0=$(ms)
  got=$(kvm --rm busybox sh -c 'head -c 1048576 /dev/zero' | sha256sum | cut -d' ' -f1)
  t1=$(ms)
  [ "$got" = "$(head -c 1048576 /dev/zero | sha256sum | cut -d' ' -f1)" ]
  echo "run_1MiB_zero_ms=$((t1 - t0))" >>"$KVM_TIMES"
}

@test "timings (exec, stop, 1 MiB)" {
  [ -s "$KVM_TIMES" ]
  while read -r l; do echo "# kvm-timing: $l" >&3; done <"$KVM_TIMES"
}
