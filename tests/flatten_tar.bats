#!/usr/bin/env bats
# Layer tarballs -> ext4 (image/flatten.c) driven through build/tools/flatten_tool:
# OCI whiteout semantics, file types and metadata, sparseness, and hostile
# layers.  Layers are crafted with tests/lib/mktar.py; results are checked with
# e2fsck -fn and a read-only loop mount.

REPO=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
FT=${FLATTEN_TOOL:-${VMBOX_BUILD:-$REPO/build}/tools/flatten_tool}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

setup() {
  [ -x "$FT" ] || { echo "missing $FT: run make unit" >&2; return 1; }
  T=$BATS_TEST_TMPDIR
  M=$T/mnt
  mkdir -p "$M"
}

teardown() {
  if mountpoint -q "$M" 2>/dev/null; then umount "$M"; fi
}

# layer NAME < SPEC: writes $T/NAME.tar.gz (mktar.py spec on stdin).
layer() {
  python3 "$REPO/tests/lib/mktar.py" "$T/$1.tar.gz"
}

# flat OUT LAYER...: flattens $T/LAYER.tar.gz files into $T/OUT.ext4, checks it.
flat() {
  local out=$T/$1.ext4
  shift
  local args=()
  for l in "$@"; do args+=("$T/$l.tar.gz"); done
  "$FT" "$out" "${args[@]}"
  e2fsck -fn "$out"
}

mnt() {
  mount -o loop,ro "$T/$1.ext4" "$M"
}

@test "files, dirs and metadata: modes, setuid/setgid/sticky, uid/gid, mtime" {
  layer l1 <<'EOF'
dir usr mode=0755 mtime=1600000000
dir usr/bin mode=0755
file usr/bin/su content=x mode=4755 uid=0 gid=0 mtime=1500000000
file usr/bin/wall content=y mode=2755 gid=5
dir tmp mode=1777
file home/u/f content=hello uid=1000 gid=1001 mode=0640 mtime=2000000000
EOF
  flat out l1
  mnt out
  [ "$(stat -c '%a %u %g %Y' "$M/usr/bin/su")" = "4755 0 0 1500000000" ]
  [ "$(stat -c '%a %g' "$M/usr/bin/wall")" = "2755 5" ]
  [ "$(stat -c '%a' "$M/tmp")" = "1777" ]
  [ "$(stat -c '%a %u %g %Y %s' "$M/home/u/f")" = "640 1000 1001 2000000000 5" ]
  [ "$(cat "$M/home/u/f")" = hello ]
  [ "$(stat -c '%Y' "$M/usr")" = 1600000000 ]
  # an implicit parent (home/u) is created as a 0755 directory
  [ "$(stat -c '%a %F' "$M/home/u")" = "755 directory" ]
  [ -d "$M/lost+found" ]
}

@test "whiteouts and opaque dirs across three layers" {
  layer l1 <<'EOF'
dir d
file d/a content=one
file d/b content=b
dir o
file o/old content=old
dir o/sub
file o/sub/deep content=deep
file keep content=k
dir w
file w/x content=x
EOF
  # same-layer entries before and after the opaque marker stay
  layer l2 <<'EOF'
whiteout d/a
dir o mode=0700
file o/new content=new
dir o/sub
file o/sub/mine content=mine
opaque o
file o/new2 content=new2
whiteout w
EOF
  layer l3 <<'EOF'
file d/a content=again
whiteout keep
dir w
file w/y content=y
EOF
  flat out l1 l2 l3
  mnt out
  [ "$(cat "$M/d/a")" = again ]
  [ "$(cat "$M/d/b")" = b ]
  [ "$(ls -A "$M/o" | tr '\n' ' ')" = "new new2 sub " ]
  [ "$(ls -A "$M/o/sub")" = mine ]
  [ "$(stat -c %a "$M/o")" = 700 ]
  [ ! -e "$M/keep" ]
  [ "$(ls -A "$M/w")" = y ]
  # no whiteout markers leak into the image
  run find "$M" -name '.wh.*'
  [ -z "$output" ]
}

@test "a whiteout does not hide its own layer's entries" {
  layer l1 <<'EOF'
file f content=mine
whiteout f
EOF
  flat out l1
  mnt out
  [ "$(cat "$M/f")" = mine ]
}

@test "replacement: file over dir drops the tree, dir over dir merges and takes new metadata" {
  layer l1 <<'EOF'
dir a
file a/x content=x
file a/y content=y
dir m mode=0755 uid=1
file m/keep content=k
symlink s target=a
EOF
  layer l2 <<'EOF'
file a content=now-a-file
dir m mode=0700 uid=7 gid=8 mtime=1234567890
file m/add content=add
file s content=not-a-link
EOF
  flat out l1 l2
  mnt out
  [ -f "$M/a" ]
  [ "$(cat "$M/a")" = now-a-file ]
  [ "$(ls -A "$M/m" | tr '\n' ' ')" = "add keep " ]
  [ "$(stat -c '%a %u %g %Y' "$M/m")" = "700 7 8 1234567890" ]
  [ -f "$M/s" ]
  [ ! -L "$M/s" ]
}

@test "hardlinks: across layers, and surviving a later whiteout of the original" {
  layer l1 <<'EOF'
file bin/orig content=payload mode=0755
EOF
  layer l2 <<'EOF'
hardlink bin/link target=bin/orig
hardlink bin/link2 target=bin/link
EOF
  flat two l1 l2
  mnt two
  [ "$(stat -c '%i %h' "$M/bin/orig")" = "$(stat -c '%i %h' "$M/bin/link")" ]
  [ "$(stat -c %h "$M/bin/link2")" = 3 ]
  umount "$M"

  layer l3 <<'EOF'
whiteout bin/orig
whiteout bin/link2
EOF
  flat three l1 l2 l3
  mnt three
  [ ! -e "$M/bin/orig" ]
  [ "$(cat "$M/bin/link")" = payload ]
  [ "$(stat -c '%h %a' "$M/bin/link")" = "1 755" ]
}

@test "hardlink to a missing target is a clear error and leaves no file" {
  layer l1 <<'EOF'
hardlink a target=nowhere
EOF
  run "$FT" "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"hardlink target nowhere does not exist"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
}

@test "security.capability and other xattrs survive" {
  # v2 capability: cap_net_raw (bit 13) effective+permitted
  layer l1 <<'EOF'
file bin/ping content=p mode=0755 xattr.security.capability=0100000200200000000000000000000000000000
file f content=f xattr.user.note=68656c6c6f xattr.trusted.t=01
dir d xattr.user.dir=6464
EOF
  flat out l1
  mnt out
  run getcap "$M/bin/ping"
  [[ "$output" == *"cap_net_raw=ep"* ]]
  [ "$(getfattr --only-values -n user.note "$M/f")" = hello ]
  [ "$(getfattr --only-values -n user.dir "$M/d")" = dd ]
  run getfattr -n trusted.t "$M/f"
  [ "$status" -eq 0 ]
}

@test "device nodes and fifos" {
  layer l1 <<'EOF'
chr dev/null major=1 minor=3 mode=0666
blk dev/sda major=8 minor=0 mode=0660 gid=6
chr dev/big major=300 minor=70000
fifo run/fifo mode=0600
EOF
  flat out l1
  mnt out
  [ "$(stat -c '%F %t %T %a' "$M/dev/null")" = "character special file 1 3 666" ]
  [ "$(stat -c '%F %t %T %g' "$M/dev/sda")" = "block special file 8 0 6" ]
  [ "$(stat -c '%Hr %Lr' "$M/dev/big")" = "300 70000" ]
  [ "$(stat -c '%F %a' "$M/run/fifo")" = "fifo 600" ]
}

@test "symlinks: absolute, relative and long targets stay as written" {
  long=$(printf 'x%.0s' $(seq 200))
  layer l1 <<EOF
symlink etc/abs target=/etc/passwd
symlink rel target=../../up/there
symlink long target=/$long
dir lib
symlink lib64 target=lib
EOF
  flat out l1
  mnt out
  [ "$(readlink "$M/etc/abs")" = /etc/passwd ]
  [ "$(readlink "$M/rel")" = ../../up/there ]
  [ "$(readlink "$M/long")" = "/$long" ]
  [ "$(readlink "$M/lib64")" = lib ]
  # symlinks are 0777 whatever the header says, as on any Linux filesystem
  [ "$(stat -c %a "$M/etc/abs")" = 777 ]
  # short targets are fast symlinks (no data block)
  [ "$(stat -c %b "$M/etc/abs")" = 0 ]
}

@test "a 1 GiB file of zeros stays sparse" {
  layer l1 <<EOF
file big zeros=$((1 << 30))
file tail zeros=8192 content=
EOF
  flat out l1
  [ "$(du -k "$T/out.ext4" | cut -f1)" -lt 65536 ]
  mnt out
  [ "$(stat -c %s "$M/big")" = 1073741824 ]
  [ "$(stat -c %b "$M/big")" = 0 ]
  [ "$(du -k "$M/big" | cut -f1)" = 0 ]
  [ "$(cmp -n 8192 "$M/tail" /dev/zero && echo same)" = same ]
}

@test "plain, gzip and zstd layers" {
  layer l1 <<'EOF'
file a content=gz
EOF
  printf 'file b content=plain\n' | python3 "$REPO/tests/lib/mktar.py" "$T/l2.tar"
  printf 'file c content=zstd\n' | python3 "$REPO/tests/lib/mktar.py" "$T/l3.tar"
  zstd -q "$T/l3.tar" -o "$T/l3.tar.zst"
  "$FT" "$T/out.ext4" "$T/l1.tar.gz" "$T/l2.tar" "$T/l3.tar.zst"
  e2fsck -fn "$T/out.ext4"
  mnt out
  [ "$(cat "$M/a" "$M/b" "$M/c")" = gzplainzstd ]
}

@test "hostile: .. and absolute paths are confined to the image root" {
  evil=vmbox-flatten-evil-$$
  layer l1 <<EOF
file ../../../../../../tmp/$evil content=dotdot
file /abs/$evil content=abs
file a/../../b content=b
file ./c/./d content=d
EOF
  flat out l1
  [ ! -e "/tmp/$evil" ]
  [ ! -e /abs ]
  mnt out
  [ "$(cat "$M/tmp/$evil")" = dotdot ]
  [ "$(cat "$M/abs/$evil")" = abs ]
  [ "$(cat "$M/b")" = b ]
  [ "$(cat "$M/c/d")" = d ]
}

@test "hostile: writes through symlinked parents resolve inside the image" {
  evil=vmbox-flatten-evil-$$
  layer l1 <<EOF
dir etc
symlink a target=/etc
symlink up target=../../../..
symlink loop1 target=loop2
symlink loop2 target=loop1
EOF
  layer l2 <<EOF
file a/passwd content=inside
file up/tmp/$evil content=up
EOF
  flat out l1 l2
  [ ! -e "/tmp/$evil" ]
  mnt out
  [ "$(cat "$M/etc/passwd")" = inside ]
  [ -L "$M/a" ]
  [ "$(cat "$M/tmp/$evil")" = up ]
  umount "$M"
  layer l3 <<'EOF'
file loop1/x content=x
EOF
  run "$FT" "$T/bad.ext4" "$T/l1.tar.gz" "$T/l3.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"entry loop1/x"*"Too many levels of symbolic links"* ]]
  [ -z "$(ls "$T" | grep bad.ext4)" ]
}

@test "hostile: a declared size beyond --disk-size fails cleanly" {
  layer l1 <<EOF
file ok content=ok
bigdecl huge size=$((10 << 30))
EOF
  run "$FT" --disk-size 64m "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"exceeds"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
}

@test "content that does not fit --disk-size is refused before writing" {
  head -c $((80 << 20)) /dev/urandom > "$T/rand"
  python3 - "$T/l1.tar.gz" "$T/rand" <<'EOF'
import sys, tarfile
with tarfile.open(sys.argv[1], "w:gz", compresslevel=1) as t:
    t.add(sys.argv[2], "rand")
EOF
  run "$FT" --disk-size 64m "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"too small"* || "$output" == *"exceeds"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
  # the automatic size fits it
  "$FT" "$T/out.ext4" "$T/l1.tar.gz"
  e2fsck -fn "$T/out.ext4"
  mnt out
  cmp "$M/rand" "$T/rand"
}

@test "names longer than 255 bytes are a clear error" {
  long=$(printf 'n%.0s' $(seq 256))
  layer l1 <<EOF
file dir/$long content=x
EOF
  run "$FT" "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"name component of 256 bytes"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
}

@test "a truncated or corrupt layer fails cleanly" {
  layer l1 <<'EOF'
file a content=hello
EOF
  head -c 30 "$T/l1.tar.gz" > "$T/cut.tar.gz"
  run "$FT" "$T/out.ext4" "$T/cut.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"cut.tar.gz"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
}

@test "big directories and many files stay consistent" {
  python3 - "$T/l1.tar.gz" <<'EOF'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz", compresslevel=1) as t:
    for i in range(20000):
        ti = tarfile.TarInfo("many/file-with-a-longish-name-%05d" % i)
        data = str(i).encode()
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
EOF
  layer l2 <<'EOF'
whiteout many/file-with-a-longish-name-00007
EOF
  flat out l1 l2
  mnt out
  [ "$(ls "$M/many" | wc -l)" = 19999 ]
  [ "$(cat "$M/many/file-with-a-longish-name-12345")" = 12345 ]
  [ ! -e "$M/many/file-with-a-longish-name-00007" ]
}

@test "an opaque root hides lower layers but keeps lost+found" {
  layer l1 <<'EOF2'
file old content=old
dir lost+found mode=0700
EOF2
  layer l2 <<'EOF2'
file new content=new
opaque .
EOF2
  flat out l1 l2
  mnt out
  [ "$(ls -A "$M" | tr '\n' ' ')" = "lost+found new " ]
}

@test "empty layers and a root entry with metadata" {
  : > "$T/empty.tar.gz"
  python3 -c 'import tarfile,sys; tarfile.open(sys.argv[1], "w").close()' "$T/l0.tar"
  layer l1 <<'EOF2'
dir ./ mode=0700 mtime=1111111111
file a content=a
EOF2
  "$FT" "$T/out.ext4" "$T/empty.tar.gz" "$T/l0.tar" "$T/l1.tar.gz"
  e2fsck -fn "$T/out.ext4"
  mnt out
  [ "$(stat -c '%a %Y' "$M")" = "700 1111111111" ]
  [ "$(cat "$M/a")" = a ]
}

@test "sizing: the cheap estimate falls back to an exact scan for many tiny files" {
  python3 - "$T/l1.tar.gz" <<'EOF2'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz", compresslevel=1, format=tarfile.GNU_FORMAT) as t:
    for i in range(30000):
        ti = tarfile.TarInfo("d%02d/f%05d" % (i % 50, i))
        t.addfile(ti, io.BytesIO(b""))
EOF2
  run "$FT" --debug "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -eq 0 ]
  [[ "$output" == *"estimate too small"* ]]
  e2fsck -fn "$T/out.ext4"
  mnt out
  [ "$(find "$M" -type f | wc -l)" = 30000 ]
}

@test "concurrent flattens to one path and kill -9 leave only complete disks" {
  head -c $((64 << 20)) /dev/urandom > "$T/rand"
  python3 - "$T/l1.tar.gz" "$T/rand" <<'EOF2'
import sys, tarfile
with tarfile.open(sys.argv[1], "w:gz", compresslevel=1) as t:
    for i in range(4):
        t.add(sys.argv[2], "rand%d" % i)
EOF2
  "$FT" "$T/out.ext4" "$T/l1.tar.gz" &
  a=$!
  "$FT" "$T/out.ext4" "$T/l1.tar.gz" &
  b=$!
  wait $a
  wait $b
  e2fsck -fn "$T/out.ext4"
  [ -z "$(ls "$T" | grep 'out.ext4.tmp')" ]

  "$FT" "$T/killed.ext4" "$T/l1.tar.gz" &
  k=$!
  sleep 1
  kill -9 $k
  wait $k || true
  # only the writer's temp file can be left, never a half-written disk
  if [ -e "$T/killed.ext4" ]; then
    e2fsck -fn "$T/killed.ext4"
  else
    [ -e "$T/killed.ext4.tmp.$k" ]
  fi
}

@test "hostile: nested symlink chains are bounded, not exponential" {
  {
    echo "symlink l0 target=."
    for i in $(seq 1 30); do
      p=l$((i - 1))
      echo "symlink l$i target=$p/$p/$p/$p/$p/$p/$p/$p"
    done
    echo "file l30/x content=x"
  } | python3 "$REPO/tests/lib/mktar.py" "$T/l1.tar.gz"
  run timeout 60 "$FT" "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [ "$status" -ne 124 ]
  [[ "$output" == *"Too many levels of symbolic links"* ]]
}

@test "hostile: content beyond the 64 GiB bound fails without --disk-size" {
  layer l1 <<EOF2
bigdecl huge size=$((65 << 30))
EOF2
  run "$FT" "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"image content exceeds 68719476736 bytes"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
}

@test "hostile: a hardlink replacing its own target's directory is an error" {
  layer l1 <<'EOF2'
dir d
file d/f content=f
hardlink d target=d/f
EOF2
  run "$FT" "$T/out.ext4" "$T/l1.tar.gz"
  [ "$status" -ne 0 ]
  [[ "$output" == *"entry d: hardlink would replace its own target's directory"* ]]
  [ -z "$(ls "$T" | grep out.ext4)" ]
}
