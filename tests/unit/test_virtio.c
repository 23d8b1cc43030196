/* backends/kvm/virtio: split virtqueue (ring.c), virtio-blk requests (blk.c),
 * the legacy virtio-pci transport and PCI config space (virtio/pci.c, pci.c),
 * all on a plain buffer standing in for guest RAM.  Every malformed-ring case
 * must fail the request or break the queue, never touch memory outside the
 * buffer (ASan checks that).
 *
 * The test plays the VMM (port I/O into the bus, an IRQ line), so no KVM is
 * needed. */
#include <endian.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../backends/kvm/disk.h"
#include "../../backends/kvm/pci.h"
#include "../../backends/kvm/virtio/blk.h"
#include "../../backends/kvm/virtio/pci.h"
#include "../../backends/kvm/vmm.h"
#include "../../lib/util.h"
#include "tap.h"

#define MEM_SIZE (1u << 20)
#define QN 16
#define RING 0x1000u /* legacy PFN 1 */
#define AVAIL (RING + 16 * QN)
#define HDR 0x10000u
#define DATA 0x20000u
#define STATUS 0x30000u
#define DISK_SIZE (64 * 1024)

static uint8_t *mem;
static struct guest_mem gm;
static struct virtq vq;
static uint16_t avail_idx;
static struct virtq_chain chain;
static struct disk *disk, *ro_disk;
static char dir[] = "/tmp/vmbox-test-virtio-XXXXXX";
static char *base_path, *ovl_path, *map_path;

static void put16(uint8_t *p, uint16_t v)
{
  v = htole16(v), memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v)
{
  v = htole32(v), memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
  v = htole64(v), memcpy(p, &v, 8);
}
static uint16_t get16(const uint8_t *p)
{
  uint16_t v;
  memcpy(&v, p, 2);
  return le16toh(v);
}
static uint32_t get32(const uint8_t *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return le32toh(v);
}

/* --- a guest driver in miniature ---------------------------------------- */

static void ring_init(void)
{
  memset(mem, 0, HDR); /* the ring pages; data buffers stay as the test set them */
  avail_idx = 0;
  if (virtq__setup_legacy(&vq, &gm, QN, QN, RING / 4096) < 0)
    abort();
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
  uint8_t *d = mem + RING + 16u * i;
  put64(d, addr), put32(d + 8, len), put16(d + 12, flags), put16(d + 14, next);
}

static void kick(uint16_t head)
{
  put16(mem + AVAIL + 4 + 2 * (avail_idx % QN), head);
  put16(mem + AVAIL + 2, ++avail_idx);
}

static uint16_t used_idx(void)
{
  return get16(mem + vq.used_gpa + 2);
}
static uint32_t used_len(unsigned k)
{
  return get32(mem + vq.used_gpa + 4 + 8 * k + 4);
}
static uint32_t used_id(unsigned k)
{
  return get32(mem + vq.used_gpa + 4 + 8 * k);
}

static void hdr(uint32_t type, uint64_t sector)
{
  put32(mem + HDR, type), put32(mem + HDR + 4, 0), put64(mem + HDR + 8, sector);
}

/* The usual 3-descriptor request; returns the status byte (0xee: untouched). */
static int request(struct disk *d, uint32_t type, uint64_t sector, uint32_t len)
{
  ring_init();
  hdr(type, sector);
  mem[STATUS] = 0xee;
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
  desc(1, DATA, len, VIRTQ_DESC_F_NEXT | (type == VIRTIO_BLK_T_OUT ? 0 : VIRTQ_DESC_F_WRITE), 2);
  desc(2, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
  kick(0);
  if (virtio_blk__drain(d, &vq, &gm, &chain) != 1)
    return -1;
  return mem[STATUS];
}

static void disk_at(uint64_t off, void *buf, size_t len)
{
  if (disk__read(disk, buf, len, off) < 0)
    abort();
}

/* --- good requests --------------------------------------------------------- */

static void test_good(void)
{
  uint8_t want[1024];
  disk_at(512, want, sizeof(want));
  TAP_OK(request(disk, VIRTIO_BLK_T_IN, 1, 1024) == VIRTIO_BLK_S_OK &&
             memcmp(mem + DATA, want, 1024) == 0,
         "IN: sectors 1-2 read into guest memory");
  TAP_OK(used_idx() == 1 && used_id(0) == 0 && used_len(0) == 1025,
         "IN: used ring has head 0, length data + status");
  for (int i = 0; i < 2048; i++)
    mem[DATA + i] = i * 3;
  uint8_t put[2048];
  memcpy(put, mem + DATA, sizeof(put));
  TAP_OK(request(disk, VIRTIO_BLK_T_OUT, 10, 2048) == VIRTIO_BLK_S_OK && used_len(0) == 1,
         "OUT: write 4 sectors, used length 1 (status only)");
  uint8_t got[2048];
  disk_at(10 * 512, got, sizeof(got));
  TAP_OK(memcmp(got, put, sizeof(got)) == 0, "OUT: the disk has the data");
  TAP_OK(request(disk, VIRTIO_BLK_T_FLUSH, 0, 0) == VIRTIO_BLK_S_OK && access(map_path, F_OK) == 0,
         "FLUSH: ok, overlay map written");
  TAP_OK(request(disk, VIRTIO_BLK_T_GET_ID, 0, 20) == VIRTIO_BLK_S_OK &&
             memcmp(mem + DATA, "vmbox-disk", 11) == 0 && used_len(0) == 21,
         "GET_ID: id string");
  TAP_OK(request(disk, 2 /* SCSI_CMD */, 0, 16) == VIRTIO_BLK_S_UNSUPP, "unknown type: UNSUPP");
  TAP_OK(request(disk, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, 512) == VIRTIO_BLK_S_OK,
         "IN of the last sector");
}

static void test_chains(void)
{
  /* Header and data split over odd descriptors, a zero-length one between. */
  ring_init();
  hdr(VIRTIO_BLK_T_IN, 3);
  desc(0, HDR, 5, VIRTQ_DESC_F_NEXT, 1);
  desc(1, HDR + 5, 11, VIRTQ_DESC_F_NEXT, 2);
  desc(2, DATA, 0, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
  desc(3, DATA, 300, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 4);
  desc(4, DATA + 300, 213, VIRTQ_DESC_F_WRITE, 0); /* 212 data + status */
  kick(0);
  uint8_t want[512];
  disk_at(3 * 512, want, 512);
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 1 && mem[DATA + 512] == 0 &&
             memcmp(mem + DATA, want, 512) == 0 && used_len(0) == 513,
         "header split 5+11, zero-length descriptor, status sharing the last buffer");
  /* Exactly QN descriptors: header, 14 x 512 data, status. */
  ring_init();
  hdr(VIRTIO_BLK_T_IN, 0);
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
  for (int i = 1; i < QN - 1; i++)
    desc(i, DATA + 512u * (i - 1), 512, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, i + 1);
  desc(QN - 1, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
  kick(0);
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 1 && mem[STATUS] == 0 &&
             used_len(0) == 14 * 512 + 1,
         "a chain of exactly the queue size is served");
  /* Several requests in one kick, and the index wrapping past 65535. */
  ring_init();
  vq.last_avail = vq.used_idx = 65534;
  avail_idx = 65534;
  put16(mem + vq.used_gpa + 2, 65534);
  hdr(VIRTIO_BLK_T_IN, 0);
  for (int r = 0; r < 3; r++) {
    desc(2 * r, HDR, 16, VIRTQ_DESC_F_NEXT, 2 * r + 1);
    desc(2 * r + 1, DATA + 1024u * r, 513, VIRTQ_DESC_F_WRITE, 0);
    kick(2 * r);
  }
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 3 && used_idx() == 1 && !vq.broken,
         "three requests across the 16-bit index wrap");
}

/* --- bad requests: the request fails, the queue lives ---------------------- */

static void test_bad_requests(void)
{
  uint8_t before[512], after[512];
  disk_at(0, before, 512);
  TAP_OK(request(ro_disk, VIRTIO_BLK_T_OUT, 0, 512) == VIRTIO_BLK_S_IOERR,
         "OUT on a read-only disk: IOERR");
  TAP_OK(request(disk, VIRTIO_BLK_T_IN, DISK_SIZE / 512, 512) == VIRTIO_BLK_S_IOERR,
         "IN one sector past the end: IOERR");
  TAP_OK(request(disk, VIRTIO_BLK_T_IN, DISK_SIZE / 512 - 1, 1024) == VIRTIO_BLK_S_IOERR,
         "IN straddling the end: IOERR");
  TAP_OK(request(disk, VIRTIO_BLK_T_OUT, UINT64_MAX / 512 + 1, 512) == VIRTIO_BLK_S_IOERR,
         "OUT at a sector whose byte offset overflows: IOERR");
  TAP_OK(request(disk, VIRTIO_BLK_T_OUT, UINT64_MAX, 512) == VIRTIO_BLK_S_IOERR,
         "OUT at sector 2^64-1: IOERR");
  TAP_OK(request(disk, VIRTIO_BLK_T_IN, 0, 100) == VIRTIO_BLK_S_IOERR,
         "IN of a partial sector: IOERR");
  disk_at(0, after, 512);
  TAP_OK(memcmp(before, after, 512) == 0, "failed writes left the disk alone");
  /* Header too short: only 8 readable bytes. */
  ring_init();
  hdr(VIRTIO_BLK_T_OUT, 0);
  desc(0, HDR, 8, VIRTQ_DESC_F_NEXT, 1);
  desc(1, STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
  kick(0);
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 1 && mem[STATUS] == VIRTIO_BLK_S_IOERR &&
             !vq.broken,
         "header too short: IOERR, queue still usable");
  /* No writable byte at all: nowhere for a status. */
  ring_init();
  hdr(VIRTIO_BLK_T_IN, 0);
  mem[STATUS] = 0xee;
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
  desc(1, STATUS, 1, 0, 0);
  kick(0);
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 1 && mem[STATUS] == 0xee &&
             used_len(0) == 0 && !vq.broken,
         "status descriptor not writable: returned with length 0, nothing written");
  ring_init();
  hdr(VIRTIO_BLK_T_OUT, 0);
  desc(0, HDR, 16, 0, 0);
  kick(0);
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 1 && used_len(0) == 0,
         "header only, no status: length 0");
}

/* --- a corrupt ring breaks the queue --------------------------------------- */

static void expect_broken(const char *what)
{
  int r = virtio_blk__drain(disk, &vq, &gm, &chain);
  TAP_OK(r == -1 && vq.broken && used_idx() == 0, "%s: queue broken (%s)", what,
         vq.why ? vq.why : "?");
  TAP_OK(virtq__pop(&vq, &gm, &chain) == -1, "%s: stays broken until reset", what);
}

static void test_bad_rings(void)
{
  ring_init();
  desc(0, MEM_SIZE - 8, 16, 0, 0);
  kick(0);
  expect_broken("buffer past the end of guest memory");
  ring_init();
  desc(0, UINT64_MAX - 100, 512, VIRTQ_DESC_F_WRITE, 0);
  kick(0);
  expect_broken("addr + len wraps around 2^64");
  ring_init();
  desc(0, MEM_SIZE, 0xffffffffu, VIRTQ_DESC_F_WRITE, 0);
  kick(0);
  expect_broken("length 4 GiB - 1");
  ring_init();
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
  desc(1, DATA, 16, VIRTQ_DESC_F_NEXT, 0);
  kick(0);
  expect_broken("loop in a chain");
  ring_init();
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 0);
  kick(0);
  expect_broken("descriptor pointing at itself");
  ring_init();
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, QN);
  kick(0);
  expect_broken("next index beyond the table");
  ring_init();
  kick(QN + 3);
  expect_broken("head index beyond the table");
  ring_init();
  desc(0, HDR, 16, VIRTQ_DESC_F_INDIRECT, 0);
  kick(0);
  expect_broken("indirect descriptor (not offered)");
  ring_init();
  desc(0, HDR, 16, 0, 0);
  put16(mem + AVAIL + 2, QN + 1);
  expect_broken("avail index jumped by more than the queue size");
  /* A chain longer than 4 GiB in total, each descriptor valid. */
  ring_init();
  for (int i = 0; i < 3; i++)
    desc(i, 0, MEM_SIZE, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, i + 1);
  desc(3, 0, MEM_SIZE, VIRTQ_DESC_F_WRITE, 0);
  kick(0);
  TAP_OK(virtio_blk__drain(disk, &vq, &gm, &chain) == 1, "4 x 1 MiB chain accepted (below 4 GiB)");
  ring_init();
  virtq__reset(&vq);
  TAP_OK(virtq__pop(&vq, &gm, &chain) == 0, "after reset: nothing, not broken");
}

static void test_setup(void)
{
  struct virtq q;
  TAP_OK(virtq__setup_legacy(&q, &gm, 12, 16, 1) < 0, "queue size not a power of two refused");
  TAP_OK(virtq__setup_legacy(&q, &gm, 32, 16, 1) < 0, "queue size above the maximum refused");
  TAP_OK(virtq__setup_legacy(&q, &gm, 0, 16, 1) < 0, "queue size 0 refused");
  TAP_OK(virtq__setup_legacy(&q, &gm, 16, 16, MEM_SIZE / 4096) < 0, "ring outside memory refused");
  TAP_OK(virtq__setup_legacy(&q, &gm, 16, 16, MEM_SIZE / 4096 - 1) < 0,
         "ring whose used part falls off the end refused");
  TAP_OK(virtq__setup_legacy(&q, &gm, 16, 16, 0xffffffffu) < 0, "PFN 2^32-1 refused");
  TAP_OK(virtq__setup(&q, &gm, 16, 16, 0x1008, 0x2000, 0x3000) < 0, "misaligned descriptor table");
  TAP_OK(virtq__setup(&q, &gm, 16, 16, 0x1000, 0x2001, 0x3000) < 0, "misaligned avail ring");
  TAP_OK(virtq__setup(&q, &gm, 16, 16, 0x1000, 0x2000, 0x3002) < 0, "misaligned used ring");
  TAP_OK(virtq__setup(&q, &gm, 16, 16, 0x1000, 0x2000, 0x3000) == 0, "good split layout");
  TAP_OK(guest_mem__ptr(&gm, UINT64_MAX, 2) == NULL && guest_mem__ptr(&gm, MEM_SIZE, 1) == NULL &&
             guest_mem__ptr(&gm, 0, MEM_SIZE) == mem,
         "guest_mem__ptr bounds");
}

/* Random rings and descriptors: whatever happens, no host memory outside the
 * buffer is touched (ASan), and used->idx never runs ahead of avail. */
static uint32_t fuzz_rnd(void)
{
  static uint32_t s = 777;
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  return s;
}

static void test_fuzz(void)
{
#define R() fuzz_rnd()
  int crashes_avoided = 0, bad_used = 0;
  for (int it = 0; it < 20000; it++) {
    ring_init();
    for (int i = 0; i < QN; i++) {
      uint64_t hi = R(), addr = R() % 4 == 0 ? (hi << 32 | R()) : R() % (MEM_SIZE + 4096);
      uint32_t len = R() % 3 == 0 ? R() : R() % 8192;
      uint16_t flags = R() % 8;
      desc(i, addr, len, flags, R() % (QN + 2));
    }
    for (int i = 0; i < QN; i++)
      put16(mem + AVAIL + 4 + 2 * i, R() % (QN + 1));
    put16(mem + AVAIL + 2, R() % 4 == 0 ? R() : R() % (QN + 1));
    put32(mem + HDR, R() % 10), put64(mem + HDR + 8, R() % 4 ? R() % 200 : R());
    int r = virtio_blk__drain(R() % 2 ? disk : ro_disk, &vq, &gm, &chain);
    crashes_avoided += r < 0;
    bad_used += (uint16_t)(used_idx() - get16(mem + AVAIL + 2)) != 0 && r >= 0;
  }
  TAP_OK(true, "20000 random rings served without a host fault (%d broke their queue)",
         crashes_avoided);
  TAP_OK(bad_used == 0, "used index always caught up with avail when the queue survived");
#undef R
}

/* --- the VMM side: PCI config space and the legacy transport --------------- */

/* What the VMM would do: port I/O to the bus's two handlers, and an IRQ
 * line per GSI. */
struct test_vm {
  struct pci_bus *bus;
  int irq[64];
};

static struct pci_dev *test_dev;

/* The transport's INTx goes through the bus, which ORs shared lines. */
static void test_irq(struct virtio_pci *vp, int level)
{
  (void)vp;
  pci__set_irq(test_dev, level);
}

static void test_irq_line(void *opaque, unsigned gsi, int level)
{
  struct test_vm *vm = opaque;
  if (gsi < 64)
    vm->irq[gsi] = level;
}

#define SLOT1_GSI 10

static uint32_t io(struct test_vm *vm, uint16_t port, bool w, uint32_t v, unsigned size)
{
  uint8_t data[4] = {v, v >> 8, v >> 16, v >> 24};
  if (port >= PCI_CONF_ADDR && port + size <= PCI_CONF_ADDR + 8)
    pci_bus__conf_io(vm->bus, port, w, data, size);
  else if (port >= PCI_IO_WINDOW && port + size <= PCI_IO_WINDOW + PCI_IO_WINDOW_LEN)
    pci_bus__window_io(vm->bus, port, w, data, size);
  else
    return 0xffffffffu;
  return data[0] | data[1] << 8 | data[2] << 16 | (uint32_t)data[3] << 24;
}
#define OUTL(p, v) io(vm, p, true, v, 4)
#define OUTW(p, v) io(vm, p, true, v, 2)
#define OUTB(p, v) io(vm, p, true, v, 1)
#define INL(p) io(vm, p, false, 0, 4)
#define INW(p) (io(vm, p, false, 0, 2) & 0xffff)
#define INB(p) (io(vm, p, false, 0, 1) & 0xff)

static uint32_t cfg_read(struct test_vm *vm, unsigned slot, unsigned reg)
{
  OUTL(0xcf8, 0x80000000u | slot << 11 | reg);
  return INL(0xcfc);
}

static void cfg_write(struct test_vm *vm, unsigned slot, unsigned reg, uint32_t v)
{
  OUTL(0xcf8, 0x80000000u | slot << 11 | reg);
  OUTL(0xcfc, v);
}

static uint16_t test_pci_probe(struct test_vm *vm)
{
  OUTB(0xcfb, 1); /* Linux's type-1 probe */
  OUTL(0xcf8, 0x80000000u);
  TAP_OK(INL(0xcf8) == 0x80000000u, "0xCF8 latch reads back");
  TAP_OK(cfg_read(vm, 0, 0) == 0x12378086 && cfg_read(vm, 0, 8) >> 8 == 0x060000,
         "host bridge 8086:1237 class 0600");
  TAP_OK(cfg_read(vm, 1, 0) == 0x10011af4, "slot 1: virtio 1af4:1001");
  TAP_OK(cfg_read(vm, 1, 0x2c) == 0x00021af4, "subsystem id 2 (block)");
  TAP_OK(cfg_read(vm, 2, 0) == 0xffffffffu && cfg_read(vm, 31, 0) == 0xffffffffu,
         "empty slots read all ones");
  OUTL(0xcf8, 0x80000000u | 1 << 11 | 1 << 8);
  TAP_OK(INL(0xcfc) == 0xffffffffu, "function 1 absent");
  OUTL(0xcf8, 0x80010000u | 1 << 11);
  TAP_OK(INL(0xcfc) == 0xffffffffu, "bus 1 absent");
  uint32_t irq = cfg_read(vm, 1, 0x3c);
  TAP_OK((irq & 0xff) == SLOT1_GSI && (irq >> 8 & 0xff) == 1, "interrupt line %u, pin INTA",
         irq & 0xff);
  uint32_t bar = cfg_read(vm, 1, 0x10);
  cfg_write(vm, 1, 0x10, 0xffffffffu);
  uint32_t size = cfg_read(vm, 1, 0x10);
  TAP_OK((bar & 1) && size == 0x0000ffc1, "BAR0 is I/O, sizes to 64 bytes (%#x)", size);
  cfg_write(vm, 1, 0x10, bar);
  cfg_write(vm, 1, 0x00, 0); /* read-only */
  TAP_OK(cfg_read(vm, 1, 0x10) == bar && cfg_read(vm, 1, 0) == 0x10011af4,
         "BAR restored, ids read-only");
  unsigned slots[8];
  TAP_OK(pci_bus__slots(vm->bus, slots, 8) == 1 && slots[0] == 1, "pci slots: slot 1 only");
  TAP_OK(INL(bar & ~3u) == 0xffffffffu, "I/O decode off until the command register enables it");
  cfg_write(vm, 1, 0x04, 0x5);
  return bar & ~3u;
}

static void test_transport(struct test_vm *vm, uint16_t io_base)
{
  uint32_t feat = INL(io_base + VIRTIO_PCI_HOST_FEATURES);
  TAP_OK((feat & (1u << VIRTIO_BLK_F_FLUSH | 1u << VIRTIO_BLK_F_SEG_MAX)) &&
             !(feat & (1u << VIRTIO_BLK_F_RO | 1u << 28 | 1u << 29)),
         "features: flush, seg_max; not RO, not indirect, not event idx (%#x)", feat);
  uint64_t cap = 0;
  for (int i = 0; i < 8; i++) /* the legacy driver reads config byte by byte */
    cap |= (uint64_t)INB(io_base + VIRTIO_PCI_CONFIG + i) << (8 * i);
  TAP_OK(cap == DISK_SIZE / 512, "config capacity %llu sectors", (unsigned long long)cap);
  TAP_OK(INL(io_base + VIRTIO_PCI_CONFIG + 12) == 254, "seg_max = queue size - 2");
  OUTB(io_base + VIRTIO_PCI_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  OUTL(io_base + VIRTIO_PCI_GUEST_FEATURES, 0xffffffffu);
  TAP_OK(INL(io_base + VIRTIO_PCI_GUEST_FEATURES) == feat, "guest features masked to offered");
  OUTW(io_base + VIRTIO_PCI_QUEUE_SEL, 1);
  TAP_OK(INW(io_base + VIRTIO_PCI_QUEUE_NUM) == 0, "queue 1 does not exist");
  OUTW(io_base + VIRTIO_PCI_QUEUE_SEL, 0);
  TAP_OK(INW(io_base + VIRTIO_PCI_QUEUE_NUM) == VIRTIO_BLK_QUEUE_SIZE, "queue 0: 256 entries");
  memset(mem, 0, MEM_SIZE);
  OUTL(io_base + VIRTIO_PCI_QUEUE_PFN, RING / 4096);
  OUTB(io_base + VIRTIO_PCI_STATUS, 7);
  /* A request on the 256-entry ring the device now owns. */
  uint16_t n = VIRTIO_BLK_QUEUE_SIZE;
  uint64_t avail = RING + 16 * n, used = (avail + 6 + 2 * n + 4095) & ~4095ull;
  hdr(VIRTIO_BLK_T_IN, 0);
  desc(0, HDR, 16, VIRTQ_DESC_F_NEXT, 1);
  desc(1, DATA, 513, VIRTQ_DESC_F_WRITE, 0);
  put16(mem + avail + 4, 0), put16(mem + avail + 2, 1);
  OUTW(io_base + VIRTIO_PCI_QUEUE_NOTIFY, 0);
  TAP_OK(get16(mem + used + 2) == 1 && mem[DATA + 512] == 0, "notify serves the request");
  TAP_OK(vm->irq[SLOT1_GSI] == 1, "INTx raised on GSI %d", SLOT1_GSI);
  TAP_OK(INB(io_base + VIRTIO_PCI_ISR) == VIRTIO_ISR_QUEUE && vm->irq[SLOT1_GSI] == 0,
         "ISR reads 1 and the read lowers the line");
  TAP_OK(INB(io_base + VIRTIO_PCI_ISR) == 0, "ISR cleared by the read");
  /* NO_INTERRUPT: served, no interrupt. */
  put16(mem + avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
  put16(mem + avail + 4 + 2, 0), put16(mem + avail + 2, 2);
  OUTW(io_base + VIRTIO_PCI_QUEUE_NOTIFY, 0);
  TAP_OK(get16(mem + used + 2) == 2 && vm->irq[SLOT1_GSI] == 0, "NO_INTERRUPT honoured");
  /* Corrupt the ring: NEEDS_RESET; a reset makes the device usable again. */
  put16(mem + avail + 2, 2 + n + 5);
  OUTW(io_base + VIRTIO_PCI_QUEUE_NOTIFY, 0);
  TAP_OK(INB(io_base + VIRTIO_PCI_STATUS) & VIRTIO_STATUS_NEEDS_RESET,
         "bad avail idx: NEEDS_RESET");
  OUTB(io_base + VIRTIO_PCI_STATUS, 0);
  TAP_OK(INB(io_base + VIRTIO_PCI_STATUS) == 0 && INL(io_base + VIRTIO_PCI_QUEUE_PFN) == 0 &&
             INL(io_base + VIRTIO_PCI_GUEST_FEATURES) == 0,
         "status 0 resets status, queue and features");
  OUTL(io_base + VIRTIO_PCI_QUEUE_PFN, MEM_SIZE / 4096 + 10);
  TAP_OK(INB(io_base + VIRTIO_PCI_STATUS) & VIRTIO_STATUS_NEEDS_RESET,
         "queue PFN outside guest memory: NEEDS_RESET");
  OUTW(io_base + VIRTIO_PCI_QUEUE_NOTIFY, 0);
  OUTW(io_base + VIRTIO_PCI_QUEUE_NOTIFY, 999);
  OUTL(io_base + 60, 0x12345678);
  TAP_OK(INL(io_base + 60) == 0, "notify on a dead/absent queue, config writes: ignored");
  OUTB(io_base + VIRTIO_PCI_STATUS, 0);
}

static void dummy_io(void *opaque, uint16_t port, bool w, uint8_t *data, unsigned size)
{
  (void)opaque, (void)port, (void)w, (void)data, (void)size;
}

static void test_shared_irq(void)
{
  struct test_vm vm = {.bus = pci_bus__new()};
  pci_bus__set_irq_fn(vm.bus, test_irq_line, &vm);
  struct pci_dev *d[VMM_PCI_MAX_SLOTS + 1] = {0};
  for (unsigned i = 1; i <= VMM_PCI_MAX_SLOTS; i++)
    d[i] = pci_bus__add(vm.bus, 0x1af4, 0x1000, 1, 0x020000, 32, dummy_io, NULL, NULL);
  TAP_OK(pci_bus__add(vm.bus, 0x1af4, 0x1000, 1, 0x020000, 32, dummy_io, NULL, NULL) == NULL,
         "a ninth device is refused");
  TAP_OK(pci__gsi(d[1]) == 10 && pci__gsi(d[2]) == 11 && pci__gsi(d[3]) == 5 &&
             pci__gsi(d[4]) == 9 && pci__gsi(d[5]) == 10,
         "INTx: ISA IRQs 10, 11, 5, 9, then shared");
  pci__set_irq(d[1], 1);
  pci__set_irq(d[5], 1);
  pci__set_irq(d[1], 0);
  TAP_OK(vm.irq[10] == 1, "shared line stays up while one device asserts it");
  pci__set_irq(d[5], 0);
  TAP_OK(vm.irq[10] == 0 && vm.irq[11] == 0, "and drops when none does");
  /* INTx Disable (command bit 10) masks the device; status bit 3 still shows it. */
  cfg_write(&vm, 2, 0x04, 0x401);
  pci__set_irq(d[2], 1);
  TAP_OK(vm.irq[11] == 0 && (cfg_read(&vm, 2, 0x04) >> 16 & 0x08),
         "INTx Disable keeps the line low, Interrupt Status set");
  cfg_write(&vm, 2, 0x04, 0x001);
  TAP_OK(vm.irq[11] == 1, "clearing INTx Disable raises the pending line");
  pci__set_irq(d[2], 0);
  TAP_OK(vm.irq[11] == 0 && !(cfg_read(&vm, 2, 0x04) >> 16 & 0x08), "deassert clears both");
  pci_bus__free(vm.bus);
}

/* A blk device on a fresh bus, as virtio_blk__init would plug it. */
static struct virtio_blk *plug(struct test_vm *vm, const struct vmm_config *cfg)
{
  vmbox_error_t err = NULL;
  vm->bus = pci_bus__new();
  struct virtio_blk *blk = virtio_blk__new(cfg, &err);
  if (!blk) {
    vmbox_error_free(&err);
    return NULL;
  }
  struct virtio_pci *vp = virtio_blk__vp(blk);
  vp->mem = gm;
  vp->irq = test_irq;
  pci_bus__set_irq_fn(vm->bus, test_irq_line, vm);
  test_dev =
      pci_bus__add(vm->bus, VIRTIO_PCI_VENDOR, VIRTIO_BLK_LEGACY_DEVICE, VIRTIO_ID_BLOCK,
                   PCI_CLASS_STORAGE_SCSI, virtio_pci__bar_len(vp), virtio_pci__io, vp, &err);
  if (!test_dev)
    abort();
  return blk;
}

static void test_vmm(void)
{
  struct test_vm vm = {0}, vm2 = {0};
  vmbox_error_t err = NULL;
  struct vmm_config cfg = {
      .disk_base = base_path, .disk_overlay = ovl_path, .disk_overlay_map = map_path};
  disk__close(disk, NULL); /* the device takes the overlay's lock */
  disk = NULL;
  struct virtio_blk *blk = plug(&vm, &cfg);
  TAP_OK(blk != NULL, "virtio-blk device on a PCI bus");
  if (!blk)
    return;
  test_transport(&vm, test_pci_probe(&vm));
  TAP_OK(virtio_blk__free(blk, &err) == 0, "device freed, overlay map flushed");
  pci_bus__free(vm.bus);
  struct vmm_config ro = {.disk_base = base_path};
  blk = plug(&vm2, &ro);
  struct test_vm *vmp = &vm2;
  cfg_write(vmp, 1, 0x04, 1);
  uint16_t b = cfg_read(vmp, 1, 0x10) & ~3u;
  TAP_OK(io(vmp, b, false, 0, 4) & 1u << VIRTIO_BLK_F_RO, "read-only disk offers VIRTIO_BLK_F_RO");
  virtio_blk__free(blk, NULL);
  pci_bus__free(vm2.bus);
  struct vmm_config missing = {.disk_base = "/nonexistent/base.ext4"};
  TAP_OK(virtio_blk__new(&missing, &err) == NULL && strstr(err->msg, "/nonexistent/base.ext4"),
         "missing base: error names it (%s)", err ? err->msg : "");
  vmbox_error_free(&err);
  struct vmm_config small = {.disk_base = base_path, .disk_overlay = map_path};
  TAP_OK(virtio_blk__new(&small, &err) == NULL && strstr(err->msg, map_path),
         "overlay of the wrong size: error names it (%s)", err ? err->msg : "");
  vmbox_error_free(&err);
}

int main(void)
{
  mem = aligned_alloc(4096, MEM_SIZE);
  gm = (struct guest_mem){.host = mem, .size = MEM_SIZE};
  if (!mkdtemp(dir))
    return 1;
  base_path = util__fmt("%s/base.ext4", dir);
  ovl_path = util__fmt("%s/ovl", dir);
  map_path = util__fmt("%s/ovl.map", dir);
  uint8_t *b = xmalloc(DISK_SIZE);
  for (int i = 0; i < DISK_SIZE; i++)
    b[i] = i / 512 + i;
  util__write_file_atomic(base_path, b, DISK_SIZE, 0444, NULL);
  free(b);
  if (disk__open(&disk, base_path, ovl_path, map_path, false, NULL) < 0 ||
      disk__open(&ro_disk, base_path, NULL, NULL, false, NULL) < 0)
    return 1;
  test_setup();
  test_good();
  test_chains();
  test_bad_requests();
  test_bad_rings();
  test_fuzz();
  test_vmm();
  test_shared_irq();
  disk__close(disk, NULL);
  disk__close(ro_disk, NULL);
  util__rm_rf(dir, NULL);
  free(base_path), free(ovl_path), free(map_path);
  free(mem);
  return tap__done();
}
