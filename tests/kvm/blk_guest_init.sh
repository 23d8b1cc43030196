#!/bin/busybox sh
# /init of the second-level guest in tests/kvm/inner/virtio_blk.bats: loads
# the virtio modules, checks /dev/vda and runs the step the kernel command
# line names (blktest=write|read|ro).  Every result is a "blk-guest:" line on
# the console; then reboot -f (reboot=t: the VMM sees a reset).
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
  insmod /m/$m.ko || echo "blk-guest: insmod $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "blk-guest: vda sectors=$(cat /sys/block/vda/size 2>/dev/null) ro=$(cat /sys/block/vda/ro 2>/dev/null)"
case "$blktest" in
write)
  mount -t ext4 /dev/vda /mnt && echo "blk-guest: mounted rw"
  echo "blk-guest: hello=$(cat /mnt/hello.txt)"
  echo guest-was-here > /mnt/new.txt
  dd if=/dev/urandom of=/mnt/big bs=1M count=16 2>/dev/null
  (cd /mnt && md5sum big > big.md5)
  umount /mnt && echo "blk-guest: umounted"
  ;;
read)
  mount -t ext4 -o ro /dev/vda /mnt && echo "blk-guest: mounted ro"
  echo "blk-guest: new=$(cat /mnt/new.txt)"
  (cd /mnt && md5sum -c big.md5 >/dev/null) && echo "blk-guest: big ok"
  umount /mnt
  ;;
ro)
  mount -t ext4 -o ro /dev/vda /mnt && echo "blk-guest: mounted ro"
  echo "blk-guest: hello=$(cat /mnt/hello.txt)"
  umount /mnt
  if echo x | dd of=/dev/vda bs=512 count=1 conv=notrunc 2>/dev/null; then
    echo "blk-guest: raw write succeeded"
  else
    echo "blk-guest: raw write refused"
  fi
  ;;
esac
echo "blk-guest: irqs=$(grep virtio /proc/interrupts | tr -s ' ' | cut -d' ' -f3)"
echo "blk-guest: done"
reboot -f
