/* The virtio-mmio transport; see virtio_mmio.h.
 *
 * The fast path. A queue notification is a 4-byte write of the queue's index to
 * QueueNotify, which costs an exit to userspace and a trip through the bus. For
 * a C backend, once the driver is live (DRIVER_OK) and a queue is set up, the
 * queue's notifications are registered with KVM_IOEVENTFD (that address, that
 * index as datamatch): KVM then only signals the queue's eventfd (kick_fd) and
 * the vCPU goes on in the guest. Writes that do not match (another index,
 * another size) still exit and are handled as always, and so does everything
 * before DRIVER_OK, which is dropped as it always was. The registration is
 * dropped when the queue is disabled, the device reset, the fast path turned
 * off or the device destroyed; sync_kicks() keeps it in step with the registers
 * after every register write. A queue KVM refuses it for (a full I/O bus, a
 * seccomp filter on the vCPU thread) stays on the exit path, and dev:status()
 * says why.
 *
 * Each device with kick eventfds has one I/O thread of its own: one per device
 * rather than one per VM, so that a slow request (a virtio-blk flush waits for
 * fdatasync) never holds up another device's queues, and so the thread needs no
 * lock but its device's. It polls the kick eventfds and a wake-up eventfd; for
 * each signalled queue it reads the count (clearing it) and calls
 * virtio_mmio_kicked() under the device lock, which serves the queue exactly as
 * an exiting notification would (the same checks: DRIVER_OK, not NEEDS_RESET,
 * the queue ready). Reading before serving means a notification that lands
 * meanwhile signals the eventfd again: none is lost.
 *
 * Lifetime: the thread runs while the VM runs. The device's start hook
 * (vm_start_devices, before any vCPU enters) creates it; its quiesce hook
 * (vm_flush_devices, after every vCPU stopped, before any device flushes) sets
 * `stopping` under the lock, writes the wake-up eventfd and joins it: never
 * cancelled. A request being served when the VM stops is finished first (the
 * thread only looks at `stopping` between two rounds, and a round serves the
 * queue to the end under the lock), so the rings are consistent between runs; a
 * notification that arrived but was not read yet stays in its eventfd, and the
 * next run's thread serves it at once. A stopped VM serves nothing; a paused
 * one (vm:pause) goes on serving what its driver had asked for, like a disk
 * whose CPUs are halted.
 *
 * Locks: the I/O thread takes only the device lock, never the control-plane
 * lock (it serves C backends only: a Lua backend's notify must run on a vCPU
 * thread under the control-plane lock, so those keep the exit path, `deferred`
 * below). The control thread starts and joins it without holding the device
 * lock. KVM_IOEVENTFD is called under the device lock, from a vCPU thread's
 * register write; it waits for nothing of ours.
 *
 * Interrupts through an irqfd. virtio-mmio's interrupt is level-like: the line
 * follows InterruptStatus until the driver acknowledges it. Without an irqfd it
 * is exactly that (KVM_IRQ_LINE up when a bit is set, down at the ACK that
 * clears the last one). An irqfd, as bound here (without
 * KVM_IRQFD_FLAG_RESAMPLE), makes an edge: each write raises the line and
 * lowers it again. So the transport sends one edge per interrupt it raises,
 * even when InterruptStatus already had the bit, and lowers nothing at the ACK.
 * On an edge-triggered line (the ISA lines 0-15 are, in the PIC and as the MP
 * and ACPI tables describe them, and those are the lines our machines give
 * virtio-mmio devices) an edge that comes while the driver's handler runs (it
 * read InterruptStatus, ACKed it, new work completes) is latched by the local
 * APIC and delivered after the handler's EOI: no interrupt is lost. A
 * level-triggered IOAPIC pin would drop such an edge (its remote IRR is set
 * until the EOI), which is what KVM_IRQFD_FLAG_RESAMPLE exists for; we do not
 * use it, because KVM lowers a resampling irqfd's line only at the EOI of a
 * level-triggered pin: on an edge-triggered IOAPIC pin the line would stay up
 * and every interrupt after the first would be lost. A line with an irqfd must
 * not be shared with a device that holds it with KVM_IRQ_LINE (the edge's fall
 * would lower the other device's level). */
#include "dev_thread.h"
#include "virtio_mmio.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../err.h"
#include "../vcpu.h"

#define IO_THREAD_STACK (512 * 1024)

#define MAGIC 0x74726976 /* "virt" */
#define VENDOR 0x4d4d564c /* "LVMM" */

/* Register offsets, virtio 1.x section 4.2.2. */
enum {
  R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_VENDOR_ID = 0x00c,
  R_DEVICE_FEATURES = 0x010, R_DEVICE_FEATURES_SEL = 0x014,
  R_DRIVER_FEATURES = 0x020, R_DRIVER_FEATURES_SEL = 0x024,
  R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038, R_QUEUE_READY = 0x044,
  R_QUEUE_NOTIFY = 0x050, R_INTERRUPT_STATUS = 0x060, R_INTERRUPT_ACK = 0x064,
  R_STATUS = 0x070,
  R_QUEUE_DESC_LOW = 0x080, R_QUEUE_DESC_HIGH = 0x084,
  R_QUEUE_DRIVER_LOW = 0x090, R_QUEUE_DRIVER_HIGH = 0x094,
  R_QUEUE_DEVICE_LOW = 0x0a0, R_QUEUE_DEVICE_HIGH = 0x0a4,
  R_CONFIG_GENERATION = 0x0fc, R_CONFIG = 0x100,
};

static uint64_t device_features(const struct virtio_mmio *t)
{
  return t->be.features | (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC) |
         (1ull << VIRTIO_F_EVENT_IDX);
}

bool virtio_has_feature(const struct virtio_mmio *t, unsigned bit)
{
  return (t->driver_features >> bit) & 1;
}

uint16_t virtio_queue_max(const struct virtio_mmio *t, uint16_t q)
{
  if (q >= t->be.num_queues)
    return 0;
  return t->be.queue_max_each[q] != 0 ? t->be.queue_max_each[q] : t->be.queue_max;
}

struct virtq *virtio_queue(struct virtio_mmio *t, uint16_t q)
{
  if (q >= t->be.num_queues || !t->queues[q].ready)
    return NULL;
  return &t->queues[q].vq;
}

/* The line follows InterruptStatus; with an irqfd only Lua's record of it
 * does (vm:irq_level): edges need no lowering. */
static void update_irq(struct virtio_mmio *t)
{
  if (t->fp.irq_fd >= 0)
    vm_irq_record(t->vm, t->irq, t->isr != 0);
  else
    vm_irq_line(t->vm, t->irq, t->isr != 0);
}

static void raise_interrupt(struct virtio_mmio *t, uint32_t bit)
{
  t->isr |= bit;
  t->interrupts++;
  if (t->fp.irq_fd < 0) {
    update_irq(t);
    return;
  }
  /* An edge for every interrupt, whether or not InterruptStatus already
   * had the bit: see the top of this file. */
  uint64_t one = 1;
  vm_irq_record(t->vm, t->irq, 1);
  if (write(t->fp.irq_fd, &one, sizeof one) == (ssize_t)sizeof one) {
    t->fp.interrupts++;
  } else {
    /* Cannot happen (KVM reads the eventfd empty): an edge all the same. */
    vm_irq_line(t->vm, t->irq, 1);
    vm_irq_line(t->vm, t->irq, 0);
  }
}

void virtio_notify_used(struct virtio_mmio *t, uint16_t q)
{
  struct virtq *vq = virtio_queue(t, q);
  if (vq != NULL && virtq_should_notify(vq))
    raise_interrupt(t, VIRTIO_INT_USED);
}

int virtio_fail(struct virtio_mmio *t, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->error, sizeof t->error, fmt, ap);
  va_end(ap);
  t->errors++;
  /* The device stops using its queues until the driver resets it. */
  if (!(t->status & VIRTIO_STATUS_NEEDS_RESET)) {
    t->status |= VIRTIO_STATUS_NEEDS_RESET;
    if (t->status & VIRTIO_STATUS_DRIVER_OK)
      raise_interrupt(t, VIRTIO_INT_CONFIG);
  }
  return -1;
}

void virtio_config_changed(struct virtio_mmio *t)
{
  t->config_generation++;
  if (t->status & VIRTIO_STATUS_DRIVER_OK)
    raise_interrupt(t, VIRTIO_INT_CONFIG);
}

/* Whether a notification of queue q is served: a broken device serves
 * nobody until it is reset, and nothing before DRIVER_OK. */
static bool serving(const struct virtio_mmio *t, uint16_t q)
{
  return !(t->status & VIRTIO_STATUS_NEEDS_RESET) && (t->status & VIRTIO_STATUS_DRIVER_OK) &&
         t->queues[q].ready;
}

void virtio_mmio_kicked(struct virtio_mmio *t, uint16_t q, uint64_t count)
{
  t->notifies += count;
  t->fp.notifies += count;
  /* A kick may be stale (read after a reset, or after the queue was set up
   * again): the checks make it harmless, as for any notification. */
  if (q < t->be.num_queues && t->be.deferred == NULL && t->be.notify != NULL && serving(t, q))
    t->be.notify(t, q);
}

/* ---- the fast path: registrations, the I/O thread ---- */

/* Whether queue q's notifications should reach its eventfd now. */
static bool kick_wanted(const struct virtio_mmio *t, uint16_t q)
{
  return t->fp.kick_fd[q] >= 0 && !t->fp.kick_failed[q] && t->queues[q].ready &&
         (t->status & VIRTIO_STATUS_DRIVER_OK);
}

/* With the lock held: registers and drops KVM_IOEVENTFDs to match the
 * registers. A queue KVM refuses keeps the exit path, for good. */
static void sync_kicks(struct virtio_mmio *t)
{
  for (uint16_t q = 0; q < t->be.num_queues; q++) {
    bool want = kick_wanted(t, q);
    if (want == t->fp.kick_assigned[q])
      continue;
    if (vm_ioeventfd(t->vm, t->base + R_QUEUE_NOTIFY, q, t->fp.kick_fd[q], want) == 0) {
      t->fp.kick_assigned[q] = want;
      continue;
    }
    snprintf(t->fp.error, sizeof t->fp.error, "queue %u: KVM_IOEVENTFD (%s) failed: %s; its "
             "notifications exit", q, want ? "assign" : "deassign", strerror(errno));
    t->fp.kick_failed[q] = true;
    if (!want)
      t->fp.kick_assigned[q] = false; /* the eventfd is still read: nothing is lost */
  }
}

static void close_fd(int *fd)
{
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

/* With the lock held and no I/O thread: drops the kick eventfds. With
 * `serve`, what they still hold is served first, as the thread would have:
 * those notifications happened, and will not come again. */
static void drop_kicks(struct virtio_mmio *t, bool serve)
{
  for (uint16_t q = 0; q < VIRTIO_MAX_QUEUES; q++) {
    if (t->fp.kick_assigned[q])
      vm_ioeventfd(t->vm, t->base + R_QUEUE_NOTIFY, q, t->fp.kick_fd[q], false);
    t->fp.kick_assigned[q] = false;
    uint64_t count;
    if (serve && t->fp.kick_fd[q] >= 0 &&
        read(t->fp.kick_fd[q], &count, sizeof count) == (ssize_t)sizeof count)
      virtio_mmio_kicked(t, q, count);
    close_fd(&t->fp.kick_fd[q]);
    t->fp.kick_failed[q] = false;
  }
  close_fd(&t->fp.wake_fd);
}

/* With the lock held and no I/O thread: everything off. `live` when the
 * device goes on without it (not at destroy): pending notifications are
 * served and the line goes back to following InterruptStatus. */
static void fastpath_off(struct virtio_mmio *t, bool live)
{
  drop_kicks(t, live);
  if (t->fp.irq_fd >= 0) {
    vm_irqfd(t->vm, t->irq, t->fp.irq_fd, false);
    close_fd(&t->fp.irq_fd);
    if (live)
      update_irq(t);
  }
}

/* With the lock held and no I/O thread: the eventfds, as far as the VM
 * allows. */
static void fastpath_on(struct virtio_mmio *t)
{
  struct vm *vm = t->vm;
  if (vm->ioeventfd && t->be.deferred == NULL && t->be.notify != NULL) {
    t->fp.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    bool ok = t->fp.wake_fd >= 0;
    for (uint16_t q = 0; ok && q < t->be.num_queues; q++) {
      t->fp.kick_fd[q] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      ok = t->fp.kick_fd[q] >= 0;
    }
    if (!ok) {
      snprintf(t->fp.error, sizeof t->fp.error, "eventfd: %s; notifications exit",
               strerror(errno));
      drop_kicks(t, false);
    }
  }
  if (vm->irqfd) {
    t->fp.irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->fp.irq_fd < 0 || vm_irqfd(vm, t->irq, t->fp.irq_fd, true) < 0) {
      snprintf(t->fp.error, sizeof t->fp.error, "%s: %s; interrupts use KVM_IRQ_LINE",
               t->fp.irq_fd < 0 ? "eventfd" : "KVM_IRQFD", strerror(errno));
      close_fd(&t->fp.irq_fd);
    } else if (t->isr != 0) {
      /* Up from KVM_IRQ_LINE until now: down, the driver had its edge. */
      vm_irq_line(vm, t->irq, 0);
      vm_irq_record(vm, t->irq, 1);
    }
  }
  sync_kicks(t);
}

void virtio_mmio_set_fastpath(struct virtio_mmio *t, bool on)
{
  pthread_mutex_lock(&t->lock);
  fastpath_off(t, true);
  t->fp.on = on;
  t->fp.error[0] = '\0';
  if (on)
    fastpath_on(t);
  pthread_mutex_unlock(&t->lock);
}

static void *io_thread(void *arg)
{
  struct virtio_mmio *t = arg;
  /* The eventfds stay open while this thread runs (they are closed only
   * with the fast path off or the device gone, both after a join). */
  struct pollfd p[1 + VIRTIO_MAX_QUEUES];
  uint16_t queue_of[1 + VIRTIO_MAX_QUEUES];
  nfds_t n = 0;
  p[n++] = (struct pollfd){ .fd = t->fp.wake_fd, .events = POLLIN };
  for (uint16_t q = 0; q < t->be.num_queues; q++) {
    if (t->fp.kick_fd[q] < 0)
      continue;
    queue_of[n] = q;
    p[n++] = (struct pollfd){ .fd = t->fp.kick_fd[q], .events = POLLIN };
  }
  for (;;) {
    if (poll(p, n, -1) < 0) {
      if (errno != EINTR)
        usleep(1000); /* ENOMEM: try again later, without spinning */
      continue;
    }
    uint64_t count;
    if ((p[0].revents & POLLIN) && read(p[0].fd, &count, sizeof count) < 0)
      count = 0; /* someone else read it: nothing to do */
    pthread_mutex_lock(&t->lock);
    bool stop = t->fp.stopping;
    for (nfds_t i = 1; i < n && !stop; i++)
      if ((p[i].revents & POLLIN) && read(p[i].fd, &count, sizeof count) == (ssize_t)sizeof count)
        virtio_mmio_kicked(t, queue_of[i], count);
    pthread_mutex_unlock(&t->lock);
    if (stop)
      return NULL;
  }
}

/* The start hook: the I/O thread, when there are notifications to serve. */
static void fastpath_start(struct device *dev)
{
  struct virtio_mmio *t = (struct virtio_mmio *)dev;
  if (t->fp.wake_fd < 0 || t->fp.thread_running)
    return;
  t->fp.stopping = false; /* no thread yet: nobody else looks */
  int rc = dev_thread_start(&t->fp.thread, IO_THREAD_STACK, io_thread, t);
  if (rc == 0) {
    t->fp.thread_running = true;
    return;
  }
  /* Nobody would read the eventfds: notifications go back to exits. */
  pthread_mutex_lock(&t->lock);
  drop_kicks(t, true);
  snprintf(t->fp.error, sizeof t->fp.error, "cannot start the I/O thread (%s): notifications "
           "exit", strerror(rc));
  pthread_mutex_unlock(&t->lock);
}

/* The quiesce hook (before any device flushes: the backend's own device,
 * a console's, may be one): the I/O thread finishes what it is serving and
 * is joined. The flag alone would not end its poll; the wake-up alone
 * could come before the poll and be taken for nothing: both. */
static void fastpath_stop(struct device *dev)
{
  struct virtio_mmio *t = (struct virtio_mmio *)dev;
  if (!t->fp.thread_running)
    return;
  pthread_mutex_lock(&t->lock);
  t->fp.stopping = true;
  pthread_mutex_unlock(&t->lock);
  uint64_t one = 1;
  ssize_t n = write(t->fp.wake_fd, &one, sizeof one);
  (void)n; /* cannot fail: the thread drains it */
  pthread_join(t->fp.thread, NULL);
  t->fp.thread_running = false;
}

static void reset_device(struct virtio_mmio *t, struct virtio_event *ev)
{
  t->status = 0;
  t->isr = 0;
  t->device_features_sel = t->driver_features_sel = 0;
  t->driver_features = 0;
  t->queue_sel = 0;
  for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
    virtq_reset(&t->queues[i].vq);
    memset(&t->queues[i], 0, sizeof t->queues[i]);
  }
  update_irq(t);
  if (t->be.deferred != NULL)
    ev->kind = VIRTIO_EVENT_RESET;
  else if (t->be.reset != NULL)
    t->be.reset(t);
}

/* Status writes: the driver may only add bits, except writing 0 (reset). */
static void write_status(struct virtio_mmio *t, uint32_t v, struct virtio_event *ev)
{
  if (v == 0) {
    reset_device(t, ev);
    return;
  }
  v &= 0xff;
  if ((v & VIRTIO_STATUS_FEATURES_OK) && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
    /* Modern devices only, and nothing the device did not offer: else
     * FEATURES_OK does not stick, which is how the driver learns. */
    if (!virtio_has_feature(t, VIRTIO_F_VERSION_1) ||
        (t->driver_features & ~device_features(t)) != 0)
      v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
  }
  if ((v & VIRTIO_STATUS_DRIVER_OK) && !(v & VIRTIO_STATUS_FEATURES_OK)) {
    /* Going live without agreeing on features (a legacy driver, or one
     * that ignored a refused FEATURES_OK): this device is modern only. */
    v &= ~(uint32_t)VIRTIO_STATUS_DRIVER_OK;
    t->status = (t->status & VIRTIO_STATUS_NEEDS_RESET) | v;
    virtio_fail(t, "the driver set DRIVER_OK without FEATURES_OK");
    return;
  }
  bool going_live = (v & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_DRIVER_OK);
  t->status = (t->status & VIRTIO_STATUS_NEEDS_RESET) | v;
  if (going_live && t->be.ready != NULL)
    t->be.ready(t);
}

static void queue_ready(struct virtio_mmio *t, struct virtio_queue *q, uint32_t v)
{
  if (v == 0) {
    q->ready = false;
    return;
  }
  if (q->ready)
    return;
  char err[ERR_LEN];
  q->vq.event_idx = virtio_has_feature(t, VIRTIO_F_EVENT_IDX);
  q->vq.indirect = virtio_has_feature(t, VIRTIO_F_INDIRECT_DESC);
  uint16_t max = virtio_queue_max(t, (uint16_t)t->queue_sel);
  if (q->num > max) {
    virtio_fail(t, "queue %u: size %u is larger than QueueNumMax %u", t->queue_sel, q->num, max);
    return;
  }
  if (virtq_setup(&q->vq, &t->vm->mem, q->num, q->desc, q->driver, q->device, err) < 0) {
    virtio_fail(t, "queue %u: %s", t->queue_sel, err);
    return;
  }
  q->ready = true;
  q->epoch = ++t->epochs;
}

static void set_half(uint64_t *field, bool high, uint32_t v)
{
  if (high)
    *field = (*field & 0xffffffffull) | ((uint64_t)v << 32);
  else
    *field = (*field & ~0xffffffffull) | v;
}

static uint32_t read_register(struct virtio_mmio *t, uint64_t off)
{
  struct virtio_queue *q = t->queue_sel < t->be.num_queues ? &t->queues[t->queue_sel] : NULL;
  switch (off) {
  case R_MAGIC: return MAGIC;
  case R_VERSION: return 2;
  case R_DEVICE_ID: return t->be.device_id;
  case R_VENDOR_ID: return VENDOR;
  case R_DEVICE_FEATURES:
    return t->device_features_sel < 2 ? (uint32_t)(device_features(t) >> (32 * t->device_features_sel)) : 0;
  case R_QUEUE_NUM_MAX: return virtio_queue_max(t, (uint16_t)t->queue_sel);
  case R_QUEUE_READY: return q != NULL && q->ready;
  case R_INTERRUPT_STATUS: return t->isr;
  case R_STATUS: return t->status;
  case R_CONFIG_GENERATION: return t->config_generation;
  default:
    t->bad_accesses++;
    return 0;
  }
}

static void write_register(struct virtio_mmio *t, uint64_t off, uint32_t v,
                           struct virtio_event *ev)
{
  struct virtio_queue *q = t->queue_sel < t->be.num_queues ? &t->queues[t->queue_sel] : NULL;
  bool configurable = q != NULL && !q->ready;
  switch (off) {
  case R_DEVICE_FEATURES_SEL: t->device_features_sel = v; return;
  case R_DRIVER_FEATURES:
    if (t->driver_features_sel < 2 && !(t->status & VIRTIO_STATUS_FEATURES_OK))
      set_half(&t->driver_features, t->driver_features_sel == 1, v);
    return;
  case R_DRIVER_FEATURES_SEL: t->driver_features_sel = v; return;
  case R_QUEUE_SEL: t->queue_sel = v; return;
  case R_QUEUE_NUM: if (configurable) q->num = (uint16_t)(v <= 0xffff ? v : 0); return;
  case R_QUEUE_READY: if (q != NULL) queue_ready(t, q, v); return;
  case R_QUEUE_NOTIFY:
    t->notifies++;
    if (v >= t->be.num_queues) {
      t->bad_accesses++;
      return;
    }
    if (serving(t, (uint16_t)v)) {
      if (t->be.deferred != NULL)
        *ev = (struct virtio_event){ .kind = VIRTIO_EVENT_NOTIFY, .queue = (uint16_t)v };
      else if (t->be.notify != NULL)
        t->be.notify(t, (uint16_t)v);
    }
    return;
  case R_INTERRUPT_ACK:
    t->isr &= ~v;
    update_irq(t);
    return;
  case R_STATUS: write_status(t, v, ev); return;
  case R_QUEUE_DESC_LOW: case R_QUEUE_DESC_HIGH:
    if (configurable) set_half(&q->desc, off == R_QUEUE_DESC_HIGH, v);
    return;
  case R_QUEUE_DRIVER_LOW: case R_QUEUE_DRIVER_HIGH:
    if (configurable) set_half(&q->driver, off == R_QUEUE_DRIVER_HIGH, v);
    return;
  case R_QUEUE_DEVICE_LOW: case R_QUEUE_DEVICE_HIGH:
    if (configurable) set_half(&q->device, off == R_QUEUE_DEVICE_HIGH, v);
    return;
  default:
    t->bad_accesses++;
    return;
  }
}

static int virtio_mmio_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                              uint32_t size, bool write)
{
  struct virtio_mmio *t = opaque;
  struct virtio_event ev = { .kind = VIRTIO_EVENT_NONE };
  pthread_mutex_lock(&t->lock);
  if (offset >= R_CONFIG) {
    /* The config space: any access size inside it. */
    uint64_t at = offset - R_CONFIG;
    if (at >= t->be.config_size || size > t->be.config_size - at) {
      t->bad_accesses++;
    } else if (write && t->be.deferred == NULL && t->be.config_write == NULL) {
      /* A backend without a config_write hook has no writable field (the
       * block device's capacity, say): the write is dropped, not kept for
       * the next reader. */
      t->bad_accesses++;
    } else if (write) {
      memcpy(t->be.config + at, data, size);
      if (t->be.deferred != NULL)
        ev = (struct virtio_event){ .kind = VIRTIO_EVENT_CONFIG_WRITE, .offset = (uint32_t)at,
                                    .size = size };
      else if (t->be.config_write != NULL)
        t->be.config_write(t, (uint32_t)at, size);
    } else {
      memcpy(data, t->be.config + at, size);
    }
  } else if (size != 4 || offset % 4) {
    /* Registers are 32-bit only (spec 4.2.2.2): anything else reads 0 and
     * is otherwise ignored. */
    t->bad_accesses++;
  } else if (write) {
    uint32_t v;
    memcpy(&v, data, 4);
    write_register(t, offset, v, &ev);
    sync_kicks(t);
  } else {
    uint32_t v = read_register(t, offset);
    memcpy(data, &v, 4);
  }
  pthread_mutex_unlock(&t->lock);
  /* Only now, without the device lock: the backend may take the
   * control-plane lock (see `deferred` in virtio_mmio.h). */
  if (ev.kind != VIRTIO_EVENT_NONE)
    return t->be.deferred(t, c, &ev);
  return 0;
}

static void virtio_mmio_destroy(struct device *dev)
{
  struct virtio_mmio *t = (struct virtio_mmio *)dev;
  fastpath_stop(dev);
  pthread_mutex_lock(&t->lock);
  fastpath_off(t, false);
  pthread_mutex_unlock(&t->lock);
  if (t->be.destroy != NULL)
    t->be.destroy(t);
  pthread_mutex_destroy(&t->lock);
  free(t);
}

int virtio_mmio_attach(struct vm *vm, uint64_t base, uint32_t irq,
                       const struct virtio_backend *be, struct virtio_mmio **out, char *err)
{
  if (base % 4096)
    return errf(err, "a virtio-mmio device's address must be 4096-aligned, not 0x%llx",
                (unsigned long long)base);
  if (irq >= VM_IRQ_LINES)
    return errf(err, "interrupt line %u is not 0 to %d", irq, VM_IRQ_LINES - 1);
  bool sizes_ok = true;
  for (int i = 0; i < VIRTIO_MAX_QUEUES; i++) {
    uint32_t max = be->queue_max_each[i];
    sizes_ok = sizes_ok && max <= VIRTQ_MAX_SIZE && (max & (max - 1)) == 0;
  }
  if (be->num_queues == 0 || be->num_queues > VIRTIO_MAX_QUEUES || be->queue_max == 0 ||
      be->queue_max > VIRTQ_MAX_SIZE || (be->queue_max & (be->queue_max - 1)) || !sizes_ok ||
      be->config_size > VIRTIO_CONFIG_MAX)
    return errf(err, "a virtio device has 1 to %d queues of at most %d (a power of two) and a "
                "config space of at most %d bytes", VIRTIO_MAX_QUEUES, VIRTQ_MAX_SIZE,
                VIRTIO_CONFIG_MAX);
  struct virtio_mmio *t = calloc(1, sizeof *t);
  if (t == NULL)
    return errf(err, "out of memory");
  pthread_mutex_init(&t->lock, NULL);
  t->vm = vm;
  t->base = base;
  t->irq = irq;
  t->be = *be;
  t->dev.name = "virtio-mmio";
  t->dev.start = fastpath_start;
  t->dev.quiesce = fastpath_stop;
  t->dev.destroy = virtio_mmio_destroy;
  t->fp.irq_fd = t->fp.wake_fd = -1;
  for (int i = 0; i < VIRTIO_MAX_QUEUES; i++)
    t->fp.kick_fd[i] = -1;
  char name[32];
  snprintf(name, sizeof name, "virtio-mmio (device %u)", be->device_id);
  if (bus_add(&vm->mmio, base, VIRTIO_MMIO_SIZE, virtio_mmio_access, t, name, 0, err) < 0) {
    pthread_mutex_destroy(&t->lock);
    free(t);
    return -1;
  }
  vm_add_device(vm, &t->dev);
  virtio_mmio_set_fastpath(t, true);
  *out = t;
  return 0;
}
