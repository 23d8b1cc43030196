#!/usr/bin/env bats
# vmbox import: OCI layouts (dir and tar), docker-save archives, rootfs tars,
# bad input (clear error, store untouched) and interrupted imports.

VMBOX_SETUP_ROOT=1
load lib/common

# A small root filesystem with busybox, as a tar at $1 (compressed by suffix).
make_rootfs_tar() {
  local out=$1 root=$BATS_TEST_TMPDIR/rootfs
  rm -rf "$root"
  mkdir -p "$root/bin" "$root/etc"
  cp /bin/busybox "$root/bin/busybox"
  ln -s busybox "$root/bin/sh"
  # Distinct content per archive: equal content would be one image (same config digest).
  echo "rootfs-marker ${out##*/}" >"$root/etc/marker"
  case $out in
  *.tar.gz) tar -C "$root" -czf "$out" . ;;
  *.tar.xz) tar -C "$root" -cJf "$out" . ;;
  *.tar.zst) tar -C "$root" -cf - . | zstd -q -o "$out" ;;
  *) tar -C "$root" -cf "$out" . ;;
  esac
}

# A private, writable copy of the busybox test layout.
copy_layout() {
  local dst=$BATS_TEST_TMPDIR/layout
  rm -rf "$dst"
  cp -r "$(image_busybox)" "$dst"
  chmod -R u+w "$dst"
  echo "$dst"
}

blob_of() { # manifest digest of the imported image $1
  vmbox images --format json | jq -r --arg n "$1" '.[] | select(.names | index($n)) | .manifest_digest'
}

@test "import: OCI layout directory with a name" {
  run vmbox import "$(image_busybox)" test/bb:1
  assert_status 0
  [ "$output" = "Loaded image: test/bb:1" ]
  run vmbox images --format json
  assert_status 0
  echo "$output" | jq -e 'length == 1 and .[0].names == ["docker.io/test/bb:1"]'
  echo "$output" | jq -e '.[0].platform == "linux/amd64" and (.[0].id | startswith("sha256:"))'
  echo "$output" | jq -e '.[0].size > 500000 and .[0].repo_digest == null'
  run vmbox image inspect test/bb:1
  assert_status 0
  echo "$output" | jq -e '.[0].Config.Env | index("GREETING=hello")'
  echo "$output" | jq -e '.[0].Config.Entrypoint == ["/bin/sh", "-c"]'
  echo "$output" | jq -e '.[0].Config.WorkingDir == "/srv/app" and .[0].Config.User == "1000:1000"'
  echo "$output" | jq -e '.[0].Config.ExposedPorts | has("8080/tcp")'
  disk=$(echo "$output" | jq -r '.[0].Disk')
  [ -f "$disk" ]
}

@test "import: a layout tagged only 'latest' gives a dangling image" {
  run vmbox import "$(image_busybox)"
  assert_status 0
  assert_contains "$output" "Loaded image ID: sha256:"
  run vmbox images
  assert_contains "$output" "<none>"
  run vmbox images --format json
  echo "$output" | jq -e '.[0].names == []'
}

@test "import: DIR:TAG picks a tag; an index picks the host platform; --platform overrides" {
  L=$(image_multiarch)
  run vmbox import "$L:latest" multi:host
  assert_status 0
  run vmbox import --platform linux/arm64 "$L" multi:arm
  assert_status 0
  run vmbox import "$L:arm64" multi:arm-tag
  assert_status 0
  run vmbox images --format json
  echo "$output" | jq -e '.[] | select(.names | index("docker.io/library/multi:host")) | .platform == "linux/amd64"'
  echo "$output" | jq -e '.[] | select(.names | index("docker.io/library/multi:arm")) | .platform == "linux/arm64"'
  run vmbox import "$L:nosuchtag" x:1
  assert_status 125
  assert_contains "$output" "no image tagged 'nosuchtag'"
  run vmbox import --platform linux/s390x "$L:latest" x:2
  assert_status 125
  assert_contains "$output" "no image for platform linux/s390x"
}

@test "import: a layout with several named images: pick by NAME or TAG, else a clear error" {
  L=$(copy_layout)
  jq '.manifests[0].annotations = {"io.containerd.image.name": "docker.io/library/one:1",
        "org.opencontainers.image.ref.name": "1"}
      | .manifests += [.manifests[0] | .annotations = {"io.containerd.image.name":
        "docker.io/library/two:2", "org.opencontainers.image.ref.name": "2"}]' \
    "$L/index.json" >"$L/i" && mv "$L/i" "$L/index.json"
  run vmbox import "$L"
  assert_status 125
  assert_contains "$output" "the layout holds 2 images (docker.io/library/one:1, docker.io/library/two:2)"
  run vmbox import "$L" two:2
  assert_status 0
  [ "$output" = "Loaded image: two:2" ]
  run vmbox import "$L:1"
  assert_status 0
  [ "$output" = "Loaded image: one:1" ]
}

@test "import: OCI layout tar, name from the io.containerd.image.name annotation" {
  L=$(copy_layout)
  jq '.manifests[0].annotations["io.containerd.image.name"] = "registry.example:5000/team/app:2.0"' \
    "$L/index.json" >"$L/index.new"
  mv "$L/index.new" "$L/index.json"
  tar -C "$L" -cf "$BATS_TEST_TMPDIR/oci.tar" .
  run vmbox import "$BATS_TEST_TMPDIR/oci.tar"
  assert_status 0
  [ "$output" = "Loaded image: registry.example:5000/team/app:2.0" ]
  run vmbox image inspect registry.example:5000/team/app:2.0
  assert_status 0
}

@test "import: oci-archive made by skopeo, compressed layout tar" {
  skopeo copy -q "oci:$(image_busybox):latest" "oci-archive:$BATS_TEST_TMPDIR/a.tar:latest"
  run vmbox import "$BATS_TEST_TMPDIR/a.tar" arch:1
  assert_status 0
  tar -C "$(image_busybox)" -czf "$BATS_TEST_TMPDIR/l.tar.gz" .
  run vmbox import "$BATS_TEST_TMPDIR/l.tar.gz" arch:2
  assert_status 0
  run vmbox images -q
  [ "$(echo "$output" | sort -u | wc -l)" = 1 ]
}

@test "import: docker-archive from skopeo, name from RepoTags, same image id as the layout" {
  skopeo copy -q "oci:$(image_busybox):latest" \
    "docker-archive:$BATS_TEST_TMPDIR/d.tar:example.com/team/app:v2"
  run vmbox import "$BATS_TEST_TMPDIR/d.tar"
  assert_status 0
  [ "$output" = "Loaded image: example.com/team/app:v2" ]
  run vmbox import "$(image_busybox)" oci:1
  run vmbox images --format json
  echo "$output" | jq -e 'length == 1 and (.[0].names | length) == 2'
  run vmbox image inspect example.com/team/app:v2
  echo "$output" | jq -e '.[0].RepoTags | index("example.com/team/app:v2")'
  echo "$output" | jq -e '.[0].Config.Cmd == ["echo $GREETING"]'
  [ -f "$(echo "$output" | jq -r '.[0].Disk')" ]
}

@test "import: docker-archive with a NAME overrides RepoTags" {
  skopeo copy -q "oci:$(image_busybox):latest" "docker-archive:$BATS_TEST_TMPDIR/d.tar:a/b:c"
  run vmbox import "$BATS_TEST_TMPDIR/d.tar" mine:7
  assert_status 0
  [ "$output" = "Loaded image: mine:7" ]
}

@test "import: plain rootfs tar becomes a one-layer image with a synthesized config" {
  make_rootfs_tar "$BATS_TEST_TMPDIR/r.tar"
  run vmbox import "$BATS_TEST_TMPDIR/r.tar" rootfs:plain
  assert_status 0
  run vmbox image inspect rootfs:plain
  assert_status 0
  echo "$output" | jq -e '.[0].Os == "linux" and .[0].Architecture == "amd64"'
  echo "$output" | jq -e '.[0].Config.Cmd == ["sh"] and (.[0].Config.Env[0] | startswith("PATH="))'
  echo "$output" | jq -e '.[0].RootFS.Layers | length == 1'
  # The layer blob is the tar itself, byte for byte.
  want=sha256:$(sha256sum <"$BATS_TEST_TMPDIR/r.tar" | cut -d' ' -f1)
  m=$(blob_of docker.io/library/rootfs:plain)
  jq -e --arg w "$want" '.layers[0].digest == $w and .layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar"' \
    "$VMBOX_ROOT/blobs/sha256/${m#sha256:}"
  echo "$output" | jq -e --arg w "$want" '.[0].RootFS.Layers[0] == $w'
}

@test "import: gzip, zstd and xz rootfs tars" {
  for ext in tar.gz tar.zst tar.xz; do
    make_rootfs_tar "$BATS_TEST_TMPDIR/r.$ext"
    run vmbox import "$BATS_TEST_TMPDIR/r.$ext" "rootfs:${ext//./-}"
    assert_status 0
  done
  m=$(blob_of docker.io/library/rootfs:tar-gz)
  jq -e '.layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar+gzip"' "$VMBOX_ROOT/blobs/sha256/${m#sha256:}"
  want=sha256:$(sha256sum <"$BATS_TEST_TMPDIR/r.tar.gz" | cut -d' ' -f1)
  jq -e --arg w "$want" '.layers[0].digest == $w' "$VMBOX_ROOT/blobs/sha256/${m#sha256:}"
  m=$(blob_of docker.io/library/rootfs:tar-zst)
  jq -e '.layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar+zstd"' "$VMBOX_ROOT/blobs/sha256/${m#sha256:}"
  # xz is not an OCI layer type: stored decompressed.
  m=$(blob_of docker.io/library/rootfs:tar-xz)
  jq -e '.layers[0].mediaType == "application/vnd.oci.image.layer.v1.tar"' "$VMBOX_ROOT/blobs/sha256/${m#sha256:}"
  run vmbox images --format json
  echo "$output" | jq -e 'length >= 3'
}

@test "import: - reads the archive from standard input" {
  make_rootfs_tar "$BATS_TEST_TMPDIR/r.tar.gz"
  run sh -c '"$VMBOX" import - stdin:1 <"$1"' _ "$BATS_TEST_TMPDIR/r.tar.gz"
  assert_status 0
  [ "$output" = "Loaded image: stdin:1" ]
  skopeo copy -q "oci:$(image_busybox):latest" "docker-archive:$BATS_TEST_TMPDIR/d.tar:a/b:c"
  run sh -c '"$VMBOX" import - <"$1"' _ "$BATS_TEST_TMPDIR/d.tar"
  assert_status 0
  [ "$output" = "Loaded image: a/b:c" ]
  [ -z "$(ls "$VMBOX_ROOT/tmp")" ]
}

@test "import: the embedded busybox archive (scripts/mkbusybox.sh) is named busybox:latest" {
  # mkbusybox.sh can die of SIGPIPE (busybox | head under pipefail): retry.
  for _ in 1 2 3; do
    "$VMBOX_REPO/scripts/mkbusybox.sh" "$BATS_TEST_TMPDIR/bb.tar" && break
  done
  [ -f "$BATS_TEST_TMPDIR/bb.tar" ]
  run vmbox import "$BATS_TEST_TMPDIR/bb.tar"
  assert_status 0
  [ "$output" = "Loaded image: busybox:latest" ]
  run vmbox image inspect busybox
  echo "$output" | jq -e '.[0].RepoTags == ["busybox:latest"] and .[0].Config.Cmd == ["sh"]'
}

@test "import: -q prints the id, --format json the record" {
  run vmbox import -q "$(image_busybox)" q:1
  assert_status 0
  [[ "$output" =~ ^sha256:[0-9a-f]{64}$ ]]
  id=$output
  run vmbox import --format json "$(image_busybox)" q:2
  assert_status 0
  echo "$output" | jq -e --arg id "$id" '.id == $id and (.names | index("docker.io/library/q:2")) and .manifest_digest and .platform and .size and has("created")'
}

@test "import: usage errors" {
  run vmbox import
  assert_status 125
  assert_contains "$output" "requires a PATH"
  run vmbox import a b c
  assert_status 125
  run vmbox import --bogus x
  assert_status 125
  run vmbox import --help
  assert_status 0
  assert_contains "$output" "Usage: vmbox import"
  run vmbox import "$(image_busybox)" 'Bad Name'
  assert_status 125
  assert_contains "$output" "invalid image name"
  run vmbox import "$(image_busybox)" "x@sha256:$(printf '%064d' 0)"
  assert_status 125
  assert_contains "$output" "by digest"
}

# --- bad input: a clear error, and nothing changes in the store ---------------------

seed_store() {
  vmbox import "$(image_busybox)" seed:1 >/dev/null
  BEFORE=$(store_snapshot)
}

@test "import bad input: missing path" {
  seed_store
  run vmbox import "$BATS_TEST_TMPDIR/nope.tar" x:1
  assert_status 125
  assert_contains "$output" "nope.tar: cannot access it: No such file or directory"
  assert_store_unchanged "$BEFORE"
}

@test "import bad input: garbage file" {
  seed_store
  head -c 100000 /dev/urandom >"$BATS_TEST_TMPDIR/garbage"
  run vmbox import "$BATS_TEST_TMPDIR/garbage" x:1
  assert_status 125
  assert_contains "$output" "not an OCI image layout, docker save archive or tar archive"
  assert_store_unchanged "$BEFORE"
  : >"$BATS_TEST_TMPDIR/empty"
  run vmbox import "$BATS_TEST_TMPDIR/empty" x:1
  assert_status 125
  assert_contains "$output" "the file is empty"
  assert_store_unchanged "$BEFORE"
}

@test "import bad input: a corrupt layer blob in an OCI layout" {
  seed_store
  L=$(copy_layout)
  m=$(jq -r '.manifests[0].digest' "$L/index.json")
  layer=$(jq -r '.layers[0].digest' "$L/blobs/sha256/${m#sha256:}")
  printf 'corruption' >>"$L/blobs/sha256/${layer#sha256:}"
  run vmbox import "$L" corrupt:1
  assert_status 125
  assert_contains "$output" "blobs/sha256/${layer#sha256:} is corrupt: its content hashes to sha256:"
  assert_store_unchanged "$BEFORE"
  # The same layout as a tar, and a fresh store: nothing lands either.
  tar -C "$L" -cf "$BATS_TEST_TMPDIR/c.tar" .
  export VMBOX_ROOT=$BATS_TEST_TMPDIR/root2
  run vmbox import "$BATS_TEST_TMPDIR/c.tar" corrupt:1
  assert_status 125
  assert_contains "$output" "is corrupt"
  [ "$(find "$VMBOX_ROOT/blobs" -type f | wc -l)" = 0 ]
  [ "$(find "$VMBOX_ROOT/tmp" -type f | wc -l)" = 0 ]
}

@test "import bad input: a missing blob and a corrupt manifest" {
  seed_store
  L=$(copy_layout)
  m=$(jq -r '.manifests[0].digest' "$L/index.json")
  cfg=$(jq -r '.config.digest' "$L/blobs/sha256/${m#sha256:}")
  rm "$L/blobs/sha256/${cfg#sha256:}"
  run vmbox import "$L" missing:1
  assert_status 125
  assert_contains "$output" "config $cfg is missing from the layout"
  assert_store_unchanged "$BEFORE"
  echo '{' >"$L/index.json"
  run vmbox import "$L" broken:1
  assert_status 125
  assert_contains "$output" "index.json"
  assert_store_unchanged "$BEFORE"
}

@test "import bad input: truncated tar" {
  seed_store
  skopeo copy -q "oci:$(image_busybox):latest" "docker-archive:$BATS_TEST_TMPDIR/d.tar:a/b:c"
  head -c 300000 "$BATS_TEST_TMPDIR/d.tar" >"$BATS_TEST_TMPDIR/t.tar"
  run vmbox import "$BATS_TEST_TMPDIR/t.tar" trunc:1
  assert_status 125
  assert_contains "$output" "the archive is truncated or damaged"
  assert_store_unchanged "$BEFORE"
  make_rootfs_tar "$BATS_TEST_TMPDIR/r.tar.gz"
  head -c 20000 "$BATS_TEST_TMPDIR/r.tar.gz" >"$BATS_TEST_TMPDIR/t.tar.gz"
  run vmbox import "$BATS_TEST_TMPDIR/t.tar.gz" trunc:2
  assert_status 125
  assert_contains "$output" "truncated or damaged"
  assert_store_unchanged "$BEFORE"
}

@test "import bad input: docker-archive layer that does not match its diff_id" {
  seed_store
  skopeo copy -q "oci:$(image_busybox):latest" "docker-archive:$BATS_TEST_TMPDIR/d.tar:a/b:c"
  mkdir "$BATS_TEST_TMPDIR/d"
  tar -C "$BATS_TEST_TMPDIR/d" -xf "$BATS_TEST_TMPDIR/d.tar"
  layer=$(jq -r '.[0].Layers[0]' "$BATS_TEST_TMPDIR/d/manifest.json")
  chmod u+w "$BATS_TEST_TMPDIR/d/$layer"
  printf 'x' | dd of="$BATS_TEST_TMPDIR/d/$layer" bs=1 seek=600 conv=notrunc status=none
  tar -C "$BATS_TEST_TMPDIR/d" -cf "$BATS_TEST_TMPDIR/bad.tar" .
  run vmbox import "$BATS_TEST_TMPDIR/bad.tar" bad:1
  assert_status 125
  assert_contains "$output" "is corrupt: content hashes to"
  assert_store_unchanged "$BEFORE"
}

# --- crashes -----------------------------------------------------------------------

@test "import: kill -9 mid-import, then the store is consistent and import works" {
  root=$BATS_TEST_TMPDIR/big
  mkdir -p "$root"
  head -c 150000000 /dev/urandom >"$root/blob"
  tar -C "$root" -cf "$BATS_TEST_TMPDIR/big.tar" .
  vmbox import "$(image_busybox)" seed:1 >/dev/null
  "$VMBOX" import "$BATS_TEST_TMPDIR/big.tar" big:1 >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do
    compgen -G "$VMBOX_ROOT/tmp/*.tmp.$pid" >/dev/null && break
    sleep 0.05
  done
  compgen -G "$VMBOX_ROOT/tmp/*.tmp.$pid" >/dev/null # it was mid-import
  kill -9 "$pid"
  wait "$pid" || true
  jq -e '.images | length == 1' "$VMBOX_ROOT/images.json"
  run vmbox images --format json
  assert_status 0
  echo "$output" | jq -e 'length == 1'
  # The dead process's temp files were swept by that command.
  ! compgen -G "$VMBOX_ROOT/tmp/*.tmp.$pid"
  run vmbox import "$BATS_TEST_TMPDIR/big.tar" big:1
  assert_status 0
  run vmbox images --format json
  echo "$output" | jq -e 'length == 2'
  [ -z "$(ls "$VMBOX_ROOT/tmp")" ]
}
