#!/usr/bin/env bats
# INNER suite: virtio-net on a TAP, end to end.  Runs inside the first-level
# guest of tests/kvm/run-nested.sh (relayed by tests/kvm_net.bats, which puts
# iproute2's ip, the tun module and the guest kernel's virtio_net module in
# the payload).  Each test talks only to a network namespace this file makes:
# $NS holds tap0 at 10.77.0.1/24; boxes get 10.77.0.2.  Not for the host:
# tests/run.sh only runs tests/*.bats.

load ../../lib/common

NS=vmbox-net-inner
HOST_IP=10.77.0.1
BOX_IP=10.77.0.2
NET="tap:tap0,netns=$NS,ip=$BOX_IP/24,gw=$HOST_IP"
MIB=1048576

setup_file() {
  : "${VMBOX_BUILD:?VMBOX_BUILD unset: run me through tests/kvm/run-nested.sh}"
  export VMBOX_ROOT=$BATS_FILE_TMPDIR/root
  export W=$BATS_FILE_TMPDIR/w
  mkdir -p "$W"
  ip netns add "$NS"
  ip -n "$NS" link set lo up
  ip -n "$NS" tuntap add dev tap0 mode tap
  ip -n "$NS" addr add "$HOST_IP/24" dev tap0
  ip -n "$NS" link set tap0 up
}

teardown_file() {
  ip netns del "$NS" 2>/dev/null || true
}

teardown() {
  local s
  for s in "$VMBOX_ROOT"/boxes/*/state.json; do
    [ -f "$s" ] || continue
    "$VMBOX" rm -f "$(basename "$(dirname "$s")")" >/dev/null 2>&1 || true
  done
}

kvm() {
  local rc=0
  "$VMBOX" run --backend kvm "$@" || rc=$?
  echo "# kvm box ended: $rc" >&3
  return $rc
}

in_ns() { ip netns exec "$NS" "$@"; }

# A one-shot TCP sink in the namespace: writes what it got to $W/$1 and the
# receive time (accept to EOF, microseconds) to $W/$1.us.  Senders connect
# once their data is ready.
ns_sink() { # NAME PORT
  rm -f "$W/$1" "$W/$1.us"
  cat >"$W/$1.sh" <<EOF
#!/bin/bash
t0=\${EPOCHREALTIME/./}
cat >"$W/$1"
t1=\${EPOCHREALTIME/./}
echo \$((t1 - t0)) >"$W/$1.us"
EOF
  chmod +x "$W/$1.sh"
  in_ns timeout 300 busybox nc -l -p "$2" -e "$W/$1.sh" </dev/null &
}

# Bounded wait for FILE to exist.
wait_file() { # FILE SECONDS
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1"
  return 1
}

mbps() { echo "$1 $2" | awk '{ printf "%.1f", $1 / 1048576 / ($2 / 1e6) }'; }

@test "eth0 gets the address, netmask, route and MAC asked for; ping the namespace, 0% loss" {
  run kvm --rm --net "$NET,mac=02:42:0a:4d:00:02" busybox sh -c \
    'ip addr show eth0; ip route; ls /sys/class/net; ping -c 10 -i 0.2 -W 5 '$HOST_IP
  echo "$output"
  assert_status 0
  assert_contains "$output" "link/ether 02:42:0a:4d:00:02"
  assert_contains "$output" "inet $BOX_IP/24"
  assert_contains "$output" "default via $HOST_IP dev eth0"
  assert_contains "$output" "10.77.0.0/24 dev eth0"
  assert_contains "$output" "10 packets transmitted, 10 packets received, 0% packet loss"
  local rtt
  rtt=$(echo "$output" | sed -nE 's|.*round-trip min/avg/max = ([0-9./]+) ms|\1|p')
  [ -n "$rtt" ]
  echo "# ping guest->netns rtt min/avg/max ms: $rtt" >&3
}

@test "the namespace pings the box; the MAC is derived from the box id when not given" {
  kvm -d --name pingme --net "$NET" busybox sh -c 'cat /sys/class/net/eth0/address; sleep 600'
  local i ok=
  for ((i = 0; i < 120; i++)); do
    if in_ns ping -c 1 -W 1 "$BOX_IP" >/dev/null 2>&1; then ok=1 && break; fi
    sleep 1
  done
  [ -n "$ok" ]
  run in_ns ping -c 10 -i 0.2 -W 5 "$BOX_IP"
  echo "$output"
  assert_contains "$output" "10 packets received, 0% packet loss"
  echo "# ping netns->guest: $(echo "$output" | tail -n1)" >&3
  run "$VMBOX" logs pingme
  [[ "$output" =~ ^02:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$ ]]
  # The namespace learned the same MAC for the box.
  in_ns ip neigh show "$BOX_IP" | grep -q "lladdr $output"
  "$VMBOX" rm -f pingme
}

@test "TCP guest -> namespace: 1 MiB arrives intact (sha256), and 16 MiB timed" {
  ns_sink g2n 5001
  run kvm --rm --net "$NET" busybox sh -c \
    "head -c $MIB /dev/urandom >/tmp/b; sha256sum /tmp/b; nc $HOST_IP 5001 </tmp/b"
  assert_status 0
  wait_file "$W/g2n.us" 60
  [ "$(stat -c %s "$W/g2n")" -eq $MIB ]
  [ "$(sha256sum <"$W/g2n" | cut -d' ' -f1)" = "$(echo "$output" | cut -d' ' -f1)" ]
  ns_sink g2n_big 5003
  kvm --rm --net "$NET" busybox sh -c "dd if=/dev/zero bs=65536 count=256 2>/dev/null | nc $HOST_IP 5003"
  wait_file "$W/g2n_big.us" 120
  [ "$(stat -c %s "$W/g2n_big")" -eq $((16 * MIB)) ]
  echo "# tcp guest->netns 16 MiB: $(mbps $((16 * MIB)) "$(cat "$W/g2n_big.us")") MB/s" >&3
}

@test "TCP namespace -> guest: a -d box listens; 1 MiB intact (sha256), 16 MiB timed" {
  head -c $MIB /dev/urandom >"$W/n2g"
  kvm -d --name sink --net "$NET" busybox sh -c \
    'nc -l -p 5002 -e sh -c "cat >/tmp/r"; sha256sum /tmp/r;
     nc -l -p 5004 -e sh -c "a=\$(cut -d\" \" -f1 /proc/uptime); wc -c >/tmp/n; b=\$(cut -d\" \" -f1 /proc/uptime); echo \$a \$b >/tmp/t";
     cat /tmp/n /tmp/t' \
    </dev/null
  local i sent=
  for ((i = 0; i < 120; i++)); do
    if in_ns busybox nc "$BOX_IP" 5002 <"$W/n2g" 2>/dev/null; then sent=1 && break; fi
    sleep 1
  done
  [ -n "$sent" ]
  for ((i = 0; i < 120; i++)); do
    if head -c $((16 * MIB)) /dev/zero | in_ns busybox nc "$BOX_IP" 5004 2>/dev/null; then break; fi
    sleep 1
  done
  run timeout 300 "$VMBOX" wait sink
  [ "$output" = 0 ]
  run "$VMBOX" logs sink
  echo "$output"
  [ "${lines[0]%% *}" = "$(sha256sum <"$W/n2g" | cut -d' ' -f1)" ]
  [ "${lines[1]}" -eq $((16 * MIB)) ]
  local secs
  secs=$(echo "${lines[2]}" | awk '{ printf "%.2f", $2 - $1 }')
  echo "# tcp netns->guest 16 MiB: $(echo "$secs" | awk '{ printf "%.1f", 16 / $1 }') MB/s ($secs s)" >&3
}

@test "a bad TAP name fails with 125 before boot and leaves nothing behind" {
  run kvm --rm --net "tap:nosuch0,netns=$NS,ip=$BOX_IP/24" busybox true
  assert_status 125
  assert_contains "$output" "TAP nosuch0 (in /run/netns/$NS): no such network device"
  [ -z "$(ls -A "$VMBOX_ROOT/boxes")" ]
  ! pgrep -x vmbox-vmm
  ! in_ns ip link show nosuch0 2>/dev/null
  # tap0 is free: the next box attaches to it.
  run kvm --rm --net "$NET" busybox ping -c 1 -W 5 $HOST_IP
  assert_status 0
}

@test "a box without --net has only lo, and lo is up" {
  run kvm --rm busybox sh -c 'ls /sys/class/net; ip link show lo; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo lo-ok'
  echo "$output"
  assert_status 0
  [ "${lines[0]}" = lo ]
  assert_contains "$output" "UP"
  assert_contains "$output" lo-ok
  refute_contains "$output" eth0
}
