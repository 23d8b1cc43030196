/* The wire between vmbox-init (PID 1 in the guest) and the host (chan.c),
 * shared by both sides.  Two things travel:
 *
 * 1. The box config, a file in the per-box initramfs (/vmbox/config):
 *    a sequence of entries [key u8][len u32 LE][value len bytes], read once
 *    at boot.  Strings are not NUL-terminated on the wire.
 *
 * 2. Records on ttyS1 (COM2, raw 8-bit serial), both directions:
 *    [type u8][len u16 LE][payload len bytes], len <= CHAN_MAX_PAYLOAD.
 *    A host decoder treats the guest as hostile: an unknown type or an
 *    oversized length ends the channel (the box gets a clear error), it is
 *    never trusted as a size.
 *
 * Everything is little endian and fixed width, so a 32-bit init or a
 * big-endian host would still agree. */
#ifndef VMBOX_GUEST_PROTO_H
#define VMBOX_GUEST_PROTO_H

#include <stdint.h>

#define CHAN_HDR_LEN 3
#define CHAN_MAX_PAYLOAD 4096

/* Guest -> host. */
enum chan_guest_type {
  CHAN_G_BOOTED = 1,    /* init runs; payload: "uptime_ms" decimal text */
  CHAN_G_STDOUT = 2,    /* the command's stdout bytes */
  CHAN_G_STDERR = 3,    /* the command's stderr bytes */
  CHAN_G_STARTED = 4,   /* the command was exec'd; no payload */
  CHAN_G_EXEC_FAIL = 5, /* [code u8][message]: 126/127 or 125 (setup) */
  CHAN_G_EXIT = 6,      /* [code u8][signal u8][flags u8]: the command ended */
  CHAN_G_LOG = 7,       /* a note from init (goes to the console log) */
};
#define CHAN_EXIT_OOM 0x01 /* flags: the memory cgroup killed something */

/* Host -> guest. */
enum chan_host_type {
  CHAN_H_STDIN = 0x41,     /* bytes for the command's stdin */
  CHAN_H_STDIN_EOF = 0x42, /* the host's stdin ended; no payload */
  CHAN_H_SIGNAL = 0x43,    /* [signo u8] for the command */
};

/* Config keys (/vmbox/config).  Repeated keys append (argv, env, groups). */
enum box_cfg_key {
  CFG_ARGV = 1,      /* one per argument, in order */
  CFG_ENV = 2,       /* one "K=V" per variable */
  CFG_CWD = 3,       /* absolute path */
  CFG_UID = 4,       /* decimal text */
  CFG_GID = 5,       /* decimal text */
  CFG_GROUP = 6,     /* decimal text, one per extra gid */
  CFG_HOSTNAME = 7,  /* text */
  CFG_MEMORY = 8,    /* memory.max in bytes, decimal text; absent = none */
  CFG_READ_ONLY = 9, /* "1": mount the root read-only */
  CFG_PIDS = 10,     /* pids.max, decimal text */
  CFG_STDIN = 11,    /* "1": the host forwards stdin (else /dev/null) */
  CFG_TMPFS = 12,    /* "TARGET\0OPTIONS" for --tmpfs */
  CFG_NET_ADDR = 13, /* eth0's address, "10.0.0.2/24" (guest/net.c) */
  CFG_NET_GW = 14,   /* default route via, "10.0.0.1" */
};
#define CFG_MAX_ENTRY (1u << 20) /* any single value; argv is bounded too */

#define GUEST_CONFIG_PATH "/vmbox/config"
#define GUEST_MODULES_DIR "/vmbox/modules"
#define GUEST_MODULES_ORDER "/vmbox/modules/order"

static inline void chan__put_hdr(uint8_t *h, uint8_t type, uint16_t len)
{
  h[0] = type;
  h[1] = (uint8_t)(len & 0xff);
  h[2] = (uint8_t)(len >> 8);
}

#endif
