#!/usr/bin/env bats
# vmbox run and the box life cycle (ps, logs, wait, stop, kill, rm, inspect)
# on the ns backend with the builtin busybox (no network).  Needs root, loop
# devices, overlayfs and cgroups, as tests/ns.bats.

VMBOX_SETUP_ROOT=1
load lib/common

# Every box a test left running dies with the test.
teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

no_cgroups_left() { # ID-PREFIX
  local d
  for d in /sys/fs/cgroup/*/vmbox/"$1"* /sys/fs/cgroup/vmbox/"$1"*; do
    [ ! -e "$d" ] || { echo "left behind: $d"; return 1; }
  done
}

# state FIELD BOX -> prints .state.FIELD of vmbox inspect
state() { "$VMBOX" inspect "$2" | jq -r ".[0].state.$1"; }

@test "run: echo; the builtin busybox imports itself" {
  run vmbox run --rm busybox echo hello from vmbox
  assert_status 0
  [ "$output" = "hello from vmbox" ]
  run vmbox images
  assert_contains "$output" busybox
  # a relative --root works although the monitor runs in /
  cd "$BATS_TEST_TMPDIR"
  run vmbox --root relroot run --rm busybox echo relative
  assert_status 0
  [ "$output" = relative ]
  run vmbox --root relroot run -d --name r busybox true
  assert_status 0
  run vmbox --root relroot wait r
  [ "$output" = 0 ]
  run vmbox --root relroot rm r
  assert_status 0
}

@test "run: exit codes: the command's, 126 cannot run, 127 not found" {
  run vmbox run --rm busybox sh -c 'exit 3'
  assert_status 3
  run vmbox run --rm busybox /etc/passwd
  assert_status 126
  assert_contains "$output" "Permission denied"
  run -127 vmbox run --rm busybox no-such-command
  assert_status 127
  assert_contains "$output" "no-such-command: executable file not found"
  run vmbox run --rm busybox sh -c 'kill -TERM $$'
  assert_status 143
}

@test "run: --memory: an OOM kill exits 137 and inspect says oom_killed" {
  run vmbox run --name hog --memory 32m busybox sh -c 'x=$(head -c 200000000 /dev/zero | tr "\0" a); echo survived'
  assert_status 137
  refute_contains "$output" survived
  [ "$(state oom_killed hog)" = true ]
  [ "$(state exit_code hog)" = 137 ]
}

@test "run: -e, --env-file, -w, -u, --hostname, --entrypoint" {
  printf '# comment\nFROMFILE=yes\n\nOTHER=1\n' >"$BATS_TEST_TMPDIR/env"
  export PASSED=through
  run vmbox run --rm -e FOO=bar -e PASSED --env-file "$BATS_TEST_TMPDIR/env" -w /tmp/wd \
    -u 1000:1001 --hostname boxhost busybox sh -c 'echo $FOO $PASSED $FROMFILE; pwd; id -u; id -g; hostname'
  assert_status 0
  [ "$output" = "bar through yes
/tmp/wd
1000
1001
boxhost" ]
  run vmbox run --rm --entrypoint /bin/echo busybox via entrypoint
  assert_status 0
  [ "$output" = "via entrypoint" ]
  run vmbox run --rm -u root busybox id -u
  [ "$output" = 0 ]
  # a bare uid takes its passwd line's gid, else 0 (Docker)
  run vmbox run --rm -u 65534 busybox sh -c 'id -u; id -g'
  [ "$output" = "65534
65534" ]
  run vmbox run --rm -u 1234 busybox sh -c 'id -u; id -g'
  [ "$output" = "1234
0" ]
}

@test "run: Env, Entrypoint, Cmd, WorkingDir and User come from the image config" {
  vmbox import -q "$(image_busybox)" cfgbox >/dev/null
  run vmbox run --rm cfgbox
  assert_status 0
  [ "$output" = hello ]
  run vmbox run --rm cfgbox 'echo "$SPACED"; pwd; id -u; id -g'
  assert_status 0
  [ "$output" = "a b  c
/srv/app
1000
1000" ]
  # user and group names come from the image's /etc/passwd and /etc/group
  run vmbox run --rm -u app cfgbox 'id -u; id -g'
  [ "$output" = "1000
1000" ]
  run vmbox run --rm -u nobody:app cfgbox 'id -u; id -g'
  [ "$output" = "65534
1000" ]
  # flags override the image
  run vmbox run --rm -e GREETING=bye -u 0:0 -w / cfgbox 'echo $GREETING; pwd; id -u'
  [ "$output" = "bye
/
0" ]
}

@test "run: -i passes stdin; without it the box reads /dev/null" {
  run bash -c 'echo from stdin | "$VMBOX" run --rm -i busybox cat'
  assert_status 0
  [ "$output" = "from stdin" ]
  run bash -c 'echo from stdin | "$VMBOX" run --rm busybox cat'
  assert_status 0
  [ "$output" = "" ]
}

@test "run: signals to a foreground vmbox run reach the box" {
  "$VMBOX" run --name fg busybox sh -c 'trap "echo got TERM; exit 9" TERM; while true; do sleep 0.1; done' \
    >"$BATS_TEST_TMPDIR/out" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    [ "$("$VMBOX" inspect fg 2>/dev/null | jq -r '.[0].state.status')" = running ] && break
    sleep 0.1
  done
  sleep 0.3 # the trap is set once sh runs
  kill -TERM "$pid"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 9 ]
  [ "$(cat "$BATS_TEST_TMPDIR/out")" = "got TERM" ]
}

@test "run -t: the box gets a pty; -it on a terminal passes keys" {
  run vmbox run --rm -t busybox sh -c 'tty; echo err >&2; exit 4'
  assert_status 4
  assert_contains "$output" "/dev/pts/0"
  assert_contains "$output" "err"
  run timeout 60 script -qec "'$VMBOX' run --rm -it busybox sh -c 'test -t 0 && echo interactive tty; read x; echo got \$x'" /dev/null <<<"hello"
  assert_status 0
  assert_contains "$output" "interactive tty"
  assert_contains "$output" "got hello"
}

@test "run: --cpus and --pids-limit are applied; inspect records the limits" {
  run vmbox run --name lim --cpus 0.5 --pids-limit 8 --memory 64m busybox sh -c 'for i in 1 2 3 4 5 6 7 8 9 10; do sleep 2 & done; wait'
  [ "$status" -ne 0 ]
  assert_contains "$output" "can't fork"
  run vmbox inspect lim
  [ "$(jq -r '.[0].config.limits.cpu_millis' <<<"$output")" = 500 ]
  [ "$(jq -r '.[0].config.limits.pids' <<<"$output")" = 8 ]
  [ "$(jq -r '.[0].config.limits.memory' <<<"$output")" = 67108864 ]
  run vmbox run --rm --cpus 1.5 --pids-limit 100 busybox echo fine
  assert_status 0
  [ "$output" = fine ]
}

@test "run: -v, --tmpfs and --read-only" {
  mkdir -p "$BATS_TEST_TMPDIR/data"
  echo on the host >"$BATS_TEST_TMPDIR/data/f"
  run vmbox run --rm -v "$BATS_TEST_TMPDIR/data:/data" busybox sh -c 'cat /data/f; echo new >/data/g'
  assert_status 0
  [ "$output" = "on the host" ]
  [ "$(cat "$BATS_TEST_TMPDIR/data/g")" = new ]
  run vmbox run --rm -v "$BATS_TEST_TMPDIR/data:/data:ro" busybox sh -c 'echo x >/data/h'
  [ "$status" -ne 0 ]
  [ ! -e "$BATS_TEST_TMPDIR/data/h" ]
  run vmbox run --rm --read-only --tmpfs /scratch busybox sh -c 'echo ok >/scratch/a && cat /scratch/a; echo x >/etc/x'
  [ "$status" -ne 0 ]
  assert_contains "$output" ok
  assert_contains "$output" "Read-only file system"
}

@test "run: --rm leaves no box dir, cgroup or loop device" {
  run vmbox run --rm busybox hostname
  assert_status 0
  local short=$output
  [ ${#short} -eq 12 ]
  [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
  no_cgroups_left "$short"
  # The image's one loop device is the mount vmbox keeps (next test).
  local disk
  for disk in "$VMBOX_ROOT"/ext4/*.ext4; do
    [ "$(losetup -j "$disk" | wc -l)" -le 1 ] || { losetup -j "$disk"; false; }
  done
  # Its files went to trash/ before the answer, and are emptied after it.
  local i
  for i in $(seq 50); do
    [ -n "$(ls -A "$VMBOX_ROOT/trash" 2>/dev/null)" ] || break
    sleep 0.1
  done
  [ -z "$(ls -A "$VMBOX_ROOT/trash" 2>/dev/null)" ]
  run vmbox ps -aq
  [ "$output" = "" ]
}

@test "run: the image is mounted once, in vmbox's own mount namespace, until rmi" {
  vmbox run --rm busybox true
  local disk key
  disk=$(ls "$VMBOX_ROOT"/ext4/*.ext4 | head -1)
  key=$(stat -c '%d-%i' "$disk")
  # Not in the host's mount table; in the image namespace, read-only.
  ! grep -q "/run/vmbox/img/$key" /proc/self/mountinfo
  run nsenter --mount=/run/vmbox/ns/img grep " /run/vmbox/img/$key " /proc/self/mountinfo
  assert_status 0
  assert_contains "$output" " ro,"
  # Two boxes later, still one mount and one loop device for the image.
  vmbox run --rm busybox true
  vmbox run --rm busybox true
  [ "$(nsenter --mount=/run/vmbox/ns/img grep -c " /run/vmbox/img/$key " /proc/self/mountinfo)" = 1 ]
  [ "$(losetup -j "$disk" | wc -l)" = 1 ]
  # A running box and the mount share the superblock: the box sees the image.
  run vmbox run --rm busybox cat /etc/passwd
  assert_status 0
  assert_contains "$output" "root:"
  # rmi unmounts it: no loop device left on the deleted file.
  run vmbox rmi busybox
  assert_status 0
  run nsenter --mount=/run/vmbox/ns/img grep -c " /run/vmbox/img/$key " /proc/self/mountinfo
  [ "$output" = 0 ]
  ! losetup -l -n -O BACK-FILE | grep -qF "$disk"
}

@test "run -d: ps, logs (stdout and stderr apart, --tail), wait, rm" {
  run vmbox run -d --name bg busybox sh -c 'echo one; echo two >&2; sleep 0.3; echo three; sleep 1; exit 4'
  assert_status 0
  local id=$output
  [[ $id =~ ^[0-9a-f]{64}$ ]]
  run vmbox ps
  assert_contains "$output" "CONTAINER ID"
  assert_contains "$output" "${id:0:12}"
  assert_contains "$output" "Up "
  assert_contains "$output" " bg"
  run vmbox wait bg
  assert_status 0
  [ "$output" = 4 ]
  run vmbox ps
  refute_contains "$output" "${id:0:12}"
  run vmbox ps -a
  assert_contains "$output" "Exited (4) "
  run --separate-stderr vmbox logs bg
  assert_status 0
  [ "$output" = "one
three" ]
  [ "$stderr" = two ]
  run vmbox logs --tail 1 bg
  [ "$output" = three ]
  run vmbox ps -a --format json
  [ "$(jq -r '.[0].name' <<<"$output")" = bg ]
  [ "$(jq -r '.[0].state.status' <<<"$output")" = exited ]
  run vmbox rm bg
  assert_status 0
  [ ! -e "$VMBOX_ROOT/boxes/$id" ]
  run vmbox ps -aq
  [ "$output" = "" ]
}

@test "logs -f follows until the box ends" {
  vmbox run -d --name f busybox sh -c 'for i in 1 2 3; do echo $i; sleep 0.3; done' >/dev/null
  run timeout 20 "$VMBOX" logs -f f
  assert_status 0
  [ "$output" = "1
2
3" ]
}

@test "stop: TERM first; a box that ignores it is killed after -t" {
  vmbox run -d --name polite busybox sh -c 'trap "exit 7" TERM; while true; do sleep 0.1; done' >/dev/null
  vmbox run -d --name stubborn busybox sh -c 'trap "" TERM; while true; do sleep 0.1; done' >/dev/null
  sleep 0.5
  run vmbox stop polite
  assert_status 0
  [ "$output" = polite ]
  [ "$(state exit_code polite)" = 7 ]
  local t0=$SECONDS
  run vmbox stop -t 1 stubborn
  assert_status 0
  [ $((SECONDS - t0)) -le 8 ]
  [ "$(state exit_code stubborn)" = 137 ]
  run vmbox rm polite stubborn
  assert_status 0
}

@test "kill: -s delivers the signal; default KILL" {
  vmbox run -d --name k1 busybox sh -c 'trap "exit 9" USR1; while true; do sleep 0.1; done' >/dev/null
  vmbox run -d --name k2 busybox sleep 100 >/dev/null
  sleep 0.5
  run vmbox kill -s USR1 k1
  assert_status 0
  run vmbox wait k1
  [ "$output" = 9 ]
  run vmbox kill k2
  assert_status 0
  run vmbox wait k2
  [ "$output" = 137 ]
  run vmbox kill k2
  assert_status 1
  assert_contains "$output" "is not running"
  run vmbox kill -s NOSUCHSIG k2
  assert_status 125
  assert_contains "$output" "invalid signal"
}

@test "exec: runs in the box with its env, cwd and user; flags override; exit codes" {
  vmbox run -d --name ex -e A=1 -w /tmp/wd -u 1000:1000 busybox sleep 100 >/dev/null
  run vmbox exec ex sh -c 'echo $A; pwd; id -u; exit 5'
  assert_status 5
  [ "$output" = "1
/tmp/wd
1000" ]
  run vmbox exec -e A=2 -w / -u 0:0 ex sh -c 'echo $A; pwd; id -u'
  assert_status 0
  [ "$output" = "2
/
0" ]
  run bash -c 'echo piped | "$VMBOX" exec -i ex cat'
  [ "$output" = piped ]
  run -127 vmbox exec ex no-such-command
  assert_status 127
  assert_contains "$output" "executable file not found"
  # the exec'd process shares the box: it sees the box's command as a sibling
  run vmbox exec ex sh -c 'ps | grep -c "sleep 100"'
  [ "$output" -ge 1 ]
  run vmbox exec -t ex sh -c 'tty; exit 3'
  assert_status 3
  assert_contains "$output" "/dev/pts/"
  run timeout 60 script -qec "'$VMBOX' exec -it ex sh -c 'test -t 0 && echo interactive tty; read x; echo got \$x'" /dev/null <<<"hello"
  assert_status 0
  assert_contains "$output" "interactive tty"
  assert_contains "$output" "got hello"
  vmbox kill ex >/dev/null
  vmbox wait ex >/dev/null
  run vmbox exec ex true
  assert_status 125
  assert_contains "$output" "is not running"
}

@test "names are unique; boxes are found by name, id and unique id prefix" {
  run vmbox run --name same busybox true
  assert_status 0
  run vmbox run --name same busybox true
  assert_status 125
  assert_contains "$output" 'the name "same" is already in use'
  run vmbox run --name 'bad name' busybox true
  assert_status 125
  assert_contains "$output" "invalid box name"
  local id
  id=$(vmbox inspect same | jq -r '.[0].id')
  run vmbox inspect "${id:0:5}"
  assert_status 0
  [ "$(jq -r '.[0].name' <<<"$output")" = same ]
  run vmbox inspect "$id"
  assert_status 0
  run vmbox run -d busybox true
  local auto
  auto=$(vmbox inspect "$output" | jq -r '.[0].name')
  [[ $auto =~ ^[a-z]+_[a-z]+$ ]]
  run vmbox rm no-such-box
  assert_status 1
  assert_contains "$output" "No such box: no-such-box"
  run vmbox rm same
  assert_status 0
  run vmbox run --rm --name same busybox true
  assert_status 0
}

@test "run --timeout: killed after the time, 137, timed_out" {
  local t0=$SECONDS
  run vmbox run --name slow --timeout 1 busybox sleep 30
  assert_status 137
  [ $((SECONDS - t0)) -le 10 ]
  [ "$(state timed_out slow)" = true ]
}

@test "kill -9 of the monitor: the box is marked exited, reason monitor died" {
  run vmbox run -d --name orphan busybox sleep 100
  local id=$output pid
  pid=$(jq -r .monitor_pid "$VMBOX_ROOT/boxes/$id/state.json")
  [ "$pid" -gt 1 ]
  kill -9 "$pid"
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  run vmbox ps -a
  assert_contains "$output" "Exited (137)"
  [ "$(state reason orphan)" = "monitor died" ]
  no_cgroups_left "$id"
  run vmbox rm orphan
  assert_status 0
}

@test "50 concurrent runs all succeed and ps -a agrees" {
  local i pids=()
  for i in $(seq 1 50); do
    "$VMBOX" run --name "c$i" busybox echo "box $i" >"$BATS_TEST_TMPDIR/out.$i" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 1 50); do
    wait "${pids[$((i - 1))]}" || { cat "$BATS_TEST_TMPDIR/out.$i"; false; }
    [ "$(cat "$BATS_TEST_TMPDIR/out.$i")" = "box $i" ]
  done
  run vmbox ps -a --format json
  [ "$(jq length <<<"$output")" = 50 ]
  [ "$(jq '[.[] | select(.state.status == "exited" and .state.exit_code == 0)] | length' <<<"$output")" = 50 ]
  [ "$(jq -r '.[].name' <<<"$output" | sort -u | wc -l)" = 50 ]
}

@test "run: bad flags and images exit 125 with a clear message" {
  run vmbox run
  assert_status 125
  assert_contains "$output" "requires at least 1 argument"
  run vmbox run --no-such-flag busybox true
  assert_status 125
  run vmbox run --memory lots busybox true
  assert_status 125
  assert_contains "$output" "invalid size lots"
  if [ ! -e /dev/kvm ]; then # with /dev/kvm, tests/kvm/inner/ covers it
    # the VMM fails at start, as a missing command does: the box stays
    # (Exited (125)) unless --rm
    run vmbox run --rm --backend kvm busybox true
    assert_status 125
    assert_contains "$output" "cannot open /dev/kvm"
    assert_contains "$output" "load kvm-intel or kvm-amd"
  fi
  run vmbox run --backend sentry busybox true
  assert_status 125
  run vmbox run --net bridge busybox true
  assert_status 125
  assert_contains "$output" "--net bridge is not supported yet: use --net none, or --net tap:IFNAME"
  run vmbox run -u ghost busybox true
  assert_status 125
  assert_contains "$output" "unable to find user ghost: no matching entries in /etc/passwd"
  run vmbox run -u root:ghost busybox true
  assert_status 125
  assert_contains "$output" "unable to find group ghost"
  run vmbox run -v relative:/x busybox true
  assert_status 125
  assert_contains "$output" "invalid volume"
  run vmbox run --cpus -1 busybox true
  assert_status 125
  # a missing image is pulled (tests/lifecycle.bats); from loopback only here
  run vmbox run 127.0.0.1:1/no-such-image-here true
  assert_status 125
  assert_contains "$output" "Unable to find image '127.0.0.1:1/no-such-image-here' locally"
  assert_contains "$output" "unreachable"
  run vmbox run --pull never no-such-image-here true
  assert_status 125
  assert_contains "$output" "No such image: no-such-image-here"
  run vmbox run -w relative busybox true
  assert_status 125
  # flags after IMAGE belong to the command
  run vmbox run --rm busybox echo -t --rm
  assert_status 0
  [ "$output" = "-t --rm" ]
  run vmbox ps -aq
  [ "$output" = "" ]
}
