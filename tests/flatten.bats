#!/usr/bin/env bats
# Image exactness: every test image is pushed to a local registry, pulled and
# flattened by vmbox, loop-mounted read-only, and compared file by file with
# `umoci unpack` of the same OCI image (tests/lib/compare_trees.py: type,
# mode, owner, size, content, symlink target, device numbers, xattrs, mtime,
# hardlink structure).  Every disk must also pass `e2fsck -fn`.

load lib/common

setup_file() {
  registry_start
}

teardown_file() {
  registry_stop_all
}

setup() {
  setup_root
  MNT=$BATS_TEST_TMPDIR/mnt
  REF=$BATS_TEST_TMPDIR/ref
}

teardown() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    umount "$MNT" || umount -l "$MNT"
  fi
  rm -rf "$REF"
}

# disk_of REF EXPECTED_HEX: prints the ext4 path of a pulled image.  Prefers
# what `vmbox image inspect` reports as Disk; the store layout says
# ROOT/ext4/HEX.ext4 otherwise.
disk_of() {
  local ref=$1 hex=$2 disk='' out
  if out=$(vmbox image inspect "$ref" 2>/dev/null); then
    disk=$(jq -r 'if type=="array" then .[0] else . end | .Disk // empty' <<<"$out" 2>/dev/null || true)
  fi
  if [ -z "$disk" ]; then
    disk=$VMBOX_ROOT/ext4/$hex.ext4
  fi
  if [ ! -f "$disk" ]; then
    echo "no ext4 disk for $ref: expected $disk (inspect Disk or ROOT/ext4/$hex.ext4)" >&2
    ls -la "$VMBOX_ROOT" "$VMBOX_ROOT/ext4" >&2 2>/dev/null || true
    return 1
  fi
  if [ "$(basename "$disk")" != "$hex.ext4" ]; then
    echo "disk $disk is not the one for manifest sha256:$hex (ROOT/ext4/$hex.ext4)" >&2
    return 1
  fi
  echo "$disk"
}

# pull_and_mount NAME TAG [ARCH [PULL ARGS...]]: pushes image NAME's layout tag
# TAG, pulls it, checks the disk with e2fsck and mounts it read-only at $MNT.
# Sets LAYOUT, DISK.  PUSH=raw pushes byte for byte (see push_layout_raw).
pull_and_mount() {
  local name=$1 tag=$2 arch=${3:-amd64} hex ref
  shift 3 || shift $#
  LAYOUT=$("image_$name")
  ref=$REGISTRY/vmbox-test/$name:$tag
  if [ "${PUSH:-skopeo}" = raw ]; then
    push_layout_raw "$LAYOUT" "$tag" "$ref"
  else
    push_layout "$LAYOUT" "$tag" "$ref"
  fi
  run vmbox pull "$@" "$ref"
  assert_status 0
  hex=$(registry_digest "$ref" "$arch")
  hex=${hex#sha256:}
  DISK=$(disk_of "$ref" "$hex")
  run e2fsck -fn "$DISK"
  assert_status 0
  mkdir -p "$MNT"
  mount -o loop,ro "$DISK" "$MNT"
}

# compare_with_umoci REFTAG [compare_trees args...]
compare_with_umoci() {
  local reftag=$1
  shift
  umoci unpack --image "$LAYOUT:$reftag" "$REF" >/dev/null
  run python3 "$VMBOX_REPO/tests/lib/compare_trees.py" "$@" "$REF/rootfs" "$MNT"
  assert_status 0
}

exact() { # NAME TAG REFTAG
  pull_and_mount "$1" "$2" amd64
  compare_with_umoci "$3"
}

@test "busybox image flattens exactly (busybox-static, symlinked applets, owners)" {
  exact busybox latest latest
  [ -x "$MNT/bin/busybox" ]
  [ "$(readlink "$MNT/bin/sh")" = /bin/busybox ]
}

@test "busybox image config survives the pull (Env, Entrypoint, Cmd, WorkingDir, User)" {
  LAYOUT=$(image_busybox)
  push_layout "$LAYOUT" latest "$REGISTRY/vmbox-test/busybox:latest"
  run vmbox pull "$REGISTRY/vmbox-test/busybox:latest"
  assert_status 0
  run vmbox image inspect "$REGISTRY/vmbox-test/busybox:latest"
  assert_status 0
  echo "$output"
  cfg=$(jq -c 'if type=="array" then .[0] else . end | .Config' <<<"$output")
  [ "$(jq -c .Entrypoint <<<"$cfg")" = '["/bin/sh","-c"]' ]
  [ "$(jq -c .Cmd <<<"$cfg")" = '["echo $GREETING"]' ]
  [ "$(jq -r .WorkingDir <<<"$cfg")" = /srv/app ]
  [ "$(jq -r .User <<<"$cfg")" = 1000:1000 ]
  jq -e '.Env | index("GREETING=hello")' <<<"$cfg"
  jq -e '.Env | index("SPACED=a b  c")' <<<"$cfg"
}

@test "whiteouts and opaque directories across 5 layers" {
  exact whiteouts latest latest
  [ ! -e "$MNT/b/sub" ]
  [ ! -e "$MNT/a/keep" ]
  [ ! -e "$MNT/c/old1" ]
  [ ! -e "$MNT/c/new" ]
  [ "$(cat "$MNT/c/final")" = final ]
  # no whiteout marker may leak into the disk
  run find "$MNT" -name '.wh.*'
  [ -z "$output" ]
}

@test "hardlinks within a layer and to a lower layer keep one inode" {
  exact hardlink latest latest
  [ "$(stat -c %i "$MNT/data/orig")" = "$(stat -c %i "$MNT/other/link-to-orig")" ]
  [ "$(stat -c %h "$MNT/data/orig")" = 3 ]
  [ "$(stat -c %h "$MNT/data/tobreak")" = 1 ]
}

@test "setuid, setgid, sticky bits, odd modes and owners" {
  exact perms latest latest
  [ "$(stat -c %a "$MNT/bin/suid")" = 4755 ]
  [ "$(stat -c %a "$MNT/shared")" = 1777 ]
  [ "$(stat -c %u:%g "$MNT/bigid")" = 100000:200000 ]
}

@test "file capabilities (security.capability) and user xattrs" {
  exact xattrs latest latest
  run getcap "$MNT/bin/ping"
  assert_contains "$output" cap_net_raw=ep
  [ "$(getfattr --only-values -n user.vmbox.test "$MNT/tagged")" = hello ]
}

@test "device nodes and fifos" {
  exact devices latest latest
  [ -c "$MNT/dev/null" ]
  [ -b "$MNT/dev/loop99" ]
  [ -p "$MNT/dev/sub/fifo" ]
  [ "$(stat -c '%t:%T' "$MNT/dev/null")" = 1:3 ]
}

@test "absolute, relative, dangling and long symlinks; long and UTF-8 names" {
  exact symlinks latest latest
  [ "$(readlink "$MNT/abs")" = /usr/lib/real/file ]
  [ "$(readlink "$MNT/rel")" = usr/lib/real/file ]
  [ "$(readlink "$MNT/dangling")" = /nonexistent/target ]
}

@test "a 1 GiB sparse file stays sparse (plain tar entry and PAX sparse entry)" {
  exact sparse latest latest
  [ "$(stat -c %s "$MNT/sparse/1g")" = 1073741824 ]
  # at most 1 MiB allocated for 11 bytes of data
  used=$(($(stat -c '%b * %B' "$MNT/sparse/1g")))
  echo "1g uses $used bytes"
  [ "$used" -le $((1 << 20)) ]
  used=$(($(stat -c '%b * %B' "$MNT/sparse/allhole")))
  [ "$used" -le $((64 << 10)) ]
  used=$(($(stat -c '%b * %B' "$MNT/sparse/gnu")))
  [ "$used" -le $((1 << 20)) ]
  # and the disk file itself is not 1 GiB of allocated blocks
  disk_kib=$(du -k "$DISK" | cut -f1)
  echo "disk uses $disk_kib KiB"
  [ "$disk_kib" -le $((256 << 10)) ]
}

@test "zstd, gzip and uncompressed layers in one image match the all-gzip image" {
  PUSH=raw pull_and_mount zstd latest amd64
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REGISTRY/v2/vmbox-test/zstd/manifests/latest" >"$BATS_TEST_TMPDIR/m.json"
  jq -e '[.layers[].mediaType] == ["application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.oci.image.layer.v1.tar"]' \
    "$BATS_TEST_TMPDIR/m.json"
  compare_with_umoci gzip
}

@test "an empty layer between two others" {
  exact empty latest latest
}

@test "an image whose only layer is empty gives an empty root" {
  exact empty only-empty only-empty
}

@test "multi-platform index: host platform (amd64) is picked by default" {
  pull_and_mount multiarch latest amd64
  compare_with_umoci amd64
  [ "$(cat "$MNT/etc/vmbox-arch")" = amd64 ]
}

@test "multi-platform index: --platform linux/arm64 picks the arm64 variant" {
  pull_and_mount multiarch latest arm64 --platform linux/arm64
  compare_with_umoci arm64
  [ "$(cat "$MNT/etc/vmbox-arch")" = arm64 ]
  [ ! -e "$MNT/amd64-only" ]
}
