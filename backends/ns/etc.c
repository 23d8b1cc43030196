/* /etc/hostname, /etc/hosts and /etc/resolv.conf as Docker provides them,
 * written into the box's own layer (the overlay upper) rather than bound
 * from a host file, so /proc/self/mountinfo names no host path.  And lo, up,
 * in the new net ns. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "ns.h"

/* Docker copies the host's resolv.conf but drops loopback resolvers, which
 * mean nothing in another net namespace; none left -> Google's, as Docker. */
static char *resolv_conf(void)
{
  cleanup_free char *host = NULL;
  char *out = xstrdup("");
  bool any = false;
  if (util__read_file("/etc/resolv.conf", &host, NULL, NULL) == 0) {
    for (char *save = NULL, *l = strtok_r(host, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
      char addr[64];
      if (sscanf(l, "nameserver %63s", addr) == 1) {
        if (util__has_prefix(addr, "127.") || strcmp(addr, "::1") == 0)
          continue;
        any = true;
      }
      char *n = util__fmt("%s%s\n", out, l);
      free(out);
      out = n;
    }
  }
  if (!any) {
    char *n = util__fmt("%snameserver 8.8.8.8\nnameserver 8.8.4.4\n", out);
    free(out);
    out = n;
  }
  return out;
}

/* Writes NAME in the box's /etc, replacing (never following) what the image
 * has there.  Through the overlay: the image itself is never touched. */
static int put(int etcfd, const char *name, const char *body, vmbox_error_t *err)
{
  int fd = openat(etcfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 && (errno == ELOOP || errno == EISDIR)) {
    unlinkat(etcfd, name, errno == EISDIR ? AT_REMOVEDIR : 0);
    fd = openat(etcfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  }
  if (fd < 0)
    return vmbox_error_sys(err, "write /etc/%s in the box", name);
  ssize_t n = write(fd, body, strlen(body));
  close(fd);
  if (n != (ssize_t)strlen(body))
    return vmbox_error_sys(err, "write /etc/%s in the box", name);
  return 0;
}

int etc__install(int rootfd, const char *hostname, vmbox_error_t *err)
{
  cleanup_free char *hn = util__fmt("%s\n", hostname);
  cleanup_free char *hosts = util__fmt("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost "
                                       "ip6-loopback\n127.0.1.1\t%s\n",
                                       hostname);
  cleanup_free char *resolv = resolv_conf();
  cleanup_close int path = rootfs__mkpath(rootfd, "/etc", true, err);
  if (path < 0)
    return -1;
  cleanup_close int etc = openat(path, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (etc < 0)
    return vmbox_error_sys(err, "open /etc in the box");
  if (put(etc, "hostname", hn, err) < 0 || put(etc, "hosts", hosts, err) < 0 ||
      put(etc, "resolv.conf", resolv, err) < 0)
    return -1;
  return 0;
}

int etc__lo_up(vmbox_error_t *err)
{
  cleanup_close int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr = {0};
  strcpy(ifr.ifr_name, "lo");
  if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
    return vmbox_error_sys(err, "lo: get flags");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
    return vmbox_error_sys(err, "lo: bring up");
  return 0;
}
