#!/usr/bin/env bats
# The content store under concurrency and after crashes: parallel imports,
# prune racing imports, stale temp files, a corrupt index.

VMBOX_SETUP_ROOT=1
load lib/common

# Waits for the background pids in PIDS; fails if any failed.
wait_all() {
  local pid rc=0
  for pid in "$@"; do
    wait "$pid" || rc=1
  done
  return $rc
}

@test "store: 50 concurrent imports of different names are all listed" {
  L=$(image_busybox)
  pids=()
  for i in $(seq 1 50); do
    "$VMBOX" import "$L" "par/img:$i" >"$BATS_TEST_TMPDIR/out.$i" 2>&1 &
    pids+=($!)
  done
  if ! wait_all "${pids[@]}"; then
    cat "$BATS_TEST_TMPDIR"/out.* >&2
    false
  fi
  jq -e '.images | length == 1' "$VMBOX_ROOT/images.json"
  run vmbox images --format json
  assert_status 0
  echo "$output" | jq -e '.[0].names | length == 50'
  for i in 1 25 50; do
    echo "$output" | jq -e --arg n "docker.io/par/img:$i" '.[0].names | index($n)'
  done
  # Nothing half-written is left behind.
  [ -z "$(ls "$VMBOX_ROOT/tmp")" ]
  [ -z "$(ls "$VMBOX_ROOT" | grep 'images.json.tmp')" ]
}

@test "store: 20 concurrent imports of different images keep a consistent index" {
  pids=()
  for i in $(seq 1 20); do
    root=$BATS_TEST_TMPDIR/r$i
    mkdir -p "$root"
    echo "image $i" >"$root/id"
    tar -C "$root" -cf "$BATS_TEST_TMPDIR/r$i.tar" .
    "$VMBOX" import "$BATS_TEST_TMPDIR/r$i.tar" "many:$i" >"$BATS_TEST_TMPDIR/out.$i" 2>&1 &
    pids+=($!)
  done
  if ! wait_all "${pids[@]}"; then
    cat "$BATS_TEST_TMPDIR"/out.* >&2
    false
  fi
  run vmbox images --format json
  echo "$output" | jq -e 'length == 20 and ([.[].names[]] | length) == 20'
  # Every image's manifest, config and layers are in the store.
  for m in $(echo "$output" | jq -r '.[].manifest_digest'); do
    f=$VMBOX_ROOT/blobs/sha256/${m#sha256:}
    [ -f "$f" ]
    for d in $(jq -r '.config.digest, .layers[].digest' "$f"); do
      [ -f "$VMBOX_ROOT/blobs/sha256/${d#sha256:}" ]
    done
  done
}

@test "store: prune while imports run never breaks an image" {
  L=$(image_busybox)
  pids=()
  for i in $(seq 1 8); do
    "$VMBOX" import "$L" "race:$i" >/dev/null 2>"$BATS_TEST_TMPDIR/err.$i" &
    pids+=($!)
    "$VMBOX" image prune -f >/dev/null 2>"$BATS_TEST_TMPDIR/perr.$i" &
    pids+=($!)
  done
  if ! wait_all "${pids[@]}"; then
    cat "$BATS_TEST_TMPDIR"/err.* "$BATS_TEST_TMPDIR"/perr.* >&2
    false
  fi
  run vmbox image inspect race:1
  assert_status 0
  m=$(echo "$output" | jq -r '.[0].Manifest')
  f=$VMBOX_ROOT/blobs/sha256/${m#sha256:}
  [ -f "$f" ]
  for d in $(jq -r '.config.digest, .layers[].digest' "$f"); do
    [ -f "$VMBOX_ROOT/blobs/sha256/${d#sha256:}" ]
  done
  [ -f "$(echo "$output" | jq -r '.[0].Disk')" ]
}

@test "store: temp files of dead processes are swept, live ones and partials kept" {
  vmbox images >/dev/null # creates the layout
  sh -c 'exit 0' &
  dead=$!
  wait $dead
  touch "$VMBOX_ROOT/tmp/abc.1.tmp.$dead" "$VMBOX_ROOT/images.json.tmp.$dead" \
    "$VMBOX_ROOT/ext4/$(printf '%064d' 5).ext4.tmp.$dead"
  touch "$VMBOX_ROOT/tmp/live.tmp.$$" "$VMBOX_ROOT/tmp/$(printf '%064d' 6).partial"
  touch -d '3 days ago' "$VMBOX_ROOT/tmp/$(printf '%064d' 7).partial"
  run vmbox images
  assert_status 0
  [ ! -e "$VMBOX_ROOT/tmp/abc.1.tmp.$dead" ]
  [ ! -e "$VMBOX_ROOT/images.json.tmp.$dead" ]
  [ ! -e "$VMBOX_ROOT/ext4/$(printf '%064d' 5).ext4.tmp.$dead" ]
  [ -e "$VMBOX_ROOT/tmp/live.tmp.$$" ]
  [ -e "$VMBOX_ROOT/tmp/$(printf '%064d' 6).partial" ]
  [ ! -e "$VMBOX_ROOT/tmp/$(printf '%064d' 7).partial" ]
}

@test "store: a corrupt images.json is a clear error with what to do" {
  vmbox import "$(image_busybox)" x:1 >/dev/null
  echo '{"images": [' >"$VMBOX_ROOT/images.json"
  run vmbox images
  assert_status 125
  assert_contains "$output" "images.json is corrupt"
  assert_contains "$output" "mv $VMBOX_ROOT/images.json"
  run vmbox import "$(image_busybox)" x:2
  assert_status 125
  assert_contains "$output" "images.json is corrupt"
  # Following the hint recovers: blobs are reused.
  mv "$VMBOX_ROOT/images.json" "$VMBOX_ROOT/images.json.bad"
  run vmbox import "$(image_busybox)" x:1
  assert_status 0
  run vmbox images --format json
  echo "$output" | jq -e 'length == 1'
}

@test "store: an unwritable root is a clear error" {
  [ "$(id -u)" = 0 ] && unshare_cmd=(setpriv --reuid=65534 --regid=65534 --clear-groups) || unshare_cmd=()
  mkdir -p "$BATS_TEST_TMPDIR/ro"
  chmod 555 "$BATS_TEST_TMPDIR/ro"
  chmod 755 "$BATS_TEST_TMPDIR"
  run "${unshare_cmd[@]}" env ASAN_OPTIONS="$ASAN_OPTIONS" "$VMBOX" --root "$BATS_TEST_TMPDIR/ro/store" images
  assert_status 125
  assert_contains "$output" "check --root / VMBOX_ROOT"
}

@test "store: images.json lists what import wrote, and stays valid JSON" {
  vmbox import "$(image_busybox)" a:1 >/dev/null
  jq -e '.version == 1 and (.images | length) == 1' "$VMBOX_ROOT/images.json"
  jq -e '.images[0] | has("id") and has("names") and has("manifest_digest") and has("added")' \
    "$VMBOX_ROOT/images.json"
}

@test "store: a full disk is a clear error and leaves no partial file" {
  small=$BATS_TEST_TMPDIR/small
  mkdir -p "$small"
  mount -t tmpfs -o size=3m tmpfs "$small"
  export VMBOX_ROOT=$small/root
  mkdir -p "$BATS_TEST_TMPDIR/big"
  head -c 8000000 /dev/urandom >"$BATS_TEST_TMPDIR/big/blob"
  tar -C "$BATS_TEST_TMPDIR/big" -cf "$BATS_TEST_TMPDIR/big.tar" .
  run vmbox import "$BATS_TEST_TMPDIR/big.tar" big:1
  status_was=$status
  out=$output
  leftovers=$(find "$VMBOX_ROOT/tmp" "$VMBOX_ROOT/blobs" -type f)
  umount "$small"
  status=$status_was
  assert_status 125
  assert_contains "$out" "disk full writing a blob under $small/root"
  [ -z "$leftovers" ]
}
