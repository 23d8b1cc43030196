/* --net values; see netspec.h. */
#include "netspec.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

#include "../lib/util.h"

#define NET_USAGE                                                                                  \
  "use --net none or --net tap:IFNAME[,netns=NAME][,ip=A.B.C.D/N][,gw=A.B.C.D][,mac=MAC]"

const char *netspec__mode_name(enum box_net_mode m)
{
  switch (m) {
  case BOX_NET_BRIDGE: return "bridge";
  case BOX_NET_TAP: return "tap";
  default: return "none";
  }
}

static int bad(vmbox_error_t *err, const char *what, const char *v, const char *want)
{
  vmbox_error_set(err, 0, "--net: invalid %s \"%s\": %s", what, v, want);
  return vmbox_error_hint(err, NET_USAGE);
}

static bool valid_ifname(const char *s)
{
  size_t n = strlen(s);
  if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return false;
  for (; *s; s++)
    if (*s == '/' || *s == ':' || isspace((unsigned char)*s) || !isprint((unsigned char)*s))
      return false;
  return true;
}

static bool valid_ipv4(const char *s)
{
  struct in_addr a;
  return inet_pton(AF_INET, s, &a) == 1;
}

static bool valid_cidr(const char *s)
{
  const char *slash = strchr(s, '/');
  if (!slash || slash == s || slash - s >= INET_ADDRSTRLEN)
    return false;
  char ip[INET_ADDRSTRLEN];
  memcpy(ip, s, slash - s);
  ip[slash - s] = '\0';
  char *end;
  errno = 0;
  unsigned long n = strtoul(slash + 1, &end, 10);
  return valid_ipv4(ip) && isdigit((unsigned char)slash[1]) && !errno && !*end && n >= 1 && n <= 32;
}

static bool valid_mac(const char *s)
{
  if (strlen(s) != 17)
    return false;
  for (int i = 0; i < 17; i++)
    if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
      return false;
  return !(strtoul(s, NULL, 16) & 1); /* the first octet: unicast */
}

/* netns=NAME|PATH -> a path the monitor (in "/") can open. */
static char *netns_path(const char *v, vmbox_error_t *err)
{
  if (v[0] == '/')
    return xstrdup(v);
  if (strchr(v, '/') || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
    bad(err, "netns", v, "want a name from `ip netns list` or an absolute path");
    return NULL;
  }
  return util__fmt("/run/netns/%s", v);
}

struct net_keys {
  char *netns, *ip, *gw, *mac;
};

static int set_key(struct net_keys *k, const char *key, const char *val, vmbox_error_t *err)
{
  char **slot = strcmp(key, "netns") == 0 ? &k->netns
                : strcmp(key, "ip") == 0  ? &k->ip
                : strcmp(key, "gw") == 0  ? &k->gw
                : strcmp(key, "mac") == 0 ? &k->mac
                                          : NULL;
  if (slot == NULL) {
    vmbox_error_set(err, 0, "--net: unknown option \"%s\": want netns, ip, gw or mac", key);
    return vmbox_error_hint(err, NET_USAGE);
  }
  if (*slot)
    return bad(err, "option", key, "given twice");
  if (!*val)
    return bad(err, key, val, "empty value");
  if (strcmp(key, "netns") == 0)
    *slot = netns_path(val, err);
  else
    *slot = xstrdup(val);
  return *slot ? 0 : -1;
}

static int check_keys(const struct net_keys *k, vmbox_error_t *err)
{
  if (k->ip && !valid_cidr(k->ip))
    return bad(err, "address", k->ip, "want A.B.C.D/N with N from 1 to 32");
  if (k->gw && !valid_ipv4(k->gw))
    return bad(err, "gateway", k->gw, "want A.B.C.D");
  if (k->gw && !k->ip)
    return bad(err, "gateway", k->gw, "a gateway needs an address: add ip=A.B.C.D/N");
  if (k->mac && !valid_mac(k->mac))
    return bad(err, "MAC address", k->mac, "want six hex octets like 02:00:00:00:00:01, unicast");
  return 0;
}

static void keys_free(struct net_keys *k)
{
  free(k->netns), free(k->ip), free(k->gw), free(k->mac);
}

static const char *keep(char ***strings, const char *s)
{
  if (s == NULL)
    return NULL;
  strv_push(strings, s);
  return (*strings)[strv_len(*strings) - 1];
}

/* Pointers into *strings are taken once it stopped growing. */
static void fill(struct box_net *out, char ***strings, const char *tap, const struct net_keys *k)
{
  size_t base = strv_len(*strings);
  const char *v[5] = {tap, k->netns, k->ip, k->gw, k->mac};
  for (int i = 0; i < 5; i++)
    keep(strings, v[i] ? v[i] : "");
  const char **dst[5] = {&out->tap, &out->netns, &out->address, &out->gateway, &out->mac};
  for (int i = 0; i < 5; i++)
    *dst[i] = v[i] ? (*strings)[base + i] : NULL;
  out->mode = BOX_NET_TAP;
}

static int parse_tap(const char *v, struct box_net *out, char ***strings, vmbox_error_t *err)
{
  cleanup_free char *s = xstrdup(v + strlen("tap:"));
  char *save = NULL, *tap = s, *comma = strchr(s, ',');
  if (comma)
    *comma = '\0';
  if (!valid_ifname(tap))
    return bad(err, "TAP name", tap, "want 1-15 characters, no '/', ':' or spaces");
  struct net_keys k = {0};
  int r = 0;
  for (char *kv = comma ? strtok_r(comma + 1, ",", &save) : NULL; kv && r == 0;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) {
      r = bad(err, "option", kv, "want KEY=VALUE");
      break;
    }
    *eq = '\0';
    r = set_key(&k, kv, eq + 1, err);
  }
  if (r == 0 && comma && comma[1] == '\0')
    r = bad(err, "option list", v, "trailing comma");
  if (r == 0)
    r = check_keys(&k, err);
  if (r == 0 && out && strings)
    fill(out, strings, tap, &k);
  keys_free(&k);
  return r;
}

int netspec__parse(const char *v, struct box_net *out, char ***strings, vmbox_error_t *err)
{
  if (out)
    memset(out, 0, sizeof(*out));
  if (strcmp(v, "none") == 0)
    return 0;
  if (strncmp(v, "tap:", 4) == 0)
    return parse_tap(v, out, strings, err);
  if (strcmp(v, "bridge") == 0 || strcmp(v, "host") == 0) {
    vmbox_error_set(err, 0,
                    "--net %s is not supported yet: use --net none, or --net tap:IFNAME "
                    "with --backend kvm",
                    v);
    return vmbox_error_hint(err, NET_USAGE);
  }
  return bad(err, "network", v, "want none or tap:IFNAME[,...]");
}

json_t *netspec__to_json(const struct box_net *n)
{
  if (n->mode == BOX_NET_NONE)
    return NULL;
  json_t *j = json_object();
  const char *k[5] = {"tap", "netns", "address", "gateway", "mac"};
  const char *v[5] = {n->tap, n->netns, n->address, n->gateway, n->mac};
  for (int i = 0; i < 5; i++)
    if (v[i])
      json_object_set_new(j, k[i], json_string(v[i]));
  return j;
}
