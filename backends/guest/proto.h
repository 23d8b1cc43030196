/* The wire between vmbox-init (PID 1 in the guest) and the host (chan.c,
 * session.c), shared by both sides.  Two things travel:
 *
 * 1. The box config, a file in the per-box initramfs (/vmbox/config):
 *    a sequence of entries [key u8][len u32 LE][value len bytes], read once
 *    at boot.  Strings are not NUL-terminated on the wire.  An EXEC request
 *    carries entries of the same format.
 *
 * 2. Records on virtio-vsock byte streams, both directions:
 *    [type u8][len u16 LE][payload len bytes], len <= CHAN_MAX_PAYLOAD.
 *    One connection per process:
 *    - the main command: vmbox-init connects OUT to host port
 *      CHAN_PORT_MAIN at boot (the VMM listens on "<vsock_uds>_1025");
 *      the guest's connect is its "I booted" (BOOTED record first).
 *      Without vsock (no device, old kernel), init falls back to ttyS1
 *      (COM2) with the same records, 4 KiB at a time.
 *    - exec and cp: vmbox-init listens on CHAN_PORT_EXEC; the host connects
 *      ("CONNECT 1024\n" on the VMM's vsock socket), sends one EXEC or
 *      CP_OUT/CP_IN record, and the guest forks a session for it.
 *    A host decoder treats the guest as hostile: an unknown type or an
 *    oversized length ends the connection (the box or the exec gets a clear
 *    error), it is never trusted as a size.
 *
 * Everything is little endian and fixed width, so a 32-bit init or a
 * big-endian host would still agree. */
#ifndef VMBOX_GUEST_PROTO_H
#define VMBOX_GUEST_PROTO_H

#include <stdint.h>

#define CHAN_HDR_LEN 3
#define CHAN_MAX_PAYLOAD 32768
#define CHAN_SERIAL_PAYLOAD 4096 /* what init sends per record on COM2 */

#define CHAN_PORT_EXEC 1024u /* guest listens: exec and cp sessions */
#define CHAN_PORT_MAIN 1025u /* host listens: the main command's channel */
#define CHAN_GUEST_CID 3

/* Guest -> host. */
enum chan_guest_type {
  CHAN_G_BOOTED = 1,    /* init runs; payload: "uptime_ms" decimal text */
  CHAN_G_STDOUT = 2,    /* the process's stdout bytes (its pty with a tty) */
  CHAN_G_STDERR = 3,    /* the process's stderr bytes */
  CHAN_G_STARTED = 4,   /* the process was exec'd; no payload */
  CHAN_G_EXEC_FAIL = 5, /* [code u8][message]: 126/127 or 125 (setup) */
  CHAN_G_EXIT = 6,      /* [code u8][signal u8][flags u8]: the process ended */
  CHAN_G_LOG = 7,       /* a note from init (goes to the console log) */
  CHAN_G_DATA = 8,      /* cp out: tar stream bytes */
  CHAN_G_DONE = 9,      /* cp: [code u8][message]: 0 = done, else failed */
};
#define CHAN_G_LAST CHAN_G_DONE
#define CHAN_EXIT_OOM 0x01 /* flags: the memory cgroup killed something */

/* Host -> guest. */
enum chan_host_type {
  CHAN_H_STDIN = 0x41,     /* bytes for the process's stdin (or pty) */
  CHAN_H_STDIN_EOF = 0x42, /* the host's stdin ended; no payload */
  CHAN_H_SIGNAL = 0x43,    /* [signo u8] for the process */
  CHAN_H_RESIZE = 0x44,    /* [rows u16 LE][cols u16 LE]: the pty's size */
  CHAN_H_EXEC = 0x45,      /* config entries: ARGV ENV CWD UID GID GROUP TTY
                            * WINSIZE STDIN; first record of an exec session */
  CHAN_H_CP_OUT = 0x46,    /* [follow u8][path]: send PATH as tar (DATA...) */
  CHAN_H_CP_IN = 0x47,     /* [archive u8][dir]: extract the DATA that follows
                            * into DIR (must exist) */
  CHAN_H_DATA = 0x48,      /* cp in: tar stream bytes */
  CHAN_H_DATA_EOF = 0x49,  /* cp in: the tar stream ended */
};

/* Config keys (/vmbox/config, EXEC).  Repeated keys append (argv, env,
 * groups). */
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
  CFG_TTY = 15,      /* "1": a pty inside the guest is the stdio */
  CFG_WINSIZE = 16,  /* "ROWS COLS": the pty's size at start */
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

static inline uint16_t chan__get_u16(const uint8_t *p)
{
  return (uint16_t)(p[0] | p[1] << 8);
}

#endif
