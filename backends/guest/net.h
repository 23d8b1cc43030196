/* vmbox-init's network set-up: eth0 (the virtio-net device) up with the
 * address and default route the host asked for (CFG_NET_ADDR, CFG_NET_GW).
 * Plain ioctls: the static init carries no netlink library. */
#ifndef VMBOX_GUEST_NET_H
#define VMBOX_GUEST_NET_H

#include <stddef.h>

/* lo up; then, when addr "A.B.C.D/N" is set (NULL: eth0 stays down),
 * eth0 up with it, and a default route via gw (NULL: none).  Waits
 * up to wait_ms for the interface to appear.  0 = done; -1 with a message
 * in msg. */
int guest_net__up(const char *addr, const char *gw, unsigned wait_ms, char *msg, size_t cap);

/* "10.0.0.2/24" -> address and netmask (network byte order); -1 if bad. */
int guest_net__parse_cidr(const char *s, unsigned *addr, unsigned *mask);

#endif
