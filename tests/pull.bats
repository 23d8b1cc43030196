#!/usr/bin/env bats
# vmbox pull against Debian's docker-registry on 127.0.0.1: normalization,
# platforms, layer formats, output formats, progress, resume, and every
# failure leaving the store as it was.  Failures a healthy registry never
# produces (corrupt or truncated bodies, bad manifests) come from the fault
# proxy in tests/lib/token_server.py --front, which relays to the registry.

load lib/common
load lib/token

setup_file() {
  registry_start
  push_layout "$(image_busybox)" latest "$REGISTRY/busybox:latest"
  push_layout "$(image_busybox)" latest "$REGISTRY/busybox:v1"
  push_layout "$(image_multiarch)" latest "$REGISTRY/multi:latest"
  push_verbatim "$(image_zstd)" latest zstd
  push_layout "$(image_six_layers)" latest "$REGISTRY/layers:latest"
  front_start "$REGISTRY"
}

teardown_file() {
  registry_stop_all
}

setup() {
  setup_root
  export XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/config HOME=$BATS_TEST_TMPDIR/home
  export DOCKER_CONFIG=$BATS_TEST_TMPDIR/docker
  set_faults ""
  : >"$FRONT_LOG"
}

teardown() {
  if mountpoint -q "$BATS_TEST_TMPDIR/small" 2>/dev/null; then
    umount "$BATS_TEST_TMPDIR/small"
  fi
}

# Six layers of 200 KiB random data each (7 blobs with the config): enough to
# see the parallel download cap.
_six_fill() { head -c 204800 /dev/urandom >"$1/layer$2"; }
_build_six_layers() {
  local L=$1 i
  umoci new --image "$L:latest" >/dev/null
  for i in 1 2 3 4 5 6; do _layer "$L" latest _six_fill "$i" || return 1; done
}
image_six_layers() { _img_cached pull-six-layers _build_six_layers; }

# push_verbatim LAYOUT TAG REPO: pushes an OCI layout's image byte for byte
# through the distribution API (skopeo would recompress uncompressed layers).
push_verbatim() {
  local L=$1 tag=$2 repo=$3 m d loc
  m=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t) | .digest' "$L/index.json")
  for d in $(jq -r '.config.digest, .layers[].digest' "$L/blobs/sha256/${m#sha256:}"); do
    loc=$(curl -sf -m 30 -X POST -D - -o /dev/null "http://$REGISTRY/v2/$repo/blobs/uploads/" |
      tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    case $loc in http*) ;; *) loc=http://$REGISTRY$loc ;; esac
    curl -sf -m 60 -X PUT -H 'Content-Type: application/octet-stream' \
      --data-binary "@$L/blobs/sha256/${d#sha256:}" "$loc&digest=$d" >/dev/null || return 1
  done
  curl -sf -m 30 -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$L/blobs/sha256/${m#sha256:}" "http://$REGISTRY/v2/$repo/manifests/$tag" >/dev/null
}

# registry_manifest REPO REF: the manifest as the registry serves it.
registry_manifest() {
  curl -sf -m 10 -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json" \
    "http://$REGISTRY/v2/$1/manifests/$2"
}

# Every blob in the store is named after its sha256.
assert_blobs_verified() {
  local f n=0
  for f in "$VMBOX_ROOT"/blobs/sha256/*; do
    [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || {
      echo "blob $f does not match its name" >&2
      return 1
    }
    n=$((n + 1))
  done
  [ "$n" -gt 0 ]
}

# Pulls busybox once so the store has state the failing pulls must not touch.
seed_store() {
  run vmbox pull -q "$REGISTRY/busybox:latest"
  assert_status 0
}

@test "pull: first pull downloads, prints digest, status and name" {
  run --separate-stderr vmbox pull "$REGISTRY/busybox"
  assert_status 0
  local digest
  digest=sha256:$(registry_manifest busybox latest | sha256sum | cut -d' ' -f1)
  assert_contains "$output" "Digest: $digest"
  assert_contains "$output" "Status: Downloaded newer image for $REGISTRY/busybox:latest"
  [ "$(echo "$output" | tail -n1)" = "$REGISTRY/busybox:latest" ]
  [ -z "$stderr" ] # no progress without a terminal
  assert_blobs_verified
  jq -e --arg n "$REGISTRY/busybox:latest" '.images[] | select(.names | index($n))' \
    "$VMBOX_ROOT/images.json" >/dev/null
}

@test "pull: pulling again says the image is up to date and adds nothing" {
  seed_store
  local before
  before=$(store_snapshot)
  run vmbox pull "$REGISTRY/busybox:latest"
  assert_status 0
  assert_contains "$output" "Status: Image is up to date for $REGISTRY/busybox:latest"
  assert_store_unchanged "$before"
}

@test "pull: -q prints only the canonical name" {
  run --separate-stderr vmbox pull -q "$REGISTRY/busybox:v1"
  assert_status 0
  [ "$output" = "$REGISTRY/busybox:v1" ]
  [ -z "$stderr" ]
}

@test "pull: --format json prints the image object" {
  run --separate-stderr vmbox pull --format json "$REGISTRY/busybox"
  assert_status 0
  local m
  m=$(registry_manifest busybox latest)
  echo "$output" | jq -e --arg id "$(echo "$m" | jq -r .config.digest)" \
    --arg l0 "$(echo "$m" | jq -r '.layers[0].digest')" \
    --arg md "sha256:$(echo "$m" | sha256sum | cut -d' ' -f1)" --arg r "$REGISTRY" '
      .id == $id and .name == ($r + "/busybox:latest") and .manifest_digest == $md
      and .repo_digest == ($r + "/busybox@" + $md) and .platform == "linux/amd64"
      and (.size > 0) and (.layers | length) == 1 and .layers[0].digest == $l0
      and .status == "downloaded"' >/dev/null
}

@test "pull: by digest verifies and names the image by digest" {
  local md
  md=sha256:$(registry_manifest busybox latest | sha256sum | cut -d' ' -f1)
  run vmbox pull -q "$REGISTRY/busybox@$md"
  assert_status 0
  [ "$output" = "$REGISTRY/busybox@$md" ]
  jq -e --arg n "$REGISTRY/busybox@$md" '.images[] | select(.names | index($n))' \
    "$VMBOX_ROOT/images.json" >/dev/null
}

@test "pull: an unknown digest is not found and leaves the store alone" {
  seed_store
  local before
  before=$(store_snapshot)
  run vmbox pull "$REGISTRY/busybox@sha256:$(printf '0%.0s' {1..64})"
  assert_status 125
  assert_contains "$output" "image not found: $REGISTRY/busybox@sha256:000"
  assert_store_unchanged "$before"
}

@test "pull: a multi-platform index resolves to the host platform" {
  run vmbox pull --format json "$REGISTRY/multi"
  assert_status 0
  local want
  want=$(registry_manifest multi latest |
    jq -r '.manifests[] | select(.platform.architecture == "amd64") | .digest')
  [ "$(echo "$output" | jq -r .manifest_digest)" = "$want" ]
  [ "$(echo "$output" | jq -r .platform)" = linux/amd64 ]
  # repo_digest names the index, as docker does
  local idx
  idx=sha256:$(registry_manifest multi latest | sha256sum | cut -d' ' -f1)
  [ "$(echo "$output" | jq -r .repo_digest)" = "$REGISTRY/multi@$idx" ]
}

@test "pull: --platform picks another platform from the index" {
  run vmbox pull --format json --platform linux/arm64 "$REGISTRY/multi"
  assert_status 0
  local want
  want=$(registry_manifest multi latest |
    jq -r '.manifests[] | select(.platform.architecture == "arm64") | .digest')
  [ "$(echo "$output" | jq -r .manifest_digest)" = "$want" ]
  [ "$(echo "$output" | jq -r .platform)" = linux/arm64 ]
}

@test "pull: a platform the index lacks is a clear error" {
  seed_store
  local before
  before=$(store_snapshot)
  run vmbox pull --platform linux/s390x "$REGISTRY/multi"
  assert_status 125
  assert_contains "$output" "has no image for platform linux/s390x"
  assert_contains "$output" "linux/amd64"
  assert_contains "$output" "linux/arm64"
  assert_store_unchanged "$before"
}

@test "pull: malformed --platform and --disk-size are usage errors" {
  run vmbox pull --platform amd64 "$REGISTRY/busybox"
  assert_status 125
  assert_contains "$output" "invalid --platform amd64"
  run vmbox pull --disk-size lots "$REGISTRY/busybox"
  assert_status 125
  assert_contains "$output" "invalid --disk-size lots"
  run vmbox pull
  assert_status 125
  run vmbox pull "$REGISTRY/BusyBox"
  assert_status 125
  assert_contains "$output" "must be lowercase"
}

@test "pull: zstd, gzip and uncompressed layers" {
  run vmbox pull --format json "$REGISTRY/zstd"
  assert_status 0
  [ "$(echo "$output" | jq -r .manifest_digest)" = \
    "sha256:$(registry_manifest zstd latest | sha256sum | cut -d' ' -f1)" ]
  echo "$output" | jq -e '[.layers[].media_type] == [
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar"]' >/dev/null
  assert_blobs_verified
}

@test "pull: localhost names use plain HTTP like 127.0.0.1" {
  local port=${REGISTRY##*:}
  run vmbox pull -q "localhost:$port/busybox"
  assert_status 0
  [ "$output" = "localhost:$port/busybox:latest" ]
}

@test "pull: unknown image is not found; the store is untouched" {
  seed_store
  local before
  before=$(store_snapshot)
  run vmbox pull "$REGISTRY/does-not-exist"
  assert_status 125
  assert_contains "$output" "image not found: $REGISTRY/does-not-exist:latest (does it exist? are you logged in?)"
  assert_store_unchanged "$before"
}

@test "pull: wrong tag names the missing tag" {
  seed_store
  local before
  before=$(store_snapshot)
  run vmbox pull "$REGISTRY/busybox:nope"
  assert_status 125
  assert_contains "$output" "image not found: $REGISTRY/busybox:nope"
  assert_contains "$output" "has no tag 'nope'"
  assert_store_unchanged "$before"
}

@test "pull: a registry that is down is named as unreachable" {
  seed_store
  local before port
  before=$(store_snapshot)
  port=$(free_port)
  run timeout 60 "$VMBOX" pull "127.0.0.1:$port/busybox"
  assert_status 125
  assert_contains "$output" "registry 127.0.0.1:$port is unreachable"
  assert_store_unchanged "$before"
}

@test "pull: malformed manifest JSON is rejected" {
  seed_store
  local before
  before=$(store_snapshot)
  set_faults manifest-malformed
  run vmbox pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "bad manifest for $FRONT/busybox:latest"
  assert_contains "$output" "malformed manifest JSON"
  assert_store_unchanged "$before"
}

@test "pull: an unknown manifest media type is rejected" {
  seed_store
  local before
  before=$(store_snapshot)
  set_faults manifest-mediatype
  run vmbox pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "unsupported manifest media type application/vnd.example.unknown.v1+json"
  assert_store_unchanged "$before"
}

@test "pull: schema1 manifests are rejected" {
  local before
  before=$(store_snapshot)
  set_faults manifest-schema1
  run vmbox pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "bad manifest for $FRONT/busybox:latest"
  assert_contains "$output" "schema version 1"
  assert_store_unchanged "$before"
}

@test "pull: a manifest that does not match its digest is rejected" {
  local before md
  before=$(store_snapshot)
  md=sha256:$(registry_manifest busybox latest | sha256sum | cut -d' ' -f1)
  set_faults manifest-tampered
  run vmbox pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "manifest digest mismatch for $FRONT/busybox:latest: expected $md"
  run vmbox pull "$FRONT/busybox@$md"
  assert_status 125
  assert_contains "$output" "manifest digest mismatch for $FRONT/busybox@$md: expected $md"
  assert_store_unchanged "$before"
}

@test "pull: manifests larger than 4 MiB are refused" {
  local before
  before=$(store_snapshot)
  set_faults manifest-huge
  run vmbox pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "larger than 4194304 bytes"
  assert_store_unchanged "$before"
}

@test "pull: a blob that does not match its digest stores nothing" {
  local before
  before=$(store_snapshot)
  set_faults blob-corrupt
  run vmbox pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "digest mismatch for sha256:"
  assert_store_unchanged "$before"
  [ ! -e "$VMBOX_ROOT/images.json" ] || ! grep -q busybox "$VMBOX_ROOT/images.json"
}

@test "pull: a truncated blob fails after bounded retries, then resumes" {
  local before
  before=$(store_snapshot)
  set_faults blob-truncate
  run timeout 120 "$VMBOX" pull "$FRONT/busybox"
  assert_status 125
  assert_contains "$output" "truncated at"
  assert_contains "$output" "run the pull again"
  assert_store_unchanged "$before"
  # bounded: one first try + 3 resumes per blob at most
  local n
  n=$(grep -c '^GET /v2/busybox/blobs/' "$FRONT_LOG")
  [ "$n" -le 8 ]
  ls "$VMBOX_ROOT"/tmp/*.partial # resumable partials are kept
  set_faults ""
  : >"$FRONT_LOG"
  run vmbox pull -q "$FRONT/busybox"
  assert_status 0
  grep -q 'blobs/sha256:.* range=bytes=[1-9]' "$FRONT_LOG"
  assert_blobs_verified
  [ -z "$(ls "$VMBOX_ROOT/tmp")" ]
}

@test "pull: a server that ignores Range gets a full restart" {
  set_faults blob-truncate
  run timeout 120 "$VMBOX" pull "$FRONT/busybox"
  assert_status 125
  set_faults blob-ignore-range
  : >"$FRONT_LOG"
  run vmbox pull -q "$FRONT/busybox"
  assert_status 0
  grep -q 'range=bytes=[1-9]' "$FRONT_LOG" # we asked to resume...
  assert_blobs_verified                     # ...got 200 and restarted cleanly
}

@test "pull: kill -9 mid-download, then pull again resumes" {
  set_faults blob-slow
  "$VMBOX" pull -q "$FRONT/busybox" >/dev/null 2>&1 &
  local pid=$! i size=0 part
  for i in $(seq 1 200); do # 20 s
    part=$(ls "$VMBOX_ROOT"/tmp/*.partial 2>/dev/null | head -n1 || true)
    [ -n "$part" ] && size=$(stat -c %s "$part") && [ "$size" -gt 65536 ] && break
    sleep 0.1
  done
  kill -9 "$pid"
  wait "$pid" || true
  [ "$size" -gt 65536 ]
  [ ! -e "$VMBOX_ROOT/images.json" ] || ! grep -q busybox "$VMBOX_ROOT/images.json"
  set_faults ""
  : >"$FRONT_LOG"
  run vmbox pull -q "$FRONT/busybox"
  assert_status 0
  grep -q 'range=bytes=[1-9]' "$FRONT_LOG"
  assert_blobs_verified
  jq -e --arg n "$FRONT/busybox:latest" '.images[] | select(.names | index($n))' \
    "$VMBOX_ROOT/images.json" >/dev/null
}

@test "pull: layers download in parallel, at most 4 at once" {
  set_faults blob-slow
  run vmbox pull -q "$FRONT/layers"
  assert_status 0
  local max
  max=$(grep '^GET /v2/layers/blobs/' "$FRONT_LOG" | sed 's/.*active=//' | sort -n | tail -n1)
  [ "$max" -ge 2 ]
  [ "$max" -le 4 ]
}

@test "pull: a full disk is a clear error and leaves no partials" {
  mkdir -p "$BATS_TEST_TMPDIR/small"
  mount -t tmpfs -o size=600k tmpfs "$BATS_TEST_TMPDIR/small"
  export VMBOX_ROOT=$BATS_TEST_TMPDIR/small/root
  run vmbox pull "$REGISTRY/busybox"
  assert_status 125
  assert_contains "$output" "disk full"
  assert_contains "$output" "free some space"
  [ -z "$(find "$VMBOX_ROOT/blobs" -type f 2>/dev/null)" ]
  [ -z "$(ls "$VMBOX_ROOT/tmp" 2>/dev/null)" ]
  [ ! -e "$VMBOX_ROOT/images.json" ]
}

@test "pull: progress is drawn on a terminal only" {
  set_faults blob-slow
  run script -qec "$VMBOX pull $FRONT/busybox" /dev/null
  assert_status 0
  assert_contains "$output" "Downloading ["
  assert_contains "$output" "Download complete"
  assert_contains "$output" "Status: Downloaded newer image"
  # -q on a terminal: no progress
  run script -qec "$VMBOX pull -q $FRONT/busybox:latest" /dev/null
  assert_status 0
  refute_contains "$output" "Download"
}

@test "pull: the flattened disk is cached and --disk-size reaches it" {
  run vmbox pull --format json --disk-size 64m "$REGISTRY/busybox"
  assert_status 0
  local md
  md=$(echo "$output" | jq -r .manifest_digest)
  local disk=$VMBOX_ROOT/ext4/${md#sha256:}.ext4
  [ -f "$disk" ]
  [ "$(stat -c %s "$disk")" -eq $((64 << 20)) ]
}
