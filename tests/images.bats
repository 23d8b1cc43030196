#!/usr/bin/env bats
# vmbox images / rmi / image inspect|ls|rm|prune: output, JSON fields, errors.

VMBOX_SETUP_ROOT=1
load lib/common

import_bb() { vmbox import "$(image_busybox)" "$@" >/dev/null; }

rootfs_tar() { # OUT: a different one-layer image each call (unique marker)
  local root=$BATS_TEST_TMPDIR/rootfs.$RANDOM
  mkdir -p "$root/bin"
  cp /bin/busybox "$root/bin/"
  echo "$RANDOM$RANDOM" >"$root/marker"
  tar -C "$root" -cf "$1" .
}

@test "images: an empty store prints the header only" {
  run vmbox images
  assert_status 0
  [ "$output" = "REPOSITORY   TAG   IMAGE ID   CREATED   SIZE" ]
  run vmbox images --format json
  [ "$output" = "[]" ]
  run vmbox images -q
  [ -z "$output" ]
}

@test "images: table rows, one per name; -q one id per image; --digests" {
  import_bb test/bb:1
  import_bb test/bb:2
  run vmbox images
  assert_status 0
  [ "${#lines[@]}" = 3 ]
  [[ "${lines[0]}" =~ ^REPOSITORY\ +TAG\ +IMAGE\ ID\ +CREATED\ +SIZE$ ]]
  assert_contains "$output" "test/bb"
  [[ "${lines[1]}" =~ test/bb\ +[12]\ +[0-9a-f]{12}\ +.*ago\ +[0-9.]+[kM]B$ ]]
  run vmbox images -q
  [ "${#lines[@]}" = 1 ]
  [[ "$output" =~ ^[0-9a-f]{12}$ ]]
  run vmbox images --digests
  [[ "${lines[0]}" =~ ^REPOSITORY\ +TAG\ +DIGEST\ +IMAGE\ ID ]]
  assert_contains "${lines[1]}" "<none>"
}

@test "images: --format json has the stable fields" {
  import_bb test/bb:1
  run vmbox images --format json
  assert_status 0
  echo "$output" | jq -e 'length == 1'
  echo "$output" | jq -e '.[0] | has("id") and has("names") and has("repo_digest") and has("manifest_digest") and has("platform") and has("size") and has("created")'
  echo "$output" | jq -e '.[0].id | test("^sha256:[0-9a-f]{64}$")'
  echo "$output" | jq -e '.[0].manifest_digest | test("^sha256:[0-9a-f]{64}$")'
  echo "$output" | jq -e '(.[0].size | type) == "number" and (.[0].created | type) == "number"'
  run vmbox --format json images
  echo "$output" | jq -e 'length == 1'
}

@test "images: REPOSITORY[:TAG] filter" {
  import_bb test/bb:1
  rootfs_tar "$BATS_TEST_TMPDIR/r.tar"
  vmbox import "$BATS_TEST_TMPDIR/r.tar" other:1 >/dev/null
  run vmbox images test/bb
  [ "${#lines[@]}" = 2 ]
  assert_contains "$output" "test/bb"
  run vmbox images other:2
  [ "${#lines[@]}" = 1 ]
  run vmbox images --format json other
  echo "$output" | jq -e 'length == 1 and .[0].names == ["docker.io/library/other:1"]'
}

@test "images: newest image first" {
  rootfs_tar "$BATS_TEST_TMPDIR/a.tar"
  vmbox import "$BATS_TEST_TMPDIR/a.tar" first:1 >/dev/null
  sleep 1.1
  rootfs_tar "$BATS_TEST_TMPDIR/b.tar"
  vmbox import "$BATS_TEST_TMPDIR/b.tar" second:1 >/dev/null
  run vmbox images
  assert_contains "${lines[1]}" "second"
  assert_contains "${lines[2]}" "first"
}

@test "rmi: untag, then delete with the last name" {
  import_bb test/bb:1
  import_bb test/bb:2
  id=$(vmbox images --format json | jq -r '.[0].id')
  run vmbox rmi test/bb:1
  assert_status 0
  [ "$output" = "Untagged: test/bb:1" ]
  run vmbox rmi test/bb:2
  assert_status 0
  [ "${lines[0]}" = "Untagged: test/bb:2" ]
  [ "${lines[1]}" = "Deleted: $id" ]
  run vmbox images --format json
  [ "$output" = "[]" ]
  # Deleting the image freed its blobs and disk too.
  [ "$(find "$VMBOX_ROOT/blobs" -type f | wc -l)" = 0 ]
  [ "$(find "$VMBOX_ROOT/ext4" -name '*.ext4' | wc -l)" = 0 ]
}

@test "rmi: by id; several names need -f" {
  import_bb test/bb:1
  import_bb test/bb:2
  id=$(vmbox images --format json | jq -r '.[0].id')
  run vmbox rmi "${id:7:12}"
  assert_status 1
  assert_contains "$output" "must be forced"
  run vmbox rmi -f "${id:7:12}"
  assert_status 0
  assert_contains "$output" "Untagged: test/bb:1"
  assert_contains "$output" "Untagged: test/bb:2"
  assert_contains "$output" "Deleted: $id"
}

@test "rmi: a dangling image by full id" {
  vmbox import "$(image_busybox)" >/dev/null
  id=$(vmbox images --format json | jq -r '.[0].id')
  run vmbox rmi "$id"
  assert_status 0
  [ "$output" = "Deleted: $id" ]
}

@test "rmi: unknown image is exit 1, the others are still removed" {
  import_bb test/bb:1
  run vmbox rmi nope test/bb:1
  assert_status 1
  assert_contains "$output" "No such image: nope"
  assert_contains "$output" "Untagged: test/bb:1"
  run vmbox images -q
  [ -z "$output" ]
  run vmbox rmi
  assert_status 125
  assert_contains "$output" "requires at least 1 argument"
  run vmbox rmi --bogus x
  assert_status 125
}

@test "rmi: retagging moves a name; the old image becomes <none>" {
  import_bb app:1
  rootfs_tar "$BATS_TEST_TMPDIR/r.tar"
  vmbox import "$BATS_TEST_TMPDIR/r.tar" app:1 >/dev/null
  run vmbox images
  [ "${#lines[@]}" = 3 ]
  assert_contains "$output" "<none>"
  run vmbox images --format json
  echo "$output" | jq -e '[.[] | select(.names == [])] | length == 1'
}

@test "image inspect: docker's fields plus Manifest and Disk" {
  import_bb test/bb:1
  run vmbox image inspect test/bb:1
  assert_status 0
  echo "$output" | jq -e 'length == 1'
  echo "$output" | jq -e '.[0] | has("Id") and has("RepoTags") and has("RepoDigests") and has("Created") and has("Size") and has("Os") and has("Architecture") and has("Config") and has("RootFS") and has("Manifest") and has("Disk")'
  echo "$output" | jq -e '.[0].RepoTags == ["test/bb:1"] and .[0].RepoDigests == []'
  echo "$output" | jq -e '.[0].Os == "linux" and .[0].Architecture == "amd64"'
  echo "$output" | jq -e '.[0].RootFS.Type == "layers" and (.[0].RootFS.Layers | length) == 1'
  echo "$output" | jq -e '.[0].Config | has("Env") and has("Entrypoint") and has("Cmd") and has("WorkingDir") and has("User") and has("ExposedPorts")'
  echo "$output" | jq -e '.[0].Created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T")'
  id=$(echo "$output" | jq -r '.[0].Id')
  run vmbox image inspect "${id:7:12}" "$id" "sha256:${id:7:20}"
  echo "$output" | jq -e --arg id "$id" 'length == 3 and all(.[]; .Id == $id)'
}

@test "image inspect: unknown image prints [] and exits 1" {
  run vmbox image inspect nope
  assert_status 1
  assert_contains "$output" "No such image: nope"
  assert_contains "$output" "[]"
  run vmbox image inspect
  assert_status 125
}

@test "image ls / rm are images / rmi" {
  import_bb test/bb:1
  run vmbox image ls --format json
  echo "$output" | jq -e 'length == 1'
  run vmbox image ls -q
  [[ "$output" =~ ^[0-9a-f]{12}$ ]]
  run vmbox image rm test/bb:1
  assert_status 0
  assert_contains "$output" "Untagged: test/bb:1"
  run vmbox image ls -q
  [ -z "$output" ]
}

@test "image prune: dangling images and unused blobs; JSON form" {
  import_bb keep:1
  rootfs_tar "$BATS_TEST_TMPDIR/r.tar"
  vmbox import "$BATS_TEST_TMPDIR/r.tar" >/dev/null # dangling
  dangling=$(vmbox images --format json | jq -r '.[] | select(.names == []) | .id')
  [ -n "$dangling" ]
  echo junk >"$VMBOX_ROOT/blobs/sha256/$(printf '%064d' 1)"
  run vmbox image prune -f
  assert_status 0
  assert_contains "$output" "Deleted Images:"
  assert_contains "$output" "deleted: $dangling"
  assert_contains "$output" "Total reclaimed space: "
  [ ! -e "$VMBOX_ROOT/blobs/sha256/$(printf '%064d' 1)" ]
  run vmbox images --format json
  echo "$output" | jq -e 'length == 1 and .[0].names == ["docker.io/library/keep:1"]'
  # keep:1 still has everything it needs.
  run vmbox image inspect keep:1
  assert_status 0
  [ -f "$(echo "$output" | jq -r '.[0].Disk')" ]
  run vmbox image prune --format json
  assert_status 0
  echo "$output" | jq -e '.deleted_images == [] and .deleted_blobs == 0 and .reclaimed_bytes == 0'
  run vmbox image prune -f
  [ "$output" = "Total reclaimed space: 0B" ]
}

@test "image: subcommand errors and help" {
  run vmbox image
  assert_status 125
  run vmbox image bogus
  assert_status 125
  assert_contains "$output" "unknown command 'bogus'"
  run vmbox image --help
  assert_status 0
  assert_contains "$output" "inspect"
  for c in images rmi import; do
    run vmbox $c --help
    assert_status 0
    assert_contains "$output" "Usage: vmbox $c"
  done
  run vmbox image prune --all
  assert_status 125
  run vmbox images --bogus
  assert_status 125
}
