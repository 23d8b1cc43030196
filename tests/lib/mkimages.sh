# Test image builders: real OCI image layouts made from Debian's busybox-static
# with umoci (and hand-made layer tars where umoci cannot express a case:
# opaque dirs, hardlinks to a lower layer, empty layers, zstd layers).
#
# Each image_NAME function builds its layout once per cache dir and prints the
# layout path.  Tag "latest" is the image under test; some layouts carry extra
# tags (documented per builder) that tests use as the reference.
#
#   layout=$(image_busybox)
#   push_layout "$layout" latest "$REGISTRY/busybox:latest"   # common.bash
#   umoci unpack --image "$layout:latest" "$BATS_TEST_TMPDIR/ref"
#
# The cache is $VMBOX_IMAGE_CACHE (tests/run.sh shares one across suites),
# else the bats run's temp dir.  Building is locked per image, so suites may
# run in parallel.  Sourced by tests/lib/common.bash and bench/pull-flatten.sh.

MKIMAGES_BUSYBOX=${BUSYBOX:-/bin/busybox}

_img_cache() {
  local d=${VMBOX_IMAGE_CACHE:-${BATS_RUN_TMPDIR:-${TMPDIR:-/tmp}}/vmbox-images}
  mkdir -p "$d"
  echo "$d"
}

# _img_cached NAME BUILDER  -> prints the layout dir, building it if needed.
_img_cached() {
  local name=$1 builder=$2 cache out
  cache=$(_img_cache) || return 1
  out=$cache/$name
  (
    exec 9>"$cache/$name.lock"
    flock 9
    [ -f "$out/.complete" ] && exit 0
    rm -rf "$out" "$out.work"
    mkdir -p "$out.work"
    umoci init --layout "$out" >/dev/null || exit 1
    if ! (cd "$out.work" && "$builder" "$out") >"$out.work/build.log" 2>&1; then
      echo "mkimages: building $name failed:" >&2
      cat "$out.work/build.log" >&2
      rm -rf "$out"
      exit 1
    fi
    rm -rf "$out.work"
    umoci gc --layout "$out" >/dev/null 2>&1 || true
    touch "$out/.complete"
  ) || return 1
  echo "$out"
}

# _layer LAYOUT TAG FUNC [ARGS...]: unpack TAG, run FUNC ROOTFS ARGS in the
# rootfs, repack as a new layer (umoci computes the diff, whiteouts included).
_layer() {
  local layout=$1 tag=$2 fn=$3 b
  shift 3
  b=$(mktemp -d "$PWD/bundle.XXXXXX")
  rmdir "$b"
  umoci unpack --image "$layout:$tag" "$b" >/dev/null || return 1
  "$fn" "$b/rootfs" "$@" || return 1
  umoci repack --image "$layout:$tag" "$b" >/dev/null || return 1
  rm -rf "$b"
}

# _raw_layer LAYOUT TAG TARFILE: appends TARFILE verbatim as a layer.
_raw_layer() {
  umoci raw add-layer --image "$1:$2" "$3" >/dev/null
}

# _pytar OUT.tar <<'EOF' ... EOF: builds a layer tar with Python's tarfile.
# The script sees `tar` (an open TarFile, PAX format) and helpers
# reg(name, data, mode=0o644, uid=0, gid=0), dir(name, mode=0o755),
# link(name, target) (hardlink), sym(name, target).
_pytar() {
  local out=$1
  python3 - "$out" 3<&0 <<'PY'
import io, os, sys, tarfile
out = sys.argv[1]
src = os.fdopen(3).read()
tar = tarfile.open(out, "w", format=tarfile.PAX_FORMAT)
def _ti(name, typ, mode, uid=0, gid=0):
    t = tarfile.TarInfo(name); t.type = typ; t.mode = mode; t.uid = uid; t.gid = gid
    t.mtime = 1700000000; t.uname = ""; t.gname = ""
    return t
def reg(name, data=b"", mode=0o644, uid=0, gid=0):
    if isinstance(data, str): data = data.encode()
    t = _ti(name, tarfile.REGTYPE, mode, uid, gid); t.size = len(data)
    tar.addfile(t, io.BytesIO(data))
def dir(name, mode=0o755, uid=0, gid=0):
    tar.addfile(_ti(name, tarfile.DIRTYPE, mode, uid, gid))
def link(name, target):
    t = _ti(name, tarfile.LNKTYPE, 0o644); t.linkname = target; tar.addfile(t)
def sym(name, target):
    t = _ti(name, tarfile.SYMTYPE, 0o777); t.linkname = target; tar.addfile(t)
exec(src)
tar.close()
PY
}

# _set_config LAYOUT TAG ARGS...: umoci config without the noise.
_set_config() {
  local layout=$1 tag=$2
  shift 2
  umoci config --image "$layout:$tag" "$@" >/dev/null
}

_fill_busybox() { # ROOTFS
  local root=$1
  BUSYBOX=$MKIMAGES_BUSYBOX "$VMBOX_REPO/scripts/mkbusybox.sh" --rootfs "$root"
  mkdir -p "$root/srv/app"
  printf 'app:x:1000:1000:app:/srv/app:/bin/sh\n' >>"$root/etc/passwd"
  printf 'app:x:1000:\n' >>"$root/etc/group"
  echo 'hello from vmbox tests' >"$root/srv/app/hello.txt"
  chown -R 1000:1000 "$root/srv/app"
}

# --- busybox: one layer, full config ----------------------------------------------
# Env, Entrypoint, Cmd, WorkingDir, User, ExposedPorts, Labels are set.
_build_busybox() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _fill_busybox
  _set_config "$L" latest \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env GREETING=hello --config.env 'SPACED=a b  c' \
    --config.entrypoint /bin/sh --config.entrypoint -c \
    --config.cmd 'echo $GREETING' \
    --config.workingdir /srv/app --config.user 1000:1000 \
    --config.exposedports 8080/tcp \
    --config.label org.opencontainers.image.title=vmbox-test-busybox \
    --author vmbox-tests
}
image_busybox() { _img_cached busybox _build_busybox; }

# --- multi-platform index -----------------------------------------------------------
# Tag "latest": an OCI index with linux/amd64 and linux/arm64 (variant v8).
# Tags "amd64" and "arm64": the per-platform manifests (references).
# /etc/vmbox-arch holds the platform; each has its own marker file.
_marker_amd64() {
  _fill_busybox "$1"
  echo amd64 >"$1/etc/vmbox-arch"
  echo x86 >"$1/amd64-only"
}
_marker_arm64() {
  mkdir -p "$1/etc"
  echo arm64 >"$1/etc/vmbox-arch"
  echo aarch64 >"$1/arm64-only"
}
_build_multiarch() {
  local L=$1 a d s
  umoci new --image "$L:amd64" >/dev/null
  _layer "$L" amd64 _marker_amd64
  _set_config "$L" amd64 --os linux --architecture amd64 --config.cmd sh
  umoci new --image "$L:arm64" >/dev/null
  _layer "$L" arm64 _marker_arm64
  _set_config "$L" arm64 --os linux --architecture arm64 --config.cmd sh
  # umoci writes no variant; add it to the arm64 config would change the
  # digest for no gain: the index entry carries it.
  local entries=()
  for a in amd64 arm64; do
    d=$(jq -r --arg t "$a" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t) | .digest' "$L/index.json")
    s=$(jq -r --arg t "$a" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t) | .size' "$L/index.json")
    if [ "$a" = arm64 ]; then
      entries+=("{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$d\",\"size\":$s,\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}}")
    else
      entries+=("{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"$d\",\"size\":$s,\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}")
    fi
  done
  # arm64 first: a client that takes the first entry gets it wrong on amd64.
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s,%s]}' \
    "${entries[1]}" "${entries[0]}" >idx.json
  _add_blob_tag "$L" idx.json application/vnd.oci.image.index.v1+json latest
}

# _add_blob_tag LAYOUT FILE MEDIATYPE TAG: stores FILE as a blob and points TAG at it.
_add_blob_tag() {
  local L=$1 f=$2 mt=$3 tag=$4 d s
  d=$(sha256sum "$f" | cut -d' ' -f1)
  s=$(stat -c %s "$f")
  cp "$f" "$L/blobs/sha256/$d"
  jq --arg t "$tag" --arg d "sha256:$d" --argjson s "$s" --arg mt "$mt" \
    '.manifests |= (map(select(.annotations["org.opencontainers.image.ref.name"] != $t))
       + [{mediaType:$mt, digest:$d, size:$s, annotations:{"org.opencontainers.image.ref.name":$t}}])' \
    "$L/index.json" >index.new && mv index.new "$L/index.json"
}
image_multiarch() { _img_cached multiarch _build_multiarch; }

# --- whiteouts and opaque dirs over 5 layers ----------------------------------------
_wo_l1() {
  local r=$1
  mkdir -p "$r"/a "$r"/b/sub/deeper "$r"/c/keepdir "$r"/d "$r"/e
  echo keep >"$r/a/keep"; echo del >"$r/a/del"; echo again-old >"$r/a/again"
  echo deep >"$r/b/sub/deeper/file"; echo bfile >"$r/b/file"
  echo old1 >"$r/c/old1"; echo old2 >"$r/c/old2"; echo kd >"$r/c/keepdir/x"
  echo tofile >"$r/d/becomes-dir"; mkdir -p "$r/e/becomes-file"; echo x >"$r/e/becomes-file/x"
  ln -s a/keep "$r/sym-to-delete"
  echo top >"$r/top"
}
_wo_l2() { # umoci writes .wh. entries for these deletions
  local r=$1
  rm "$r/a/del" "$r/a/again" "$r/sym-to-delete"
  rm -r "$r/b"
  rm "$r/d/becomes-dir"; mkdir "$r/d/becomes-dir"; echo inside >"$r/d/becomes-dir/f"
  rm -r "$r/e/becomes-file"; echo nowfile >"$r/e/becomes-file"
}
_build_whiteouts() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _wo_l1
  _layer "$L" latest _wo_l2
  # Layer 3 (hand-made): c becomes opaque (old1, old2, keepdir vanish), gets
  # a new mode and a new file; an explicit whiteout of a file that exists.
  _pytar l3.tar <<'EOF'
dir("c", 0o750)
reg("c/.wh..wh..opq", "")
reg("c/new", "new in l3\n")
reg("a/.wh.keep", "")
reg("a/again", "again-new\n")
EOF
  _raw_layer "$L" latest l3.tar
  # Layer 4: b comes back as an empty dir (b/sub must stay gone); opaque on a
  # dir that only exists in this layer; a whiteout for a name never present.
  _pytar l4.tar <<'EOF'
dir("b", 0o700)
reg("b/only", "b again\n")
dir("fresh")
reg("fresh/.wh..wh..opq", "")
reg("fresh/f", "fresh\n")
reg(".wh.never-existed", "")
EOF
  _raw_layer "$L" latest l4.tar
  # Layer 5: whiteout of something created in layer 3, opaque of a dir whose
  # content came from layers 1 and 3.
  _pytar l5.tar <<'EOF'
reg("c/.wh.new", "")
reg("top", "top v5\n", 0o600)
dir("c")
reg("c/.wh..wh..opq", "")
reg("c/final", "final\n")
EOF
  _raw_layer "$L" latest l5.tar
}
image_whiteouts() { _img_cached whiteouts _build_whiteouts; }

# --- hardlinks within and across layers ---------------------------------------------
_hl_l1() {
  local r=$1
  mkdir -p "$r/data" "$r/other"
  echo original >"$r/data/orig"
  chmod 640 "$r/data/orig"; chown 7:8 "$r/data/orig"
  echo pair >"$r/data/same1"
  ln "$r/data/same1" "$r/data/same2"
  ln "$r/data/same1" "$r/other/same3"
  echo break >"$r/data/tobreak"
  ln "$r/data/tobreak" "$r/data/tobreak2"
}
_build_hardlink() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _hl_l1
  # Layer 2: hardlinks whose target is only in layer 1.
  _pytar l2.tar <<'EOF'
dir("other")
link("other/link-to-orig", "data/orig")
link("other/link2-to-orig", "data/orig")
reg("other/plain", "plain\n")
EOF
  _raw_layer "$L" latest l2.tar
  # Layer 3: replacing one name of a linked pair breaks the pair.
  _pytar l3.tar <<'EOF'
reg("data/tobreak", "replaced\n")
EOF
  _raw_layer "$L" latest l3.tar
}
image_hardlink() { _img_cached hardlink _build_hardlink; }

# --- modes: setuid/setgid/sticky, odd modes, owners ---------------------------------
_perm_l1() {
  local r=$1
  mkdir -p "$r/bin" "$r/shared" "$r/group" "$r/locked"
  cp "$MKIMAGES_BUSYBOX" "$r/bin/suid"; chmod 4755 "$r/bin/suid"
  cp "$MKIMAGES_BUSYBOX" "$r/bin/sgid"; chmod 2755 "$r/bin/sgid"; chgrp 50 "$r/bin/sgid"
  echo x >"$r/bin/suidsgid"; chmod 6711 "$r/bin/suidsgid"
  chmod 1777 "$r/shared"; chmod 2775 "$r/group"; chown 1000:1000 "$r/group"
  echo secret >"$r/locked/none"; chmod 000 "$r/locked/none"; chmod 500 "$r/locked"
  echo all >"$r/all"; chmod 777 "$r/all"
  echo nobody >"$r/nobody"; chown 65534:65534 "$r/nobody"
  echo big >"$r/bigid"; chown 100000:200000 "$r/bigid"
  ln -s all "$r/symlink-owned"; chown -h 33:33 "$r/symlink-owned"
}
_build_perms() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _perm_l1
}
image_perms() { _img_cached perms _build_perms; }

# --- xattrs: file capability, user.* --------------------------------------------------
_xattr_l1() {
  local r=$1
  mkdir -p "$r/bin"
  cp "$MKIMAGES_BUSYBOX" "$r/bin/ping"
  setcap cap_net_raw+ep "$r/bin/ping"
  echo caps >"$r/bin/multi"; setcap cap_net_admin,cap_sys_time+eip "$r/bin/multi"
  echo data >"$r/tagged"
  setfattr -n user.vmbox.test -v hello "$r/tagged"
  setfattr -n user.vmbox.empty "$r/tagged"
  mkdir "$r/xdir"; setfattr -n user.dir -v 1 "$r/xdir"
}
_build_xattrs() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _xattr_l1
}
image_xattrs() { _img_cached xattrs _build_xattrs; }

# --- device nodes and fifos -----------------------------------------------------------
_dev_l1() {
  local r=$1
  mkdir -p "$r/dev/sub"
  mknod -m 666 "$r/dev/null" c 1 3
  mknod -m 666 "$r/dev/zero" c 1 5
  mknod -m 620 "$r/dev/tty1" c 4 1; chown 0:5 "$r/dev/tty1"
  mknod -m 660 "$r/dev/loop99" b 7 99
  mknod -m 600 "$r/dev/sub/bigmajor" c 259 65537   # needs the "new" encoding
  mkfifo -m 644 "$r/dev/sub/fifo"
}
_build_devices() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _dev_l1
}
image_devices() { _img_cached devices _build_devices; }

# --- symlinks and names ------------------------------------------------------------------
_sym_l1() {
  local r=$1 long
  mkdir -p "$r/usr/lib/real" "$r/etc"
  echo real >"$r/usr/lib/real/file"
  ln -s /usr/lib/real/file "$r/abs"
  ln -s usr/lib/real/file "$r/rel"
  ln -s ../../etc/../usr/lib "$r/usr/lib/real/up"
  ln -s /nonexistent/target "$r/dangling"
  ln -s /usr/lib "$r/lib"
  ln -s loop2 "$r/loop1"; ln -s loop1 "$r/loop2"
  long=$(printf '/very/long/target%.0s' $(seq 1 20))  # > 60 bytes: not inline
  ln -s "$long" "$r/longlink"
  long=$(printf 'x%.0s' $(seq 1 255))
  echo max >"$r/etc/$long"
  echo utf8 >"$r/etc/ünïcödé ☃ name"
  echo 'sp' >"$r/etc/with space"
  mkdir -p "$r/deep/$(printf 'd/%.0s' $(seq 1 40))"
  echo deep >"$r/deep/$(printf 'd/%.0s' $(seq 1 40))leaf"
}
_build_symlinks() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _sym_l1
}
image_symlinks() { _img_cached symlinks _build_symlinks; }

# --- sparse files -------------------------------------------------------------------------
# /sparse/1g: a 1 GiB hole with a few bytes in it (umoci writes it as a plain
# tar entry: the layer holds 1 GiB of zeros that the flattener must not
# allocate).  Layer 2 holds a PAX sparse entry written by GNU tar --sparse.
_sparse_l1() {
  local r=$1
  mkdir -p "$r/sparse"
  truncate -s 1G "$r/sparse/1g"
  printf 'start' | dd of="$r/sparse/1g" conv=notrunc status=none
  printf 'middle' | dd of="$r/sparse/1g" bs=1 seek=$((512 * 1024 * 1024)) conv=notrunc status=none
  truncate -s 10M "$r/sparse/allhole"
}
_build_sparse() {
  local L=$1
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _sparse_l1
  mkdir -p l2/sparse
  truncate -s 64M l2/sparse/gnu
  printf 'tail' | dd of=l2/sparse/gnu bs=1 seek=$((64 * 1024 * 1024 - 4)) conv=notrunc status=none
  printf 'head' | dd of=l2/sparse/gnu conv=notrunc status=none
  tar --sparse --format=posix --numeric-owner --owner=0 --group=0 -C l2 -cf l2.tar sparse/gnu
  _raw_layer "$L" latest l2.tar
}
image_sparse() { _img_cached sparse _build_sparse; }

# --- compression: zstd, gzip and uncompressed layers in one image -------------------------
# Tag "gzip": what umoci wrote (all gzip) -- the reference.
# Tag "latest": same diff_ids, layer 1 recompressed with zstd, layer 3 stored
# uncompressed (application/vnd.oci.image.layer.v1.tar), layer 2 gzip.
_z_l1() { _fill_busybox "$1"; }
_z_l2() { mkdir -p "$1/z2"; seq 1 20000 >"$1/z2/numbers"; echo two >"$1/z2/two"; }
_z_l3() { mkdir -p "$1/z3"; echo three >"$1/z3/three"; rm "$1/z2/two"; }
_build_zstd() {
  local L=$1 m d0 d2 z0 t2
  umoci new --image "$L:gzip" >/dev/null
  _layer "$L" gzip _z_l1
  _layer "$L" gzip _z_l2
  _layer "$L" gzip _z_l3
  m=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]=="gzip") | .digest' "$L/index.json")
  m=${m#sha256:}
  d0=$(jq -r '.layers[0].digest' "$L/blobs/sha256/$m"); d0=${d0#sha256:}
  d2=$(jq -r '.layers[2].digest' "$L/blobs/sha256/$m"); d2=${d2#sha256:}
  gzip -dc "$L/blobs/sha256/$d0" | zstd -q -10 -o z0.zst
  gzip -dc "$L/blobs/sha256/$d2" >t2.tar
  z0=$(sha256sum z0.zst | cut -d' ' -f1); cp z0.zst "$L/blobs/sha256/$z0"
  t2=$(sha256sum t2.tar | cut -d' ' -f1); cp t2.tar "$L/blobs/sha256/$t2"
  jq -c --arg z0 "sha256:$z0" --argjson s0 "$(stat -c %s z0.zst)" \
    --arg t2 "sha256:$t2" --argjson s2 "$(stat -c %s t2.tar)" \
    '.layers[0] |= (.digest=$z0 | .size=$s0 | .mediaType="application/vnd.oci.image.layer.v1.tar+zstd")
     | .layers[2] |= (.digest=$t2 | .size=$s2 | .mediaType="application/vnd.oci.image.layer.v1.tar")' \
    "$L/blobs/sha256/$m" >man.json
  _add_blob_tag "$L" man.json application/vnd.oci.image.manifest.v1+json latest
}
image_zstd() { _img_cached zstd _build_zstd; }

# --- empty layers ----------------------------------------------------------------------------
# Layer 2 of 3 is a tar with no entries; tag "only-empty" is an image whose
# single layer is empty (an empty root filesystem).
_e_l1() { mkdir -p "$1/before"; echo b >"$1/before/f"; }
_e_l3() { mkdir -p "$1/after"; echo a >"$1/after/f"; }
_build_empty() {
  local L=$1
  python3 -c 'import tarfile; tarfile.open("empty.tar", "w").close()'
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _e_l1
  _raw_layer "$L" latest empty.tar
  _layer "$L" latest _e_l3
  umoci new --image "$L:only-empty" >/dev/null
  _raw_layer "$L" only-empty empty.tar
}
image_empty() { _img_cached empty _build_empty; }

# --- big image for the benchmark ---------------------------------------------------------------
# $BIG_MB (default 300) MiB over $BIG_LAYERS (default 5) layers on top of
# busybox; per layer ~1500 small files and then medium and large ones, a mix
# of incompressible (seeded PRNG) and compressible (text) data, from a fixed
# seed: the same bytes every build.
_build_big() {
  local L=$1 n=${BIG_LAYERS:-5} mb=${BIG_MB:-300} i
  umoci new --image "$L:latest" >/dev/null
  _layer "$L" latest _fill_busybox
  for i in $(seq 1 "$n"); do
    rm -rf "big$i"
    python3 - "big$i" "$i" "$((mb / n))" <<'PY'
import os, random, sys
out, layer, mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(1000 + layer)
total = mb << 20
words = [b"vmbox", b"layer", b"ext4", b"registry", b"busybox", b"kernel", b"sandbox",
         b"manifest", b"digest", b"blob", b"inode", b"extent", b"journal", b"tar"]
def text(n):
    parts, size = [], 0
    while size < n:
        line = b" ".join(rng.choice(words) for _ in range(12)) + b" %d\n" % rng.randrange(1 << 30)
        parts.append(line); size += len(line)
    return b"".join(parts)[:n]
os.makedirs(out)
def put(k, data):
    d = os.path.join(out, "l%d" % layer, "d%02d" % (k % 37))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % k), "wb") as f:
        f.write(data)
# ~1500 small files per layer (source trees, configs), then medium and large
# files (libraries, assets) up to the layer's share of BIG_MB.
written, k = 0, 0
for _ in range(1500):
    k += 1
    size = rng.randrange(256, 16 << 10)
    data = text(size) if k % 10 < 7 else rng.randbytes(size)
    put(k, data)
    written += size
while written < total:
    k += 1
    if k % 2:
        size = rng.randrange(1 << 20, 6 << 20)   # medium, random
        data = rng.randbytes(size)
    else:
        size = rng.randrange(4 << 20, 12 << 20)  # large, text
        data = text(size)
    size = max(1, min(size, total - written))
    put(k, data[:size])
    written += size
PY
    tar --sort=name --mtime=@1700000000 --owner=0 --group=0 --numeric-owner -C "big$i" -cf "big$i.tar" .
    rm -rf "big$i"
    _raw_layer "$L" latest "big$i.tar"
    rm -f "big$i.tar"
  done
  _set_config "$L" latest --config.cmd sh
}
image_big() { _img_cached "big-${BIG_MB:-300}" _build_big; }

# All images the exactness suite covers: "NAME TAG REFTAG" per line.
# REFTAG is the layout tag to unpack as the reference.
mkimages_exactness_list() {
  cat <<'EOF'
busybox latest latest
whiteouts latest latest
hardlink latest latest
perms latest latest
xattrs latest latest
devices latest latest
symlinks latest latest
sparse latest latest
zstd latest gzip
empty latest latest
empty only-empty only-empty
multiarch latest amd64
EOF
}
