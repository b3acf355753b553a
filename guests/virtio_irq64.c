/* virtio_irq64: virtio-blk requests that wait for the completion
 * interrupt (<irq.h>, vq_wait_irq) instead of polling, and a stream of
 * requests the host may stop and resume at any point, in 64-bit long mode
 * on a VM with the in-kernel irqchip (tests/virtio_fastpath_spec.lua).
 *
 * Parameters (hypercall 0x30, vtest.h): 0 the mode, 1 the device's base
 * (0: 0xD0000000), 2 the features (vtest.h), 5 the interrupt line, or
 * 0xff to poll instead (the stream mode without an irqchip), 6 the
 * stream's request count.
 *
 * Modes:
 *   0 interrupts: writes the pattern (vtest.h) to sectors 0-7, FLUSH, reads
 *     them back and compares, every request waiting for its interrupt;
 *     checks that the handler saw used-buffer interrupts (the host counts
 *     how many the device raised)
 *   1 ACK race: request A completes while interrupts are off; once they
 *     are on, the handler acknowledges A's interrupt and, still inside the
 *     handler (before its EOI), makes request B and waits for it by
 *     polling. B's interrupt arrives while A's is in service and must be
 *     delivered after the EOI: the handler must run twice.
 *   2 stream: `count` writes of 4 KiB, sector 8 * i, each holding the
 *     pattern of its sectors, then `count` reads of them, compared; after
 *     each notification, before waiting, it makes hypercall 0x32 with the
 *     request's number (the host may stop the VM there: the notification
 *     is then still on its way to the device).
 *
 * Exits 0 when everything held, else with the number of the first failed
 * check (vtest.h). */
#include <irq.h>

#include "vtest.h"

enum { INTERRUPTS = 0, ACK_RACE = 1, STREAM = 2 };
enum { P_IRQ = 5, P_COUNT = 6 };
#define NO_IRQ 0xff
#define HC_PROGRESS 0x32
#define QUEUE_SIZE 64
#define BLOCK 4096
#define SECTORS_PER_BLOCK (BLOCK / VIRTIO_BLK_SECTOR)
/* How long the ACK race waits for the second interrupt: guest loop rounds
 * (about a microsecond each on a slow machine, far less elsewhere). */
#define RACE_ROUNDS 3000000ul

static struct virtio dev;
static struct vq q;
static struct blk_io io, io_b;
static int flags;
static uint8_t data[BLOCK] __attribute__((aligned(4096)));
static uint8_t back[BLOCK] __attribute__((aligned(4096)));

/* Handler state for the ACK race. */
static volatile int race_armed;
static volatile int64_t race_b;

static void on_interrupt(void *arg)
{
  virtio_interrupt(arg);
  if (!race_armed)
    return;
  /* Inside the handler, before the EOI: request B, waited for by polling. */
  race_armed = 0;
  memset(back, 0xee, VIRTIO_BLK_SECTOR);
  dev.irq_waits = 0;
  race_b = blk_rw(&q, &io_b, VIRTIO_BLK_T_IN, 1, back, 1, flags);
}

static int bring_up(uint64_t want, unsigned long line)
{
  uintptr_t base = vtest_param(VTEST_P_BASE);
  if (base == 0)
    base = VTEST_BLK_BASE;
  int rc = virtio_probe(&dev, base, VIRTIO_ID_BLOCK);
  if (!check(rc == 0, "no virtio-blk device at 0x%lx", (unsigned long)base))
    return 0;
  rc = virtio_init(&dev, want | VIRTIO_F(VIRTIO_BLK_F_FLUSH));
  if (rc == 0)
    rc = virtio_queue_init(&dev, &q, 0, QUEUE_SIZE);
  if (line != NO_IRQ) {
    irq_init();
    check(irq_route((unsigned)line, on_interrupt, &dev) == 0, "line %lu cannot be routed", line);
    dev.irq_waits = 1;
  }
  if (rc == 0)
    rc = virtio_driver_ok(&dev);
  flags = dev.features & VIRTIO_F(VIRTIO_F_INDIRECT_DESC) ? VQ_INDIRECT : 0;
  return check(rc == 0, "bringing the device up: %s", virtio_strerror(rc));
}

static void expect_ok(int64_t used, int64_t want_len, const char *what, uint64_t sector)
{
  if (used < 0) {
    check(0, "%s of sector %llu: %s", what, (unsigned long long)sector,
          virtio_strerror((int)used));
    return;
  }
  check(io.status == VIRTIO_BLK_S_OK, "%s of sector %llu: status %u", what,
        (unsigned long long)sector, io.status);
  check(used == want_len, "%s of sector %llu: used length %lld, expected %lld", what,
        (unsigned long long)sector, (long long)used, (long long)want_len);
}

static void interrupts(void)
{
  unsigned long before = dev.interrupts;
  vtest_fill(data, 0, SECTORS_PER_BLOCK);
  expect_ok(blk_rw(&q, &io, VIRTIO_BLK_T_OUT, 0, data, SECTORS_PER_BLOCK, flags), 1, "write", 0);
  expect_ok(blk_request(&q, &io, VIRTIO_BLK_T_FLUSH, 0, NULL, NULL, 0, flags), 1, "flush", 0);
  memset(back, 0xee, sizeof back);
  expect_ok(blk_rw(&q, &io, VIRTIO_BLK_T_IN, 0, back, SECTORS_PER_BLOCK, flags), BLOCK + 1,
            "read", 0);
  check(vtest_matches(back, 0, SECTORS_PER_BLOCK), "sectors 0-7 do not hold the pattern");
  /* A device that completes a request before the driver looks (one that
   * serves the notification in its exit) leaves the interrupt pending
   * until the next wait: take it. Otherwise each wait slept until its
   * request's interrupt. */
  if (dev.interrupts == before)
    irq_wait();
  printf("3 requests, %lu interrupts taken, status bits seen 0x%x\n", dev.interrupts - before,
         dev.isr_seen);
  check(dev.interrupts - before >= 1, "no interrupt for 3 requests");
  check(dev.isr_seen & VIRTIO_INT_USED, "no used-buffer interrupt was seen");
}

static void ack_race(void)
{
  /* A, with interrupts off and a polling wait: its interrupt stays
   * pending. */
  dev.irq_waits = 0;
  memset(back, 0xee, sizeof back);
  expect_ok(blk_rw(&q, &io, VIRTIO_BLK_T_IN, 0, back, 1, flags), VIRTIO_BLK_SECTOR + 1, "read A",
            0);
  race_armed = 1;
  unsigned long before = dev.interrupts;
  irq_enable();
  unsigned long round = 0;
  while (dev.interrupts - before < 2 && round < RACE_ROUNDS) {
    round++;
    __asm__ volatile("pause");
  }
  irq_disable();
  printf("ACK race: %lu interrupts after %lu rounds; B: %lld, status %u\n",
         dev.interrupts - before, round, (long long)race_b, io_b.status);
  check(!race_armed, "A's interrupt never came");
  check(race_b == VIRTIO_BLK_SECTOR + 1 && io_b.status == VIRTIO_BLK_S_OK,
        "request B inside the handler: %lld, status %u", (long long)race_b, io_b.status);
  check(vtest_matches(back, 1, 1), "request B read the wrong data");
  check(dev.interrupts - before == 2, "B's interrupt, raised while A's was in service, was %s",
        dev.interrupts - before < 2 ? "lost" : "taken more than once");
}

static void stream(unsigned long count)
{
  for (int pass = 0; pass < 2; pass++) {
    int write = pass == 0;
    for (unsigned long i = 0; i < count; i++) {
      uint64_t sector = SECTORS_PER_BLOCK * i;
      if (write)
        vtest_fill(data, sector, SECTORS_PER_BLOCK);
      else
        memset(back, 0xee, sizeof back);
      io.hdr = (struct virtio_blk_req){ write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, 0, sector };
      io.status = 0xee;
      struct vq_buf bufs[3] = {
        { (uintptr_t)&io.hdr, sizeof io.hdr, 0 },
        { (uintptr_t)(write ? data : back), BLOCK, !write },
        { (uintptr_t)&io.status, 1, 1 },
      };
      uint16_t old = q.avail_idx;
      int head = vq_submit(&q, bufs, 3, flags);
      if (!check(head >= 0, "submit: %s", virtio_strerror(head)))
        return;
      vq_kick(&q, old);
      hypercall1(HC_PROGRESS, (write ? 0 : count) + i);
      uint32_t len = 0;
      int id = dev.irq_waits ? vq_wait_irq(&q, &len) : vq_wait(&q, &len);
      check(id == head, "request %lu: the wait returned %d (%s), not %d", i, id,
            virtio_strerror(id), head);
      expect_ok(id < 0 ? (int64_t)id : (int64_t)len, write ? 1 : BLOCK + 1, write ? "write" : "read",
                sector);
      if (!write && !check(vtest_matches(back, sector, SECTORS_PER_BLOCK),
                           "block %lu (sector %llu) does not hold its pattern", i,
                           (unsigned long long)sector))
        return;
    }
    printf("stream: %lu %s of 4 KiB\n", count, write ? "writes" : "reads, compared");
  }
}

int main(void)
{
  unsigned long mode = vtest_param(VTEST_P_MODE);
  unsigned long line = vtest_param(P_IRQ);
  printf("virtio_irq64: mode %lu, %s\n", mode, line == NO_IRQ ? "polling" : "interrupts");
  if (!bring_up(vtest_features(), line))
    return vtest_result("virtio_irq64");
  if (mode == INTERRUPTS)
    interrupts();
  else if (mode == ACK_RACE)
    ack_race();
  else if (mode == STREAM)
    stream(vtest_param(P_COUNT));
  else
    check(0, "no mode %lu", mode);
  check(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  return vtest_result("virtio_irq64");
}
