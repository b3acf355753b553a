/* virtio_hostile64: a driver that breaks the virtio rules on purpose, one
 * case per run, against the virtio-blk device at 0xD0000000 (64-bit long
 * mode). The host (tests/virtio_spec.lua) answers hypercall 0x30 (vtest.h):
 * 0 the case number (the table at the end, from 1), 1 the device's base
 * (0: default), 3 the VM's memory size, 4 the address of a read-only page
 * (a ROM region, outside RAM); it attaches a disk of 128 sectors holding
 * the pattern of vtest.h.
 *
 * Each case does its wrong thing and checks what the device must do about
 * it (virtio 1.x and src/dev/virtio_mmio.c): fail the request with a status
 * byte, mark itself DEVICE_NEEDS_RESET and stop using the queue, or ignore
 * the access (reads give 0). A wait never spins for ever: it polls the used
 * ring a bounded number of times and reads the status each round, so a
 * device that gave up shows as NEEDS_RESET. Then the guest calls the
 * checkpoint hypercall (0x31: the host looks at dev:status() there), resets
 * the device, sets it up again and reads a sector: the device must work
 * again. Exits 0 when every check held, else with the number of the first
 * that failed (vtest.h); an unknown case number exits 254. */
#include "vtest.h"

#define QSIZE 16
#define PROBE_SECTOR 5     /* the sector every "does it still work" reads */
#define SPARE_SECTOR 3     /* written by nothing that works as it should */
#define ROM_SECTOR 4       /* written from ROM, which is allowed */
#define DISK_SECTORS 128
#define BAD_ADDR 0xdead00000000ull  /* far outside any test VM's memory */

static struct virtio dev;
static struct vq q;
static struct blk_io io;
static uint64_t mem_end;
static uint8_t buf[2 * VIRTIO_BLK_SECTOR] __attribute__((aligned(4096)));
/* An indirect table of our own, bigger than the driver's. */
static struct vq_desc table[520] __attribute__((aligned(16)));
static struct vq_desc table2[4] __attribute__((aligned(16)));

/* ---- helpers ---- */

static uint32_t status(void)
{
  return virtio_status(&dev);
}

static uint32_t reg(uint32_t r)
{
  return virtio_read(&dev, r);
}

static void set_reg(uint32_t r, uint32_t v)
{
  virtio_write(&dev, r, v);
}

/* Reset, negotiate `features`, queue 0 of `size`, DRIVER_OK. */
static int up_with(uint64_t features, uint16_t size)
{
  int rc = virtio_init(&dev, features);
  if (rc == 0)
    rc = virtio_queue_init(&dev, &q, 0, size);
  if (rc == 0)
    rc = virtio_driver_ok(&dev);
  check(rc == 0, "bringing the device up: %s", virtio_strerror(rc));
  return rc == 0;
}

static int up(void)
{
  return up_with(0, QSIZE);
}

static int up_indirect(void)
{
  return up_with(VIRTIO_F(VIRTIO_F_INDIRECT_DESC), QSIZE);
}

static void desc(struct vq_desc *t, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
                 uint16_t next)
{
  t[i] = (struct vq_desc){ addr, len, flags, next };
}

/* Descriptor i of table t: the request header, linked to `next`. */
static void header(struct vq_desc *t, uint16_t i, uint32_t type, uint64_t sector, uint16_t next)
{
  io.hdr = (struct virtio_blk_req){ type, 0, sector };
  io.status = 0xee;
  desc(t, i, (uintptr_t)&io.hdr, sizeof io.hdr, VQ_DESC_F_NEXT, next);
}

static void status_desc(struct vq_desc *t, uint16_t i)
{
  desc(t, i, (uintptr_t)&io.status, 1, VQ_DESC_F_WRITE, 0);
}

/* Offers the chain at `head`, notifies, waits: the used id or an error,
 * *len the used length. */
static int offer(uint16_t head, uint32_t *len)
{
  vq_publish(&q, head);
  vq_notify(&q);
  return vq_wait(&q, len);
}

/* The device must have given up: the wait saw NEEDS_RESET, nothing used. */
static void expect_needs_reset(int r, const char *what)
{
  check(r == VQ_ENEEDS_RESET, "%s: the wait returned %d (%s), expected NEEDS_RESET", what, r,
        virtio_strerror(r));
  check(status() & VIRTIO_STATUS_NEEDS_RESET, "%s: status 0x%x lacks NEEDS_RESET", what,
        status());
  printf("  %s: the device needs a reset (status 0x%x)\n", what, status());
}

/* The device must have served the request with this status and length. */
static void expect_served(int r, uint32_t len, uint32_t want_len, uint8_t want_status,
                          const char *what)
{
  check(r >= 0, "%s: the wait returned %d (%s)", what, r, virtio_strerror(r));
  if (r >= 0) {
    check(len == want_len, "%s: used length %u, expected %u", what, len, want_len);
    check(io.status == want_status, "%s: status %u, expected %u", what, io.status, want_status);
  }
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "%s: the device needs a reset", what);
  printf("  %s: served, status %u, used length %u\n", what, io.status, len);
}

static void fill_buf(void)
{
  memset(buf, 0xee, sizeof buf);
}

static int buf_untouched(void)
{
  for (size_t i = 0; i < sizeof buf; i++)
    if (buf[i] != 0xee)
      return 0;
  return 1;
}

/* A correct read of PROBE_SECTOR through the driver. */
static void works(const char *when)
{
  fill_buf();
  int64_t used = blk_rw(&q, &io, VIRTIO_BLK_T_IN, PROBE_SECTOR, buf, 1,
                        dev.features & VIRTIO_F(VIRTIO_F_INDIRECT_DESC) ? VQ_INDIRECT : 0);
  check(used == VIRTIO_BLK_SECTOR + 1 && io.status == VIRTIO_BLK_S_OK,
        "a correct read %s: %lld (%s), status %u", when, (long long)used,
        used < 0 ? virtio_strerror((int)used) : "used length", io.status);
  check(vtest_matches(buf, PROBE_SECTOR, 1), "a correct read %s returned the wrong data", when);
  printf("  a correct read %s: %s\n", when, used == VIRTIO_BLK_SECTOR + 1 ? "ok" : "FAILED");
}

/* A read request for PROBE_SECTOR with the data buffer as given. */
static int read_with_data(uint64_t addr, uint32_t len, uint32_t *used)
{
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(q.desc, 1, addr, len, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
  status_desc(q.desc, 2);
  return offer(0, used);
}

/* A queue 0 set up by hand after a good negotiation: QueueReady's value. */
static uint32_t raw_queue(uint32_t num, uint64_t d, uint64_t a, uint64_t u)
{
  check(virtio_init(&dev, 0) == 0, "negotiation before a hand-made queue");
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  set_reg(VIRTIO_MMIO_QUEUE_NUM, num);
  set_reg(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
  set_reg(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
  set_reg(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
  set_reg(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
  set_reg(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)u);
  set_reg(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(u >> 32));
  set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
  return reg(VIRTIO_MMIO_QUEUE_READY);
}

static void expect_queue_refused(uint32_t ready, const char *what)
{
  check(ready == 0, "%s: QueueReady reads %u, expected 0", what, ready);
  check(status() & VIRTIO_STATUS_NEEDS_RESET, "%s: status 0x%x lacks NEEDS_RESET", what,
        status());
  printf("  %s: QueueReady %u, status 0x%x\n", what, ready, status());
}

/* ---- the cases: descriptors and buffers ---- */

static void buffer_outside_memory(void)
{
  uint32_t len;
  up();
  expect_needs_reset(read_with_data(mem_end, VIRTIO_BLK_SECTOR, &len), "a buffer past the end");
}

static void buffer_straddles_end(void)
{
  uint32_t len;
  up();
  /* Half inside (the host's canary), half outside. */
  expect_needs_reset(read_with_data(mem_end - 256, VIRTIO_BLK_SECTOR, &len),
                     "a buffer across the end of memory");
}

static void length_wraps(void)
{
  uint32_t len;
  up();
  /* addr + len overflows 64 bits and lands at 0x100. */
  expect_needs_reset(read_with_data(0xffffffffffffff00ull, 0x200, &len), "addr + len wraps");
}

static void write_from_outside(void)
{
  uint32_t len;
  up();
  header(q.desc, 0, VIRTIO_BLK_T_OUT, SPARE_SECTOR, 1);
  desc(q.desc, 1, BAD_ADDR, VIRTIO_BLK_SECTOR, VQ_DESC_F_NEXT, 2);
  status_desc(q.desc, 2);
  expect_needs_reset(offer(0, &len), "a write from outside memory");
}

static void chain_loops(void)
{
  uint32_t len;
  up();
  header(q.desc, 0, VIRTIO_BLK_T_OUT, SPARE_SECTOR, 1);
  desc(q.desc, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_NEXT, 0);
  expect_needs_reset(offer(0, &len), "a chain that loops");
}

static void next_out_of_range(void)
{
  uint32_t len;
  up();
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 200);
  expect_needs_reset(offer(0, &len), "a link to descriptor 200 of 16");
}

static void head_out_of_range(void)
{
  uint32_t len;
  up();
  expect_needs_reset(offer(999, &len), "an available entry naming descriptor 999");
}

static void avail_index_far_ahead(void)
{
  uint32_t len;
  up();
  *(volatile uint16_t *)&q.avail.idx = 1000;
  vq_notify(&q);
  expect_needs_reset(vq_wait(&q, &len), "an available index 1000 ahead");
}

static void zero_length_buffers(void)
{
  uint32_t len;
  up();
  fill_buf();
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(q.desc, 1, BAD_ADDR, 0, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2); /* nowhere, but empty */
  desc(q.desc, 2, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 3);
  desc(q.desc, 3, 0, 0, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 4);
  status_desc(q.desc, 4);
  int r = offer(0, &len);
  expect_served(r, len, VIRTIO_BLK_SECTOR + 1, VIRTIO_BLK_S_OK,
                "zero-length buffers in a read");
  check(vtest_matches(buf, PROBE_SECTOR, 1), "the read around empty buffers got the wrong data");
  works("without a reset");
}

static void status_missing_on_write(void)
{
  uint32_t len;
  up();
  vtest_fill(buf, 0x5a5a, 1);
  header(q.desc, 0, VIRTIO_BLK_T_OUT, SPARE_SECTOR, 1);
  desc(q.desc, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, 0, 0);
  expect_needs_reset(offer(0, &len), "a write without a status byte");
}

static void status_missing_on_read(void)
{
  uint32_t len;
  up();
  fill_buf();
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(q.desc, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_WRITE, 0);
  /* The device cannot tell: the last writable byte is the status, so the
   * data is 511 bytes, not whole sectors: IOERR, in buf[511]. */
  int r = offer(0, &len);
  check(r == 0 && len == 1, "a read without a status byte: wait %d, used length %u", r, len);
  check(buf[VIRTIO_BLK_SECTOR - 1] == VIRTIO_BLK_S_IOERR, "the status (buf[511]) is 0x%x",
        buf[VIRTIO_BLK_SECTOR - 1]);
  buf[VIRTIO_BLK_SECTOR - 1] = 0xee;
  check(buf_untouched(), "the device wrote data it should not have");
  printf("  a read without a status byte: IOERR in the data's last byte\n");
  works("without a reset");
}

static void header_device_writable(void)
{
  uint32_t len;
  up();
  fill_buf();
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  q.desc[0].flags |= VQ_DESC_F_WRITE;
  desc(q.desc, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
  status_desc(q.desc, 2);
  int r = offer(0, &len);
  expect_served(r, len, 1, VIRTIO_BLK_S_IOERR, "a device-writable header");
  check(io.hdr.type == VIRTIO_BLK_T_IN && io.hdr.sector == PROBE_SECTOR,
        "the device wrote over the header");
  check(buf_untouched(), "the device wrote data for a request it refused");
  works("without a reset");
}

static void write_data_device_writable(void)
{
  uint32_t len;
  up();
  vtest_fill(buf, 0x5a5a, 1);
  header(q.desc, 0, VIRTIO_BLK_T_OUT, SPARE_SECTOR, 1);
  desc(q.desc, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
  status_desc(q.desc, 2);
  /* The data of a write where the device would write: no data to write. */
  int r = offer(0, &len);
  expect_served(r, len, 1, VIRTIO_BLK_S_IOERR, "a write whose data is writable");
  check(vtest_matches(buf, 0x5a5a, 1), "the device changed the data of a write");
  works("without a reset");
}

static void read_data_device_readable(void)
{
  uint32_t len;
  up();
  fill_buf();
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(q.desc, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_NEXT, 2);
  status_desc(q.desc, 2);
  /* The buffer of a read where the device may only read: nowhere to put
   * the data. */
  int r = offer(0, &len);
  expect_served(r, len, 1, VIRTIO_BLK_S_IOERR, "a read whose data is read-only");
  check(buf_untouched(), "the device wrote a read-only buffer");
  works("without a reset");
}

static void readable_after_writable(void)
{
  uint32_t len;
  up();
  header(q.desc, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(q.desc, 1, (uintptr_t)&io.status, 1, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
  desc(q.desc, 2, (uintptr_t)buf, VIRTIO_BLK_SECTOR, 0, 0);
  expect_needs_reset(offer(0, &len), "a readable buffer after a writable one");
}

static void bad_request_fields(void)
{
  up();
  fill_buf();
  int64_t used = blk_rw(&q, &io, VIRTIO_BLK_T_IN, ~0ull, buf, 1, 0);
  check(used == 1 && io.status == VIRTIO_BLK_S_IOERR, "sector 2^64-1: %lld, status %u",
        (long long)used, io.status);
  uint32_t odd = 100;
  used = blk_request(&q, &io, VIRTIO_BLK_T_IN, PROBE_SECTOR, buf, &odd, 1, 0);
  check(used == 1 && io.status == VIRTIO_BLK_S_IOERR, "a 100-byte read: %lld, status %u",
        (long long)used, io.status);
  check(buf_untouched(), "a refused read wrote its buffer");
  used = blk_rw(&q, &io, 0x77, PROBE_SECTOR, buf, 1, 0);
  check(used == 1 && io.status == VIRTIO_BLK_S_UNSUPP, "request type 0x77: %lld, status %u",
        (long long)used, io.status);
  vtest_fill(buf, 0x5a5a, 2);
  used = blk_rw(&q, &io, VIRTIO_BLK_T_OUT, DISK_SECTORS - 1, buf, 2, 0);
  check(used == 1 && io.status == VIRTIO_BLK_S_IOERR, "a write across the end: %lld, status %u",
        (long long)used, io.status);
  char id[8];
  memset(id, 0x11, sizeof id);
  uint32_t idlen = 5;
  used = blk_request(&q, &io, VIRTIO_BLK_T_GET_ID, 0, id, &idlen, 1, 0);
  check(used == 6 && io.status == VIRTIO_BLK_S_OK && id[5] == 0x11,
        "GET_ID into 5 bytes: %lld, status %u", (long long)used, io.status);
  printf("  bad sector, odd length, unknown type, write across the end: refused; short "
         "GET_ID: %lld\n", (long long)used);
  works("without a reset");
}

static void data_over_used_ring(void)
{
  uint32_t len;
  up();
  /* The device writes the sector over the used ring, then its own entry
   * and index: its state is its own, the ring is only where it reports. */
  int r = read_with_data((uintptr_t)&q.used, VIRTIO_BLK_SECTOR, &len);
  check(r == 0 && len == VIRTIO_BLK_SECTOR + 1, "a read over the used ring: %d, length %u", r,
        len);
  static uint8_t want[VIRTIO_BLK_SECTOR];
  vtest_fill(want, PROBE_SECTOR, 1);
  check(memcmp((uint8_t *)&q.used + 12, want + 12, VIRTIO_BLK_SECTOR - 12) == 0,
        "the used ring does not hold the sector");
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  a read over the used ring: served\n");
}

static void data_over_descriptors(void)
{
  uint32_t len;
  up();
  /* The chain is read before the data lands on it. */
  int r = read_with_data((uintptr_t)&q.desc[0], VIRTIO_BLK_SECTOR, &len);
  check(r == 0 && len == VIRTIO_BLK_SECTOR + 1, "a read over the descriptors: %d, length %u", r,
        len);
  check(vtest_matches((uint8_t *)q.desc, PROBE_SECTOR, 1),
        "the descriptor table does not hold the sector");
  check(io.status == VIRTIO_BLK_S_OK, "status %u", io.status);
  printf("  a read over the descriptor table: served\n");
}

/* ---- the cases: queue set-up ---- */

static void rings_outside_memory(void)
{
  expect_queue_refused(raw_queue(QSIZE, (uintptr_t)q.desc, (uintptr_t)&q.avail, mem_end - 64),
                       "a used ring across the end of memory");
}

static void rings_misaligned(void)
{
  expect_queue_refused(raw_queue(QSIZE, (uintptr_t)q.desc + 8, (uintptr_t)&q.avail,
                                 (uintptr_t)&q.used), "a descriptor table at +8");
}

static void queue_size_not_power_of_two(void)
{
  expect_queue_refused(raw_queue(3, (uintptr_t)q.desc, (uintptr_t)&q.avail, (uintptr_t)&q.used),
                       "queue size 3");
}

static void queue_size_over_max(void)
{
  check(virtio_init(&dev, 0) == 0, "negotiation");
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  uint32_t max = reg(VIRTIO_MMIO_QUEUE_NUM_MAX);
  printf("  QueueNumMax: %u\n", max);
  check(max == 256, "QueueNumMax is %u, expected 256", max);
  expect_queue_refused(raw_queue(2 * max, (uintptr_t)q.desc, (uintptr_t)&q.avail,
                                 (uintptr_t)&q.used), "queue size 2 x QueueNumMax");
}

static void queue_size_zero(void)
{
  /* 0x10000 does not fit the 16-bit size: it is taken as 0. */
  expect_queue_refused(raw_queue(0x10000, (uintptr_t)q.desc, (uintptr_t)&q.avail,
                                 (uintptr_t)&q.used), "queue size 0x10000");
}

static void queue_registers_while_ready(void)
{
  up();
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  set_reg(VIRTIO_MMIO_QUEUE_NUM, 3);
  set_reg(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)mem_end);
  set_reg(VIRTIO_MMIO_QUEUE_DRIVER_LOW, 1);
  set_reg(VIRTIO_MMIO_QUEUE_DEVICE_LOW, 3);
  set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
  check(reg(VIRTIO_MMIO_QUEUE_READY) == 1, "the live queue is no longer ready");
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  works("after queue registers were written while it was live");
}

static void queue_select_out_of_range(void)
{
  up();
  static const uint32_t sel[] = { 1, 5, 8, 0xffffffff };
  for (unsigned i = 0; i < sizeof sel / sizeof sel[0]; i++) {
    set_reg(VIRTIO_MMIO_QUEUE_SEL, sel[i]);
    check(reg(VIRTIO_MMIO_QUEUE_NUM_MAX) == 0, "queue %u: QueueNumMax is not 0", sel[i]);
    set_reg(VIRTIO_MMIO_QUEUE_NUM, 8);
    set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
    check(reg(VIRTIO_MMIO_QUEUE_READY) == 0, "queue %u: QueueReady is not 0", sel[i]);
  }
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  check(reg(VIRTIO_MMIO_QUEUE_READY) == 1, "queue 0 is no longer ready");
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  queues 1, 5, 8, 0xffffffff: QueueNumMax 0, never ready\n");
  works("after selecting queues that do not exist");
}

/* ---- the cases: notifications ---- */

static void notify_unknown_queues(void)
{
  up();
  set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, 7);
  set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, 100);
  set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  notified queues 7, 100, 0xffffffff: status 0x%x\n", status());
  works("after notifications for queues that do not exist");
}

static void notify_before_queue_setup(void)
{
  check(virtio_init(&dev, 0) == 0, "negotiation");
  set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, 0);       /* before DRIVER_OK */
  set_reg(VIRTIO_MMIO_STATUS, status() | VIRTIO_STATUS_DRIVER_OK);
  set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, 0);       /* live, but queue 0 never set up */
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  check(reg(VIRTIO_MMIO_QUEUE_READY) == 0, "queue 0 is ready without a set-up");
  printf("  notified queue 0 before it was set up: status 0x%x\n", status());
}

static void notify_storm(void)
{
  up();
  for (int i = 0; i < 200; i++)
    vq_notify(&q);
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  check(*(volatile uint16_t *)&q.used.idx == 0, "the device used buffers nobody offered");
  printf("  200 notifications with nothing available: nothing used\n");
  works("after 200 empty notifications");
}

/* ---- the cases: registers and config space ---- */

static void readonly_registers(void)
{
  up();
  static const uint32_t ro[] = {
    VIRTIO_MMIO_MAGIC, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_VENDOR_ID,
    VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_QUEUE_NUM_MAX, VIRTIO_MMIO_INTERRUPT_STATUS,
    VIRTIO_MMIO_CONFIG_GENERATION,
  };
  set_reg(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  for (unsigned i = 0; i < sizeof ro / sizeof ro[0]; i++) {
    uint32_t before = reg(ro[i]);
    set_reg(ro[i], ~before);
    uint32_t after = reg(ro[i]);
    check(after == before, "register 0x%03x: 0x%x became 0x%x", ro[i], before, after);
  }
  static const uint32_t wo[] = {
    VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_MMIO_DRIVER_FEATURES_SEL,
    VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NOTIFY,
    VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_QUEUE_DESC_LOW, VIRTIO_MMIO_QUEUE_DEVICE_HIGH,
    0x0c0, 0x0f8,
  };
  for (unsigned i = 0; i < sizeof wo / sizeof wo[0]; i++) {
    uint32_t v = reg(wo[i]);
    check(v == 0, "write-only or unknown register 0x%03x reads 0x%x", wo[i], v);
  }
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  8 read-only registers written, 11 write-only or unknown ones read: ignored\n");
  works("after writes to read-only registers");
}

static void narrow_register_accesses(void)
{
  up();
  uintptr_t b = dev.base;
  check(mmio_read8(b + VIRTIO_MMIO_MAGIC) == 0, "a 1-byte read of MagicValue is not 0");
  check(mmio_read8(b + VIRTIO_MMIO_MAGIC + 1) == 0, "a 1-byte read inside MagicValue is not 0");
  check(mmio_read16(b + VIRTIO_MMIO_MAGIC) == 0, "a 2-byte read of MagicValue is not 0");
  check(mmio_read64(b + VIRTIO_MMIO_MAGIC) == 0, "an 8-byte read of MagicValue is not 0");
  check(mmio_read32(b + VIRTIO_MMIO_MAGIC + 2) == 0, "a misaligned 4-byte read is not 0");
  /* A status write of 0 resets; at these sizes it must not. */
  mmio_write8(b + VIRTIO_MMIO_STATUS, 0);
  mmio_write16(b + VIRTIO_MMIO_STATUS, 0);
  mmio_write64(b + VIRTIO_MMIO_STATUS, 0);
  mmio_write32(b + VIRTIO_MMIO_STATUS + 1, 0);
  uint32_t s = status();
  check(s & VIRTIO_STATUS_DRIVER_OK, "a narrow status write reset the device (status 0x%x)", s);
  mmio_write8(b + VIRTIO_MMIO_QUEUE_NOTIFY, 0);
  mmio_write16(b + VIRTIO_MMIO_QUEUE_READY, 0);
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  check(reg(VIRTIO_MMIO_QUEUE_READY) == 1, "a 2-byte QueueReady write took the queue down");
  check(!(s & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  1-, 2-, 8-byte and misaligned register accesses: read 0, writes ignored\n");
  works("after narrow register accesses");
}

static void config_space_bounds(void)
{
  up();
  uint64_t capacity = virtio_config64(&dev, VIRTIO_BLK_CFG_CAPACITY);
  check(capacity == DISK_SECTORS, "capacity %llu, expected %d", (unsigned long long)capacity,
        DISK_SECTORS);
  check(virtio_config8(&dev, 0) == (DISK_SECTORS & 0xff), "a 1-byte config read");
  check(virtio_config16(&dev, 20) == 512, "a 2-byte config read of blk_size");
  check(virtio_config32(&dev, 20) == 512, "blk_size is not 512");
  check(virtio_config32(&dev, 24) == 0, "a read past the config space is not 0");
  check(virtio_config32(&dev, 22) == 0, "a read across the config space's end is not 0");
  check(mmio_read64(dev.base + VIRTIO_MMIO_CONFIG + 20) == 0, "an 8-byte read across the end");
  check(virtio_config8(&dev, 0xeff) == 0, "the last byte of the window is not 0");
  /* The block config is read-only to the driver. */
  mmio_write32(dev.base + VIRTIO_MMIO_CONFIG, 0x1234);
  mmio_write32(dev.base + VIRTIO_MMIO_CONFIG + 24, 0x1234);
  capacity = virtio_config64(&dev, VIRTIO_BLK_CFG_CAPACITY);
  check(capacity == DISK_SECTORS, "a config write changed the capacity to %llu",
        (unsigned long long)capacity);
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  config reads past 24 bytes: 0; writes ignored; capacity %llu\n",
         (unsigned long long)capacity);
  works("after config accesses out of bounds");
}

/* ---- the cases: features ---- */

/* ACKNOWLEDGE | DRIVER, driver features `f`, FEATURES_OK: whether it stuck. */
static int negotiate_raw(uint64_t f)
{
  virtio_reset(&dev);
  set_reg(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
  set_reg(VIRTIO_MMIO_STATUS, status() | VIRTIO_STATUS_FEATURES_OK);
  return (status() & VIRTIO_STATUS_FEATURES_OK) != 0;
}

static void unoffered_features(void)
{
  uint64_t v1 = VIRTIO_F(VIRTIO_F_VERSION_1);
  check(!negotiate_raw(v1 | VIRTIO_F(VIRTIO_BLK_F_SIZE_MAX)),
        "FEATURES_OK stuck with SIZE_MAX, which the device never offered");
  check(!negotiate_raw(v1 | VIRTIO_F(40)), "FEATURES_OK stuck with feature bit 40");
  check(!negotiate_raw(VIRTIO_F(VIRTIO_BLK_F_FLUSH)), "FEATURES_OK stuck without VERSION_1");
  check(!negotiate_raw(0), "FEATURES_OK stuck with no features at all");
  /* Selector 2 and up hold no feature bits: a write there is dropped. */
  virtio_reset(&dev);
  set_reg(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
  set_reg(VIRTIO_MMIO_STATUS, status() | VIRTIO_STATUS_FEATURES_OK);
  check(status() & VIRTIO_STATUS_FEATURES_OK, "VERSION_1 alone, plus junk at selector 2");
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  FEATURES_OK refused for unoffered bits and without VERSION_1\n");
}

static void features_after_features_ok(void)
{
  up();
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 0);
  check(!(status() & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  printf("  feature writes after FEATURES_OK\n");
  works("after feature writes once FEATURES_OK was set");
}

static void driver_ok_without_features_ok(void)
{
  virtio_reset(&dev);
  set_reg(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 1);
  /* No FEATURES_OK: straight to a queue and DRIVER_OK. */
  int rc = virtio_queue_init(&dev, &q, 0, QSIZE);
  set_reg(VIRTIO_MMIO_STATUS, status() | VIRTIO_STATUS_DRIVER_OK);
  uint32_t s = status();
  printf("  queue set-up %d, status after DRIVER_OK 0x%x\n", rc, s);
  check(!(s & VIRTIO_STATUS_DRIVER_OK) || (s & VIRTIO_STATUS_NEEDS_RESET),
        "the device went live without FEATURES_OK (status 0x%x)", s);
  fill_buf();
  dev.poll_limit = 50;
  int64_t used = blk_rw(&q, &io, VIRTIO_BLK_T_IN, PROBE_SECTOR, buf, 1, 0);
  check(used < 0, "the device served a request without FEATURES_OK");
  check(buf_untouched(), "the device wrote a buffer without FEATURES_OK");
  dev.poll_limit = 0;
}

/* ---- the cases: indirect tables ---- */

/* A read of PROBE_SECTOR in table t (3 entries), offered through a single
 * descriptor with `flags` (INDIRECT and more) and length `len`. */
static int indirect_read(struct vq_desc *t, uint64_t addr, uint32_t len, uint16_t flags,
                         uint32_t *used)
{
  header(t, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(t, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
  status_desc(t, 2);
  desc(q.desc, 0, addr, len, flags, 1);
  return offer(0, used);
}

static void indirect_not_negotiated(void)
{
  uint32_t len;
  up();
  expect_needs_reset(indirect_read(table, (uintptr_t)table, 48, VQ_DESC_F_INDIRECT, &len),
                     "an indirect table without the feature");
}

static void indirect_nested(void)
{
  uint32_t len;
  up_indirect();
  header(table2, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(table2, 1, (uintptr_t)table, 48, VQ_DESC_F_INDIRECT, 0);
  desc(q.desc, 0, (uintptr_t)table2, 32, VQ_DESC_F_INDIRECT, 0);
  expect_needs_reset(offer(0, &len), "an indirect table inside another");
}

static void indirect_huge(void)
{
  uint32_t len;
  up_indirect();
  expect_needs_reset(indirect_read(table, (uintptr_t)table, 0x100000, VQ_DESC_F_INDIRECT, &len),
                     "an indirect table of 65536 entries");
}

static void indirect_odd_length(void)
{
  uint32_t len;
  up_indirect();
  expect_needs_reset(indirect_read(table, (uintptr_t)table, 40, VQ_DESC_F_INDIRECT, &len),
                     "an indirect table of 40 bytes");
}

static void indirect_with_next(void)
{
  uint32_t len;
  up_indirect();
  status_desc(q.desc, 1);
  expect_needs_reset(indirect_read(table, (uintptr_t)table, 48,
                                   VQ_DESC_F_INDIRECT | VQ_DESC_F_NEXT, &len),
                     "an indirect descriptor with NEXT");
}

static void indirect_loops(void)
{
  uint32_t len;
  up_indirect();
  header(table, 0, VIRTIO_BLK_T_OUT, SPARE_SECTOR, 1);
  desc(table, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_NEXT, 0);
  desc(q.desc, 0, (uintptr_t)table, 32, VQ_DESC_F_INDIRECT, 0);
  expect_needs_reset(offer(0, &len), "an indirect table whose links loop");
}

static void indirect_outside_memory(void)
{
  uint32_t len;
  up_indirect();
  expect_needs_reset(indirect_read(table, mem_end - 16, 48, VQ_DESC_F_INDIRECT, &len),
                     "an indirect table across the end of memory");
}

static void indirect_in_chain(void)
{
  uint32_t len;
  up_indirect();
  header(table, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  desc(table, 1, (uintptr_t)buf, VIRTIO_BLK_SECTOR, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT, 2);
  status_desc(table, 2);
  io.hdr = (struct virtio_blk_req){ VIRTIO_BLK_T_IN, 0, PROBE_SECTOR };
  desc(q.desc, 0, (uintptr_t)&io.hdr, sizeof io.hdr, VQ_DESC_F_NEXT, 1);
  desc(q.desc, 1, (uintptr_t)table, 48, VQ_DESC_F_INDIRECT, 0);
  expect_needs_reset(offer(0, &len), "an indirect descriptor after another descriptor");
}

static void indirect_many_tiny_buffers(void)
{
  uint32_t len;
  up_indirect();
  fill_buf();
  /* 512 one-byte buffers: 514 entries, under the device's limit of 1024. */
  header(table, 0, VIRTIO_BLK_T_IN, PROBE_SECTOR, 1);
  for (uint16_t i = 0; i < VIRTIO_BLK_SECTOR; i++)
    desc(table, (uint16_t)(1 + i), (uintptr_t)buf + i, 1, VQ_DESC_F_WRITE | VQ_DESC_F_NEXT,
         (uint16_t)(2 + i));
  status_desc(table, 1 + VIRTIO_BLK_SECTOR);
  desc(q.desc, 0, (uintptr_t)table, (2 + VIRTIO_BLK_SECTOR) * 16, VQ_DESC_F_INDIRECT, 0);
  int r = offer(0, &len);
  expect_served(r, len, VIRTIO_BLK_SECTOR + 1, VIRTIO_BLK_S_OK,
                "a read into 512 one-byte buffers");
  check(vtest_matches(buf, PROBE_SECTOR, 1), "the one-byte buffers hold the wrong data");
  works("without a reset");
}

/* ---- the cases: after NEEDS_RESET ---- */

static void reuse_after_needs_reset(void)
{
  uint32_t len;
  up();
  expect_needs_reset(read_with_data(BAD_ADDR, VIRTIO_BLK_SECTOR, &len), "a buffer outside memory");
  /* Carry on as if nothing happened: nothing may be served. */
  dev.poll_limit = 50;
  fill_buf();
  int64_t used = blk_rw(&q, &io, VIRTIO_BLK_T_IN, PROBE_SECTOR, buf, 1, 0);
  check(used == VQ_ENEEDS_RESET, "a request after NEEDS_RESET: %lld", (long long)used);
  set_reg(VIRTIO_MMIO_STATUS, status() | VIRTIO_STATUS_DRIVER_OK);
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  set_reg(VIRTIO_MMIO_QUEUE_READY, 0);
  set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
  vq_notify(&q);
  check(status() & VIRTIO_STATUS_NEEDS_RESET, "NEEDS_RESET went away without a reset");
  check(*(volatile uint16_t *)&q.used.idx == 0, "the device used a buffer after NEEDS_RESET");
  check(buf_untouched(), "the device wrote a buffer after NEEDS_RESET");
  dev.poll_limit = 0;
  printf("  after NEEDS_RESET: nothing served, status 0x%x\n", status());
}

static void reset_then_write(void)
{
  uint32_t len;
  up();
  expect_needs_reset(offer(999, &len), "an available entry naming descriptor 999");
  virtio_reset(&dev);
  check(status() == 0, "status after a reset is 0x%x", status());
  set_reg(VIRTIO_MMIO_QUEUE_SEL, 0);
  check(reg(VIRTIO_MMIO_QUEUE_READY) == 0, "queue 0 is still ready after a reset");
  if (!up_with(0, 8))
    return;
  /* Sector 100 gets the pattern of sector 1000: the host looks for it. */
  vtest_fill(buf, 1000, 1);
  int64_t used = blk_rw(&q, &io, VIRTIO_BLK_T_OUT, 100, buf, 1, 0);
  check(used == 1 && io.status == VIRTIO_BLK_S_OK, "a write after the reset: %lld, status %u",
        (long long)used, io.status);
  fill_buf();
  used = blk_rw(&q, &io, VIRTIO_BLK_T_IN, 100, buf, 1, 0);
  check(used == 513 && vtest_matches(buf, 1000, 1), "reading sector 100 back after the reset");
  printf("  after the reset: sector 100 written and read back\n");
}

/* ---- the cases: read-only memory ---- */

static void buffers_in_rom(void)
{
  uint32_t len;
  uint64_t rom = vtest_param(VTEST_P_ROM);
  up();
  /* The device may read ROM: sector ROM_SECTOR gets its bytes. */
  header(q.desc, 0, VIRTIO_BLK_T_OUT, ROM_SECTOR, 1);
  desc(q.desc, 1, rom, VIRTIO_BLK_SECTOR, VQ_DESC_F_NEXT, 2);
  status_desc(q.desc, 2);
  int r = offer(0, &len);
  expect_served(r, len, 1, VIRTIO_BLK_S_OK, "a write from ROM");
  /* It may not write it, though the host could. */
  expect_needs_reset(read_with_data(rom, VIRTIO_BLK_SECTOR, &len), "a read into ROM");
}

static void used_ring_in_rom(void)
{
  uint64_t rom = vtest_param(VTEST_P_ROM);
  expect_queue_refused(raw_queue(QSIZE, (uintptr_t)q.desc, (uintptr_t)&q.avail, rom),
                       "a used ring in ROM");
}

/* ---- the table ---- */

static const struct {
  const char *name;
  void (*run)(void);
} cases[] = {
  { "buffer_outside_memory", buffer_outside_memory },             /* 1 */
  { "buffer_straddles_end", buffer_straddles_end },
  { "length_wraps", length_wraps },
  { "write_from_outside", write_from_outside },
  { "chain_loops", chain_loops },                                 /* 5 */
  { "next_out_of_range", next_out_of_range },
  { "head_out_of_range", head_out_of_range },
  { "avail_index_far_ahead", avail_index_far_ahead },
  { "zero_length_buffers", zero_length_buffers },
  { "status_missing_on_write", status_missing_on_write },         /* 10 */
  { "status_missing_on_read", status_missing_on_read },
  { "header_device_writable", header_device_writable },
  { "write_data_device_writable", write_data_device_writable },
  { "read_data_device_readable", read_data_device_readable },
  { "readable_after_writable", readable_after_writable },         /* 15 */
  { "bad_request_fields", bad_request_fields },
  { "data_over_used_ring", data_over_used_ring },
  { "data_over_descriptors", data_over_descriptors },
  { "rings_outside_memory", rings_outside_memory },
  { "rings_misaligned", rings_misaligned },                       /* 20 */
  { "queue_size_not_power_of_two", queue_size_not_power_of_two },
  { "queue_size_over_max", queue_size_over_max },
  { "queue_size_zero", queue_size_zero },
  { "queue_registers_while_ready", queue_registers_while_ready },
  { "queue_select_out_of_range", queue_select_out_of_range },     /* 25 */
  { "notify_unknown_queues", notify_unknown_queues },
  { "notify_before_queue_setup", notify_before_queue_setup },
  { "notify_storm", notify_storm },
  { "readonly_registers", readonly_registers },
  { "narrow_register_accesses", narrow_register_accesses },       /* 30 */
  { "config_space_bounds", config_space_bounds },
  { "unoffered_features", unoffered_features },
  { "features_after_features_ok", features_after_features_ok },
  { "driver_ok_without_features_ok", driver_ok_without_features_ok },
  { "indirect_not_negotiated", indirect_not_negotiated },         /* 35 */
  { "indirect_nested", indirect_nested },
  { "indirect_huge", indirect_huge },
  { "indirect_odd_length", indirect_odd_length },
  { "indirect_with_next", indirect_with_next },
  { "indirect_loops", indirect_loops },                           /* 40 */
  { "indirect_outside_memory", indirect_outside_memory },
  { "indirect_in_chain", indirect_in_chain },
  { "indirect_many_tiny_buffers", indirect_many_tiny_buffers },
  { "reuse_after_needs_reset", reuse_after_needs_reset },
  { "reset_then_write", reset_then_write },                       /* 45 */
  { "buffers_in_rom", buffers_in_rom },
  { "used_ring_in_rom", used_ring_in_rom },
};

#define NCASES (sizeof cases / sizeof cases[0])

int main(void)
{
  unsigned long n = vtest_param(VTEST_P_MODE);
  uintptr_t base = vtest_param(VTEST_P_BASE);
  mem_end = vtest_param(VTEST_P_MEMORY);
  if (base == 0)
    base = VTEST_BLK_BASE;
  if (n == 0 || n > NCASES) {
    printf("virtio_hostile64: no case %lu (1 to %u)\n", n, (unsigned)NCASES);
    return 254;
  }
  printf("virtio_hostile64: case %lu: %s\n", n, cases[n - 1].name);
  if (!check(virtio_probe(&dev, base, VIRTIO_ID_BLOCK) == 0, "no virtio-blk device at 0x%lx",
             (unsigned long)base))
    return vtest_result("virtio_hostile64");
  cases[n - 1].run();
  hypercall1(VTEST_HC_CHECKPOINT, n);
  /* Whatever the case did, a reset brings the device back. */
  dev.poll_limit = 0;
  virtio_reset(&dev);
  if (up())
    works("after a reset");
  return vtest_result("virtio_hostile64");
}
