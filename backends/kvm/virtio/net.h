/* virtio-net (virtio 1.x, 5.1) on the legacy PCI transport, backed by a TAP
 * fd, and the TAP itself (tap.c).
 *
 * Features, chosen so the guest's header is the TAP's header byte for byte
 * (TUNSETVNETHDRSZ 10): MAC, CSUM/GUEST_CSUM and TSO4/TSO6 both ways.
 * Offloads turn 1500-byte frames into 64 KiB ones: the TCP figures nested
 * depend on it.  Not offered: MRG_RXBUF (so the header is the legacy 10
 * bytes and a guest with GUEST_TSO posts 64 KiB "big packet" chains, one
 * frame each), UFO (gone from Linux), ECN, CTRL_VQ (no MAC filters or
 * multiqueue to drive), STATUS (the link is always up), indirect
 * descriptors (ring.c rejects them).
 *
 * Packet parsing works on plain chains and fds so unit tests and the fuzzer
 * drive it without a VM (tests/fuzz/fuzz_net.c). */
#ifndef VMBOX_KVM_VIRTIO_NET_H
#define VMBOX_KVM_VIRTIO_NET_H

#include <stdint.h>

#include "../../backend.h"
#include "../vmm.h"
#include "ring.h"

#define VIRTIO_ID_NET 1
#define VIRTIO_NET_LEGACY_DEVICE 0x1000 /* transitional: 0x1000 + id - 1 */
#define PCI_CLASS_NETWORK_ETHERNET 0x020000

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_HOST_TSO4 11
#define VIRTIO_NET_F_HOST_TSO6 12

#define VIRTIO_NET_FEATURES                                                                        \
  (1u << VIRTIO_NET_F_CSUM | 1u << VIRTIO_NET_F_GUEST_CSUM | 1u << VIRTIO_NET_F_MAC |              \
   1u << VIRTIO_NET_F_GUEST_TSO4 | 1u << VIRTIO_NET_F_GUEST_TSO6 | 1u << VIRTIO_NET_F_HOST_TSO4 |  \
   1u << VIRTIO_NET_F_HOST_TSO6)

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0
#define VIRTIO_NET_HDR_GSO_TCPV4 1
#define VIRTIO_NET_HDR_GSO_TCPV6 4

/* The legacy header without MRG_RXBUF: 10 bytes, little endian. */
#define VIRTIO_NET_HDR_LEN 10
struct virtio_net_hdr {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
};

#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_CONFIG_LEN 6 /* mac only */
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define ETH_HDR_LEN 14
/* The largest frame either way, header excluded: a 64 KiB GSO frame plus
 * the Ethernet header (Firecracker's bound too). */
#define VIRTIO_NET_MAX_FRAME 65550

/* Decodes and checks a guest tx header for a frame of frame_len bytes under
 * the negotiated features: 0 = fine, -1 = drop the frame.  The host kernel
 * checks again; this keeps what we hand it sane. */
int virtio_net__hdr_parse(const uint8_t raw[VIRTIO_NET_HDR_LEN], uint32_t frame_len,
                          uint32_t features, struct virtio_net_hdr *h);
/* Sends one tx chain (header + frame, device-readable) to fd as one write:
 * 1 = sent, 0 = dropped (bad header, bad size, or fd refused it). */
int virtio_net__tx(int fd, const struct virtq_chain *c, uint32_t features);
/* Puts one frame read from the TAP (header included) into an rx chain.
 * Returns the used length, 0 when the chain is too small (frame dropped). */
uint32_t virtio_net__rx(const struct virtq_chain *c, uint8_t *frame, uint32_t len,
                        uint32_t features);
/* TUNSETOFFLOAD flags for what the guest accepts on rx. */
unsigned virtio_net__offloads(uint32_t features);

/* --- tap.c ----------------------------------------------------------------- */
/* Opens TAP `name` (IFF_TAP|IFF_NO_PI|IFF_VNET_HDR, 10-byte header,
 * non-blocking, offloads off) inside network namespace netns (a path; NULL
 * = ours).  Our own namespace never changes: the setns happens on a
 * short-lived thread.  Never creates a device. */
int tap__open(const char *name, const char *netns, vmbox_error_t *err);
/* "02:00:5e:10:00:01" -> mac; -1 when malformed. */
int tap__parse_mac(const char *s, uint8_t mac[6]);
/* A stable, locally administered unicast MAC from the box id. */
void tap__derive_mac(const char *id, uint8_t mac[6]);
/* For the kvm backend: the box's network (TAP or BRIDGE: both hand us a TAP
 * by name) into the VMM config: cfg->net, tap_fd (the caller closes it),
 * mac.  Mode NONE: nothing, 0. */
int tap__config(const struct box_net *net, const char *id, struct vmm_config *cfg,
                vmbox_error_t *err);
/* At create: the TAP can be attached now (opened and closed again), so a
 * wrong name fails before anything boots. */
int tap__check(const struct box_net *net, vmbox_error_t *err);

#endif
