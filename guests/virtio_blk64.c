/* virtio_blk64: a round trip through a virtio-blk device with the runtime's
 * virtio driver (guests/rt/virtio.c), in 64-bit long mode.
 *
 * The host (tests/virtio_spec.lua, scripts/virtio-blk.lua) attaches
 * vm:virtio_blk at 0xD0000000 (or tells another base) and answers
 * hypercall 0x30 (see vtest.h) with: 0 the mode, 1 the base (0: default),
 * 2 the features to ask for (1 indirect descriptors, 2 event index).
 *
 * Modes:
 *   0 round trip: capacity, GET_ID, write the pattern (vtest.h) to sectors
 *     0-2, 8-15 (one request split over five unaligned descriptors) and the
 *     last sector, FLUSH, read everything back (split differently) and
 *     compare, then reads and a write past the end must fail with IOERR
 *   1 write phase: the writes and the FLUSH of mode 0, nothing else
 *   2 read phase: the reads and comparisons of mode 0 (another VM wrote)
 *   3 read-only disk: the device offers VIRTIO_BLK_F_RO; a write of sector 0
 *     fails with IOERR and changes nothing; sector 0 holds the pattern
 *
 * Exits 0 when everything held, else with the number of the first failed
 * check (vtest.h). */
#include "vtest.h"

enum { ROUND_TRIP = 0, WRITE = 1, READ = 2, READONLY = 3 };

#define QUEUE_SIZE 64

static struct virtio dev;
static struct vq q;
static struct blk_io io;
static int flags;                 /* VQ_INDIRECT when negotiated */
static uint64_t capacity;

static uint8_t data[8 * VIRTIO_BLK_SECTOR] __attribute__((aligned(4096)));
static uint8_t back[8 * VIRTIO_BLK_SECTOR] __attribute__((aligned(4096)));

/* The regions written: first sector, count, and how the data is split. */
struct region {
  uint64_t sector;
  uint32_t count;
  int nseg;
  uint32_t seg[6];         /* write split */
  int nback;
  uint32_t back[6];        /* read split */
};

static struct region regions[3] = {
  { 0, 3, 2, { 512, 1024 }, 3, { 1000, 24, 512 } },
  { 8, 8, 5, { 100, 412, 1500, 1, 2083 }, 1, { 4096 } },
  { 0, 1, 1, { 512 }, 2, { 511, 1 } }, /* the last sector: set in main */
};

/* A request that must succeed with `want_len` bytes used. */
static void expect_ok(int64_t used, int64_t want_len, const char *what)
{
  if (used < 0) {
    check(0, "%s: %s", what, virtio_strerror((int)used));
    return;
  }
  check(io.status == VIRTIO_BLK_S_OK, "%s: status %u, expected OK", what, io.status);
  check(used == want_len, "%s: used length %lld, expected %lld", what, (long long)used,
        (long long)want_len);
}

static void write_regions(void)
{
  for (int r = 0; r < 3; r++) {
    struct region *g = &regions[r];
    vtest_fill(data, g->sector, g->count);
    int64_t used = blk_request(&q, &io, VIRTIO_BLK_T_OUT, g->sector, data, g->seg, g->nseg, flags);
    printf("write sectors %llu-%llu in %d descriptors: status %u\n",
           (unsigned long long)g->sector, (unsigned long long)(g->sector + g->count - 1),
           g->nseg, io.status);
    expect_ok(used, 1, "write");
  }
  int64_t used = blk_request(&q, &io, VIRTIO_BLK_T_FLUSH, 0, NULL, NULL, 0, flags);
  printf("flush: status %u\n", io.status);
  expect_ok(used, 1, "flush");
}

static void read_regions(void)
{
  for (int r = 0; r < 3; r++) {
    struct region *g = &regions[r];
    uint32_t len = g->count * VIRTIO_BLK_SECTOR;
    memset(back, 0xee, sizeof back);
    int64_t used = blk_request(&q, &io, VIRTIO_BLK_T_IN, g->sector, back, g->back, g->nback, flags);
    int same = vtest_matches(back, g->sector, g->count);
    printf("read sectors %llu-%llu in %d descriptors: status %u, %s\n",
           (unsigned long long)g->sector, (unsigned long long)(g->sector + g->count - 1),
           g->nback, io.status, same ? "pattern matches" : "PATTERN DIFFERS");
    expect_ok(used, len + 1, "read");
    check(same, "sectors %llu-%llu do not hold the pattern", (unsigned long long)g->sector,
          (unsigned long long)(g->sector + g->count - 1));
  }
}

/* Requests past the end fail with IOERR and leave the buffer alone. */
static void past_the_end(void)
{
  static const struct { uint64_t sector; uint32_t count; uint32_t type; } bad[] = {
    { 0, 1, VIRTIO_BLK_T_IN },  /* sector = capacity: set below */
    { 0, 2, VIRTIO_BLK_T_IN },  /* capacity - 1, two sectors */
    { 0, 1, VIRTIO_BLK_T_OUT }, /* capacity */
    { ~0ull, 1, VIRTIO_BLK_T_IN },
  };
  for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint64_t sector = i == 0 || i == 2 ? capacity : i == 1 ? capacity - 1 : bad[i].sector;
    memset(back, 0xee, sizeof back);
    vtest_fill(data, sector, bad[i].count);
    void *buf = bad[i].type == VIRTIO_BLK_T_OUT ? data : back;
    int64_t used = blk_rw(&q, &io, bad[i].type, sector, buf, bad[i].count, flags);
    printf("%s sector %llu (%u) past the end: status %u\n",
           bad[i].type == VIRTIO_BLK_T_OUT ? "write" : "read", (unsigned long long)sector,
           bad[i].count, io.status);
    check(used == 1, "past the end: used length %lld, expected 1", (long long)used);
    check(io.status == VIRTIO_BLK_S_IOERR, "past the end: status %u, expected IOERR", io.status);
    check(back[0] == 0xee && back[1023] == 0xee, "past the end: the device wrote the buffer");
  }
}

int main(void)
{
  unsigned long mode = vtest_param(VTEST_P_MODE);
  uintptr_t base = vtest_param(VTEST_P_BASE);
  uint64_t want = vtest_features();
  if (base == 0)
    base = VTEST_BLK_BASE;
  printf("virtio_blk64: mode %lu, device at 0x%lx\n", mode, (unsigned long)base);

  int rc = virtio_probe(&dev, base, VIRTIO_ID_BLOCK);
  if (!check(rc == 0, "no virtio-blk device at 0x%lx", (unsigned long)base))
    return vtest_result("virtio_blk64");
  rc = virtio_init(&dev, want | VIRTIO_F(VIRTIO_BLK_F_FLUSH) | VIRTIO_F(VIRTIO_BLK_F_RO) |
                             VIRTIO_F(VIRTIO_BLK_F_BLK_SIZE) | VIRTIO_F(VIRTIO_BLK_F_SEG_MAX));
  printf("features: device 0x%llx, negotiated 0x%llx\n", (unsigned long long)dev.device_features,
         (unsigned long long)dev.features);
  check(rc == 0, "feature negotiation: %s", virtio_strerror(rc));
  check((dev.features & want) == want, "the device did not take the features asked for");
  check(dev.features & VIRTIO_F(VIRTIO_BLK_F_FLUSH), "the device does not offer FLUSH");
  rc = virtio_queue_init(&dev, &q, 0, QUEUE_SIZE);
  if (!check(rc == 0, "queue set-up: %s", virtio_strerror(rc)))
    return vtest_result("virtio_blk64");
  if (!check(virtio_driver_ok(&dev) == 0, "DRIVER_OK did not stick"))
    return vtest_result("virtio_blk64");
  flags = dev.features & VIRTIO_F(VIRTIO_F_INDIRECT_DESC) ? VQ_INDIRECT : 0;

  capacity = virtio_config64(&dev, VIRTIO_BLK_CFG_CAPACITY);
  uint32_t blk_size = virtio_config32(&dev, VIRTIO_BLK_CFG_BLK_SIZE);
  printf("capacity: %llu sectors, block size %u\n", (unsigned long long)capacity, blk_size);
  if (!check(capacity >= 32, "capacity %llu: the disk needs 32 sectors at least",
             (unsigned long long)capacity))
    return vtest_result("virtio_blk64");
  regions[2].sector = capacity - 1;

  if (mode == READONLY) {
    check(dev.features & VIRTIO_F(VIRTIO_BLK_F_RO), "a read-only disk should offer RO");
    vtest_fill(data, 0, 1);
    data[100] ^= 0xff; /* not the pattern */
    int64_t used = blk_rw(&q, &io, VIRTIO_BLK_T_OUT, 0, data, 1, flags);
    printf("write sector 0 on a read-only disk: status %u\n", io.status);
    check(used == 1 && io.status == VIRTIO_BLK_S_IOERR, "a write to a read-only disk: status %u",
          io.status);
    memset(back, 0, sizeof back);
    used = blk_rw(&q, &io, VIRTIO_BLK_T_IN, 0, back, 1, flags);
    expect_ok(used, 513, "read");
    check(vtest_matches(back, 0, 1), "sector 0 of the read-only disk changed");
    return vtest_result("virtio_blk64");
  }
  check(!(dev.features & VIRTIO_F(VIRTIO_BLK_F_RO)), "a writable disk offers RO");

  if (mode == ROUND_TRIP) {
    static char id[VIRTIO_BLK_ID_BYTES + 1];
    uint32_t len = VIRTIO_BLK_ID_BYTES;
    int64_t used = blk_request(&q, &io, VIRTIO_BLK_T_GET_ID, 0, id, &len, 1, flags);
    printf("id: \"%s\"\n", id);
    expect_ok(used, VIRTIO_BLK_ID_BYTES + 1, "GET_ID");
    /* We asked for an interrupt at every used buffer. */
    check(virtio_ack_interrupts(&dev) & VIRTIO_INT_USED, "no used-buffer interrupt was raised");
  }
  if (mode == ROUND_TRIP || mode == WRITE)
    write_regions();
  if (mode == ROUND_TRIP || mode == READ)
    read_regions();
  if (mode == ROUND_TRIP)
    past_the_end();
  check(!(virtio_status(&dev) & VIRTIO_STATUS_NEEDS_RESET), "the device needs a reset");
  return vtest_result("virtio_blk64");
}
