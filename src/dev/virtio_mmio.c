#include "virtio_mmio.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../err.h"
#include "../vcpu.h"

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

static void update_irq(struct virtio_mmio *t)
{
  vm_irq_line(t->vm, t->irq, t->isr != 0);
}

static void raise_interrupt(struct virtio_mmio *t, uint32_t bit)
{
  t->isr |= bit;
  t->interrupts++;
  update_irq(t);
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
    /* A broken device serves nobody until it is reset. */
    if (!(t->status & VIRTIO_STATUS_NEEDS_RESET) && (t->status & VIRTIO_STATUS_DRIVER_OK) &&
        t->queues[v].ready) {
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
  t->dev.destroy = virtio_mmio_destroy;
  char name[32];
  snprintf(name, sizeof name, "virtio-mmio (device %u)", be->device_id);
  if (bus_add(&vm->mmio, base, VIRTIO_MMIO_SIZE, virtio_mmio_access, t, name, 0, err) < 0) {
    pthread_mutex_destroy(&t->lock);
    free(t);
    return -1;
  }
  vm_add_device(vm, &t->dev);
  *out = t;
  return 0;
}
