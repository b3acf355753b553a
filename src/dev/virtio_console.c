/* virtio-console (device 3) with one port and no multiport (virtio 1.x,
 * 5.3): queue 0 is the port's receiveq, where the device writes input into
 * buffers the driver offers, queue 1 its transmitq, whose buffers are
 * output.
 *
 * Output is written where the transport calls notify (the notifying
 * vCPU's thread, or the transport's I/O thread with ioeventfd), one writev
 * per transmit chain straight from the guest's buffers (output.c: in
 * PIPE_BUF pieces to a pipe or terminal), before the chain goes back to
 * the driver: what the driver was told is sent has reached the fd.
 *
 * Input is read by a thread of the device while a run goes on, as the
 * UART's is (serial.c): started by the start hook and stopped by the flush
 * hook, woken out of poll by an eventfd and joined. It keeps what it read
 * (at most one chunk) and hands it out to the receive buffers the driver
 * has made available, under the device lock; with no buffer available it
 * waits, dropping nothing, until the driver notifies queue 0 (notify then
 * wakes the thread) or sets DRIVER_OK. Stdin on a terminal is raw during a
 * run, with the Ctrl-A x escape, and restored at its end (term.c).
 *
 * With a terminal at hand, VIRTIO_CONSOLE_F_SIZE is offered with its
 * columns and rows, read again at the start of each run (a change is a
 * configuration change for the driver).
 *
 * Locks: the transport's mutex guards the queues, the pending input, the
 * counters and the config; the thread takes it for each delivery.
 *
 * Ownership: the console is a device of its own on the VM's list (for its
 * start and flush hooks) and owns its memory; the transport has no destroy
 * hook for it. The VM flushes every device before destroying any, so by the
 * time either is destroyed the thread has stopped, and the console's
 * destroy touches nothing of the transport: the order does not matter. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../err.h"
#include "../term.h"
#include "../vcpu.h"
#include "dev_thread.h"
#include "output.h"
#include "virtio_devices.h"
#include "virtio_mmio.h"

#define CONSOLE_ID 3
#define CONSOLE_F_SIZE 0
#define RECEIVEQ 0
#define TRANSMITQ 1
#define QUEUE_MAX 256
#define IN_CHUNK 4096
/* Config: cols (le16), rows (le16), max_nr_ports (le32), emerg_wr (le32). */
#define CONFIG_SIZE 12

struct console {
  struct device dev;
  struct vm *vm;
  struct virtio_mmio *t;
  char name[48];          /* "the virtio console at 0x...", for messages */

  struct output out;      /* out.fd < 0: output is dropped */

  /* Input: in_fd < 0 for none. in_eof and esc belong to the thread (one
   * at a time: a run's thread is joined before the next starts); the
   * pending input, in_waiting and stopping are under the device lock. */
  int in_fd;
  bool in_stdin;
  bool escape;
  bool in_eof;
  struct term_escape esc;
  bool in_waiting;        /* the thread waits for receive buffers */
  size_t pend_off, pend_len;
  uint8_t pend[2 * IN_CHUNK]; /* the escape can double a byte */

  /* The thread, started and stopped by the control thread only. */
  pthread_t thread;
  bool thread_running;
  bool stopping;
  int wake_fd;
  bool took_term;
  bool hinted;
  int size_fd;            /* the terminal whose size the config shows, or -1 */

  /* Under the device lock: counters, and one chain at a time of either
   * queue with the iovecs to write it. */
  struct virtio_console_stats stats;
  struct virtq_chain chain;
  struct iovec iov[VIRTQ_MAX_BUFS];
};

static void wake_thread(struct console *c)
{
  uint64_t one = 1;
  ssize_t n = write(c->wake_fd, &one, sizeof one);
  (void)n; /* the counter cannot overflow: the thread drains it */
}

/* ---- output ---- */

/* With the lock held: the transmit queue's chains, in order. A failed
 * write drops that output: the guest must not stop because the host's
 * terminal went away. */
static int transmit_locked(struct console *c)
{
  struct virtio_mmio *t = c->t;
  struct virtq *vq = virtio_queue(t, TRANSMITQ);
  char err[ERR_LEN];
  int rc = 0, popped;
  while (vq != NULL && (popped = virtq_pop(vq, &c->chain, err)) != 0) {
    if (popped < 0) {
      rc = virtio_fail(t, "virtio-console: transmit queue: %s", err);
      break;
    }
    /* The driver MUST NOT put device-writable buffers in a transmitq
     * (5.3.6.1): there is nothing sensible to write into them. */
    if (c->chain.writable > 0) {
      rc = virtio_fail(t, "virtio-console: transmit chain %u has %llu bytes of device-writable "
                       "buffers; a transmit queue takes device-readable buffers only",
                       c->chain.head, (unsigned long long)c->chain.writable);
      break;
    }
    uint64_t len = c->chain.readable;
    if (len > 0) {
      c->stats.output_bytes += len;
      if (c->out.fd >= 0) {
        int n = virtq_iov(&c->chain, false, 0, len, c->iov);
        if (output_writev(&c->out, c->vm, c->iov, n) < 0)
          c->stats.output_errors++;
      }
    }
    virtq_push(vq, c->chain.head, 0);
  }
  virtio_notify_used(t, TRANSMITQ);
  return rc;
}

/* ---- input ---- */

/* With the lock held: pending input into the receive buffers the driver
 * offers, in order, as far as they go. */
static void deliver_locked(struct console *c)
{
  struct virtio_mmio *t = c->t;
  if (c->pend_off == c->pend_len || (t->status & VIRTIO_STATUS_NEEDS_RESET) ||
      !(t->status & VIRTIO_STATUS_DRIVER_OK))
    return;
  struct virtq *vq = virtio_queue(t, RECEIVEQ);
  char err[ERR_LEN];
  bool pushed = false;
  while (vq != NULL && c->pend_off < c->pend_len) {
    int rc = virtq_pop(vq, &c->chain, err);
    if (rc == 0)
      break;
    if (rc < 0) {
      virtio_fail(t, "virtio-console: receive queue: %s", err);
      break;
    }
    /* Nor device-readable ones in a receiveq (5.3.6.1). */
    if (c->chain.readable > 0) {
      virtio_fail(t, "virtio-console: receive chain %u has %llu bytes of device-readable "
                  "buffers; a receive queue takes device-writable buffers only", c->chain.head,
                  (unsigned long long)c->chain.readable);
      break;
    }
    /* A chain of zero-length buffers goes back empty; the bytes wait for
     * the next. */
    size_t n = virtq_write(&c->chain, 0, c->pend + c->pend_off, c->pend_len - c->pend_off);
    c->pend_off += n;
    c->stats.input_bytes += n;
    virtq_push(vq, c->chain.head, (uint32_t)n);
    pushed = true;
  }
  if (c->pend_off == c->pend_len)
    c->pend_off = c->pend_len = 0;
  if (pushed)
    virtio_notify_used(t, RECEIVEQ);
}

/* Reads what the input fd has, applies the escape and keeps the bytes as
 * pending input. The end of the input (or an error) ends input for good. */
static void read_input(struct console *c)
{
  uint8_t raw[IN_CHUNK], out[2 * IN_CHUNK];
  size_t want = sizeof raw;
  int avail = 0;
  /* Only what is there, so the read cannot block even if someone else
   * drained the fd between poll and read. */
  if (ioctl(c->in_fd, FIONREAD, &avail) == 0 && avail > 0 && (size_t)avail < want)
    want = (size_t)avail;
  ssize_t r = read(c->in_fd, raw, want);
  if (r < 0 && (errno == EINTR || errno == EAGAIN))
    return;
  if (r <= 0) {
    c->in_eof = true;
    return;
  }
  size_t n = (size_t)r;
  bool quit = false;
  if (c->escape)
    n = term_escape_filter(&c->esc, raw, n, out, &quit);
  else
    memcpy(out, raw, n);
  if (quit)
    vm_request_stop(c->vm, VCPU_QUIT, 0);
  pthread_mutex_lock(&c->t->lock);
  memcpy(c->pend, out, n); /* the thread reads only when nothing is pending */
  c->pend_off = 0;
  c->pend_len = n;
  pthread_mutex_unlock(&c->t->lock);
}

static void *console_thread(void *arg)
{
  struct console *c = arg;
  struct virtio_mmio *t = c->t;
  for (;;) {
    pthread_mutex_lock(&t->lock);
    if (c->stopping) {
      pthread_mutex_unlock(&t->lock);
      break;
    }
    deliver_locked(c);
    c->in_waiting = c->pend_len > 0;
    bool want_input = !c->in_eof && c->pend_len == 0;
    pthread_mutex_unlock(&t->lock);

    struct pollfd p[2] = { { .fd = c->wake_fd, .events = POLLIN },
                           { .fd = c->in_fd, .events = POLLIN } };
    int n = poll(p, want_input ? 2 : 1, -1);
    if (n < 0) {
      if (errno != EINTR)
        usleep(10000); /* ENOMEM: try again later, without spinning */
      continue;
    }
    if (p[0].revents & POLLIN) {
      uint64_t count;
      ssize_t r = read(c->wake_fd, &count, sizeof count);
      (void)r;
    }
    if (want_input && (p[1].revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL))) {
      if (p[1].revents & POLLNVAL)
        c->in_eof = true;
      else
        read_input(c);
    }
  }
  return NULL;
}

/* ---- the backend's hooks (device lock held) ---- */

static int console_notify(struct virtio_mmio *t, uint16_t q)
{
  struct console *c = t->be.opaque;
  if (q == TRANSMITQ)
    return transmit_locked(c);
  /* New receive buffers: the thread hands out what it holds. */
  if (c->in_waiting) {
    c->in_waiting = false;
    wake_thread(c);
  }
  return 0;
}

/* DRIVER_OK: a driver may have filled the receive queue (and notified,
 * which the transport ignores) before it. */
static void console_ready(struct virtio_mmio *t)
{
  console_notify(t, RECEIVEQ);
}

/* ---- the device's hooks (control thread) ---- */

/* With the lock held: the config's columns and rows from the terminal, a
 * configuration change when they changed. */
static void update_size_locked(struct console *c)
{
  struct winsize ws;
  if (c->size_fd < 0 || ioctl(c->size_fd, TIOCGWINSZ, &ws) < 0)
    return;
  uint16_t size[2] = { ws.ws_col, ws.ws_row };
  if (memcmp(c->t->be.config, size, sizeof size) == 0)
    return;
  memcpy(c->t->be.config, size, sizeof size);
  virtio_config_changed(c->t);
}

static void console_start(struct device *dev)
{
  struct console *c = (struct console *)dev;
  pthread_mutex_lock(&c->t->lock);
  update_size_locked(c);
  c->stopping = false;
  pthread_mutex_unlock(&c->t->lock);
  if (c->in_fd < 0 || c->thread_running)
    return;
  if (c->in_stdin)
    c->took_term = term_console_begin(c->in_fd, c->escape, &c->hinted);
  if (dev_thread_start(&c->thread, 0, console_thread, c) == 0) {
    c->thread_running = true;
    return;
  }
  /* No thread, no input: the terminal stays as it was. */
  if (c->took_term) {
    term_restore();
    c->took_term = false;
  }
}

static void console_flush(struct device *dev)
{
  struct console *c = (struct console *)dev;
  if (c->thread_running) {
    pthread_mutex_lock(&c->t->lock);
    c->stopping = true;
    c->in_waiting = false;
    pthread_mutex_unlock(&c->t->lock);
    /* The flag alone would wait for the thread's next wake-up, which may
     * never come; the eventfd ends its poll now. */
    wake_thread(c);
    pthread_join(c->thread, NULL);
    c->thread_running = false;
  }
  if (c->took_term) {
    term_restore();
    c->took_term = false;
  }
}

static void console_free(struct console *c)
{
  term_release_stdin(c);
  if (c->out.fd > STDERR_FILENO)
    close(c->out.fd);
  if (c->in_fd > STDERR_FILENO)
    close(c->in_fd);
  if (c->wake_fd >= 0)
    close(c->wake_fd);
  free(c);
}

static void console_destroy(struct device *dev)
{
  struct console *c = (struct console *)dev;
  console_flush(dev); /* nothing left to do after the VM's flush */
  console_free(c);
}

int virtio_console_attach(struct vm *vm, uint64_t base, uint32_t irq,
                          const struct virtio_console_config *cfg, struct virtio_mmio **out,
                          char *err)
{
  struct console *c = calloc(1, sizeof *c);
  if (c == NULL) {
    if (cfg->out_fd > STDERR_FILENO)
      close(cfg->out_fd);
    if (cfg->in_fd > STDERR_FILENO)
      close(cfg->in_fd);
    return errf(err, "out of memory");
  }
  c->dev.name = "virtio-console";
  c->dev.start = console_start;
  c->dev.flush = console_flush;
  c->dev.destroy = console_destroy;
  c->vm = vm;
  c->out = output_of(cfg->out_fd);
  c->in_fd = cfg->in_fd;
  c->in_stdin = cfg->in_fd == STDIN_FILENO;
  c->escape = cfg->escape;
  c->size_fd = -1;
  snprintf(c->name, sizeof c->name, "the virtio console at 0x%llx", (unsigned long long)base);
  c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (c->wake_fd < 0) {
    errf(err, "eventfd: %s", strerror(errno));
    goto fail;
  }
  if (c->in_stdin) {
    char holder[64];
    if (!term_claim_stdin(c, c->name, holder, sizeof holder)) {
      if (!cfg->stdin_optional) {
        errf(err, "stdin is already the input of %s; give this one input = false or a path",
             holder);
        goto fail;
      }
      c->in_fd = -1;
      c->in_stdin = false;
    }
  }
  if (c->in_stdin && isatty(c->in_fd))
    c->size_fd = c->in_fd;
  else if (c->out.fd >= 0 && isatty(c->out.fd))
    c->size_fd = c->out.fd;

  struct virtio_backend be = {
    .device_id = CONSOLE_ID,
    .features = c->size_fd >= 0 ? 1ull << CONSOLE_F_SIZE : 0,
    .num_queues = 2,
    .queue_max = QUEUE_MAX,
    .config_size = CONFIG_SIZE,
    .notify = console_notify,
    .ready = console_ready,
    .opaque = c,
  };
  uint32_t ports = 1;
  memcpy(be.config + 4, &ports, sizeof ports);
  struct winsize ws;
  if (c->size_fd >= 0 && ioctl(c->size_fd, TIOCGWINSZ, &ws) == 0) {
    uint16_t size[2] = { ws.ws_col, ws.ws_row };
    memcpy(be.config, size, sizeof size);
  }
  if (virtio_mmio_attach(vm, base, irq, &be, &c->t, err) < 0)
    goto fail;
  vm_add_device(vm, &c->dev);
  *out = c->t;
  return 0;
fail:
  console_free(c);
  return -1;
}

void virtio_console_stats(const struct virtio_mmio *t, struct virtio_console_stats *out)
{
  const struct console *c = t->be.opaque;
  *out = c->stats;
  out->input_pending = c->pend_len - c->pend_off;
}
