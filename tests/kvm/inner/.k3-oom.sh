#!/bin/bash
export VMBOX_ROOT=/tmp/r
( while sleep 15; do echo "tick $(cut -d' ' -f1 /proc/uptime)"; done ) &
t0=$(cut -d' ' -f1 /proc/uptime)
"$VMBOX" run --backend kvm --name hog --memory 32m busybox sh -c 'x=$(head -c 40000000 /dev/zero | tr "\0" a); echo survived'
echo rc=$? t0=$t0 t1=$(cut -d' ' -f1 /proc/uptime)
"$VMBOX" inspect hog | grep -E "oom|exit_code"
tail -30 /tmp/r/boxes/*/kvm/console.log
