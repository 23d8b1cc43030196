# Shared helpers for the bats suites.  Load from a suite with
#
#   load lib/common        # (from tests/*.bats)
#
# Set VMBOX_SETUP_ROOT=1 *before* the load line to get a default `setup` that
# gives every test a fresh store (setup_root).  A suite that defines its own
# setup() should call setup_root itself.
#
# Registries: call registry_start / auth_registry_start (usually from
# setup_file) and registry_stop_all from teardown_file.  Registries also die
# on their own when the bats run ends (a watchdog polls the run's temp dir),
# and tests/run.sh kills any that are left after each suite.

VMBOX_REPO=${VMBOX_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export VMBOX_REPO
# The build directory (make's B); helper binaries are in $VMBOX_BUILD/tools.
VMBOX_BUILD=${VMBOX_BUILD:-$VMBOX_REPO/build}
export VMBOX_BUILD
VMBOX=${VMBOX:-$VMBOX_BUILD/asan/vmbox}
export VMBOX
# Leak checking is on: vmbox must free what it allocates.  abort_on_error
# makes an ASan report fail the command with a signal status, not a quiet 1.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export NO_COLOR=1

# run --separate-stderr and friends.
if declare -F bats_require_minimum_version >/dev/null; then
  bats_require_minimum_version 1.5.0
fi

# shellcheck source=mkimages.sh
source "$VMBOX_REPO/tests/lib/mkimages.sh"

vmbox() { "$VMBOX" "$@"; }

# --- per-test store ---------------------------------------------------------------
setup_root() {
  export VMBOX_ROOT="$BATS_TEST_TMPDIR/root"
}

if [ "${VMBOX_SETUP_ROOT:-0}" = 1 ]; then
  setup() { setup_root; }
fi

# Prints a stable listing of the store: blobs (name + size), ext4 disks and the
# checksum of images.json.  Temp files and the lock are not part of it.
store_snapshot() {
  local root=${1:-$VMBOX_ROOT}
  echo "# store $root"
  if [ -d "$root/blobs" ]; then
    (cd "$root" && find blobs -type f -printf '%p %s\n' | LC_ALL=C sort)
  fi
  if [ -d "$root/ext4" ]; then
    (cd "$root" && find ext4 -type f -name '*.ext4' -printf '%p %s\n' | LC_ALL=C sort)
  fi
  if [ -f "$root/images.json" ]; then
    echo "images.json $(sha256sum <"$root/images.json" | cut -d' ' -f1)"
  else
    echo "images.json absent"
  fi
}

# assert_store_unchanged BEFORE  (BEFORE is the output of an earlier store_snapshot)
assert_store_unchanged() {
  local before=$1 after
  after=$(store_snapshot "${2:-$VMBOX_ROOT}")
  if [ "$before" != "$after" ]; then
    echo "store changed:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    return 1
  fi
}

# --- small assertions (no bats-assert dependency) ---------------------------------
# assert_status N  -- after `run`
assert_status() {
  if [ "$status" -ne "$1" ]; then
    echo "expected exit status $1, got $status; output:" >&2
    echo "$output" >&2
    return 1
  fi
}
# assert_contains HAYSTACK NEEDLE
assert_contains() {
  if [[ "$1" != *"$2"* ]]; then
    printf 'expected to find: %s\nin: %s\n' "$2" "$1" >&2
    return 1
  fi
}
refute_contains() {
  if [[ "$1" == *"$2"* ]]; then
    printf 'did not expect: %s\nin: %s\n' "$2" "$1" >&2
    return 1
  fi
}

# --- registries ----------------------------------------------------------------------
# Prints a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_vmbox_pidfile() {
  local d=${VMBOX_TEST_STATE:-${BATS_RUN_TMPDIR:-${TMPDIR:-/tmp}}}
  mkdir -p "$d"
  echo "$d/registry.pids"
}

# _registry_launch DIR PORT  -> starts the registry, prints its pid
_registry_launch() {
  local dir=$1 port=$2 watch=${BATS_RUN_TMPDIR:-}
  # Detached, with every fd closed or redirected, or bats waits for it.
  docker-registry serve "$dir/config.yml" </dev/null >"$dir/registry.log" 2>&1 3>&- &
  local pid=$!
  if [ -n "$watch" ]; then
    # Watchdog: the registry dies when the bats run's temp dir goes away,
    # whatever happened to teardown_file.
    (
      while [ -d "$watch" ] && kill -0 "$pid" 2>/dev/null; do sleep 1; done
      kill "$pid" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 3>&- &
  fi
  echo "$pid"
}

# _registry_start AUTH(0|1)  -> sets _REG_ADDR, _REG_PID
_registry_start() {
  local auth=$1 attempt dir port pid code
  for attempt in 1 2 3; do
    dir=$(mktemp -d "${BATS_FILE_TMPDIR:-${TMPDIR:-/tmp}}/registry.XXXXXX")
    port=$(free_port)
    mkdir -p "$dir/storage"
    {
      echo "version: 0.1"
      echo "log:"
      echo "  level: warn"
      echo "  accesslog:"
      echo "    disabled: true"
      echo "storage:"
      echo "  filesystem:"
      echo "    rootdirectory: $dir/storage"
      echo "  delete:"
      echo "    enabled: true"
      echo "http:"
      echo "  addr: 127.0.0.1:$port"
      echo "  secret: vmbox-test-secret"
      if [ "$auth" = 1 ]; then
        htpasswd -Bbn testuser testpass >"$dir/htpasswd"
        echo "auth:"
        echo "  htpasswd:"
        echo "    realm: vmbox-test"
        echo "    path: $dir/htpasswd"
      fi
    } >"$dir/config.yml"
    pid=$(_registry_launch "$dir" "$port")
    echo "$pid" >>"$(_vmbox_pidfile)"
    for _ in $(seq 1 100); do # 10 s
      code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
      if [ "$code" = 200 ] || [ "$code" = 401 ]; then
        _REG_ADDR=127.0.0.1:$port
        _REG_PID=$pid
        _REG_DIR=$dir
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null
    echo "registry on port $port did not come up (attempt $attempt):" >&2
    cat "$dir/registry.log" >&2
  done
  echo "registry_start: docker-registry would not start; is the docker-registry package installed?" >&2
  return 1
}

# Starts an open registry; exports REGISTRY=127.0.0.1:PORT, REGISTRY_PID, REGISTRY_DIR.
registry_start() {
  _registry_start 0 || return 1
  export REGISTRY=$_REG_ADDR REGISTRY_PID=$_REG_PID REGISTRY_DIR=$_REG_DIR
}

# Starts a registry with htpasswd Basic auth; exports AUTH_REGISTRY, AUTH_USER,
# AUTH_PASS, AUTH_REGISTRY_PID, AUTH_REGISTRY_DIR.
auth_registry_start() {
  _registry_start 1 || return 1
  export AUTH_REGISTRY=$_REG_ADDR AUTH_REGISTRY_PID=$_REG_PID AUTH_REGISTRY_DIR=$_REG_DIR
  export AUTH_USER=testuser AUTH_PASS=testpass
}

# Kills every registry this run started (bounded wait for them to go).
registry_stop_all() {
  local f pid
  f=$(_vmbox_pidfile)
  [ -f "$f" ] || return 0
  while read -r pid; do
    [ -n "$pid" ] || continue
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  done <"$f"
  rm -f "$f"
}

# push_layout LAYOUT_DIR TAG DEST_REF [skopeo args...]
#   e.g. push_layout "$(image_busybox)" latest "$REGISTRY/busybox:latest"
# Pushes an OCI layout tag (an index too: --all) to a registry on loopback.
push_layout() {
  local layout=$1 tag=$2 dest=$3
  shift 3
  skopeo copy --all --quiet --dest-tls-verify=false "$@" \
    "oci:$layout:$tag" "docker://$dest" >/dev/null
}

# push_layout_raw LAYOUT TAG HOST:PORT/REPO:TAG [USER:PASS]
# Pushes the tag's manifest (an index with all its manifests) and blobs
# byte for byte with plain distribution-API calls, so digests and media types
# stay exactly as in the layout (skopeo recompresses uncompressed layers).
push_layout_raw() {
  local layout=$1 tag=$2 dest=$3 creds=${4:-} host repo rtag d mt
  host=${dest%%/*}
  repo=${dest#*/}
  rtag=${repo##*:}
  repo=${repo%:*}
  local auth=()
  [ -n "$creds" ] && auth=(-u "$creds")
  d=$(jq -r --arg t "$tag" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"]==$t) | .digest' "$layout/index.json")
  [ -n "$d" ] || { echo "push_layout_raw: no tag $tag in $layout" >&2; return 1; }
  _raw_push_manifest "$layout" "$d" "$host" "$repo" "$rtag" "${auth[@]}"
}

_raw_push_blob() { # LAYOUT DIGEST HOST REPO AUTH...
  local layout=$1 d=$2 host=$3 repo=$4 loc sep
  shift 4
  if curl -sf -o /dev/null -I "$@" "http://$host/v2/$repo/blobs/$d"; then
    return 0
  fi
  loc=$(curl -sf -m 30 -X POST -D - -o /dev/null "$@" "http://$host/v2/$repo/blobs/uploads/" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="location" { print $2 }')
  [ -n "$loc" ] || { echo "push_layout_raw: upload to $host/$repo refused" >&2; return 1; }
  case $loc in /*) loc=http://$host$loc ;; esac
  sep='?'
  [[ $loc == *\?* ]] && sep='&'
  curl -sf -m 300 -X PUT -H 'Content-Type: application/octet-stream' "$@" \
    --data-binary "@$layout/blobs/sha256/${d#sha256:}" "$loc${sep}digest=$d" -o /dev/null ||
    { echo "push_layout_raw: blob $d upload failed" >&2; return 1; }
}

_raw_push_manifest() { # LAYOUT DIGEST HOST REPO REF AUTH...
  local layout=$1 d=$2 host=$3 repo=$4 ref=$5 f mt c
  shift 5
  f=$layout/blobs/sha256/${d#sha256:}
  mt=$(jq -r '.mediaType // "application/vnd.oci.image.manifest.v1+json"' "$f")
  if [ "$mt" = application/vnd.oci.image.index.v1+json ]; then
    for c in $(jq -r '.manifests[].digest' "$f"); do
      _raw_push_manifest "$layout" "$c" "$host" "$repo" "$c" "$@" || return 1
    done
  else
    for c in $(jq -r '.config.digest, .layers[].digest' "$f"); do
      _raw_push_blob "$layout" "$c" "$host" "$repo" "$@" || return 1
    done
  fi
  curl -sf -m 30 -X PUT -H "Content-Type: $mt" "$@" --data-binary "@$f" \
    "http://$host/v2/$repo/manifests/$ref" -o /dev/null ||
    { echo "push_layout_raw: manifest $d to $host/$repo:$ref failed" >&2; return 1; }
}

# registry_digest HOST:PORT/REPO:TAG [ARCH] [USER:PASS]: the manifest digest
# the registry serves for the tag; with ARCH, the platform manifest an index
# points to for linux/ARCH.
registry_digest() {
  local dest=$1 arch=${2:-} creds=${3:-} host repo tag body auth=()
  host=${dest%%/*}
  repo=${dest#*/}
  tag=${repo##*:}
  repo=${repo%:*}
  [ -n "$creds" ] && auth=(-u "$creds")
  local accept='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
  body=$(curl -sf -m 30 "${auth[@]}" -H "Accept: $accept" "http://$host/v2/$repo/manifests/$tag") || return 1
  if [ -n "$arch" ] && jq -e '.manifests' <<<"$body" >/dev/null; then
    jq -r --arg a "$arch" '[.manifests[] | select(.platform.os=="linux" and .platform.architecture==$a)][0].digest' <<<"$body"
    return
  fi
  curl -sf -m 30 -I "${auth[@]}" -H "Accept: $accept" "http://$host/v2/$repo/manifests/$tag" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest" { print $2 }'
}
