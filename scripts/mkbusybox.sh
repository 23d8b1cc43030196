#!/usr/bin/env bash
# Builds a reproducible OCI image-layout tarball of a busybox image from
# Debian's busybox-static: no network, no root.
#   mkbusybox.sh OUT.tar           the OCI archive linked into vmbox
#   mkbusybox.sh --rootfs DIR      just the root filesystem (tests build on it)
set -euo pipefail
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "mkbusybox: $bb not found; install busybox-static" >&2; exit 1; }

fill_rootfs() { # DIR
  local root=$1 p
  mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,proc,sys,dev,tmp,var/tmp,run}
  chmod 1777 "$root/tmp" "$root/var/tmp"
  chmod 700 "$root/root"
  cp "$bb" "$root/bin/busybox"
  for p in $("$bb" --list-full); do
    [ "$p" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$p")"
    ln -sf /bin/busybox "$root/$p"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

if [ "${1:-}" = --rootfs ]; then
  fill_rootfs "$2"
  exit 0
fi
out=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
fill_rootfs "$root"

blobs=$work/oci/blobs/sha256
mkdir -p "$blobs"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
gzip -n -9 -c "$work/layer.tar" >"$work/layer.tgz"
layer=$(sha256sum "$work/layer.tgz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tgz")
mv "$work/layer.tgz" "$blobs/$layer"

put() { # stores stdin as a blob, prints "digest size"
  cat >"$work/blob"
  local d; d=$(sha256sum "$work/blob" | cut -d' ' -f1)
  mv "$work/blob" "$blobs/$d"
  echo "$d $(stat -c %s "$blobs/$d")"
}
version=$("$bb" 2>&1 | awk 'NR == 1 {print $2}')
read -r cfg cfg_size < <(printf '%s' '{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Labels":{"org.opencontainers.image.source":"debian busybox-static '"$version"'"}},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff_id"'"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"vmbox scripts/mkbusybox.sh"}]}' | put)
read -r man man_size < <(printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'"$cfg"'","size":'"$cfg_size"'},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:'"$layer"'","size":'"$layer_size"'}]}' | put)
printf '%s' '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
printf '%s' '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'"$man"'","size":'"$man_size"',"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"docker.io/library/busybox:latest","org.opencontainers.image.ref.name":"latest"}}]}' >"$work/oci/index.json"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
