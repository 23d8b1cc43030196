/* vmbox-init: eth0 up, address and default route; see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NET_IF "eth0"

int guest_net__parse_cidr(const char *s, unsigned *addr, unsigned *mask)
{
  char ip[INET_ADDRSTRLEN];
  const char *slash = strchr(s, '/');
  size_t n = slash ? (size_t)(slash - s) : strlen(s);
  if (n == 0 || n >= sizeof(ip))
    return -1;
  memcpy(ip, s, n);
  ip[n] = '\0';
  struct in_addr a;
  if (inet_pton(AF_INET, ip, &a) != 1)
    return -1;
  unsigned long bits = 32;
  if (slash) {
    char *end;
    errno = 0;
    bits = strtoul(slash + 1, &end, 10);
    if (errno || end == slash + 1 || *end || bits > 32)
      return -1;
  }
  *addr = a.s_addr;
  *mask = bits ? htonl(~0u << (32 - bits)) : 0;
  return 0;
}

static void set_sin(struct sockaddr *sa, unsigned addr)
{
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = addr};
  memcpy(sa, &sin, sizeof(sin));
}

static unsigned long now_ms(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000UL + t.tv_nsec / 1000000;
}

/* The device probes with the modules; under nested TCG that takes a while. */
static int wait_if(int s, struct ifreq *ifr, unsigned wait_ms)
{
  unsigned long t0 = now_ms();
  while (ioctl(s, SIOCGIFFLAGS, ifr) < 0) {
    if (errno != ENODEV || now_ms() - t0 > wait_ms)
      return -1;
    usleep(10000);
  }
  return 0;
}

static int fail(char *msg, size_t cap, const char *what)
{
  snprintf(msg, cap, "guest: network: %s: %s", what, strerror(errno));
  return -1;
}

static int add_default_route(int s, const char *gw, char *msg, size_t cap)
{
  struct in_addr g;
  if (inet_pton(AF_INET, gw, &g) != 1) {
    snprintf(msg, cap, "guest: network: bad gateway \"%s\"", gw);
    return -1;
  }
  struct rtentry rt = {.rt_flags = RTF_UP | RTF_GATEWAY, .rt_dev = NET_IF};
  set_sin(&rt.rt_dst, 0);
  set_sin(&rt.rt_genmask, 0);
  set_sin(&rt.rt_gateway, g.s_addr);
  if (ioctl(s, SIOCADDRT, &rt) < 0)
    return fail(msg, cap, "default route (is the gateway on eth0's subnet?)");
  return 0;
}

static int configure(int s, const char *addr, const char *gw, unsigned wait_ms, char *msg,
                     size_t cap)
{
  unsigned a, m;
  if (guest_net__parse_cidr(addr, &a, &m) < 0) {
    snprintf(msg, cap, "guest: network: bad address \"%s\" (want A.B.C.D/N)", addr);
    return -1;
  }
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NET_IF);
  if (wait_if(s, &ifr, wait_ms) < 0)
    return fail(msg, cap, NET_IF " (virtio-net) did not appear");
  short flags = ifr.ifr_flags;
  set_sin(&ifr.ifr_addr, a);
  if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
    return fail(msg, cap, "set " NET_IF "'s address");
  set_sin(&ifr.ifr_netmask, m);
  if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
    return fail(msg, cap, "set " NET_IF "'s netmask");
  ifr.ifr_flags = flags | IFF_UP | IFF_RUNNING;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    return fail(msg, cap, "bring " NET_IF " up");
  return gw && *gw ? add_default_route(s, gw, msg, cap) : 0;
}

/* The kernel leaves lo down unless ip= autoconfig ran. */
static int lo_up(int s, char *msg, size_t cap)
{
  struct ifreq ifr = {.ifr_name = "lo"};
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    return fail(msg, cap, "lo");
  if (ifr.ifr_flags & IFF_UP)
    return 0;
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? fail(msg, cap, "bring lo up") : 0;
}

int guest_net__up(const char *addr, const char *gw, unsigned wait_ms, char *msg, size_t cap)
{
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return fail(msg, cap, "socket");
  int r = lo_up(s, msg, cap);
  if (r == 0 && addr && *addr)
    r = configure(s, addr, gw, wait_ms, msg, cap);
  close(s);
  return r;
}
