/* The virtqueue walker against a driver that breaks every rule: rings and
 * descriptors are written by hand into a guest memory region (no KVM). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "../../src/err.h"
#include "../../src/mem.h"
#include "../../src/virtq.h"
#include "tap.h"

#define MEM_SIZE 0x100000
#define QSIZE 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000

static uint8_t *ram;
static struct mem mem;
static struct virtq q;
static char err[ERR_LEN];

static void put_desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
  struct virtq_desc d = { addr, len, flags, next };
  memcpy(ram + DESC + 16 * i, &d, sizeof d);
}

/* Offers descriptor `head` in the next available slot. */
static void offer(uint16_t head)
{
  uint16_t idx;
  memcpy(&idx, ram + AVAIL + 2, 2);
  memcpy(ram + AVAIL + 4 + 2 * (idx % QSIZE), &head, 2);
  idx++;
  memcpy(ram + AVAIL + 2, &idx, 2);
}

static void set_avail_idx(uint16_t idx)
{
  memcpy(ram + AVAIL + 2, &idx, 2);
}

/* A fresh queue over fresh rings. */
static void fresh(bool indirect, bool event_idx)
{
  memset(ram, 0, 0x10000);
  virtq_reset(&q);
  q.indirect = indirect;
  q.event_idx = event_idx;
  if (virtq_setup(&q, &mem, QSIZE, DESC, AVAIL, USED, err) < 0) {
    printf("Bail out! %s\n", err);
    exit(1);
  }
}

static struct virtq_chain chain;

static int pop(void)
{
  err[0] = '\0';
  return virtq_pop(&q, &chain, err);
}

int main(void)
{
  ram = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  mem_init(&mem, 8);
  mem.regions = calloc(1, sizeof *mem.regions);
  mem.regions[0] = (struct mem_region){ .gpa = 0, .size = MEM_SIZE, .host = ram, .name = "ram" };
  mem.count = mem.cap = 1;

  CHECK(virtq_setup(&q, &mem, 6, DESC, AVAIL, USED, err) < 0 && CONTAINS(err, "not a power of two"),
        "a queue size of 6 is refused");
  CHECK(virtq_setup(&q, &mem, QSIZE, DESC + 8, AVAIL, USED, err) < 0 && CONTAINS(err, "misaligned"),
        "a misaligned descriptor table is refused");
  CHECK(virtq_setup(&q, &mem, QSIZE, DESC, MEM_SIZE - 4, USED, err) < 0 &&
        CONTAINS(err, "outside guest memory"), "a ring running past guest memory is refused");
  CHECK(virtq_setup(&q, &mem, QSIZE, DESC, AVAIL, UINT64_MAX - 7, err) < 0,
        "a ring address that wraps is refused");

  fresh(false, false);
  CHECK(pop() == 0, "an empty queue has nothing to pop");

  /* A good chain: 4 readable bytes, then 8 writable. */
  memcpy(ram + 0x5000, "ping", 4);
  put_desc(0, 0x5000, 4, VIRTQ_DESC_F_NEXT, 1);
  put_desc(1, 0x6000, 8, VIRTQ_DESC_F_WRITE, 0);
  offer(0);
  CHECK(pop() == 1 && chain.head == 0 && chain.count == 2 && chain.readable == 4 &&
        chain.writable == 8, "a two-buffer chain pops with its sizes");
  char buf[16] = { 0 };
  CHECK(virtq_read(&chain, 0, buf, sizeof buf) == 4 && memcmp(buf, "ping", 4) == 0,
        "the readable part reads back, short at its end");
  CHECK(virtq_write(&chain, 2, "abcdefghij", 10) == 6 && memcmp(ram + 0x6002, "abcdef", 6) == 0,
        "writes stop at the end of the writable part");
  virtq_push(&q, chain.head, 8);
  uint16_t used_idx;
  uint32_t used_id, used_len;
  memcpy(&used_idx, ram + USED + 2, 2);
  memcpy(&used_id, ram + USED + 4, 4);
  memcpy(&used_len, ram + USED + 8, 4);
  CHECK(used_idx == 1 && used_id == 0 && used_len == 8, "push fills the used ring and its index");
  CHECK(virtq_should_notify(&q), "the driver is notified without NO_INTERRUPT");
  CHECK(!virtq_should_notify(&q), "but not twice for the same entries");

  fresh(false, false);
  put_desc(0, MEM_SIZE - 2, 4, 0, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "outside guest memory"), "a buffer past guest memory is refused");

  fresh(false, false);
  put_desc(0, UINT64_MAX - 1, 4, 0, 0);
  offer(0);
  CHECK(pop() < 0, "a buffer address that wraps is refused");

  fresh(false, false);
  put_desc(0, 0x5000, 0xffffffff, 0, 0);
  offer(0);
  CHECK(pop() < 0, "a 4 GiB buffer is refused");

  fresh(false, false);
  put_desc(0, 0x5000, 4, VIRTQ_DESC_F_NEXT, 1);
  put_desc(1, 0x5000, 4, VIRTQ_DESC_F_NEXT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "loops"), "a chain that loops is refused");

  fresh(false, false);
  put_desc(0, 0x5000, 4, VIRTQ_DESC_F_NEXT, 200);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "links to descriptor 200"), "a link past the table is refused");

  fresh(false, false);
  offer(77);
  CHECK(pop() < 0 && CONTAINS(err, "names descriptor 77"), "an available entry past the table is refused");

  fresh(false, false);
  set_avail_idx(1000);
  CHECK(pop() < 0 && CONTAINS(err, "ahead of the device"), "an index far ahead of the queue is refused");

  fresh(false, false);
  put_desc(0, 0x6000, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
  put_desc(1, 0x5000, 4, 0, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "readable buffer after a writable one"),
        "a readable buffer after a writable one is refused");

  fresh(false, false);
  put_desc(0, 0x5000, 0, VIRTQ_DESC_F_NEXT, 1);
  put_desc(1, 0x5000, 4, 0, 0);
  offer(0);
  CHECK(pop() == 1 && chain.count == 1 && chain.readable == 4, "zero-length buffers are skipped");

  /* Indirect tables. */
  fresh(false, false);
  put_desc(0, 0x7000, 32, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "not negotiated"), "an indirect table without the feature is refused");

  fresh(true, false);
  struct virtq_desc ind[2] = { { 0x5000, 4, VIRTQ_DESC_F_NEXT, 1 }, { 0x6000, 16, VIRTQ_DESC_F_WRITE, 0 } };
  memcpy(ram + 0x7000, ind, sizeof ind);
  put_desc(0, 0x7000, 32, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() == 1 && chain.count == 2 && chain.writable == 16, "an indirect table is walked");

  fresh(true, false);
  struct virtq_desc loop[2] = { { 0x5000, 4, VIRTQ_DESC_F_NEXT, 1 }, { 0x5000, 4, VIRTQ_DESC_F_NEXT, 0 } };
  memcpy(ram + 0x7000, loop, sizeof loop);
  put_desc(0, 0x7000, 32, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "links loop"), "an indirect table that loops is refused");

  fresh(true, false);
  struct virtq_desc nested[1] = { { 0x7100, 16, VIRTQ_DESC_F_INDIRECT, 0 } };
  memcpy(ram + 0x7000, nested, sizeof nested);
  put_desc(0, 0x7000, 16, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "points at another"), "a nested indirect table is refused");

  fresh(true, false);
  put_desc(0, 0x7000, 20, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "not a multiple of 16"), "an indirect length of 20 is refused");

  fresh(true, false);
  put_desc(0, MEM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "outside guest memory"), "an indirect table past memory is refused");

  fresh(true, false);
  put_desc(0, 0x5000, 4, VIRTQ_DESC_F_NEXT, 1);
  put_desc(1, 0x7000, 16, VIRTQ_DESC_F_INDIRECT, 0);
  offer(0);
  CHECK(pop() < 0 && CONTAINS(err, "not the chain's only one"), "an indirect descriptor mid-chain is refused");

  /* Event index: notify only when the driver's used_event is crossed. */
  fresh(false, true);
  uint16_t used_event = 2;
  memcpy(ram + AVAIL + 4 + 2 * QSIZE, &used_event, 2);
  put_desc(0, 0x5000, 4, 0, 0);
  virtq_push(&q, 0, 0);
  CHECK(!virtq_should_notify(&q), "event index: no interrupt before used_event is passed");
  virtq_push(&q, 0, 0);
  virtq_push(&q, 0, 0);
  CHECK(virtq_should_notify(&q), "event index: an interrupt once it is passed");

  /* Event index, the driver's side: avail_event asks for the next entry
   * once the queue has run dry (a driver that honours it never notifies
   * again if it stays 0). */
  fresh(false, true);
  put_desc(0, 0x5000, 4, 0, 0);
  offer(0);
  offer(0);
  uint16_t avail_event;
  CHECK(pop() == 1 && pop() == 1 && pop() == 0, "event index: two chains, then none");
  memcpy(&avail_event, ram + USED + 4 + 8 * QSIZE, 2);
  CHECK(avail_event == 2, "event index: an empty queue asks to hear of entry 2 (got %u)",
        avail_event);

  fresh(false, false);
  uint16_t no_interrupt = VIRTQ_AVAIL_F_NO_INTERRUPT;
  memcpy(ram + AVAIL, &no_interrupt, 2);
  virtq_push(&q, 0, 0);
  CHECK(!virtq_should_notify(&q), "NO_INTERRUPT suppresses the interrupt");

  /* The used ring wraps with the index. */
  fresh(false, false);
  for (int i = 0; i < QSIZE + 3; i++)
    virtq_push(&q, (uint16_t)(i % QSIZE), (uint32_t)i);
  memcpy(&used_idx, ram + USED + 2, 2);
  memcpy(&used_len, ram + USED + 4 + 8 * 2 + 4, 4);
  CHECK(used_idx == QSIZE + 3 && used_len == QSIZE + 2, "the used ring wraps around");

  printf("1..%d\n", tap_count);
  return tap_failed != 0;
}
