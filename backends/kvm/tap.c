/* The host side of virtio-net: attaching to an existing TAP device, maybe in
 * another network namespace (see virtio/net.h). */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "virtio/net.h"

struct tap_req {
  const char *name, *netns;
  int nsfd;
  int fd;
  vmbox_error_t *err;
};

static int tap__fail(struct tap_req *q, int e, const char *what)
{
  const char *where = q->netns ? q->netns : "the host's network namespace";
  vmbox_error_set(q->err, e, "TAP %s (in %s): %s", q->name, where, what);
  return -1;
}

/* TUNSETIFF's errors on an existing device, in words. */
static int tap__attach_error(struct tap_req *q, int e)
{
  switch (e) {
  case EINVAL:
    tap__fail(q, 0, "not a TAP device (a TUN device, or not tun/tap at all)");
    return vmbox_error_hint(q->err, "create one with: ip tuntap add dev %s mode tap", q->name);
  case EBUSY:
    tap__fail(q, 0, "already in use by another process (a TAP serves one VM)");
    return vmbox_error_hint(q->err, "stop the box or program holding it, or use another TAP");
  case EPERM:
  case EACCES:
    tap__fail(q, e, "not allowed to attach");
    return vmbox_error_hint(q->err, "it belongs to another user or group (ip tuntap ... user U)");
  default: return tap__fail(q, e, "attach (TUNSETIFF)");
  }
}

/* Runs in the TAP's namespace. */
static int tap__open_here(struct tap_req *q)
{
  if (if_nametoindex(q->name) == 0) {
    tap__fail(q, 0, "no such network device");
    return vmbox_error_hint(q->err, "create it first: ip tuntap add dev %s mode tap", q->name);
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    vmbox_error_sys(q->err, "open /dev/net/tun");
    return vmbox_error_hint(q->err, "load the tun module (modprobe tun) and run as root");
  }
  struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", q->name);
  int hdr = VIRTIO_NET_HDR_LEN;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return tap__attach_error(q, e);
  }
  /* Offloads stay off until the guest says what it takes (net.c). */
  if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, 0UL) < 0) {
    int e = errno;
    close(fd);
    return tap__fail(q, e, "set the virtio-net header size / offloads");
  }
  q->fd = fd;
  return 0;
}

static void *tap__thread(void *arg)
{
  struct tap_req *q = arg;
  /* Only this thread moves: a task's network namespace is its own. */
  if (setns(q->nsfd, CLONE_NEWNET) < 0)
    tap__fail(q, errno, "enter the network namespace");
  else
    tap__open_here(q);
  return NULL;
}

int tap__open(const char *name, const char *netns, vmbox_error_t *err)
{
  struct tap_req q = {.name = name, .netns = netns, .nsfd = -1, .fd = -1, .err = err};
  if (name == NULL || !*name || strlen(name) >= IFNAMSIZ || strchr(name, '/'))
    return vmbox_error_set(err, 0, "invalid TAP name '%s': want 1-%d characters, no '/'",
                           name ? name : "", IFNAMSIZ - 1);
  if (netns == NULL)
    return tap__open_here(&q) < 0 ? -1 : q.fd;
  q.nsfd = open(netns, O_RDONLY | O_CLOEXEC);
  if (q.nsfd < 0) {
    vmbox_error_sys(err, "network namespace %s", netns);
    return vmbox_error_hint(err, "create it first: ip netns add NAME (then netns=NAME)");
  }
  pthread_t t;
  int e = pthread_create(&t, NULL, tap__thread, &q);
  if (e == 0)
    pthread_join(t, NULL);
  else
    vmbox_error_set(err, e, "TAP %s: start a thread", name);
  close(q.nsfd);
  return e ? -1 : q.fd;
}

int tap__parse_mac(const char *s, uint8_t mac[6])
{
  unsigned v[6];
  char tail;
  if (s == NULL || strlen(s) != 17 ||
      sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
    return -1;
  for (int i = 0; i < 6; i++) {
    if (s[3 * i + 2] != (i == 5 ? '\0' : ':'))
      return -1;
    mac[i] = v[i];
  }
  if (mac[0] & 1) /* multicast: no NIC can have it */
    return -1;
  return 0;
}

void tap__derive_mac(const char *id, uint8_t mac[6])
{
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
  for (const char *p = id ? id : ""; *p; p++)
    h = (h ^ (uint8_t)*p) * 0x100000001b3ULL;
  mac[0] = 0x02; /* locally administered, unicast */
  for (int i = 1; i < 6; i++)
    mac[i] = h >> (8 * i);
}

int tap__config(const struct box_net *net, const char *id, struct vmm_config *cfg,
                vmbox_error_t *err)
{
  if (net->mode == BOX_NET_NONE)
    return 0;
  if (net->mac) {
    if (tap__parse_mac(net->mac, cfg->mac) < 0)
      return vmbox_error_set(err, 0, "invalid MAC address '%s'", net->mac);
  } else {
    tap__derive_mac(id, cfg->mac);
  }
  int fd = tap__open(net->tap, net->netns, err);
  if (fd < 0)
    return -1;
  cfg->net = true;
  cfg->tap_fd = fd;
  return 0;
}

int tap__check(const struct box_net *net, vmbox_error_t *err)
{
  if (net->mode == BOX_NET_NONE)
    return 0;
  int fd = tap__open(net->tap, net->netns, err);
  if (fd < 0)
    return -1;
  close(fd);
  return 0;
}
