# A docker-registry behind Bearer token auth, for the auth suites.  Load after
# lib/common:
#
#   load lib/common
#   load lib/token
#   setup_file() { token_registry_start; }      # exports TOKEN_REGISTRY ...
#   teardown_file() { registry_stop_all; }      # also stops the token server
#
# The registry is Debian's docker-registry with `auth: token:`; the token
# server is tests/lib/token_server.py (policy documented there), signing
# RS256 JWTs with a throwaway self-signed certificate made here with openssl.

# token_registry_start [FIELD]  FIELD: token (default) | access_token | both
# Exports TOKEN_REGISTRY=127.0.0.1:PORT, TOKEN_REGISTRY_DIR, TOKEN_SERVER_LOG,
# TOKEN_USER, TOKEN_PASS.
token_registry_start() {
  local field=${1:-token} dir port tport pid tpid i code
  dir=$(mktemp -d "${BATS_FILE_TMPDIR:-${TMPDIR:-/tmp}}/tokenreg.XXXXXX")
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=vmbox-test-token \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1 || {
    echo "token_registry_start: openssl could not make a certificate" >&2
    return 1
  }
  : >"$dir/token.log"
  python3 "$VMBOX_REPO/tests/lib/token_server.py" --key "$dir/key.pem" --cert "$dir/cert.pem" \
    --field "$field" --port-file "$dir/token.port" --log "$dir/token.log" \
    </dev/null >"$dir/token.out" 2>&1 3>&- &
  tpid=$!
  echo "$tpid" >>"$(_vmbox_pidfile)"
  for i in $(seq 1 100); do # 10 s
    [ -s "$dir/token.port" ] && break
    kill -0 "$tpid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$dir/token.port" ]; then
    echo "token server did not start:" >&2
    cat "$dir/token.out" >&2
    return 1
  fi
  tport=$(cat "$dir/token.port")
  port=$(free_port)
  mkdir -p "$dir/storage"
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: vmbox-test-secret
auth:
  token:
    realm: http://127.0.0.1:$tport/token
    service: vmbox-test-registry
    issuer: vmbox-test-issuer
    rootcertbundle: $dir/cert.pem
EOF
  pid=$(_registry_launch "$dir" "$port")
  echo "$pid" >>"$(_vmbox_pidfile)"
  for i in $(seq 1 100); do # 10 s
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$port/v2/" || true)
    [ "$code" = 401 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$code" != 401 ]; then
    echo "token registry did not come up (last answer: $code):" >&2
    cat "$dir/registry.log" >&2
    return 1
  fi
  export TOKEN_REGISTRY=127.0.0.1:$port TOKEN_REGISTRY_DIR=$dir
  export TOKEN_SERVER_LOG=$dir/token.log TOKEN_USER=testuser TOKEN_PASS=testpass
}

# token_push LAYOUT TAG DEST_REF: pushes as the token server's user.
token_push() {
  push_layout "$1" "$2" "$3" --dest-creds "$TOKEN_USER:$TOKEN_PASS"
}

# front_start UPSTREAM_ADDR: a fault-injecting proxy (token_server.py --front)
# in front of a registry.  Exports FRONT=127.0.0.1:PORT, FRONT_LOG and
# FRONT_FAULTS (the file naming the faults in effect; empty at start).
front_start() {
  local up=$1 dir tpid i
  dir=$(mktemp -d "${BATS_FILE_TMPDIR:-${TMPDIR:-/tmp}}/front.XXXXXX")
  : >"$dir/faults"
  : >"$dir/front.log"
  python3 "$VMBOX_REPO/tests/lib/token_server.py" --front "http://$up" \
    --fault-file "$dir/faults" --port-file "$dir/port" --log "$dir/front.log" \
    </dev/null >"$dir/front.out" 2>&1 3>&- &
  tpid=$!
  echo "$tpid" >>"$(_vmbox_pidfile)"
  for i in $(seq 1 100); do # 10 s
    [ -s "$dir/port" ] && break
    kill -0 "$tpid" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$dir/port" ]; then
    echo "front proxy did not start:" >&2
    cat "$dir/front.out" >&2
    return 1
  fi
  export FRONT=127.0.0.1:$(cat "$dir/port") FRONT_LOG=$dir/front.log FRONT_FAULTS=$dir/faults
}

# set_faults FAULT[,FAULT...]  (empty: none)
set_faults() { echo "${1:-}" >"$FRONT_FAULTS"; }
