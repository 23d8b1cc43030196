/* --net / --network values -> struct box_net (backends/backend.h), and back
 * to the JSON config.json and `vmbox inspect` show:
 *
 *   none                         only lo (the default)
 *   tap:IFNAME[,netns=NAME|PATH][,ip=A.B.C.D/N][,gw=A.B.C.D][,mac=MAC]
 *                                an existing TAP device (kvm backend)
 *
 * netns=NAME means /run/netns/NAME (ip netns add); a PATH is absolute. */
#ifndef VMBOX_BOX_NETSPEC_H
#define VMBOX_BOX_NETSPEC_H

#include <jansson.h>

#include "../backends/backend.h"
#include "../lib/err.h"

/* Parses v into *out; its strings are pushed onto *strings (a strv the
 * caller frees).  out/strings NULL: only check v. */
int netspec__parse(const char *v, struct box_net *out, char ***strings, vmbox_error_t *err);
const char *netspec__mode_name(enum box_net_mode m);
/* {"tap", "netns", "address", "gateway", "mac"}, unset ones left out; NULL
 * for mode none. */
json_t *netspec__to_json(const struct box_net *n);

#endif
