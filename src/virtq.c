#include "virtq.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>

#include "err.h"

/* The rings are shared with a guest running on another CPU: every field is
 * read and written once, with the barriers the virtio spec asks for. */
static uint16_t load16(const void *p)
{
  return __atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED);
}

static void store16(void *p, uint16_t v)
{
  __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELAXED);
}

static void store32(void *p, uint32_t v)
{
  __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELAXED);
}

void virtq_reset(struct virtq *q)
{
  memset(q, 0, sizeof *q);
}

int virtq_setup(struct virtq *q, const struct mem *mem, uint16_t num, uint64_t desc,
                uint64_t avail, uint64_t used, char *err)
{
  if (num == 0 || (num & (num - 1)) != 0 || num > VIRTQ_MAX_SIZE)
    return errf(err, "queue size %u is not a power of two from 1 to %u", num, VIRTQ_MAX_SIZE);
  if (desc % 16 || avail % 2 || used % 4)
    return errf(err, "misaligned ring (descriptors 0x%llx, driver area 0x%llx, device area 0x%llx)",
                (unsigned long long)desc, (unsigned long long)avail, (unsigned long long)used);
  uint64_t desc_size = 16ull * num;
  uint64_t avail_size = 6 + 2ull * num;
  uint64_t used_size = 6 + 8ull * num;
  void *d = mem_ptr(mem, desc, desc_size);
  void *a = mem_ptr(mem, avail, avail_size);
  void *u = mem_ptr(mem, used, used_size);
  if (d == NULL || a == NULL || u == NULL)
    return errf(err, "a ring is outside guest memory (descriptors 0x%llx+0x%llx, driver area "
                "0x%llx+0x%llx, device area 0x%llx+0x%llx)",
                (unsigned long long)desc, (unsigned long long)desc_size,
                (unsigned long long)avail, (unsigned long long)avail_size,
                (unsigned long long)used, (unsigned long long)used_size);
  /* The device writes the used ring: never into the guest's ROM. */
  const struct mem_region *r = mem_find(mem, used);
  if (r->flags & MEM_READONLY)
    return errf(err, "the device area 0x%llx is in read-only memory '%s'",
                (unsigned long long)used, r->name);
  bool event_idx = q->event_idx, indirect = q->indirect;
  virtq_reset(q);
  q->num = num;
  q->event_idx = event_idx;
  q->indirect = indirect;
  q->desc = d;
  q->avail = a;
  q->used = u;
  q->mem = mem;
  return 0;
}

static void read_desc(const struct virtq_desc *table, uint16_t i, struct virtq_desc *out)
{
  /* A copy: the guest may rewrite the descriptor while we look at it. */
  const volatile struct virtq_desc *d = &table[i];
  out->addr = d->addr;
  out->len = d->len;
  out->flags = d->flags;
  out->next = d->next;
}

/* Adds one buffer to the chain after checking it. */
static int add_buf(struct virtq *q, struct virtq_chain *c, const struct virtq_desc *d, char *err)
{
  bool write = d->flags & VIRTQ_DESC_F_WRITE;
  if (!write && c->writable > 0)
    return errf(err, "descriptor chain %u has a device-readable buffer after a writable one",
                c->head);
  if (d->len == 0)
    return 0; /* nothing to read or write: skip it */
  if (c->count == VIRTQ_MAX_BUFS)
    return errf(err, "descriptor chain %u has more than %d buffers", c->head, VIRTQ_MAX_BUFS);
  uint8_t *host = mem_ptr(q->mem, d->addr, d->len);
  if (host == NULL)
    return errf(err, "descriptor chain %u has a buffer outside guest memory (0x%llx+0x%x)",
                c->head, (unsigned long long)d->addr, d->len);
  /* The host can write a read-only region; the guest's device must not. */
  const struct mem_region *r = mem_find(q->mem, d->addr);
  if (write && (r->flags & MEM_READONLY))
    return errf(err, "descriptor chain %u has a device-writable buffer in read-only memory '%s' "
                "(0x%llx+0x%x)", c->head, r->name, (unsigned long long)d->addr, d->len);
  c->bufs[c->count++] = (struct virtq_buf){ host, d->len, write };
  if (write)
    c->writable += d->len;
  else
    c->readable += d->len;
  return 0;
}

/* Walks an indirect table of n descriptors. */
static int walk_indirect(struct virtq *q, struct virtq_chain *c, const struct virtq_desc *d,
                         char *err)
{
  if (!q->indirect)
    return errf(err, "descriptor chain %u uses an indirect table, which was not negotiated",
                c->head);
  if (d->flags & VIRTQ_DESC_F_NEXT)
    return errf(err, "descriptor chain %u: an indirect descriptor also has NEXT", c->head);
  if (d->len == 0 || d->len % 16 || d->len / 16 > VIRTQ_MAX_BUFS)
    return errf(err, "descriptor chain %u: indirect table length %u is not a multiple of 16 "
                "from 16 to %d", c->head, d->len, VIRTQ_MAX_BUFS * 16);
  const struct virtq_desc *table = mem_ptr(q->mem, d->addr, d->len);
  if (table == NULL || d->addr % 16)
    return errf(err, "descriptor chain %u: indirect table at 0x%llx+0x%x is outside guest "
                "memory or misaligned", c->head, (unsigned long long)d->addr, d->len);
  uint32_t n = d->len / 16;
  uint32_t i = 0;
  for (uint32_t steps = 0;; steps++) {
    /* More steps than entries means the links loop. */
    if (steps == n)
      return errf(err, "descriptor chain %u: the indirect table's links loop", c->head);
    struct virtq_desc e;
    read_desc(table, (uint16_t)i, &e);
    if (e.flags & VIRTQ_DESC_F_INDIRECT)
      return errf(err, "descriptor chain %u: an indirect table points at another", c->head);
    if (add_buf(q, c, &e, err) < 0)
      return -1;
    if (!(e.flags & VIRTQ_DESC_F_NEXT))
      return 0;
    if (e.next >= n)
      return errf(err, "descriptor chain %u: indirect link %u is past the table's %u entries",
                  c->head, e.next, n);
    i = e.next;
  }
}

int virtq_pop(struct virtq *q, struct virtq_chain *c, char *err)
{
  if (q->num == 0)
    return errf(err, "the queue is not set up");
  /* With VIRTIO_F_EVENT_IDX the driver notifies only when it makes
   * available the entry our avail_event names (spec 2.7.10): ask for the
   * first one not taken yet, before looking, so an entry added meanwhile is
   * either seen below or notified. Left at 0, it would silence the driver
   * after its first request. */
  if (q->event_idx) {
    store16(q->used + 4 + 8 * (size_t)q->num, q->last_avail);
    atomic_thread_fence(memory_order_seq_cst);
  }
  uint16_t avail_idx = load16(&q->avail[1]);
  uint16_t pending = (uint16_t)(avail_idx - q->last_avail);
  if (pending == 0)
    return 0;
  if (pending > q->num)
    return errf(err, "the driver's available index %u is %u entries ahead of the device, more "
                "than the queue's %u", avail_idx, pending, q->num);
  /* The ring entry and the descriptors it names are read after the index. */
  atomic_thread_fence(memory_order_acquire);
  uint16_t head = load16(&q->avail[2 + q->last_avail % q->num]);
  if (head >= q->num)
    return errf(err, "available ring entry %u names descriptor %u of %u", q->last_avail, head,
                q->num);
  q->last_avail++;

  c->head = head;
  c->count = 0;
  c->readable = c->writable = 0;
  uint16_t i = head;
  for (uint32_t steps = 0;; steps++) {
    if (steps == q->num)
      return errf(err, "descriptor chain %u loops", head);
    struct virtq_desc d;
    read_desc(q->desc, i, &d);
    if (d.flags & VIRTQ_DESC_F_INDIRECT) {
      if (steps > 0)
        return errf(err, "descriptor chain %u: an indirect descriptor is not the chain's only one",
                    head);
      return walk_indirect(q, c, &d, err) < 0 ? -1 : 1;
    }
    if (add_buf(q, c, &d, err) < 0)
      return -1;
    if (!(d.flags & VIRTQ_DESC_F_NEXT))
      return 1;
    if (d.next >= q->num)
      return errf(err, "descriptor chain %u links to descriptor %u of %u", head, d.next, q->num);
    i = d.next;
  }
}

void virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
  uint8_t *elem = q->used + 4 + 8 * (size_t)(q->used_idx % q->num);
  store32(elem, head);
  store32(elem + 4, written);
  /* The entry is visible before the index that publishes it. */
  atomic_thread_fence(memory_order_release);
  q->used_idx++;
  store16(q->used + 2, q->used_idx);
}

bool virtq_should_notify(struct virtq *q)
{
  /* The driver's event index or flags are read after the used index. */
  atomic_thread_fence(memory_order_seq_cst);
  uint16_t old = q->signalled, now = q->used_idx;
  q->signalled = now;
  if (old == now)
    return false;
  if (q->event_idx) {
    uint16_t event = load16(&q->avail[2 + q->num]);
    /* Notify when `event` lies in (old, now]: the spec's vring_need_event. */
    return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
  }
  return !(load16(&q->avail[0]) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

static size_t copy(const struct virtq_buf *bufs, unsigned count, bool writable, uint64_t offset,
                   uint8_t *host, size_t len, bool to_guest)
{
  size_t done = 0;
  for (unsigned i = 0; i < count && done < len; i++) {
    const struct virtq_buf *b = &bufs[i];
    if (b->write != writable)
      continue;
    if (offset >= b->len) {
      offset -= b->len;
      continue;
    }
    size_t n = b->len - offset;
    if (n > len - done)
      n = len - done;
    if (to_guest)
      memcpy(b->host + offset, host + done, n);
    else
      memcpy(host + done, b->host + offset, n);
    done += n;
    offset = 0;
  }
  return done;
}

int virtq_iov(const struct virtq_chain *c, bool writable, uint64_t skip, uint64_t len,
              struct iovec *iov)
{
  int n = 0;
  for (unsigned i = 0; i < c->count && len > 0; i++) {
    const struct virtq_buf *b = &c->bufs[i];
    if (b->write != writable)
      continue;
    if (skip >= b->len) {
      skip -= b->len;
      continue;
    }
    uint64_t take = b->len - skip;
    if (take > len)
      take = len;
    iov[n].iov_base = b->host + skip;
    iov[n].iov_len = (size_t)take;
    n++;
    len -= take;
    skip = 0;
  }
  return n;
}

size_t virtq_read(const struct virtq_chain *c, uint64_t offset, void *dst, size_t len)
{
  return copy(c->bufs, c->count, false, offset, dst, len, false);
}

size_t virtq_write(const struct virtq_chain *c, uint64_t offset, const void *src, size_t len)
{
  return copy(c->bufs, c->count, true, offset, (uint8_t *)(uintptr_t)src, len, true);
}

size_t virtq_bufs_read(const struct virtq_buf *bufs, unsigned count, uint64_t offset, void *dst,
                       size_t len)
{
  return copy(bufs, count, false, offset, dst, len, false);
}

size_t virtq_bufs_write(const struct virtq_buf *bufs, unsigned count, uint64_t offset,
                        const void *src, size_t len)
{
  return copy(bufs, count, true, offset, (uint8_t *)(uintptr_t)src, len, true);
}
