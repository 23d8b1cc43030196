/* 8250/16550A UARTs: COM1 (0x3f8, IRQ 4) carries the kernel console to
 * cfg->console_fd; COM2 (0x2f8, IRQ 3) is the byte channel to vmbox-init:
 * guest writes go to cfg->chan_guest_out, host bytes queue with
 * vmm__com2_inject.
 *
 * Transmission is instant: THR is always empty (LSR THRE|TEMT), and a
 * write raises the THRE interrupt again at once.  Interrupts are edges on
 * ISA lines: each new cause pulses the line (raise, then lower).
 *
 * Linux clears the FIFOs and reads RBR blindly when it opens a port; bytes
 * the host queued before the guest opened ttyS1 would be eaten.  So after
 * a receive-FIFO clear the queue is held (hidden, not dropped) until the
 * driver enables the receive interrupt. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../lib/util.h"
#include "core.h"

#define SERIAL_RX_CAP 65536
#define SERIAL_FIFO_WAIT_MS 50

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };
#define IER_RDI 0x01
#define IER_THRI 0x02
#define IER_MASK 0x0f
#define IIR_NO_INT 0x01
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_FIFO_ON 0xc0
#define FCR_FIFO_ON 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB 0x80
#define MCR_LOOP 0x10
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_DCD 0x80

struct serial {
  struct vmm *vm;
  uint16_t base;
  unsigned irq;
  bool is_com2;
  pthread_mutex_t lock;
  pthread_cond_t rx_space;
  uint8_t ier, lcr, mcr, scr, fcr, dll, dlm;
  bool thre_pending; /* THRE interrupt not yet acknowledged */
  bool irq_pending;  /* some cause was pending at the last update */
  bool rx_hold;      /* see the top of the file */
  uint8_t rx[SERIAL_RX_CAP];
  size_t rx_head, rx_len;
};

/* --- interrupt state ------------------------------------------------------------------ */

static bool serial__rx_ready(const struct serial *s)
{
  return s->rx_len > 0 && !s->rx_hold;
}

static uint8_t serial__iir_id(const struct serial *s)
{
  if ((s->ier & IER_RDI) && serial__rx_ready(s))
    return IIR_RDI;
  if ((s->ier & IER_THRI) && s->thre_pending)
    return IIR_THRI;
  return IIR_NO_INT;
}

/* `event`: a new cause arose (bytes arrived, THR emptied, a source was
 * enabled); it gets its own edge even when another cause is pending. */
static void serial__update_irq(struct serial *s, bool event)
{
  bool pending = serial__iir_id(s) != IIR_NO_INT;
  if (pending && (event || !s->irq_pending)) {
    vmm__irq_line(s->vm, s->irq, 1);
    vmm__irq_line(s->vm, s->irq, 0);
  }
  s->irq_pending = pending;
}

/* --- registers ---------------------------------------------------------------------------- */

static uint8_t serial__rx_pop(struct serial *s)
{
  if (!serial__rx_ready(s))
    return 0;
  uint8_t b = s->rx[s->rx_head];
  s->rx_head = (s->rx_head + 1) % SERIAL_RX_CAP;
  s->rx_len--;
  pthread_cond_broadcast(&s->rx_space);
  return b;
}

static uint8_t serial__msr(const struct serial *s)
{
  if (!(s->mcr & MCR_LOOP))
    return MSR_DCD | MSR_DSR | MSR_CTS; /* a cable with the other end up */
  /* Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD (Linux's UART probe). */
  uint8_t m = s->mcr;
  return (uint8_t)(((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4));
}

static uint8_t serial__read(struct serial *s, unsigned reg)
{
  bool dlab = s->lcr & LCR_DLAB;
  switch (reg) {
  case RBR_THR: return dlab ? s->dll : serial__rx_pop(s);
  case IER: return dlab ? s->dlm : s->ier;
  case IIR_FCR: {
    uint8_t id = serial__iir_id(s);
    if (id == IIR_THRI)
      s->thre_pending = false; /* reading IIR acknowledges THRE */
    return (uint8_t)(id | ((s->fcr & FCR_FIFO_ON) ? IIR_FIFO_ON : 0));
  }
  case LCR: return s->lcr;
  case MCR: return s->mcr;
  case LSR: return LSR_THRE | LSR_TEMT | (serial__rx_ready(s) ? LSR_DR : 0);
  case MSR: return serial__msr(s);
  default: return s->scr;
  }
}

/* Returns true when `*out` holds a byte to transmit (sent after the lock
 * is dropped: the COM2 callback may well call vmm__com2_inject). */
static bool serial__write(struct serial *s, unsigned reg, uint8_t v, uint8_t *out, bool *event)
{
  bool dlab = s->lcr & LCR_DLAB;
  switch (reg) {
  case RBR_THR:
    if (dlab) {
      s->dll = v;
      return false;
    }
    *out = v;
    s->thre_pending = true;
    *event = true;
    return !(s->mcr & MCR_LOOP);
  case IER:
    if (dlab) {
      s->dlm = v;
      return false;
    }
    v &= IER_MASK; /* a sticky bit 6 would make Linux think this is an XScale */
    if ((v & IER_THRI) && !(s->ier & IER_THRI))
      s->thre_pending = true, *event = true;
    if (v & IER_RDI) {
      if (s->rx_hold && s->rx_len)
        *event = true;
      s->rx_hold = false;
    }
    s->ier = v;
    return false;
  case IIR_FCR:
    if (v & FCR_CLEAR_RX)
      s->rx_hold = true;
    s->fcr = v & 0xc9;
    return false;
  case LCR: s->lcr = v; return false;
  case MCR: s->mcr = v & 0x1f; return false;
  case SCR: s->scr = v; return false;
  default: return false; /* LSR, MSR: read-only */
  }
}

static void serial__emit(struct serial *s, uint8_t b)
{
  const struct vmm_config *cfg = s->vm->cfg;
  if (s->is_com2) {
    if (cfg->chan_guest_out)
      cfg->chan_guest_out(cfg->chan_opaque, &b, 1);
    return;
  }
  if (cfg->console_fd < 0)
    return;
  for (int tries = 0; tries < 100; tries++) {
    ssize_t r = write(cfg->console_fd, &b, 1);
    if (r == 1 || (r < 0 && errno != EINTR))
      return; /* a console that fails loses output, never the VM */
  }
}

static void serial__io(void *opaque, uint16_t port, bool is_write, uint8_t *data, unsigned size)
{
  struct serial *s = opaque;
  unsigned reg = (unsigned)(port - s->base) & 7;
  uint8_t out = 0;
  bool send = false, event = false;
  pthread_mutex_lock(&s->lock);
  if (is_write) {
    send = serial__write(s, reg, data[0], &out, &event);
  } else {
    memset(data, 0, size);
    data[0] = serial__read(s, reg);
  }
  serial__update_irq(s, event);
  pthread_mutex_unlock(&s->lock);
  if (send)
    serial__emit(s, out);
}

/* --- host side ------------------------------------------------------------------------------- */

static void serial__wait_space(struct serial *s)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += SERIAL_FIFO_WAIT_MS * 1000000L;
  if (ts.tv_nsec >= 1000000000L)
    ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  pthread_cond_timedwait(&s->rx_space, &s->lock, &ts);
}

void vmm__com2_inject(struct vmm *vm, const uint8_t *buf, size_t n)
{
  struct serial *s = vm->com2;
  if (!s)
    return;
  pthread_mutex_lock(&s->lock);
  while (n > 0 && !atomic_load(&vm->stopping)) {
    size_t space = SERIAL_RX_CAP - s->rx_len;
    if (space == 0) {
      if (vcpu__on_vcpu_thread())
        break; /* only a vCPU could drain it: waiting would deadlock */
      serial__wait_space(s);
      continue;
    }
    size_t chunk = n < space ? n : space;
    for (size_t i = 0; i < chunk; i++)
      s->rx[(s->rx_head + s->rx_len + i) % SERIAL_RX_CAP] = buf[i];
    s->rx_len += chunk;
    buf += chunk;
    n -= chunk;
    serial__update_irq(s, true);
  }
  pthread_mutex_unlock(&s->lock);
}

static struct serial *serial__new(struct vmm *vm, uint16_t base, unsigned irq, bool is_com2,
                                  vmbox_error_t *err)
{
  struct serial *s = xcalloc(1, sizeof *s);
  s->vm = vm;
  s->base = base;
  s->irq = irq;
  s->is_com2 = is_com2;
  s->rx_hold = true;
  s->thre_pending = false;
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->rx_space, NULL);
  if (vmm__register_pio(vm, base, 8, serial__io, s) < 0)
    vmbox_error_set(err, 0, "cannot register the UART at 0x%x", base);
  return s;
}

int serial__setup(struct vmm *vm, vmbox_error_t *err)
{
  vmbox_error_t e = NULL;
  vm->com1 = serial__new(vm, VMM_COM1_PORT, 4, false, &e);
  vm->com2 = serial__new(vm, VMM_COM2_PORT, 3, true, &e);
  if (e) {
    if (err && !*err)
      *err = e;
    else
      vmbox_error_free(&e);
    return -1;
  }
  return 0;
}

static void serial__free(struct serial *s)
{
  if (!s)
    return;
  pthread_cond_destroy(&s->rx_space);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

void serial__teardown(struct vmm *vm)
{
  serial__free(vm->com1);
  serial__free(vm->com2);
  vm->com1 = vm->com2 = NULL;
}
