#!/usr/bin/env bats
# --net / --network on the host (no KVM needed): malformed values, the ns
# backend refusing a TAP, the kvm backend's TAP checks at create (in a
# network namespace the test makes), and what config.json / inspect keep.
# The traffic itself is tested nested: tests/kvm_net.bats.  Needs root.

VMBOX_SETUP_ROOT=1
load lib/common

NS=vmbox-nf-$$

teardown() {
  ip netns del "$NS" 2>/dev/null || true
}

# bad VALUE MESSAGE: --net VALUE fails with 125 and MESSAGE, before any box.
bad() {
  run vmbox run --rm --net "$1" busybox true
  assert_status 125
  assert_contains "$output" "$2"
  [ ! -d "$VMBOX_ROOT/boxes" ] || [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
}

@test "--net: malformed values fail with 125 and say what is wrong" {
  bad "tap:" 'invalid TAP name ""'
  bad "tap:,ip=10.0.0.2/24" 'invalid TAP name ""'
  bad "tap:waytoolongname12345" "want 1-15 characters"
  bad "tap:tap0,ip=10.0.0.2" 'invalid address "10.0.0.2": want A.B.C.D/N'
  bad "tap:tap0,ip=10.0.0.2/33" "invalid address"
  bad "tap:tap0,ip=10.0.0.256/24" "invalid address"
  bad "tap:tap0,ip=10.0.0.2/24,gw=10.0.0" 'invalid gateway "10.0.0"'
  bad "tap:tap0,gw=10.0.0.1" "a gateway needs an address"
  bad "tap:tap0,mac=02:00:00:00:00" "invalid MAC address"
  bad "tap:tap0,mac=02:00:00:00:00:zz" "invalid MAC address"
  bad "tap:tap0,mac=01:00:5e:00:00:01" "unicast"
  bad "tap:tap0,colour=blue" 'unknown option "colour"'
  bad "tap:tap0,ip" 'invalid option "ip": want KEY=VALUE'
  bad "tap:tap0,ip=" "empty value"
  bad "tap:tap0,ip=10.0.0.2/24,ip=10.0.0.3/24" "given twice"
  bad "tap:tap0,netns=../x" 'invalid netns "../x"'
  bad "tap:tap0," "trailing comma"
  bad "carrier-pigeon" 'invalid network "carrier-pigeon"'
}

@test "--network is the same flag; --net none is the default and runs" {
  run vmbox run --rm --network tap:tap0,ip=1.2.3.4 busybox true
  assert_status 125
  assert_contains "$output" "invalid address"
  run vmbox run --rm --net none busybox echo ok
  assert_status 0
  [ "$output" = ok ]
  run vmbox run --rm --network none busybox echo ok
  assert_status 0
}

@test "--backend ns refuses a TAP before any box exists (with or without --rm)" {
  run vmbox run --rm --backend ns --net tap:tap0,ip=10.0.0.2/24 busybox true
  assert_status 125
  assert_contains "$output" "tap networking needs --backend kvm"
  assert_contains "$output" "bridge mode"
  [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
  run vmbox run --backend ns --net tap:tap0 busybox true
  assert_status 125
  [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
}

@test "--backend kvm: a missing TAP, a missing netns and a non-TAP fail at create, clearly" {
  ip netns add "$NS"
  run vmbox run --rm --backend kvm --net "tap:nosuch0,netns=$NS,ip=10.0.0.2/24" busybox true
  assert_status 125
  assert_contains "$output" "TAP nosuch0 (in /run/netns/$NS): no such network device"
  assert_contains "$output" "ip tuntap add dev nosuch0 mode tap"
  run vmbox run --rm --backend kvm --net "tap:lo,netns=$NS" busybox true
  assert_status 125
  assert_contains "$output" "TAP lo (in /run/netns/$NS): not a TAP device"
  ip -n "$NS" tuntap add dev tun0 mode tun
  run vmbox run --rm --backend kvm --net "tap:tun0,netns=$NS" busybox true
  assert_status 125
  assert_contains "$output" "not a TAP device"
  run vmbox run --rm --backend kvm --net tap:tap0,netns=no-such-ns-$$ busybox true
  assert_status 125
  assert_contains "$output" "network namespace /run/netns/no-such-ns-$$: No such file or directory"
  [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
  # Our own namespace was never the TAP's: nothing appeared here.
  ! ip link show nosuch0 2>/dev/null
  ! ip -n "$NS" link show nosuch0 2>/dev/null
  # The failed attach did not take the TAP from its namespace or create one.
  [ "$(ip -n "$NS" -o link | wc -l)" -eq 2 ]
}

@test "config.json and inspect keep the network: mode tap, TAP, netns, address, gateway, mac" {
  ip netns add "$NS"
  ip -n "$NS" tuntap add dev tap0 mode tap
  # Without /dev/kvm the start fails after create; with it the box runs:
  # either way the box and its config exist.
  run vmbox run --name netbox --backend kvm \
    --net "tap:tap0,netns=$NS,ip=10.9.0.2/24,gw=10.9.0.1,mac=02:aa:bb:cc:dd:ee" busybox true
  run vmbox inspect netbox
  assert_status 0
  [ "$(jq -r '.[0].config.network' <<<"$output")" = tap ]
  [ "$(jq -cS '.[0].config.net' <<<"$output")" = \
    "{\"address\":\"10.9.0.2/24\",\"gateway\":\"10.9.0.1\",\"mac\":\"02:aa:bb:cc:dd:ee\",\"netns\":\"/run/netns/$NS\",\"tap\":\"tap0\"}" ]
  vmbox rm -f netbox
  # A box without --net records none and no net object.
  vmbox run --name plain busybox true
  run vmbox inspect plain
  [ "$(jq -r '.[0].config.network' <<<"$output")" = none ]
  [ "$(jq -cS '.[0].config.net' <<<"$output")" = null ]
}
