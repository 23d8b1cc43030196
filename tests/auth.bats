#!/usr/bin/env bats
# vmbox login / logout and authenticated pulls: Basic auth (docker-registry
# with htpasswd) and Bearer tokens (docker-registry with `auth: token:` and
# the token server in tests/lib/token_server.py issuing RS256 JWTs).

load lib/common
load lib/token

setup_file() {
  auth_registry_start
  push_layout "$(image_busybox)" latest "$AUTH_REGISTRY/priv:latest" \
    --dest-creds "$AUTH_USER:$AUTH_PASS"
  token_registry_start
  token_push "$(image_busybox)" latest "$TOKEN_REGISTRY/public/bb:latest"
  token_push "$(image_busybox)" latest "$TOKEN_REGISTRY/private/bb:latest"
}

teardown_file() {
  registry_stop_all
}

setup() {
  setup_root
  # Credentials come only from what each test writes.
  export XDG_CONFIG_HOME=$BATS_TEST_TMPDIR/config HOME=$BATS_TEST_TMPDIR/home
  export DOCKER_CONFIG=$BATS_TEST_TMPDIR/docker
  AUTH_FILE=$XDG_CONFIG_HOME/vmbox/auth.json
  : >"$TOKEN_SERVER_LOG"
}

b64() { printf '%s' "$1" | base64 -w0; }

@test "auth: Basic registry without credentials says to log in; store untouched" {
  local before
  before=$(store_snapshot)
  run vmbox pull "$AUTH_REGISTRY/priv"
  assert_status 125
  assert_contains "$output" "authentication required for $AUTH_REGISTRY: run \`vmbox login $AUTH_REGISTRY\`"
  assert_store_unchanged "$before"
}

@test "auth: login with a wrong password fails and saves nothing" {
  run vmbox login -u "$AUTH_USER" --password-stdin "$AUTH_REGISTRY" <<<"wrong"
  assert_status 125
  assert_contains "$output" "login to $AUTH_REGISTRY failed: incorrect username or password"
  [ ! -e "$AUTH_FILE" ]
}

@test "auth: login saves 0600 docker-format credentials; pull works; logout removes them" {
  run vmbox login -u "$AUTH_USER" --password-stdin "$AUTH_REGISTRY" <<<"$AUTH_PASS"
  assert_status 0
  assert_contains "$output" "Login Succeeded"
  [ "$(stat -c %a "$AUTH_FILE")" = 600 ]
  [ "$(jq -r --arg r "$AUTH_REGISTRY" '.auths[$r].auth' "$AUTH_FILE")" = "$(b64 "$AUTH_USER:$AUTH_PASS")" ]
  [ "$(ls -A "$(dirname "$AUTH_FILE")")" = auth.json ] # written atomically, no leftovers
  run vmbox pull -q "$AUTH_REGISTRY/priv"
  assert_status 0
  [ "$output" = "$AUTH_REGISTRY/priv:latest" ]
  run vmbox logout "$AUTH_REGISTRY"
  assert_status 0
  assert_contains "$output" "Removing login credentials for $AUTH_REGISTRY"
  [ "$(jq -r --arg r "$AUTH_REGISTRY" '.auths[$r] // "gone"' "$AUTH_FILE")" = gone ]
  run vmbox logout "$AUTH_REGISTRY"
  assert_status 0
  assert_contains "$output" "Not logged in to $AUTH_REGISTRY"
  run vmbox pull "$AUTH_REGISTRY/priv"
  assert_status 125
  assert_contains "$output" "authentication required"
}

@test "auth: login keeps other registries' entries" {
  mkdir -p "$(dirname "$AUTH_FILE")"
  echo '{"auths":{"other.example:5000":{"auth":"b3RoZXI6cHc="}}}' >"$AUTH_FILE"
  run vmbox login -u "$AUTH_USER" -p "$AUTH_PASS" "$AUTH_REGISTRY"
  assert_status 0
  assert_contains "$output" "insecure" # -p warns
  jq -e '.auths["other.example:5000"].auth == "b3RoZXI6cHc="' "$AUTH_FILE" >/dev/null
  jq -e --arg r "$AUTH_REGISTRY" '.auths[$r].auth' "$AUTH_FILE" >/dev/null
}

@test "auth: credentials from \$DOCKER_CONFIG/config.json" {
  mkdir -p "$DOCKER_CONFIG"
  printf '{"auths":{"http://%s/v2/":{"auth":"%s"}}}\n' "$AUTH_REGISTRY" \
    "$(b64 "$AUTH_USER:$AUTH_PASS")" >"$DOCKER_CONFIG/config.json"
  run vmbox pull -q "$AUTH_REGISTRY/priv"
  assert_status 0
}

@test "auth: credentials from ~/.docker/config.json" {
  unset DOCKER_CONFIG
  mkdir -p "$HOME/.docker"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$AUTH_REGISTRY" \
    "$(b64 "$AUTH_USER:$AUTH_PASS")" >"$HOME/.docker/config.json"
  run vmbox pull -q "$AUTH_REGISTRY/priv"
  assert_status 0
}

@test "auth: login usage errors" {
  run vmbox login -u a -p b --password-stdin "$AUTH_REGISTRY" </dev/null
  assert_status 125
  assert_contains "$output" "mutually exclusive"
  run vmbox login --password-stdin "$AUTH_REGISTRY" </dev/null
  assert_status 125
  assert_contains "$output" "needs --username"
  run vmbox login "$AUTH_REGISTRY" </dev/null
  assert_status 125
  assert_contains "$output" "username is required"
  run vmbox login -u "$AUTH_USER" --password-stdin "$AUTH_REGISTRY" </dev/null
  assert_status 125
  assert_contains "$output" "password is required"
}

@test "auth: Bearer: anonymous token for a public repository" {
  run vmbox pull -q "$TOKEN_REGISTRY/public/bb"
  assert_status 0
  grep -q 'scope=repository%3Apublic%2Fbb%3Apull.* auth=none' "$TOKEN_SERVER_LOG"
}

@test "auth: Bearer: private repository without login says to log in" {
  local before
  before=$(store_snapshot)
  run vmbox pull "$TOKEN_REGISTRY/private/bb"
  assert_status 125
  assert_contains "$output" "authentication required for $TOKEN_REGISTRY: run \`vmbox login $TOKEN_REGISTRY\`"
  assert_store_unchanged "$before"
  # bounded: a couple of token requests, not a loop
  [ "$(grep -c . "$TOKEN_SERVER_LOG")" -le 3 ]
}

@test "auth: Bearer: login sends Basic to the token server, then pulls" {
  run vmbox login -u "$TOKEN_USER" --password-stdin "$TOKEN_REGISTRY" <<<"wrong"
  assert_status 125
  assert_contains "$output" "incorrect username or password"
  [ ! -e "$AUTH_FILE" ]
  grep -q 'auth=bad' "$TOKEN_SERVER_LOG"
  run vmbox login -u "$TOKEN_USER" --password-stdin "$TOKEN_REGISTRY" <<<"$TOKEN_PASS"
  assert_status 0
  assert_contains "$output" "Login Succeeded"
  : >"$TOKEN_SERVER_LOG"
  run vmbox pull --format json "$TOKEN_REGISTRY/private/bb"
  assert_status 0
  [ "$(echo "$output" | jq -r .name)" = "$TOKEN_REGISTRY/private/bb:latest" ]
  grep -q 'scope=repository%3Aprivate%2Fbb%3Apull.* auth=good' "$TOKEN_SERVER_LOG"
}

@test "auth: Bearer: a token server answering access_token works too" {
  token_registry_start access_token
  token_push "$(image_busybox)" latest "$TOKEN_REGISTRY/public/bb:latest"
  run vmbox pull -q "$TOKEN_REGISTRY/public/bb"
  assert_status 0
  [ "$output" = "$TOKEN_REGISTRY/public/bb:latest" ]
}

@test "auth: login prompts on a terminal and does not echo the password" {
  run timeout 30 script -qec "$VMBOX login $AUTH_REGISTRY" /dev/null < <(
    sleep 1
    echo "$AUTH_USER"
    sleep 1
    echo "$AUTH_PASS"
    sleep 1
  )
  assert_status 0
  assert_contains "$output" "Username: $AUTH_USER"
  assert_contains "$output" "Password:"
  refute_contains "$output" "$AUTH_PASS"
  assert_contains "$output" "Login Succeeded"
  jq -e --arg r "$AUTH_REGISTRY" '.auths[$r].auth' "$AUTH_FILE" >/dev/null
}
