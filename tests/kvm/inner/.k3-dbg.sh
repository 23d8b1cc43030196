#!/bin/bash
export VMBOX_ROOT=/tmp/r
( while sleep 10; do echo "tick $(cut -d' ' -f1 /proc/uptime)"; ls /tmp/r/boxes/*/kvm/ 2>/dev/null | tr '\n' ' '; echo; done ) &
timeout 90 "$VMBOX" run --backend kvm --name dbg busybox echo hello
echo rc=$?
cat /tmp/r/boxes/*/kvm/timing
tail -40 /tmp/r/boxes/*/kvm/console.log
