/* A guest-side virtio-mmio driver: probe, feature negotiation, split
 * virtqueues and polled requests. See guests/include/virtio.h. */
#include <virtio.h>

#include "rt.h"

/* Rounds of a wait before it gives up; each round reads the status
 * register, an exit of a few microseconds. */
#define POLL_DEFAULT 20000

const char *virtio_strerror(int err)
{
  switch (err) {
  case VIRTIO_ENODEV: return "no such device";
  case VIRTIO_EFEATURES: return "feature negotiation failed";
  case VIRTIO_EQUEUE: return "the queue cannot be set up";
  case VQ_ENOSPC: return "no free descriptors";
  case VQ_ENEEDS_RESET: return "the device needs a reset";
  case VQ_ETIMEOUT: return "timed out";
  case VIRTIO_EINVAL: return "invalid request";
  default: return err >= 0 ? "ok" : "unknown error";
  }
}

/* Orders our ring writes before the device may look (a notification is an
 * exit, but the device may also poll), and its ring writes before our
 * reads. x86 keeps stores in order, so a compiler barrier would do; the
 * fence costs nothing that matters here and says what is meant. */
static inline void wmb(void)
{
  __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void rmb(void)
{
  __atomic_thread_fence(__ATOMIC_ACQUIRE);
}

static inline void mb(void)
{
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* ---- registers and config space ---- */

uint32_t virtio_read(const struct virtio *d, uint32_t reg)
{
  return mmio_read32(d->base + reg);
}

void virtio_write(const struct virtio *d, uint32_t reg, uint32_t v)
{
  mmio_write32(d->base + reg, v);
}

uint32_t virtio_status(const struct virtio *d)
{
  return virtio_read(d, VIRTIO_MMIO_STATUS);
}

static void add_status(struct virtio *d, uint32_t bits)
{
  virtio_write(d, VIRTIO_MMIO_STATUS, virtio_status(d) | bits);
}

uint8_t virtio_config8(const struct virtio *d, uint32_t offset)
{
  return mmio_read8(d->base + VIRTIO_MMIO_CONFIG + offset);
}

uint16_t virtio_config16(const struct virtio *d, uint32_t offset)
{
  return mmio_read16(d->base + VIRTIO_MMIO_CONFIG + offset);
}

uint32_t virtio_config32(const struct virtio *d, uint32_t offset)
{
  return mmio_read32(d->base + VIRTIO_MMIO_CONFIG + offset);
}

/* Two halves, read again while the device changed its config meanwhile
 * (spec 4.2.2.2: the generation counter). */
uint64_t virtio_config64(const struct virtio *d, uint32_t offset)
{
  uint32_t gen, lo, hi;
  do {
    gen = virtio_read(d, VIRTIO_MMIO_CONFIG_GENERATION);
    lo = virtio_config32(d, offset);
    hi = virtio_config32(d, offset + 4);
  } while (virtio_read(d, VIRTIO_MMIO_CONFIG_GENERATION) != gen);
  return (uint64_t)hi << 32 | lo;
}

/* ---- bringing a device up (spec 3.1.1) ---- */

int virtio_probe(struct virtio *d, uintptr_t base, uint32_t device_id)
{
  memset(d, 0, sizeof *d);
  d->base = base;
  if (virtio_read(d, VIRTIO_MMIO_MAGIC) != VIRTIO_MMIO_MAGIC_VALUE ||
      virtio_read(d, VIRTIO_MMIO_VERSION) != 2)
    return VIRTIO_ENODEV;
  d->device_id = virtio_read(d, VIRTIO_MMIO_DEVICE_ID);
  if (d->device_id == 0 || (device_id != 0 && d->device_id != device_id))
    return VIRTIO_ENODEV;
  return 0;
}

void virtio_reset(struct virtio *d)
{
  virtio_write(d, VIRTIO_MMIO_STATUS, 0);
  d->features = 0;
}

int virtio_init(struct virtio *d, uint64_t wanted)
{
  virtio_reset(d);
  add_status(d, VIRTIO_STATUS_ACKNOWLEDGE);
  add_status(d, VIRTIO_STATUS_DRIVER);

  virtio_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  uint64_t lo = virtio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
  virtio_write(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  uint64_t hi = virtio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
  d->device_features = hi << 32 | lo;
  if (!(d->device_features & VIRTIO_F(VIRTIO_F_VERSION_1)))
    goto failed;

  d->features = (wanted | VIRTIO_F(VIRTIO_F_VERSION_1)) & d->device_features;
  virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)d->features);
  virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  virtio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
  add_status(d, VIRTIO_STATUS_FEATURES_OK);
  if (!(virtio_status(d) & VIRTIO_STATUS_FEATURES_OK))
    goto failed;
  return 0;

failed:
  add_status(d, VIRTIO_STATUS_FAILED);
  d->features = 0;
  return VIRTIO_EFEATURES;
}

int virtio_queue_init(struct virtio *d, struct vq *q, uint16_t index, uint16_t num)
{
  if (num == 0 || num > VQ_MAX || (num & (num - 1)) != 0)
    return VIRTIO_EQUEUE;
  virtio_write(d, VIRTIO_MMIO_QUEUE_SEL, index);
  if (virtio_read(d, VIRTIO_MMIO_QUEUE_READY) != 0)
    return VIRTIO_EQUEUE;
  uint32_t max = virtio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
  if (max == 0 || num > max)
    return VIRTIO_EQUEUE;

  memset(&q->avail, 0, sizeof q->avail);
  memset(&q->used, 0, sizeof q->used);
  q->dev = d;
  q->index = index;
  q->num = num;
  q->free_head = 0;
  q->free = num;
  q->avail_idx = 0;
  q->last_used = 0;
  q->indirect_busy = 0;
  memset(q->chain_len, 0, sizeof q->chain_len);
  /* Ask for an interrupt at every used buffer: we poll, but the device's
   * interrupt bookkeeping gets exercised. */
  *vq_used_event(q) = 0;

  uint64_t desc = (uintptr_t)q->desc, avail = (uintptr_t)&q->avail, used = (uintptr_t)&q->used;
  virtio_write(d, VIRTIO_MMIO_QUEUE_NUM, num);
  virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
  virtio_write(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
  virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)avail);
  virtio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(avail >> 32));
  virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)used);
  virtio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(used >> 32));
  virtio_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
  if (virtio_read(d, VIRTIO_MMIO_QUEUE_READY) != 1)
    return VIRTIO_EQUEUE;
  return 0;
}

int virtio_driver_ok(struct virtio *d)
{
  add_status(d, VIRTIO_STATUS_DRIVER_OK);
  uint32_t s = virtio_status(d);
  if (!(s & VIRTIO_STATUS_DRIVER_OK) || (s & VIRTIO_STATUS_NEEDS_RESET))
    return VQ_ENEEDS_RESET;
  return 0;
}

uint32_t virtio_ack_interrupts(const struct virtio *d)
{
  uint32_t isr = virtio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
  if (isr != 0)
    virtio_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
  return isr;
}

/* ---- requests ---- */

static void fill(struct vq_desc *desc, const struct vq_buf *b, uint16_t next, int last)
{
  desc->addr = b->addr;
  desc->len = b->len;
  desc->flags = (uint16_t)((b->writable ? VQ_DESC_F_WRITE : 0) | (last ? 0 : VQ_DESC_F_NEXT));
  desc->next = last ? 0 : next;
}

int vq_submit(struct vq *q, const struct vq_buf *bufs, int n, int flags)
{
  if (n <= 0)
    return VIRTIO_EINVAL;
  uint16_t head = q->free_head;
  uint16_t mask = (uint16_t)(q->num - 1);
  if (flags & VQ_INDIRECT) {
    if (n > VQ_INDIRECT_MAX)
      return VIRTIO_EINVAL;
    if (q->free < 1 || q->indirect_busy)
      return VQ_ENOSPC;
    for (int i = 0; i < n; i++)
      fill(&q->indirect[i], &bufs[i], (uint16_t)(i + 1), i == n - 1);
    q->desc[head].addr = (uintptr_t)q->indirect;
    q->desc[head].len = (uint32_t)(n * sizeof(struct vq_desc));
    q->desc[head].flags = VQ_DESC_F_INDIRECT;
    q->desc[head].next = 0;
    q->indirect_busy = 1;
    q->chain_len[head] = 1;
  } else {
    if (n > q->free)
      return VQ_ENOSPC;
    /* Descriptors are handed out round robin: with one chain in flight at
     * a time, or chains completed in order, the next ones are free. */
    uint16_t i = head;
    for (int k = 0; k < n; k++) {
      uint16_t next = (uint16_t)((i + 1) & mask);
      fill(&q->desc[i], &bufs[k], next, k == n - 1);
      i = next;
    }
    q->chain_len[head] = (uint16_t)n;
  }
  q->free_head = (uint16_t)((head + q->chain_len[head]) & mask);
  q->free = (uint16_t)(q->free - q->chain_len[head]);
  vq_publish(q, head);
  return head;
}

void vq_publish(struct vq *q, uint16_t head)
{
  q->avail.ring[q->avail_idx & (q->num - 1)] = head;
  /* The descriptors and the ring entry before the index that offers them. */
  wmb();
  q->avail_idx++;
  *(volatile uint16_t *)&q->avail.idx = q->avail_idx;
}

void vq_notify(struct vq *q)
{
  mb();
  virtio_write(q->dev, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

void vq_kick(struct vq *q, uint16_t old)
{
  /* The index store before the read of the device's wish (spec 2.7.10). */
  mb();
  if (q->dev->features & VIRTIO_F(VIRTIO_F_EVENT_IDX)) {
    uint16_t event = *vq_avail_event(q), now = q->avail_idx;
    /* Notify when `event` lies in [old, now): the new entries include the
     * one the device asked to hear about. */
    if ((uint16_t)(now - event - 1) >= (uint16_t)(now - old))
      return;
  } else if (*(volatile uint16_t *)&q->used.flags & 1) {
    return; /* VIRTQ_USED_F_NO_NOTIFY */
  }
  virtio_write(q->dev, VIRTIO_MMIO_QUEUE_NOTIFY, q->index);
}

static int vq_take(struct vq *q, uint32_t *len);

int vq_wait(struct vq *q, uint32_t *len)
{
  unsigned long limit = q->dev->poll_limit ? q->dev->poll_limit : POLL_DEFAULT;
  for (unsigned long round = 0;; round++) {
    uint16_t used = *(volatile uint16_t *)&q->used.idx;
    if (used != q->last_used)
      break;
    /* Nothing yet: has the device given up on us? */
    if (virtio_status(q->dev) & VIRTIO_STATUS_NEEDS_RESET)
      return VQ_ENEEDS_RESET;
    if (round == limit)
      return VQ_ETIMEOUT;
    cpu_relax();
  }
  return vq_take(q, len);
}

/* The next used entry, which is there: its id, *len its length. */
static int vq_take(struct vq *q, uint32_t *len)
{
  rmb();
  const volatile struct vq_used_elem *e = &q->used.ring[q->last_used & (q->num - 1)];
  uint32_t id = e->id;
  *len = e->len;
  q->last_used++;
  /* The next interrupt, were we to take them: at the next used entry. */
  *vq_used_event(q) = q->last_used;
  if (id < q->num && q->chain_len[id] != 0) {
    if (q->desc[id].flags & VQ_DESC_F_INDIRECT)
      q->indirect_busy = 0;
    q->free = (uint16_t)(q->free + q->chain_len[id]);
    q->chain_len[id] = 0;
  }
  return (int)id;
}

int64_t vq_transfer(struct vq *q, const struct vq_buf *bufs, int n, int flags)
{
  uint16_t old = q->avail_idx;
  int head = vq_submit(q, bufs, n, flags);
  if (head < 0)
    return head;
  vq_kick(q, old);
  uint32_t len;
  int id = q->dev->irq_waits ? vq_wait_irq(q, &len) : vq_wait(q, &len);
  if (id < 0)
    return id;
  if (id != head)
    return VIRTIO_EINVAL; /* one request at a time: it must be ours */
  return len;
}

/* ---- waiting for interrupts ---- */

uint32_t virtio_interrupt(struct virtio *d)
{
  uint32_t isr = virtio_ack_interrupts(d);
  d->interrupts++;
  d->isr_seen |= isr;
  return isr;
}

#ifdef __x86_64__
int vq_wait_irq(struct vq *q, uint32_t *len)
{
  for (unsigned long round = 0;; round++) {
    uint16_t used = *(volatile uint16_t *)&q->used.idx;
    if (used != q->last_used)
      break;
    if (round > 0 && (virtio_status(q->dev) & VIRTIO_STATUS_NEEDS_RESET))
      return VQ_ENEEDS_RESET;
    __asm__ volatile("sti; hlt; cli" : : : "memory");
  }
  return vq_take(q, len);
}
#else
int vq_wait_irq(struct vq *q, uint32_t *len)
{
  return vq_wait(q, len); /* no interrupts in 32-bit guests: it polls */
}
#endif
