#!/usr/bin/env bats
# Rootless boxes: the ns backend run by an unprivileged user, in a user
# namespace, on the image unpacked once beside its ext4 (no loop mount).
# RL_USER has no /etc/subuid range: the single-uid map (the user is root in
# the box, nothing else is mapped).  RS_USER has a range: ids 1..65536 of
# the box map there through newuidmap/newgidmap (package uidmap).
#
# The suite runs as root (to make the throwaway users) and runs vmbox as
# them, with stores in their homes.  The binary is copied next to the homes
# so the users can reach it whatever the permissions of the checkout.

load lib/common

setup_file() {
  RL_BASE=$(mktemp -d /tmp/vmbox-rootless.XXXXXX)
  chmod 755 "$RL_BASE"
  export RL_BASE RL_USER=vmbt$$ RS_USER=vmbs$$ RL_VMBOX=$RL_BASE/bin/vmbox
  mkdir -p "$RL_BASE/bin"
  install -m 755 "$VMBOX" "$RL_VMBOX"
  # No automatic subordinate ranges: each user gets exactly what we say.
  local u
  for u in "$RL_USER" "$RS_USER"; do
    useradd -M -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 -d "$RL_BASE/$u" -s /bin/sh "$u"
    mkdir -p "$RL_BASE/$u"
    chown "$u:" "$RL_BASE/$u"
  done
  # A range of our own, far from useradd's: 2^20 + 64k * (pid mod 1000).
  local base=$((1048576 + 65536 * ($$ % 1000)))
  export RS_RANGE=$base
  usermod --add-subuids "$base-$((base + 65535))" --add-subgids "$base-$((base + 65535))" "$RS_USER"
  registry_start
  push_layout "$(image_busybox)" latest "$REGISTRY/busybox:latest"
}

teardown_file() {
  registry_stop_all
  userdel -f "$RL_USER" 2>/dev/null || true
  userdel -f "$RS_USER" 2>/dev/null || true
  rm -rf "$RL_BASE"
}

# Every test gets fresh stores; boxes a test left running die with it.
setup() {
  rm -rf "$RL_BASE/$RL_USER/.local" "$RL_BASE/$RS_USER/.local"
  AS=$RL_USER
}

teardown() {
  local s u
  for u in "$RL_USER" "$RS_USER"; do
    for s in "$RL_BASE/$u"/.local/share/vmbox/boxes/*/state.json; do
      [ -f "$s" ] || continue
      AS=$u uvmbox rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
    done
  done
}

# as_user CMD...: CMD as user $AS, with a login-like environment.
as_user() {
  local home=$RL_BASE/$AS
  (cd "$home" && runuser -u "$AS" -- env -i HOME="$home" PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" NO_COLOR=1 "$@")
}
uvmbox() { as_user "$RL_VMBOX" "$@"; }

store() { echo "$RL_BASE/$AS/.local/share/vmbox"; }
home_dir() { echo "$RL_BASE/$AS"; }

# An image with files of other owners, a hardlink, a fifo and a device node,
# imported by $AS as "owners".
import_owners_image() {
  local r=$BATS_TEST_TMPDIR/owners
  mkdir -p "$r/bin" "$r/home/u" "$r/etc" "$r/tmp"
  cp /bin/busybox "$r/bin/busybox"
  local c
  for c in sh id ls cat echo stat touch mkdir chmod sleep test; do ln -s busybox "$r/bin/$c"; done
  echo secret >"$r/home/u/f"
  ln "$r/home/u/f" "$r/home/u/g"
  chown -R 1000:1000 "$r/home/u"
  chmod 700 "$r/home/u"
  chmod 600 "$r/home/u/f"
  chmod 1777 "$r/tmp"
  mkfifo "$r/home/pipe"
  mknod "$r/home/dev0" c 1 11
  printf 'root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n' >"$r/etc/passwd"
  tar -C "$r" --numeric-owner -cf "$RL_BASE/owners.tar" .
  chmod 644 "$RL_BASE/owners.tar"
  as_user "$RL_VMBOX" import -q "$RL_BASE/owners.tar" owners
}

@test "rootless: run --rm echo works as a plain user; the store is in the user's home" {
  [ "$(id -u "$RL_USER")" -ne 0 ]
  run uvmbox run --rm busybox echo hi
  assert_status 0
  [ "$output" = hi ]
  local s
  s=$(store)
  [ -f "$s/images.json" ]
  [ "$(stat -c %U "$s/images.json")" = "$RL_USER" ]
  ls "$s"/ext4/*.ext4
  # the image, unpacked once, beside its ext4, owned by the user
  local tree
  tree=$(echo "$s"/ext4/*.rootfs)
  [ -x "$tree/bin/busybox" ]
  [ "$(stat -c %U "$tree/bin/busybox")" = "$RL_USER" ]
  # --root still wins
  run uvmbox --root "$(home_dir)/other" run --rm busybox echo there
  assert_status 0
  [ "$output" = there ]
  [ -f "$(home_dir)/other/images.json" ]
}

@test "rootless: root in the box is the user outside; nothing else is mapped" {
  run uvmbox run --rm busybox sh -c 'id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map'
  assert_status 0
  local uid gid
  uid=$(id -u "$RL_USER")
  gid=$(id -g "$RL_USER")
  [ "$(echo "$output" | sed -n 1p)" = 0 ]
  [ "$(echo "$output" | sed -n 2p)" = 0 ]
  [ "$(echo "$output" | sed -n 3p | tr -s ' ' | sed 's/^ //')" = "0 $uid 1" ]
  [ "$(echo "$output" | sed -n 4p | tr -s ' ' | sed 's/^ //')" = "0 $gid 1" ]
  # a process of the box runs as the user on the host
  run uvmbox run -d --name sleeper busybox sleep 30
  assert_status 0
  local pids
  pids=$(pgrep -u "$RL_USER" -x sleep)
  [ -n "$pids" ]
  [ -z "$(pgrep -u 0 -x sleep | grep -Fx "$pids" || true)" ]
  # other ids are not mapped: the error says so and what to do
  run uvmbox run --rm -u 1000 busybox id
  assert_status 125
  assert_contains "$output" "setuid 1000"
  assert_contains "$output" "rootless box maps only user 0"
}

@test "rootless: a file written in the box stays in the box" {
  run uvmbox run --name w busybox sh -c 'echo data >/root/f; echo more >/bin/new; cat /root/f'
  assert_status 0
  [ "$output" = data ]
  local tree
  tree=$(echo "$(store)"/ext4/*.rootfs)
  [ ! -e "$tree/root/f" ]
  [ ! -e "$tree/bin/new" ]
  run uvmbox run --rm busybox sh -c 'cat /root/f'
  [ "$status" -ne 0 ]
  local id
  id=$(uvmbox inspect w | jq -r '.[0].id')
  [ -d "$(store)/boxes/$id" ]
  run uvmbox rm w
  assert_status 0
  [ ! -e "$(store)/boxes/$id" ]
}

@test "rootless: --read-only, --tmpfs and -v of the user's own dir" {
  run uvmbox run --rm --read-only --tmpfs /scratch busybox \
    sh -c 'echo ok >/scratch/a && cat /scratch/a; echo x >/etc/x'
  [ "$status" -ne 0 ]
  assert_contains "$output" ok
  assert_contains "$output" "Read-only file system"
  as_user mkdir -p "$(home_dir)/data"
  run uvmbox run --rm -v "$(home_dir)/data:/data" busybox sh -c 'echo new >/data/g'
  assert_status 0
  [ "$(cat "$(home_dir)/data/g")" = new ]
  [ "$(stat -c %U "$(home_dir)/data/g")" = "$RL_USER" ]
}

@test "rootless: exit codes: the command's, 126, 127, 128+N" {
  run uvmbox run --rm busybox sh -c 'exit 3'
  assert_status 3
  run -127 uvmbox run --rm busybox no-such-command
  assert_status 127
  assert_contains "$output" "no-such-command: executable file not found"
  run uvmbox run --rm busybox /etc/passwd
  assert_status 126
  run uvmbox run --rm busybox sh -c 'kill -TERM $$'
  assert_status 143
}

@test "rootless: run -d, ps, logs, exec, stop, rm" {
  run uvmbox run -d --name bg busybox sh -c 'echo one; echo two >&2; trap "exit 7" TERM; while :; do sleep 0.1; done'
  assert_status 0
  run uvmbox ps
  assert_contains "$output" bg
  local i
  for i in $(seq 50); do
    [ "$(uvmbox logs bg 2>/dev/null)" = one ] && break
    sleep 0.1
  done
  run --separate-stderr uvmbox logs bg
  [ "$output" = one ]
  [ "$stderr" = two ]
  run uvmbox exec bg sh -c 'id -u; hostname; cat /proc/1/cmdline'
  assert_status 0
  [ "$(echo "$output" | sed -n 1p)" = 0 ]
  assert_contains "$output" vmbox-init
  run uvmbox exec bg sh -c 'exit 5'
  assert_status 5
  run uvmbox stop -t 5 bg
  assert_status 0
  run uvmbox wait bg
  [ "$output" = 7 ]
  run uvmbox ps -a
  assert_contains "$output" "Exited (7)"
  run uvmbox rm bg
  assert_status 0
  run uvmbox ps -aq
  [ "$output" = "" ]
}

@test "rootless: limits need a cgroup: a clear error, no box left" {
  local flag
  for flag in "--memory 64m" "--cpus 1" "--pids-limit 10"; do
    # shellcheck disable=SC2086
    run uvmbox run --rm $flag busybox true
    assert_status 125
    assert_contains "$output" "${flag%% *} needs a cgroup, and rootless boxes run without one"
    assert_contains "$output" "run vmbox as root, or drop"
  done
  run uvmbox ps -aq
  [ "$output" = "" ]
  [ -z "$(ls -A "$(store)/boxes")" ]
}

@test "rootless: --rm leaves nothing behind: no box dir, process, mount or temp dir" {
  run uvmbox run --rm busybox sh -c 'echo x >/tmp/y; hostname'
  assert_status 0
  [ -z "$(ls -A "$(store)/boxes")" ]
  # (a monitor that just exited may linger as a zombie until init reaps it)
  run sh -c "ps -u '$RL_USER' -o stat=,pid=,args= | grep -v '^Z'"
  [ "$output" = "" ]
  ! grep -F "$RL_BASE" /proc/mounts
  [ -z "$(find "$(store)/ext4" -maxdepth 1 -name '*.tmp.*')" ]
  run uvmbox ps -aq
  [ "$output" = "" ]
}

@test "rootless: the host's root-owned files stay out of reach" {
  run uvmbox run --rm -v /etc:/hostetc busybox sh -c 'echo x >/hostetc/vmbox-rootless-probe'
  [ "$status" -ne 0 ]
  assert_contains "$output" "Permission denied"
  [ ! -e /etc/vmbox-rootless-probe ]
  # root in the box has no power over files of unmapped owners
  run uvmbox run --rm -v /etc:/hostetc:ro busybox sh -c 'cat /hostetc/shadow'
  [ "$status" -ne 0 ]
  run uvmbox run --rm -v /etc:/hostetc busybox sh -c 'chown 0 /hostetc/passwd'
  [ "$status" -ne 0 ]
  # device nodes: no mknod in a user namespace; the bound ones work
  run uvmbox run --rm busybox sh -c 'mknod /tmp/mem c 1 1'
  [ "$status" -ne 0 ]
  run uvmbox run --rm busybox sh -c 'head -c 4 /dev/zero | wc -c; echo x >/dev/null && echo null-ok'
  assert_status 0
  assert_contains "$output" 4
  assert_contains "$output" null-ok
}

@test "rootless: concurrent first runs unpack the image once" {
  as_user "$RL_VMBOX" images >/dev/null # imports the builtin busybox
  local i pids=()
  for i in 1 2 3 4; do
    uvmbox run --rm busybox echo "run $i" >"$RL_BASE/out.$i" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do
    wait "$i"
  done
  for i in 1 2 3 4; do
    [ "$(cat "$RL_BASE/out.$i")" = "run $i" ]
  done
  [ "$(find "$(store)/ext4" -maxdepth 1 -name '*.rootfs' | wc -l)" -eq 1 ]
  [ -z "$(find "$(store)/ext4" -maxdepth 1 -name '*.tmp.*')" ]
}

@test "rootless: rmi removes the unpacked image too, but not one a box runs on" {
  run uvmbox run -d --name user busybox sleep 30
  assert_status 0
  local tree
  tree=$(echo "$(store)"/ext4/*.rootfs)
  [ -d "$tree" ]
  run uvmbox rmi -f busybox
  assert_status 0
  [ -d "$tree" ]
  run uvmbox exec user cat /bin/busybox
  assert_status 0
  run uvmbox rm -f user
  assert_status 0
  # the next prune (another rmi here) takes it
  run uvmbox run --rm busybox true
  assert_status 0
  run uvmbox rmi -f busybox
  assert_status 0
  [ -z "$(find "$(store)/ext4" -maxdepth 1 -name '*.rootfs')" ]
}

@test "rootless, single-uid map: the image's files all belong to root in the box" {
  import_owners_image
  run uvmbox run --rm owners sh -c 'stat -c "%u:%g %a" /home/u /home/u/f; cat /home/u/f; stat -c %h /home/u/g; ls -l /home/pipe | cut -c1; ls /home'
  assert_status 0
  [ "$(echo "$output" | sed -n 1p)" = "0:0 700" ]
  [ "$(echo "$output" | sed -n 2p)" = "0:0 600" ]
  [ "$(echo "$output" | sed -n 3p)" = secret ]
  [ "$(echo "$output" | sed -n 4p)" = 2 ]
  [ "$(echo "$output" | sed -n 5p)" = p ]
  # nobody can make a device node in a user namespace: it is left out
  refute_contains "$output" dev0
}

@test "rootless with a subuid range: box ids 1..65536 map to it; -u works; owners are kept" {
  AS=$RS_USER
  run uvmbox run --rm busybox sh -c 'cat /proc/self/uid_map /proc/self/gid_map'
  assert_status 0
  local uid gid
  uid=$(id -u "$RS_USER")
  gid=$(id -g "$RS_USER")
  [ "$(echo "$output" | sed -n 1p | tr -s ' ' | sed 's/^ //')" = "0 $uid 1" ]
  [ "$(echo "$output" | sed -n 2p | tr -s ' ' | sed 's/^ //')" = "1 $RS_RANGE 65536" ]
  [ "$(echo "$output" | sed -n 3p | tr -s ' ' | sed 's/^ //')" = "0 $gid 1" ]
  [ "$(echo "$output" | sed -n 4p | tr -s ' ' | sed 's/^ //')" = "1 $RS_RANGE 65536" ]
  import_owners_image
  run uvmbox run --rm owners sh -c 'stat -c "%u:%g %a" /home/u /home/u/f; stat -c %h /home/u/g'
  assert_status 0
  [ "$(echo "$output" | sed -n 1p)" = "1000:1000 700" ]
  [ "$(echo "$output" | sed -n 2p)" = "1000:1000 600" ]
  [ "$(echo "$output" | sed -n 3p)" = 2 ]
  # on the host, the unpacked image's files of uid 1000 belong to the range
  local home
  home=$(ls -d "$(store)"/ext4/*.rootfs/home/u)
  [ "$(stat -c %u:%g "$home")" = "$((RS_RANGE + 999)):$((RS_RANGE + 999))" ]
  run uvmbox run --rm -u 1000 owners sh -c 'id -u; id -g; cat /home/u/f; echo mine >/home/u/new; stat -c %u /home/u/new'
  assert_status 0
  [ "$output" = "$(printf '1000\n1000\nsecret\n1000')" ]
  run uvmbox run --rm -u 1001 owners cat /home/u/f
  [ "$status" -ne 0 ]
  assert_contains "$output" "Permission denied"
  [ -z "$(ls -A "$(store)/boxes")" ]
}

@test "rootless with a subuid range: rm and rmi remove files of subuid owners" {
  AS=$RS_USER
  import_owners_image
  run uvmbox run -d --name w -u 1000 owners sh -c 'echo x >/home/u/x; mkdir -p /tmp/d/e; chmod 500 /tmp/d; sleep 30'
  assert_status 0
  local i
  for i in $(seq 50); do
    uvmbox exec w test -d /tmp/d/e && break
    sleep 0.1
  done
  run uvmbox exec w stat -c %u /home/u/x
  assert_status 0
  [ "$output" = 1000 ]
  run uvmbox rm -f w
  assert_status 0
  [ -z "$(ls -A "$(store)/boxes")" ]
  run uvmbox run --name done -u 1000 owners sh -c 'echo y >/home/u/y'
  assert_status 0
  run uvmbox rm done
  assert_status 0
  [ -z "$(ls -A "$(store)/boxes")" ]
  # the unpacked image goes with the image; what its owners kept from the
  # user goes at the next rootless run
  run uvmbox rmi -f owners
  assert_status 0
  run uvmbox run --rm busybox true
  assert_status 0
  [ -z "$(find "$(store)/ext4" -maxdepth 1 -name '*.tmp.*')" ]
  [ "$(find "$(store)/ext4" -maxdepth 1 -name '*.rootfs' | wc -l)" -eq 1 ]
}

@test "rootless: kill -9 of the monitor: the box dies with it and rm cleans up" {
  local u
  for u in "$RL_USER" "$RS_USER"; do
    AS=$u
    run uvmbox run -d --name orphan busybox sh -c 'echo x >/tmp/x; sleep 100'
    assert_status 0
    local id=$output pid
    pid=$(jq -r .monitor_pid "$(store)/boxes/$id/state.json")
    [ "$pid" -gt 1 ]
    kill -9 "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    run uvmbox ps -a
    assert_contains "$output" "Exited (137)"
    run sh -c "ps -u '$u' -o stat=,pid=,args= | grep -v '^Z'"
    [ "$output" = "" ]
    run uvmbox rm orphan
    assert_status 0
    [ -z "$(ls -A "$(store)/boxes")" ]
  done
}

@test "rootless: pull from a registry, flatten and run, all as the user" {
  # the image runs as User 1000:1000 (entrypoint sh -c) from /srv/app, owned by 1000
  run uvmbox pull -q "$REGISTRY/busybox:latest"
  assert_status 0
  [ "$(stat -c %U "$(store)"/ext4/*.ext4 | sort -u)" = "$RL_USER" ]
  # single-uid map: uid 1000 does not exist in the box; the error says so
  run uvmbox run --rm "$REGISTRY/busybox:latest" 'id -u'
  assert_status 125
  assert_contains "$output" "rootless box maps only group 0"
  run uvmbox run --rm -u 0 "$REGISTRY/busybox:latest" 'echo pulled; id -u; cat hello.txt'
  assert_status 0
  [ "$output" = "$(printf 'pulled\n0\nhello from vmbox tests')" ]
  # with a subuid range the image runs as its own user, on its own files
  AS=$RS_USER
  run uvmbox pull -q "$REGISTRY/busybox:latest"
  assert_status 0
  run uvmbox run --rm "$REGISTRY/busybox:latest" 'id -u; id -g; stat -c %u hello.txt; echo w >mine; stat -c %u mine'
  assert_status 0
  [ "$output" = "$(printf '1000\n1000\n1000\n1000')" ]
}
