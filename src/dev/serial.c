/* A 16550A UART: the eight registers at base+0..7, a 16-byte receive FIFO,
 * loopback, modem status, and an interrupt line that follows "an enabled
 * interrupt is pending", gated by MCR.OUT2 as on PC boards.
 *
 * Transmission is instantaneous: a byte written to THR goes straight to the
 * host's output buffer (or, in loopback, to the receiver), so THR and the
 * transmitter are always empty (LSR.THRE and LSR.TEMT stay set) and the
 * "THR empty" interrupt is pending again right after each write. The
 * divisor latch and the line settings are stored and read back, and change
 * nothing: there is no baud rate to honour.
 *
 * Host side: output is buffered and written at a newline, when the buffer
 * fills, when a run ends, and every SERIAL_TICK_MS while a run goes on (a
 * prompt without a newline still shows). Input comes from a thread that
 * reads the input fd while a run is in progress and feeds the receive FIFO;
 * when the FIFO is full it waits for the guest to read instead of dropping
 * bytes. The same thread does the periodic flush. It is started by the
 * device's start hook and stopped by its flush hook: an eventfd wakes it
 * out of poll, and it is joined.
 *
 * Escape (on by default): Ctrl-A x ends the run with reason "quit",
 * Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A followed by anything else sends
 * both bytes.
 *
 * Everything here runs without the control-plane lock; the device lock
 * guards the registers, the FIFO and the output buffer. The lock order is
 * device lock, then the shared interrupt line's lock. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dev.h"
#include "dev_thread.h"
#include "output.h"
#include "../err.h"
#include "../term.h"
#include "../vcpu.h"
#include "../vm.h"

#define SERIAL_FIFO 16
#define SERIAL_OUT_BUF 4096
#define SERIAL_IN_CHUNK 256
#define SERIAL_TICK_MS 30

/* Register offsets from the base. */
enum {
  REG_RBR_THR = 0, /* DLL when LCR.DLAB */
  REG_IER = 1,     /* DLM when LCR.DLAB */
  REG_IIR_FCR = 2,
  REG_LCR = 3,
  REG_MCR = 4,
  REG_LSR = 5,
  REG_MSR = 6,
  REG_SCR = 7,
};

#define IER_RDI 0x01  /* received data available */
#define IER_THRI 0x02 /* THR empty */
#define IER_RLSI 0x04 /* receiver line status */
#define IER_MSI 0x08  /* modem status */

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_CTI 0x0c  /* character timeout */
#define IIR_FIFO 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_DMA 0x08
#define FCR_TRIGGER 0xc0

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

/* An interrupt line and the UARTs on it (COM1 and COM3 share IRQ 4): the
 * line is up while any of them asserts it, as a wired OR. */
struct serial_line {
  pthread_mutex_t lock;
  struct vm *vm;
  uint32_t irq;
  int asserted;
  int refs;
};

struct serial {
  struct device dev;
  pthread_mutex_t lock;
  struct vm *vm;
  uint16_t port;
  uint32_t irq;
  struct serial_line *line;
  bool irq_up;        /* this UART asserts its line */

  /* Registers. */
  uint8_t ier, lcr, mcr, scr, dll, dlm;
  uint8_t fcr;        /* FCR_ENABLE, FCR_DMA and the trigger bits as written */
  uint8_t msr_delta;  /* MSR bits 0-3, until MSR is read */
  bool overrun;       /* LSR.OE, until LSR is read */
  bool thr_ipending;  /* the "THR empty" interrupt is pending */
  uint8_t rbr;        /* the last byte received, what an empty FIFO reads */
  uint8_t rx[SERIAL_FIFO];
  unsigned rx_head, rx_count;

  /* Output: output.fd < 0 for none. */
  struct output output;
  size_t out_used;
  uint8_t out[SERIAL_OUT_BUF];

  /* Input: fd < 0 for none. in_eof, esc and the pending chunk belong to
   * the input thread (one at a time; a run's thread is joined before the
   * next starts). in_waiting is under the lock. */
  int in_fd;
  bool in_stdin;
  bool escape;
  bool in_eof;
  struct term_escape esc;
  bool in_waiting;    /* the thread waits for room in the FIFO */
  size_t pend_off, pend_len;
  uint8_t pend[SERIAL_IN_CHUNK];

  /* The thread, started and stopped by the control thread only. */
  pthread_t thread;
  bool thread_running;
  bool stopping;      /* under the lock */
  int wake_fd;
  bool took_term;
  bool hinted;
};

/* ---- the interrupt line ---- */

static void line_assert(struct serial_line *l, bool up)
{
  pthread_mutex_lock(&l->lock);
  int before = l->asserted;
  l->asserted += up ? 1 : -1;
  if ((before > 0) != (l->asserted > 0))
    vm_irq_line(l->vm, l->irq, l->asserted > 0);
  pthread_mutex_unlock(&l->lock);
}

static bool fifo_on(const struct serial *s)
{
  return s->fcr & FCR_ENABLE;
}

static unsigned rx_capacity(const struct serial *s)
{
  return fifo_on(s) ? SERIAL_FIFO : 1;
}

static unsigned rx_trigger(const struct serial *s)
{
  static const unsigned levels[4] = { 1, 4, 8, 14 };
  return levels[s->fcr >> 6];
}

/* IIR: the highest-priority enabled interrupt that is pending. With FIFOs
 * on, data below the trigger level is reported as a character timeout at
 * once: input arrives in bursts, and the burst is over by the time the
 * guest looks, so the four character times have passed. */
static uint8_t iir_value(const struct serial *s)
{
  uint8_t fifo = fifo_on(s) ? IIR_FIFO : 0;
  if ((s->ier & IER_RLSI) && s->overrun)
    return fifo | IIR_RLSI;
  if ((s->ier & IER_RDI) && s->rx_count > 0)
    return fifo | (fifo_on(s) && s->rx_count < rx_trigger(s) ? IIR_CTI : IIR_RDI);
  if ((s->ier & IER_THRI) && s->thr_ipending)
    return fifo | IIR_THRI;
  if ((s->ier & IER_MSI) && (s->msr_delta & 0x0f))
    return fifo | IIR_MSI;
  return fifo | IIR_NO_INT;
}

/* The UART's interrupt output reaches the line only through the OUT2 gate
 * of PC boards. In loopback the 16550 forces its OUT pins inactive, which
 * closes that gate: no interrupt reaches the PIC in loopback, as on a PC. */
static void update_irq_locked(struct serial *s)
{
  bool up = !(iir_value(s) & IIR_NO_INT) && (s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP);
  if (up == s->irq_up)
    return;
  s->irq_up = up;
  line_assert(s->line, up);
}

/* ---- output ---- */

/* With the lock held. A failed write drops the output: the guest must not
 * stop because the host's terminal went away. */
static void flush_locked(struct serial *s)
{
  if (s->out_used > 0)
    output_write(&s->output, s->vm, s->out, s->out_used);
  s->out_used = 0;
}

static void output_byte(struct serial *s, uint8_t b)
{
  if (s->output.fd < 0)
    return;
  s->out[s->out_used++] = b;
  if (s->out_used == sizeof s->out || b == '\n')
    flush_locked(s);
}

/* ---- the receiver ---- */

static void wake_thread(struct serial *s)
{
  uint64_t one = 1;
  ssize_t n = write(s->wake_fd, &one, sizeof one);
  (void)n; /* the counter cannot overflow: the thread drains it */
}

static void rx_clear(struct serial *s)
{
  s->rx_head = 0;
  s->rx_count = 0;
  if (s->in_waiting) {
    s->in_waiting = false;
    wake_thread(s);
  }
}

/* A byte arrives at the receiver. In a full FIFO the byte in the shift
 * register is lost; without FIFOs it overwrites the unread one in RBR.
 * Either way LSR.OE reports it. */
static void rx_push(struct serial *s, uint8_t b)
{
  if (s->rx_count >= rx_capacity(s)) {
    s->overrun = true;
    if (!fifo_on(s))
      s->rx[s->rx_head] = b;
    return;
  }
  s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO] = b;
  s->rx_count++;
}

static uint8_t rx_pop(struct serial *s)
{
  if (s->rx_count == 0)
    return s->rbr;
  s->rbr = s->rx[s->rx_head];
  s->rx_head = (s->rx_head + 1) % SERIAL_FIFO;
  s->rx_count--;
  if (s->in_waiting) {
    s->in_waiting = false;
    wake_thread(s);
  }
  return s->rbr;
}

/* ---- modem lines ---- */

/* MSR's upper half: in loopback the outputs drive the inputs (RTS->CTS,
 * DTR->DSR, OUT1->RI, OUT2->DCD); otherwise a cable with a live terminal
 * on it: carrier, DSR and CTS present, no ring. */
static uint8_t modem_lines(const struct serial *s)
{
  if (!(s->mcr & MCR_LOOP))
    return MSR_DCD | MSR_DSR | MSR_CTS;
  uint8_t m = s->mcr, v = 0;
  if (m & MCR_RTS)
    v |= MSR_CTS;
  if (m & MCR_DTR)
    v |= MSR_DSR;
  if (m & MCR_OUT1)
    v |= MSR_RI;
  if (m & MCR_OUT2)
    v |= MSR_DCD;
  return v;
}

static void write_mcr(struct serial *s, uint8_t v)
{
  uint8_t before = modem_lines(s);
  s->mcr = v & 0x1f;
  uint8_t after = modem_lines(s);
  uint8_t changed = before ^ after;
  if (changed & MSR_CTS)
    s->msr_delta |= MSR_DCTS;
  if (changed & MSR_DSR)
    s->msr_delta |= MSR_DDSR;
  if (changed & MSR_DCD)
    s->msr_delta |= MSR_DDCD;
  if ((before & MSR_RI) && !(after & MSR_RI)) /* trailing edge only */
    s->msr_delta |= MSR_TERI;
}

/* FCR: bit 0 must be set for the other bits to take; turning the FIFOs on
 * or off empties them. */
static void write_fcr(struct serial *s, uint8_t v)
{
  if (!(v & FCR_ENABLE)) {
    if (fifo_on(s))
      rx_clear(s);
    s->fcr = 0;
    return;
  }
  if (!fifo_on(s) || (v & FCR_CLEAR_RX))
    rx_clear(s);
  /* FCR_CLEAR_TX: the transmitter is always empty already. */
  s->fcr = v & (FCR_ENABLE | FCR_DMA | FCR_TRIGGER);
}

/* ---- registers ---- */

static uint8_t read_reg(struct serial *s, unsigned reg)
{
  bool dlab = s->lcr & LCR_DLAB;
  switch (reg) {
  case REG_RBR_THR:
    return dlab ? s->dll : rx_pop(s);
  case REG_IER:
    return dlab ? s->dlm : s->ier;
  case REG_IIR_FCR: {
    uint8_t iir = iir_value(s);
    /* Reading IIR acknowledges "THR empty" when that is what it says. */
    if ((iir & 0x0f) == IIR_THRI)
      s->thr_ipending = false;
    return iir;
  }
  case REG_LCR:
    return s->lcr;
  case REG_MCR:
    return s->mcr;
  case REG_LSR: {
    uint8_t lsr = LSR_THRE | LSR_TEMT;
    if (s->rx_count > 0)
      lsr |= LSR_DR;
    if (s->overrun)
      lsr |= LSR_OE;
    s->overrun = false;
    return lsr;
  }
  case REG_MSR: {
    uint8_t msr = modem_lines(s) | s->msr_delta;
    s->msr_delta = 0;
    return msr;
  }
  default:
    return s->scr;
  }
}

static void write_reg(struct serial *s, unsigned reg, uint8_t v)
{
  bool dlab = s->lcr & LCR_DLAB;
  switch (reg) {
  case REG_RBR_THR:
    if (dlab) {
      s->dll = v;
      break;
    }
    if (s->mcr & MCR_LOOP)
      rx_push(s, v);
    else
      output_byte(s, v);
    /* Sent at once: THR is empty again. */
    s->thr_ipending = true;
    break;
  case REG_IER:
    if (dlab) {
      s->dlm = v;
      break;
    }
    /* Enabling "THR empty" while THR is empty raises it at once; Linux's
     * 8250 driver checks for exactly that at start-up. */
    if (!(s->ier & IER_THRI) && (v & IER_THRI))
      s->thr_ipending = true;
    s->ier = v & 0x0f;
    break;
  case REG_IIR_FCR:
    write_fcr(s, v);
    break;
  case REG_LCR:
    s->lcr = v;
    break;
  case REG_MCR:
    write_mcr(s, v);
    break;
  case REG_SCR:
    s->scr = v;
    break;
  default: /* LSR and MSR are read-only */
    break;
  }
}

/* Each byte of a wider access is one register, as an ISA bus splits a
 * 16- or 32-bit access to an 8-bit device into consecutive byte accesses. */
static int serial_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                         uint32_t size, bool write)
{
  struct serial *s = opaque;
  (void)c;
  pthread_mutex_lock(&s->lock);
  for (uint32_t i = 0; i < size; i++) {
    if (offset > REG_SCR || i > REG_SCR - offset) { /* past the end: not ours */
      if (!write)
        data[i] = 0xff;
      continue;
    }
    unsigned reg = (unsigned)(offset + i);
    if (write)
      write_reg(s, reg, data[i]);
    else
      data[i] = read_reg(s, reg);
  }
  update_irq_locked(s);
  pthread_mutex_unlock(&s->lock);
  return 0;
}

/* ---- the input and flush thread ---- */

/* Turns what was read into bytes for the guest, applying the escape. */
static void take_input(struct serial *s, const uint8_t *raw, size_t n)
{
  bool quit = false;
  if (s->escape)
    n = term_escape_filter(&s->esc, raw, n, s->pend, &quit);
  else
    memcpy(s->pend, raw, n);
  /* Whatever was typed after Ctrl-A x was not meant for this run. */
  if (quit)
    vm_request_stop(s->vm, VCPU_QUIT, 0);
  s->pend_off = 0;
  s->pend_len = n;
}

/* Reads what the input fd has, at most half a chunk: an escape can double
 * a byte. The end of the input (or an error) ends input for good. */
static void read_input(struct serial *s)
{
  uint8_t raw[SERIAL_IN_CHUNK / 2];
  size_t want = sizeof raw;
  int avail = 0;
  /* Only what is there, so the read cannot block even if someone else
   * drained the fd between poll and read. */
  if (ioctl(s->in_fd, FIONREAD, &avail) == 0 && avail > 0 && (size_t)avail < want)
    want = (size_t)avail;
  ssize_t n = read(s->in_fd, raw, want);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (n <= 0) {
    s->in_eof = true;
    return;
  }
  take_input(s, raw, (size_t)n);
}

/* Moves pending input into the FIFO while it has room. */
static void feed_locked(struct serial *s)
{
  unsigned cap = rx_capacity(s);
  while (s->pend_off < s->pend_len && s->rx_count < cap)
    rx_push(s, s->pend[s->pend_off++]);
  if (s->pend_off == s->pend_len)
    s->pend_off = s->pend_len = 0;
}

static void *serial_thread(void *arg)
{
  struct serial *s = arg;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
      pthread_mutex_unlock(&s->lock);
      break;
    }
    if (s->out_used > 0)
      flush_locked(s);
    feed_locked(s);
    s->in_waiting = s->pend_len > 0;
    bool want_input = s->in_fd >= 0 && !s->in_eof && s->pend_len == 0;
    update_irq_locked(s);
    pthread_mutex_unlock(&s->lock);

    struct pollfd p[2] = { { .fd = s->wake_fd, .events = POLLIN },
                           { .fd = s->in_fd, .events = POLLIN } };
    int n = poll(p, want_input ? 2 : 1, s->output.fd >= 0 ? SERIAL_TICK_MS : -1);
    if (n < 0) {
      if (errno != EINTR)
        usleep(SERIAL_TICK_MS * 1000); /* ENOMEM: try again later, without spinning */
      continue;
    }
    if (p[0].revents & POLLIN) {
      uint64_t count;
      ssize_t r = read(s->wake_fd, &count, sizeof count);
      (void)r;
    }
    if (want_input && (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
      if (p[1].revents & POLLNVAL)
        s->in_eof = true;
      else
        read_input(s);
    }
  }
  return NULL;
}

/* The start hook: the thread, and the terminal in raw mode when the input
 * is stdin on a terminal. */
static void serial_start(struct device *dev)
{
  struct serial *s = (struct serial *)dev;
  if (s->thread_running || (s->in_fd < 0 && s->output.fd < 0))
    return;
  if (s->in_stdin && s->in_fd >= 0)
    s->took_term = term_console_begin(s->in_fd, s->escape, &s->hinted);
  s->stopping = false;
  if (dev_thread_start(&s->thread, 0, serial_thread, s) == 0) {
    s->thread_running = true;
    return;
  }
  /* No thread: output is still written at newlines and at the end of the
   * run, but nobody reads input, so the terminal stays as it was. */
  if (s->took_term) {
    term_restore();
    s->took_term = false;
  }
}

/* The flush hook: the thread stopped and joined, output written, the
 * terminal back as it was. */
static void serial_flush(struct device *dev)
{
  struct serial *s = (struct serial *)dev;
  if (s->thread_running) {
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_mutex_unlock(&s->lock);
    /* The flag alone would wait for the thread's next tick (or forever,
     * with no output to flush); the eventfd ends its poll now. */
    wake_thread(s);
    pthread_join(s->thread, NULL);
    s->thread_running = false;
  }
  pthread_mutex_lock(&s->lock);
  s->in_waiting = false;
  if (s->out_used > 0)
    flush_locked(s);
  pthread_mutex_unlock(&s->lock);
  if (s->took_term) {
    term_restore();
    s->took_term = false;
  }
}

static void serial_destroy(struct device *dev)
{
  struct serial *s = (struct serial *)dev;
  serial_flush(dev);
  term_release_stdin(s);
  if (s->line != NULL && --s->line->refs == 0) {
    pthread_mutex_destroy(&s->line->lock);
    free(s->line);
  }
  if (s->output.fd > STDERR_FILENO)
    close(s->output.fd);
  if (s->in_fd > STDERR_FILENO)
    close(s->in_fd);
  if (s->wake_fd >= 0)
    close(s->wake_fd);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

/* The line object of another UART of this VM on the same interrupt, if
 * any. Called while the VM is stopped, under the control-plane lock. */
static struct serial_line *shared_line(struct vm *vm, uint32_t irq)
{
  for (struct device *d = vm->devices; d != NULL; d = d->next) {
    if (d->destroy != serial_destroy)
      continue;
    struct serial *other = (struct serial *)d;
    if (other->irq == irq)
      return other->line;
  }
  return NULL;
}

int serial_attach(struct vm *vm, const struct serial_config *cfg, char *err)
{
  struct serial *s = calloc(1, sizeof *s);
  if (s == NULL) {
    if (cfg->out_fd > STDERR_FILENO)
      close(cfg->out_fd);
    if (cfg->in_fd > STDERR_FILENO)
      close(cfg->in_fd);
    return errf(err, "out of memory");
  }
  pthread_mutex_init(&s->lock, NULL);
  s->dev.name = "serial";
  s->dev.start = serial_start;
  s->dev.flush = serial_flush;
  s->dev.destroy = serial_destroy;
  s->vm = vm;
  s->port = cfg->port;
  s->irq = cfg->irq;
  s->output = output_of(cfg->out_fd);
  s->in_fd = cfg->in_fd;
  s->in_stdin = cfg->in_fd == STDIN_FILENO;
  s->escape = cfg->escape;
  s->dll = 12; /* 9600 baud from the 1.8432 MHz clock, for a guest that reads it first */
  s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->wake_fd < 0) {
    errf(err, "eventfd: %s", strerror(errno));
    goto fail;
  }

  if (s->in_stdin) {
    char what[48], holder[64];
    snprintf(what, sizeof what, "the UART at port 0x%x", s->port);
    if (!term_claim_stdin(s, what, holder, sizeof holder)) {
      if (!cfg->stdin_optional) {
        errf(err, "stdin is already the input of %s; give this one input = false or a path",
             holder);
        goto fail;
      }
      s->in_fd = -1;
      s->in_stdin = false;
    }
  }

  s->line = shared_line(vm, s->irq);
  if (s->line == NULL) {
    s->line = calloc(1, sizeof *s->line);
    if (s->line == NULL) {
      errf(err, "out of memory");
      goto fail;
    }
    pthread_mutex_init(&s->line->lock, NULL);
    s->line->vm = vm;
    s->line->irq = s->irq;
  }
  s->line->refs++;

  if (bus_add(&vm->pio, s->port, 8, serial_access, s, "serial", 0, err) < 0)
    goto fail;
  vm_add_device(vm, &s->dev);
  return 0;
fail:
  serial_destroy(&s->dev);
  return -1;
}
