/* libFuzzer harness for the split-virtqueue walker (src/virtq.c): the
 * input is a guest memory image plus a header that sets a queue up and a
 * list of device-side operations, run with the guest's memory changing in
 * between. Everything a guest controls is in the input. A finding is a
 * sanitizer report, a hang, or a broken invariant: every buffer of a chain
 * lies inside guest memory, the chain's sizes add up, and copies stay
 * within the chain.
 *
 * Input:
 *   u8  shape     bit 7 clear: 2^(bits 0-3) entries; set: bits 0-6 as the
 *                 size itself (mostly refused: not a power of two)
 *   u8  features  bit 0 INDIRECT_DESC, bit 1 EVENT_IDX
 *   u16 desc, avail, used   the rings' guest addresses
 *   u8  nops, then nops × { u8 op, u8 arg, u16 x, u16 y }
 *   the rest: guest memory (fuzz.h)
 *
 * Ops (op % 8): pop; push the last chain with x | y << 16 bytes written;
 * read y bytes at x of the readable part; write y bytes at x of the
 * writable part; should_notify; the driver stores y at guest address x
 * (16 bits, or 8 if arg is odd); set the queue up again; copy through
 * virtq_bufs_read/write as the Lua chains do. */
#include <stddef.h>
#include <stdint.h>

#include "../../src/err.h"
#include "../../src/virtq.h"
#include "fuzz.h"

#define SCRATCH 0x10000

static struct virtq_chain vq_chain;
static uint8_t vq_scratch[SCRATCH];

/* The chain virtq_pop returned: every buffer inside guest memory, sizes
 * that add up, readable buffers first. */
static void vq_check_chain(const struct fuzz_mem *fm, const struct virtq *q,
                           const struct virtq_chain *c)
{
  uint64_t readable = 0, writable = 0;
  FUZZ_ASSERT(c->head < q->num);
  FUZZ_ASSERT(c->count <= VIRTQ_MAX_BUFS);
  for (unsigned i = 0; i < c->count; i++) {
    const struct virtq_buf *b = &c->bufs[i];
    FUZZ_ASSERT(b->len > 0);
    FUZZ_ASSERT(fuzz_inside(fm, b->host, b->len));
    FUZZ_ASSERT(b->write || writable == 0);
    if (b->write)
      writable += b->len;
    else
      readable += b->len;
  }
  FUZZ_ASSERT(readable == c->readable && writable == c->writable);
}

static size_t vq_min(uint64_t a, uint64_t b)
{
  return (size_t)(a < b ? a : b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fuzz_in in = { data, size };
  uint8_t shape = fuzz_u8(&in);
  uint8_t features = fuzz_u8(&in);
  uint16_t num = shape & 0x80 ? (uint16_t)(shape & 0x7f) : (uint16_t)(1u << (shape & 15));
  uint64_t desc = fuzz_u16(&in), avail = fuzz_u16(&in), used = fuzz_u16(&in);
  uint8_t nops = fuzz_u8(&in);
  struct fuzz_in ops = { in.p, in.n < (size_t)nops * 6 ? in.n : (size_t)nops * 6 };
  in.p += ops.n;
  in.n -= ops.n;

  struct fuzz_mem fm;
  fuzz_mem_init(&fm, &in);
  struct virtq q;
  char err[ERR_LEN];
  virtq_reset(&q);
  q.indirect = features & 1;
  q.event_idx = features & 2;
  bool ready = virtq_setup(&q, &fm.mem, num, desc, avail, used, err) == 0;
  bool have_chain = false, pushable = false;

  while (ops.n > 0) {
    uint8_t op = fuzz_u8(&ops), arg = fuzz_u8(&ops);
    uint16_t x = fuzz_u16(&ops), y = fuzz_u16(&ops);
    switch (op % 8) {
    case 0: /* pop */
      if (!ready)
        break;
      err[0] = '\0';
      int rc = virtq_pop(&q, &vq_chain, err);
      FUZZ_ASSERT(rc >= -1 && rc <= 1);
      if (rc < 0)
        FUZZ_ASSERT(err[0] != '\0');
      have_chain = pushable = rc == 1;
      if (rc == 0 && q.event_idx) {
        /* Run dry with the event index: the device asks for the next entry
         * (else the driver stops notifying; found by the virtio-rng guest). */
        uint16_t avail_event;
        memcpy(&avail_event, q.used + 4 + 8 * (size_t)q.num, 2);
        FUZZ_ASSERT(avail_event == q.last_avail);
      }
      if (rc == 1) {
        vq_check_chain(&fm, &q, &vq_chain);
        /* Touch every byte: the sanitizer checks each buffer. */
        size_t n = vq_min(vq_chain.readable, SCRATCH);
        FUZZ_ASSERT(virtq_read(&vq_chain, 0, vq_scratch, n) == n);
        n = vq_min(vq_chain.writable, SCRATCH);
        memset(vq_scratch, 0xa5, n);
        FUZZ_ASSERT(virtq_write(&vq_chain, 0, vq_scratch, n) == n);
      }
      break;
    case 1: /* push: only a chain popped from this set-up, once, as devices do */
      if (ready && pushable) {
        virtq_push(&q, vq_chain.head, (uint32_t)x | (uint32_t)y << 16);
        pushable = false;
      }
      break;
    case 2: /* read */
      if (have_chain) {
        size_t n = virtq_read(&vq_chain, x, vq_scratch, y);
        FUZZ_ASSERT(n <= y && n == vq_min(x < vq_chain.readable ? vq_chain.readable - x : 0, y));
      }
      break;
    case 3: /* write */
      if (have_chain) {
        size_t n = virtq_write(&vq_chain, x, vq_scratch, y);
        FUZZ_ASSERT(n == vq_min(x < vq_chain.writable ? vq_chain.writable - x : 0, y));
      }
      break;
    case 4:
      if (ready)
        (void)virtq_should_notify(&q);
      break;
    case 5: /* the driver at work */
      fuzz_poke(&fm, x, y, arg & 1 ? 1 : 2);
      break;
    case 6: /* a reset and a new set-up of the same rings */
      virtq_reset(&q);
      q.indirect = arg & 1;
      q.event_idx = arg & 2;
      ready = virtq_setup(&q, &fm.mem, num, desc, avail, used, err) == 0;
      pushable = false;
      break;
    case 7: /* the copies Lua chains make over their trimmed buffer list */
      if (have_chain) {
        size_t n = arg & 1 ? virtq_bufs_write(vq_chain.bufs, vq_chain.count, x, vq_scratch, y)
                           : virtq_bufs_read(vq_chain.bufs, vq_chain.count, x, vq_scratch, y);
        FUZZ_ASSERT(n <= y);
      }
      break;
    }
  }
  fuzz_mem_free(&fm);
  return 0;
}
