/* The port-I/O and MMIO buses, and the legacy stubs a Linux guest probes.
 *
 * The in-kernel irqchip and PIT already serve the PICs (0x20, 0xa0, 0x4d0),
 * the PIT (0x40-0x43) and port 0x61.  What is left here:
 *   0x70/0x71  CMOS/RTC: the host's UTC time, update-in-progress always
 *              clear (else Linux spins up to a second per read)
 *   0x60/0x64  no i8042: reads 0xff so Linux gives up at once; 0xfe
 *              written to 0x64 (keyboard-controller reset) resets the VM
 *   0x80/0xed  POST/delay ports: accepted and ignored
 *   0x501      the vmbox exit port: a byte written powers the VM off
 * Any other port reads as all ones and ignores writes, as an empty ISA
 * bus does; unclaimed MMIO reads as zero. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../lib/util.h"
#include "core.h"

#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define CMOS_SIZE 128
#define I8042_DATA 0x60
#define I8042_CMD 0x64
#define I8042_RESET 0xfe

struct ioport_legacy {
  pthread_mutex_t lock;
  uint8_t cmos_index;
  uint8_t cmos[CMOS_SIZE];
};

/* --- buses --------------------------------------------------------------------------- */

/* Registration closes when the vCPUs start, so the exit path reads the
 * ranges without a lock. */
static int bus__add(struct vmm *vm, struct core_bus *bus, uint64_t base, uint64_t len,
                    vmm_pio_fn pio, vmm_mmio_fn mmio, void *opaque)
{
  uint64_t end;
  if (vm->frozen || len == 0 || __builtin_add_overflow(base, len, &end) || bus->n >= CORE_BUS_MAX)
    return -1;
  for (unsigned i = 0; i < bus->n; i++)
    if (base < bus->r[i].base + bus->r[i].len && bus->r[i].base < end)
      return -1; /* overlapping claims: the second device would never see its accesses */
  bus->r[bus->n++] = (struct core_bus_range){base, len, pio, mmio, opaque};
  return 0;
}

int vmm__register_pio(struct vmm *vm, uint16_t base, uint16_t len, vmm_pio_fn fn, void *opaque)
{
  if ((uint32_t)base + len > 0x10000 || !fn)
    return -1;
  return bus__add(vm, &vm->pio, base, len, fn, NULL, opaque);
}

int vmm__register_mmio(struct vmm *vm, uint64_t base, uint64_t len, vmm_mmio_fn fn, void *opaque)
{
  if (!fn)
    return -1;
  return bus__add(vm, &vm->mmio, base, len, NULL, fn, opaque);
}

static const struct core_bus_range *bus__find(const struct core_bus *bus, uint64_t addr)
{
  for (unsigned i = 0; i < bus->n; i++)
    if (addr >= bus->r[i].base && addr - bus->r[i].base < bus->r[i].len)
      return &bus->r[i];
  return NULL;
}

void ioport__pio(struct vmm *vm, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  const struct core_bus_range *r = bus__find(&vm->pio, port);
  if (r)
    r->pio_fn(r->opaque, port, is_write, data, size);
  else if (!is_write)
    memset(data, 0xff, size);
}

void ioport__mmio(struct vmm *vm, uint64_t addr, bool is_write, uint8_t *data, unsigned size)
{
  const struct core_bus_range *r = bus__find(&vm->mmio, addr);
  if (r)
    r->mmio_fn(r->opaque, addr, is_write, data, size);
  else if (!is_write)
    memset(data, 0, size);
}

/* --- CMOS / RTC ------------------------------------------------------------------------ */

static uint8_t cmos__bcd(int v)
{
  return (uint8_t)(((v / 10) % 10) << 4 | (v % 10));
}

/* Time registers come from the host clock at each read; the rest is a
 * plain 128-byte NVRAM the guest may write. */
static uint8_t cmos__read(struct ioport_legacy *l, uint8_t idx)
{
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  switch (idx) {
  case 0x00: return cmos__bcd(tm.tm_sec);
  case 0x02: return cmos__bcd(tm.tm_min);
  case 0x04: return cmos__bcd(tm.tm_hour);
  case 0x06: return cmos__bcd(tm.tm_wday + 1);
  case 0x07: return cmos__bcd(tm.tm_mday);
  case 0x08: return cmos__bcd(tm.tm_mon + 1);
  case 0x09: return cmos__bcd(tm.tm_year % 100);
  case 0x32: return cmos__bcd(19 + tm.tm_year / 100);
  case 0x0a: return 0x26;                 /* 32.768 kHz, 1024 Hz; UIP (bit 7) clear */
  case 0x0b: return l->cmos[0x0b] | 0x02; /* 24-hour, BCD */
  case 0x0c: return 0;                    /* no interrupt flags */
  case 0x0d: return 0x80;                 /* battery good, time valid */
  default: return l->cmos[idx];
  }
}

static void cmos__io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct ioport_legacy *l = opaque;
  pthread_mutex_lock(&l->lock);
  if (port == CMOS_INDEX) {
    if (is_write)
      l->cmos_index = data[0] & 0x7f; /* bit 7 is the NMI mask */
    else
      memset(data, 0xff, size);
  } else if (is_write) {
    /* Binary mode (bit 2 of B) is refused: we only speak BCD. */
    l->cmos[l->cmos_index] = l->cmos_index == 0x0b ? (data[0] & ~0x04) : data[0];
  } else {
    memset(data, cmos__read(l, l->cmos_index), size);
  }
  pthread_mutex_unlock(&l->lock);
}

/* --- the rest ----------------------------------------------------------------------------- */

static void i8042__io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct vmm *vm = opaque;
  if (!is_write)
    memset(data, 0xff, size);
  else if (port == I8042_CMD && data[0] == I8042_RESET)
    vm__finish(vm, VMM_EXIT_RESET, 0, "guest reset through the keyboard controller");
}

static void ignore__io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  (void)opaque, (void)port;
  if (!is_write)
    memset(data, 0xff, size);
}

static void exit__io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct vmm *vm = opaque;
  (void)port, (void)size;
  if (is_write)
    vm__finish(vm, VMM_EXIT_POWEROFF, data[0], "guest wrote %u to the exit port", data[0]);
  else
    memset(data, 0xff, size);
}

int ioport__setup(struct vmm *vm, vmbox_error_t *err)
{
  struct ioport_legacy *l = xcalloc(1, sizeof *l);
  pthread_mutex_init(&l->lock, NULL);
  vm->legacy = l;
  if (vmm__register_pio(vm, CMOS_INDEX, 2, cmos__io, l) < 0 ||
      vmm__register_pio(vm, I8042_DATA, 1, i8042__io, vm) < 0 ||
      vmm__register_pio(vm, I8042_CMD, 1, i8042__io, vm) < 0 ||
      vmm__register_pio(vm, 0x80, 1, ignore__io, NULL) < 0 ||
      vmm__register_pio(vm, 0xed, 1, ignore__io, NULL) < 0 ||
      vmm__register_pio(vm, VMM_EXIT_PORT, 1, exit__io, vm) < 0)
    return vmbox_error_set(err, 0, "cannot register the legacy I/O ports");
  return 0;
}

void ioport__teardown(struct vmm *vm)
{
  if (!vm->legacy)
    return;
  pthread_mutex_destroy(&vm->legacy->lock);
  free(vm->legacy);
  vm->legacy = NULL;
}
