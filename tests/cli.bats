#!/usr/bin/env bats
# The command line itself: help, version, bad input, exit codes, --root.

VMBOX_SETUP_ROOT=1
load lib/common

COMMANDS=(pull import images rmi image login logout help version)

setup_file() {
  # The reproducible busybox OCI archive `make` embeds (build/busybox-image.tar);
  # rebuilt here when the build directory has none.
  export BUSYBOX_TAR=$VMBOX_REPO/build/busybox-image.tar
  if [ ! -f "$BUSYBOX_TAR" ]; then
    BUSYBOX_TAR=$BATS_FILE_TMPDIR/busybox-image.tar
    "$VMBOX_REPO/scripts/mkbusybox.sh" "$BUSYBOX_TAR"
  fi
}

@test "vmbox help lists every command" {
  run --separate-stderr vmbox help
  assert_status 0
  assert_contains "$output" "Usage: vmbox"
  for c in "${COMMANDS[@]}"; do
    grep -qE "^  $c( |$)" <<<"$output" || { echo "help does not list $c"; return 1; }
  done
  [ -z "$stderr" ]
}

@test "vmbox --help prints the same usage" {
  run --separate-stderr vmbox --help
  assert_status 0
  help=$output
  run vmbox help
  [ "$output" = "$help" ]
}

@test "vmbox COMMAND --help and vmbox help COMMAND print the command's usage" {
  for c in "${COMMANDS[@]}"; do
    run --separate-stderr vmbox "$c" --help
    echo "$c --help: $output $stderr"
    assert_status 0
    [[ "$output" == "Usage: vmbox $c"* ]]
    [ -z "$stderr" ]
    run --separate-stderr vmbox help "$c"
    assert_status 0
    [[ "$output" == "Usage: vmbox $c"* ]]
  done
}

@test "vmbox version" {
  run --separate-stderr vmbox version
  assert_status 0
  [[ "$output" =~ ^vmbox\ version\ [^\ ]+\ \(linux/[a-z0-9_]+\)$ ]]
  run vmbox --version
  assert_status 0
  [[ "$output" == "vmbox version "* ]]
  run vmbox -v
  assert_status 0
  [[ "$output" == "vmbox version "* ]]
}

@test "vmbox version --format json parses, with stable fields" {
  run --separate-stderr vmbox version --format json
  assert_status 0
  jq -e '.version | type == "string" and length > 0' <<<"$output"
  jq -e '.os == "linux"' <<<"$output"
  jq -e '.arch | type == "string"' <<<"$output"
  run --separate-stderr vmbox --format json version
  assert_status 0
  jq -e .version <<<"$output"
}

@test "an unknown command exits 125 and names it on stderr" {
  run --separate-stderr vmbox frobnicate
  assert_status 125
  assert_contains "$stderr" frobnicate
  assert_contains "$stderr" "vmbox --help"
  [ -z "$output" ]
}

@test "vmbox help for an unknown command exits 125" {
  run --separate-stderr vmbox help frobnicate
  assert_status 125
  assert_contains "$stderr" frobnicate
}

@test "an unknown global flag exits 125 and names the flag" {
  run --separate-stderr vmbox --no-such-flag images
  assert_status 125
  assert_contains "$stderr" no-such-flag
  [ -z "$output" ]
}

@test "an unknown flag on every command exits 125 and names the flag" {
  for c in "${COMMANDS[@]}"; do
    run --separate-stderr vmbox "$c" --no-such-flag
    echo "$c: status $status: $stderr"
    assert_status 125
    assert_contains "$stderr" no-such-flag
  done
}

@test "a bad --format value exits 125 with a clear message" {
  run --separate-stderr vmbox --format yaml version
  assert_status 125
  assert_contains "$stderr" yaml
  run --separate-stderr vmbox images --format yaml
  assert_status 125
  assert_contains "$stderr" yaml
}

@test "a missing required argument exits 125" {
  # logout is absent on purpose: like docker, it defaults to docker.io.
  for c in pull import rmi login; do
    run --separate-stderr vmbox "$c"
    echo "$c: status $status: $stderr"
    assert_status 125
    [ -n "$stderr" ]
  done
}

@test "VMBOX_ROOT selects the store" {
  run vmbox import "$BUSYBOX_TAR" cli-test
  echo "$output"
  assert_status 0
  [ -f "$VMBOX_ROOT/images.json" ]
  run vmbox images --format json
  assert_status 0
  jq -e 'length == 1' <<<"$output"
  # another root is another store
  VMBOX_ROOT=$BATS_TEST_TMPDIR/other run vmbox images --format json
  assert_status 0
  jq -e 'length == 0' <<<"$output"
}

@test "--root overrides VMBOX_ROOT, before or after the command" {
  alt=$BATS_TEST_TMPDIR/alt
  run vmbox --root "$alt" import "$BUSYBOX_TAR" cli-test
  echo "$output"
  assert_status 0
  [ -f "$alt/images.json" ]
  [ ! -e "$VMBOX_ROOT/images.json" ]
  run vmbox images --root "$alt" --format json
  assert_status 0
  jq -e 'length == 1' <<<"$output"
  run vmbox --root "$alt" images -q
  assert_status 0
  [ "$(wc -l <<<"$output")" = 1 ]
  run vmbox images --format json
  assert_status 0
  jq -e 'length == 0' <<<"$output"
}

@test "an unwritable --root fails with 125 and says which path" {
  run --separate-stderr vmbox --root /proc/vmbox-no-such-root images
  [ "$status" -ne 0 ]
  assert_status 125
  assert_contains "$stderr" /proc/vmbox-no-such-root
}
