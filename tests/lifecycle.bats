#!/usr/bin/env bats
# The rest of the box life cycle on the ns backend: `vmbox cp` (running and
# stopped boxes, tar streams, hostile symlinks), `run` pulling a missing
# image (--pull), a TTY session driven through tmux (type, resize, Ctrl-C,
# exit status), `wait` on a --rm box, and ctr.log rotation (--log-opt).
# Needs root, loop devices, overlayfs, cgroups, tmux, skopeo and
# docker-registry (scripts/deps.sh --test).

VMBOX_SETUP_ROOT=1
load lib/common

setup_file() {
  registry_start
  push_layout "$(image_busybox)" latest "$REGISTRY/busybox:latest"
}

teardown_file() {
  registry_stop_all
}

teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
  [ -z "${TMUX_SOCK:-}" ] || tmux -L "$TMUX_SOCK" kill-server 2>/dev/null || true
}

# A running box with a small tree: /d/f, /d/sub/g, /d/lnk -> /etc/passwd.
running_box() { # NAME
  vmbox run -d --name "$1" busybox sh -c \
    'mkdir -p /d/sub && echo hi >/d/f && echo deep >/d/sub/g && ln -s /etc/passwd /d/lnk &&
     chmod 640 /d/f && touch -d "2001-02-03 04:05:06" /d/f && touch /ready && exec sleep 1000' >/dev/null
  local i
  for i in $(seq 100); do
    vmbox exec "$1" test -e /ready 2>/dev/null && return 0
    sleep 0.1
  done
  echo "box $1 did not get ready" >&2
  return 1
}

# ---- cp ---------------------------------------------------------------------

@test "cp: out of a running box: file to file, file into dir, dir to new dir, dir/. merge" {
  running_box a
  local h=$BATS_TEST_TMPDIR/h
  mkdir -p "$h/exist"
  run vmbox cp a:/d/f "$h/copy"
  assert_status 0
  [ "$(cat "$h/copy")" = hi ]
  # mode and mtime are kept (tar semantics), as docker's
  [ "$(stat -c %a "$h/copy")" = 640 ]
  [ "$(date -u -d @"$(stat -c %Y "$h/copy")" +%Y)" = 2001 ]
  run vmbox cp a:/d/f "$h/exist"
  assert_status 0
  [ "$(cat "$h/exist/f")" = hi ]
  # relative box path: relative to the box's root
  run vmbox cp a:d "$h/newdir"
  assert_status 0
  [ "$(cat "$h/newdir/sub/g")" = deep ]
  [ "$(readlink "$h/newdir/lnk")" = /etc/passwd ] # a symlink stays a symlink
  run vmbox cp a:/d "$h/exist"
  assert_status 0
  [ "$(cat "$h/exist/d/sub/g")" = deep ]
  mkdir "$h/merge"
  run vmbox cp a:/d/. "$h/merge"
  assert_status 0
  [ "$(cat "$h/merge/f")" = hi ]
  [ -d "$h/merge/sub" ]
  [ ! -e "$h/merge/d" ]
  # -L follows a symlink SRC; without it the link itself is copied
  run vmbox cp -L a:/d/lnk "$h/passwd"
  assert_status 0
  grep -q '^root:' "$h/passwd"
  [ ! -L "$h/passwd" ]
}

@test "cp: into a running box; -a keeps owner, mode and mtime" {
  running_box a
  local h=$BATS_TEST_TMPDIR/h
  mkdir -p "$h/tree/in"
  echo one >"$h/tree/in/one"
  echo file >"$h/file"
  chmod 600 "$h/file"
  chown 1234:4321 "$h/file"
  touch -d "1999-12-31 23:00:00" "$h/file"
  run vmbox cp "$h/file" a:/tmp/
  assert_status 0
  run vmbox exec a stat -c '%u:%g %a %Y' /tmp/file
  [ "$output" = "0:0 600 $(stat -c %Y "$h/file")" ]
  run vmbox cp -a "$h/file" a:/tmp/archived
  assert_status 0
  run vmbox exec a stat -c '%u:%g %a' /tmp/archived
  [ "$output" = "1234:4321 600" ]
  ln "$h/tree/in/one" "$h/tree/in/hard"
  run vmbox cp "$h/tree" a:/newtree
  assert_status 0
  run vmbox exec a cat /newtree/in/one
  [ "$output" = one ]
  # a hard link inside the tree stays one
  run vmbox exec a sh -c 'stat -c %i /newtree/in/one /newtree/in/hard | uniq | wc -l; stat -c %h /newtree/in/one'
  [ "$output" = "1
2" ]
  # overwriting a file replaces it
  echo two >"$h/tree/in/one"
  run vmbox cp "$h/tree/in/one" a:/newtree/in/one
  assert_status 0
  run vmbox exec a cat /newtree/in/one
  [ "$output" = two ]
}

@test "cp: errors as docker's: missing file, dir onto file, missing dest dir, no box, usage" {
  running_box a
  local h=$BATS_TEST_TMPDIR/h
  mkdir -p "$h"
  echo x >"$h/file"
  run vmbox cp a:/nope "$h/"
  assert_status 1
  assert_contains "$output" "Could not find the file /nope in box a"
  run vmbox cp a:/d "$h/file"
  assert_status 1
  assert_contains "$output" "cannot copy a directory"
  [ "$(cat "$h/file")" = x ]
  run vmbox cp a:/d/f "$h/missing/"
  assert_status 1
  assert_contains "$output" "must exist"
  run vmbox cp "$h/file" a:/no/such/dir/x
  assert_status 1
  assert_contains "$output" "Could not find the directory /no/such/dir in box a"
  run vmbox cp "$h/nothere" a:/tmp/
  assert_status 1
  assert_contains "$output" "Could not find the file $h/nothere on the host"
  run vmbox cp nobox:/etc/passwd "$h/"
  assert_status 1
  assert_contains "$output" "No such box: nobox"
  run vmbox cp "$h/file" "$h/file2"
  assert_status 1
  assert_contains "$output" "must specify at least one box"
  run vmbox cp a:/d/f a:/tmp/f
  assert_status 1
  assert_contains "$output" "copying between boxes is not supported"
  run vmbox cp a:/d/f
  assert_status 125
  assert_contains "$output" "requires exactly 2 arguments"
  run vmbox cp --help
  assert_status 0
  assert_contains "$output" "Usage: vmbox cp"
  # the tmp names of an interrupted copy never stay: nothing half-written
  run vmbox exec a sh -c 'ls -a /tmp /d | grep vmbox-cp || true'
  [ -z "$output" ]
}

@test "cp: a hostile symlink in the box never reaches the host (running and stopped)" {
  local h=$BATS_TEST_TMPDIR/host
  mkdir -p "$h/dir"
  echo "host secret" >"$h/secret"
  # In the box: links to the host's paths, absolute and climbing out.  The
  # box also has its own $h/dir, where a write through /abs must land.
  vmbox run -d --name evil busybox sh -c "
    ln -s '$h/dir' /abs && ln -s ../../../../../../../../../..'$h/dir' /rel &&
    ln -s '$h/secret' /sec && mkdir -p /d && ln -s / /d/root && mkdir -p '$h/dir' &&
    touch /ready && exec sleep 1000" >/dev/null
  for _ in $(seq 100); do vmbox exec evil test -e /ready 2>/dev/null && break; sleep 0.1; done
  echo payload >"$BATS_TEST_TMPDIR/payload"
  local state
  for state in running stopped; do
    run vmbox cp "$BATS_TEST_TMPDIR/payload" evil:/abs/p1
    assert_status 0
    run vmbox cp "$BATS_TEST_TMPDIR/payload" evil:/rel/p2
    assert_status 0
    run vmbox cp -L evil:/sec "$BATS_TEST_TMPDIR/stolen.$state"
    assert_status 1
    [ ! -e "$BATS_TEST_TMPDIR/stolen.$state" ]
    run vmbox cp evil:/rel/../../../../../../../..$h/secret "$BATS_TEST_TMPDIR/stolen2.$state"
    assert_status 1
    [ ! -e "$BATS_TEST_TMPDIR/stolen2.$state" ]
    # a dir holding a link to / comes out as that link, not as the host's /
    run vmbox cp evil:/d "$BATS_TEST_TMPDIR/d.$state"
    assert_status 0
    [ "$(readlink "$BATS_TEST_TMPDIR/d.$state/root")" = / ]
    # a tar stream with a path that climbs out is refused
    (cd "$BATS_TEST_TMPDIR" && tar -c -P -f - --transform 's,^,../../../../../,' payload) >"$BATS_TEST_TMPDIR/climb.tar"
    run vmbox cp - evil:/tmp <"$BATS_TEST_TMPDIR/climb.tar"
    assert_status 1
    assert_contains "$output" "leaves the destination"
    # nothing reached the host
    [ -z "$(ls -A "$h/dir")" ]
    [ ! -e /payload ]
    if [ $state = running ]; then
      run vmbox exec evil cat "$h/dir/p1" "$h/dir/p2"
      [ "$output" = "payload
payload" ]
      vmbox kill evil >/dev/null
      vmbox wait evil >/dev/null
    fi
  done
  [ "$(cat "$h/secret")" = "host secret" ]
}

@test "cp: a box swapping a dir for a symlink to the host while we copy cannot redirect us" {
  local h=$BATS_TEST_TMPDIR/host
  mkdir -p "$h/dir" "$BATS_TEST_TMPDIR/tree/sub"
  echo payload >"$BATS_TEST_TMPDIR/tree/sub/file"
  echo "host secret" >"$h/secret"
  # /sw flips between a real dir and a link to the host's $h (which the box
  # also has, so a write through the link lands in the box's copy).
  vmbox run -d --name race busybox sh -c "
    mkdir -p '$h/dir' && echo box >'$h/secret' && touch /ready &&
    while :; do mkdir -p /sw.d && mv /sw.d /sw.tmp && rm -rf /sw && mv /sw.tmp /sw;
      ln -s '$h' /sw.l && rm -rf /sw && mv /sw.l /sw; done" >/dev/null
  for _ in $(seq 100); do vmbox exec race test -e /ready 2>/dev/null && break; sleep 0.1; done
  local i
  for i in $(seq 30); do
    "$VMBOX" cp "$BATS_TEST_TMPDIR/tree" "race:/sw/dir/t$i" >/dev/null 2>&1 || true
    "$VMBOX" cp "race:/sw/secret" "$BATS_TEST_TMPDIR/got.$i" >/dev/null 2>&1 || true
  done
  # nothing was written to the host's $h, nothing of it was read
  [ -z "$(ls -A "$h/dir")" ]
  [ "$(cat "$h/secret")" = "host secret" ]
  ! grep -qs "host secret" "$BATS_TEST_TMPDIR"/got.*
  # and the copies did happen (into the box) often enough to mean something
  run vmbox exec race sh -c "ls '$h/dir' /sw/dir 2>/dev/null | grep -c '^t'"
  [ "$output" -ge 1 ]
  ls "$BATS_TEST_TMPDIR"/got.* >/dev/null
}

@test "cp: a stopped box: its writes and its image, in and out" {
  run vmbox run --name s busybox sh -c 'echo made >/made; rm /etc/hostname; mkdir /dd; echo x >/dd/x; ln /dd/x /dd/hard'
  assert_status 0
  local h=$BATS_TEST_TMPDIR/h
  mkdir -p "$h"
  run vmbox cp s:/made "$h/made"
  assert_status 0
  [ "$(cat "$h/made")" = made ]
  run vmbox cp s:/bin/busybox "$h/bb" # from the image
  assert_status 0
  [ -x "$h/bb" ]
  run vmbox cp s:/etc/hostname "$h/"   # deleted in the box: gone
  assert_status 1
  assert_contains "$output" "Could not find the file /etc/hostname in box s"
  echo new >"$h/new"
  run vmbox cp "$h/new" s:/dd/
  assert_status 0
  run vmbox cp s:/dd "$h/dd"
  assert_status 0
  [ "$(cat "$h/dd/new")" = new ]
  [ "$(cat "$h/dd/x")" = x ]
  [ "$(stat -c %i "$h/dd/x")" = "$(stat -c %i "$h/dd/hard")" ]
  # the image itself is never written, and no mount is left behind
  [ -z "$(grep "$VMBOX_ROOT" /proc/mounts)" ]
  run vmbox run --rm busybox sh -c 'test -e /made || test -e /dd || echo clean'
  [ "$output" = clean ]
  # rm removes the kept writes with the box
  local dir
  dir=$(ls -d "$VMBOX_ROOT"/boxes/*/)
  [ -d "$dir/upper" ]
  run vmbox rm s
  assert_status 0
  [ ! -e "$dir" ]
}

@test "cp: tar streams with -: out to stdout, in from stdin" {
  running_box a
  run bash -c "'$VMBOX' cp a:/d - | tar -t | sort"
  assert_status 0
  [ "$output" = "d/
d/f
d/lnk
d/sub/
d/sub/g" ]
  mkdir -p "$BATS_TEST_TMPDIR/t/x"
  echo tarred >"$BATS_TEST_TMPDIR/t/x/file"
  run bash -c "tar -C '$BATS_TEST_TMPDIR/t' -c x | '$VMBOX' cp - a:/tmp"
  assert_status 0
  run vmbox exec a cat /tmp/x/file
  [ "$output" = tarred ]
  run bash -c "tar -C '$BATS_TEST_TMPDIR/t' -c x | '$VMBOX' cp - a:/d/f"
  assert_status 1
  assert_contains "$output" "must be an existing directory"
  # hard links stay hard links in the stream, once with data, as docker's
  vmbox exec a sh -c 'mkdir /h && echo linked >/h/one && ln /h/one /h/two'
  mkdir "$BATS_TEST_TMPDIR/h"
  run bash -c "'$VMBOX' cp a:/h - | tar -tv"
  assert_status 0
  assert_contains "$output" "link to h/one"
  run bash -c "'$VMBOX' cp a:/h - | tar -C '$BATS_TEST_TMPDIR/h' -x"
  assert_status 0
  [ "$(stat -c %h "$BATS_TEST_TMPDIR/h/h/one")" = 2 ]
  [ "$(stat -c %i "$BATS_TEST_TMPDIR/h/h/one")" = "$(stat -c %i "$BATS_TEST_TMPDIR/h/h/two")" ]
  [ "$(cat "$BATS_TEST_TMPDIR/h/h/two")" = linked ]
}

@test "cp: a backend without cp gives a clear error" {
  run vmbox run --name k busybox true
  local cfg
  cfg=$(ls "$VMBOX_ROOT"/boxes/*/config.json)
  jq '.backend = "sentry"' "$cfg" >"$cfg.new" && mv "$cfg.new" "$cfg"
  run vmbox cp k:/etc/passwd "$BATS_TEST_TMPDIR/"
  assert_status 1
  assert_contains "$output" "backend sentry is not available yet"
  [ ! -e "$BATS_TEST_TMPDIR/passwd" ]
}

# ---- run --pull ------------------------------------------------------------------

@test "run: a missing image is pulled first (stderr), --pull never|always" {
  local img=$REGISTRY/busybox:latest
  # the test image's entrypoint is sh -c, its cmd echo $GREETING (hello)
  run --separate-stderr vmbox run --rm "$img"
  assert_status 0
  [ "$output" = hello ]
  assert_contains "$stderr" "Unable to find image '$img' locally"
  assert_contains "$stderr" "Status: Downloaded newer image for $img"
  refute_contains "$stderr" "Download complete" # not a terminal: no progress lines
  # On a terminal, the layers' progress as `vmbox pull` draws it
  run script -qec "$VMBOX run --rm --pull always $img 'echo tty'" /dev/null
  assert_status 0
  [[ "$output" =~ [0-9a-f]{12}:\ (Already\ exists|Download\ complete) ]]
  assert_contains "$output" "Image is up to date for $img"
  run --separate-stderr vmbox run --rm "$img" 'echo again'
  assert_status 0
  [ "$output" = again ]
  [ -z "$stderr" ]
  run --separate-stderr vmbox run --rm --pull always "$img" 'echo always'
  assert_status 0
  [ "$output" = always ]
  assert_contains "$stderr" "Image is up to date for $img"
  run vmbox run --rm --pull never "$REGISTRY/other:1" true
  assert_status 125
  assert_contains "$output" "No such image: $REGISTRY/other:1"
  run vmbox run --rm "$REGISTRY/nosuch:1" true
  assert_status 125
  assert_contains "$output" "Unable to find image '$REGISTRY/nosuch:1' locally"
  run vmbox images --format json
  refute_contains "$output" nosuch
  run vmbox run --pull sometimes busybox true
  assert_status 125
  assert_contains "$output" "invalid --pull sometimes"
}

# ---- TTY through tmux -------------------------------------------------------------

# pane_has TEXT: waits up to 10 s for TEXT in the tmux pane.
pane_has() {
  local i
  for i in $(seq 100); do
    tmux -L "$TMUX_SOCK" capture-pane -p -t s | grep -qF -- "$1" && return 0
    sleep 0.1
  done
  echo "not in the pane: $1" >&2
  tmux -L "$TMUX_SOCK" capture-pane -p -t s >&2
  return 1
}

@test "tty: run -it in tmux: type, resize follows, Ctrl-C, exit status, terminal restored" {
  TMUX_SOCK=vmbox-test-$$
  local res=$BATS_TEST_TMPDIR/result
  tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s s -x 80 -y 24 \
    "export VMBOX_ROOT='$VMBOX_ROOT' ASAN_OPTIONS='$ASAN_OPTIONS'; s1=\$(stty -g);
     '$VMBOX' run -it busybox sh; rc=\$?; s2=\$(stty -g);
     [ \"\$s1\" = \"\$s2\" ] && t=restored || t=changed; echo \"\$rc \$t\" >'$res.tmp'; mv '$res.tmp' '$res';
     sleep 60"
  pane_has '/ #'
  tmux -L "$TMUX_SOCK" send-keys -t s 'echo typed-$((6*7))' Enter
  pane_has typed-42
  tmux -L "$TMUX_SOCK" send-keys -t s 'stty size' Enter
  pane_has '24 80'
  tmux -L "$TMUX_SOCK" resize-window -t s -x 101 -y 31
  sleep 0.5
  tmux -L "$TMUX_SOCK" send-keys -t s 'stty size' Enter
  pane_has '31 101'
  tmux -L "$TMUX_SOCK" send-keys -t s 'sleep 100' Enter
  sleep 1
  local t0=$SECONDS
  tmux -L "$TMUX_SOCK" send-keys -t s C-c
  tmux -L "$TMUX_SOCK" send-keys -t s 'echo status=$?' Enter
  pane_has status=130
  [ $((SECONDS - t0)) -lt 30 ]
  tmux -L "$TMUX_SOCK" send-keys -t s 'exit 3' Enter
  for _ in $(seq 100); do [ -e "$res" ] && break; sleep 0.1; done
  [ "$(cat "$res")" = "3 restored" ]
}

@test "tty: exec -it in tmux: the window size at start and after a resize" {
  vmbox run -d --name e busybox sleep 1000 >/dev/null
  TMUX_SOCK=vmbox-test-$$
  tmux -L "$TMUX_SOCK" -f /dev/null new-session -d -s s -x 70 -y 20 \
    "export VMBOX_ROOT='$VMBOX_ROOT' ASAN_OPTIONS='$ASAN_OPTIONS'; '$VMBOX' exec -it e sh; sleep 60"
  pane_has '/ #'
  tmux -L "$TMUX_SOCK" send-keys -t s 'stty size' Enter
  pane_has '20 70'
  tmux -L "$TMUX_SOCK" resize-window -t s -x 95 -y 33
  sleep 0.5
  tmux -L "$TMUX_SOCK" send-keys -t s 'stty size' Enter
  pane_has '33 95'
}

# ---- wait and --rm -----------------------------------------------------------------

@test "wait: a --rm box that ends while waited on prints its code; once gone: No such box" {
  run vmbox run -d --rm --name w busybox sh -c 'sleep 1; exit 7'
  assert_status 0
  run vmbox wait w
  assert_status 0
  [ "$output" = 7 ]
  [ -z "$(ls "$VMBOX_ROOT/boxes")" ]
  # as docker: a box that is gone is "No such box", exit 1
  run vmbox wait w
  assert_status 1
  assert_contains "$output" "No such box: w"
  # several boxes: each code in order
  vmbox run -d --rm --name w1 busybox sh -c 'sleep 5; exit 1' >/dev/null
  vmbox run -d --name w2 busybox sh -c 'exit 2' >/dev/null
  run vmbox wait w1 w2
  assert_status 0
  [ "$output" = "1
2" ]
}

# ---- ctr.log rotation -------------------------------------------------------------

@test "logs: --log-opt max-size rotates ctr.log to ctr.log.1; logs reads both" {
  run vmbox run --name big --log-opt max-size=100k busybox sh -c \
    'i=0; while [ $i -lt 30000 ]; do echo line-$i; i=$((i+1)); done'
  assert_status 0
  local dir
  dir=$(ls -d "$VMBOX_ROOT"/boxes/*/)
  [ -e "$dir/ctr.log.1" ]
  [ ! -e "$dir/ctr.log.2" ]
  # bounded: the limit plus at most one read of output (64 KiB)
  [ "$(stat -c %s "$dir/ctr.log")" -le $((100 * 1024 + 65536 + 4096)) ]
  [ "$(stat -c %s "$dir/ctr.log.1")" -le $((100 * 1024 + 65536 + 4096)) ]
  run vmbox logs big
  assert_status 0
  [ "${lines[-1]}" = line-29999 ]
  # what is kept is one unbroken run of lines across the two files
  local first=${lines[0]#line-} n=${#lines[@]}
  [ $((first + n - 1)) = 29999 ]
  run vmbox logs --tail 2 big
  [ "$output" = "line-29998
line-29999" ]
  # the default is 10 MiB; a bad option is refused
  jq -e '.log_max_size == 102400' "$dir/config.json"
  vmbox run --name small busybox true
  jq -e '.log_max_size == 10485760' "$VMBOX_ROOT"/boxes/*/config.json | grep -q true
  run vmbox run --log-opt max-size=lots busybox true
  assert_status 125
  run vmbox run --log-opt color=red busybox true
  assert_status 125
  assert_contains "$output" "unknown --log-opt color"
}

@test "logs -f follows the log across a rotation" {
  vmbox run -d --name f --log-opt max-size=20k busybox sh -c \
    'i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); [ $((i % 100)) = 0 ] && sleep 0.1; done' >/dev/null
  run timeout 120 "$VMBOX" logs -f f
  assert_status 0
  [ "${lines[-1]}" = line-2999 ]
  local first=${lines[0]#line-} n=${#lines[@]} i
  [ $((first + n - 1)) = 2999 ]
  for i in "${!lines[@]}"; do [ "${lines[$i]}" = "line-$((first + i))" ]; done
  local dir
  dir=$(ls -d "$VMBOX_ROOT"/boxes/*/)
  [ -e "$dir/ctr.log.1" ]
}

# ---- many boxes at once ------------------------------------------------------------

@test "50 concurrent detached runs with generated names: all unique, all exit 0, nothing left" {
  local i pids=()
  vmbox run --rm busybox true # the builtin image imported once, outside the race
  for i in $(seq 1 50); do
    "$VMBOX" run -d busybox sh -c "echo box $i" >"$BATS_TEST_TMPDIR/id.$i" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 1 50); do
    wait "${pids[$((i - 1))]}" || { cat "$BATS_TEST_TMPDIR/id.$i"; false; }
  done
  for i in $(seq 1 50); do
    run vmbox wait "$(cat "$BATS_TEST_TMPDIR/id.$i")"
    [ "$output" = 0 ]
    run vmbox logs "$(cat "$BATS_TEST_TMPDIR/id.$i")"
    [ "$output" = "box $i" ]
  done
  run vmbox ps -a --format json
  [ "$(jq length <<<"$output")" = 50 ]
  [ "$(jq '[.[] | select(.state.status == "exited" and .state.exit_code == 0)] | length' <<<"$output")" = 50 ]
  [ "$(jq -r '.[].name' <<<"$output" | sort -u | wc -l)" = 50 ]
  [ "$(jq -r '.[].id' <<<"$output" | sort -u | wc -l)" = 50 ]
  # every box's mounts went with it; one loop device per image stays, for
  # the image's mount in vmbox's own namespace
  [ -z "$(grep "$VMBOX_ROOT" /proc/mounts)" ]
  [ "$(losetup -a | grep -c "$VMBOX_ROOT")" -le "$(ls "$VMBOX_ROOT"/ext4/*.ext4 | wc -l)" ]
}

# ---- damaged box files -----------------------------------------------------------

@test "a box whose state.json or config.json a crash truncated: shown dead, removable, harmless" {
  local id1 id2 id3
  id1=$(vmbox run -d --name dmg1 busybox true)
  id2=$(vmbox run -d --name dmg2 busybox true)
  id3=$(vmbox run -d --name dmg3 busybox true)
  vmbox wait dmg1 dmg2 dmg3 >/dev/null
  : >"$VMBOX_ROOT/boxes/$id1/state.json"                  # empty, as after a crash
  head -c 20 "$VMBOX_ROOT/boxes/$id2/state.json" >"$BATS_TEST_TMPDIR/half"
  cp "$BATS_TEST_TMPDIR/half" "$VMBOX_ROOT/boxes/$id2/state.json" # half written
  : >"$VMBOX_ROOT/boxes/$id3/config.json"
  run vmbox ps -a --format json
  assert_status 0
  [ "$(jq length <<<"$output")" = 3 ]
  [ "$(jq '[.[] | select(.state.status == "exited" and (.state.reason // "" | test("damaged")))] | length' <<<"$output")" = 3 ]
  # other commands still work: a new box, its name check reading every box
  run vmbox run --rm --name dmg4 busybox echo ok
  assert_status 0
  [ "$output" = ok ]
  run vmbox stop dmg1 # exited already: no crash (ASan would abort with >= 128)
  [ "$status" -lt 128 ]
  run vmbox rm -f "$id1" dmg2 "$id3"
  assert_status 0
  [ -z "$(ls "$VMBOX_ROOT/boxes")" ]
}
