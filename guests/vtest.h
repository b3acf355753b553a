/* vtest.h: what the virtio test guests (virtio_blk64, virtio_rng64,
 * virtio_hostile64) share: parameters from the host, numbered checks, and
 * virtio-blk requests.
 *
 * Parameters: the guest asks the host with hypercall 0x30 (VTEST_HC_PARAM),
 * the parameter's index in rdi; the host answers in rax (tests/virtio_spec.lua
 * and scripts/virtio-blk.lua register a handler). Index 0 is the mode or
 * the case, 1 the device's base address (0: the default below), 2 the
 * feature bits to ask for (VTEST_F_*), 3 the VM's memory size, 4 the
 * address of a read-only page (a ROM region) when the host mapped one.
 *
 * Checkpoints: hypercall 0x31 (VTEST_HC_CHECKPOINT) tells the host that the
 * guest has seen what it wanted to see, before it cleans up; the host may
 * look at the device then (tests/virtio_spec.lua keeps dev:status()).
 *
 * Checks: each check() a run makes gets the next number, starting at 1; the
 * first that fails becomes the exit code (capped at 255), and each failure
 * prints "check N failed: ...". A run that passes exits 0. */
#ifndef VTEST_H
#define VTEST_H

#include <luavmm.h>
#include <virtio.h>

#define VTEST_HC_PARAM 0x30
#define VTEST_HC_CHECKPOINT 0x31
#define VTEST_BLK_BASE 0xd0000000u
#define VTEST_RNG_BASE 0xd0001000u

enum { VTEST_P_MODE = 0, VTEST_P_BASE = 1, VTEST_P_FEATURES = 2, VTEST_P_MEMORY = 3,
       VTEST_P_ROM = 4 };
#define VTEST_F_INDIRECT 1
#define VTEST_F_EVENT_IDX 2

static inline unsigned long vtest_param(unsigned long i)
{
  return hypercall1(VTEST_HC_PARAM, i);
}

/* The features to ask for, from parameter 2. */
static inline uint64_t vtest_features(void)
{
  unsigned long f = vtest_param(VTEST_P_FEATURES);
  return (f & VTEST_F_INDIRECT ? VIRTIO_F(VIRTIO_F_INDIRECT_DESC) : 0) |
         (f & VTEST_F_EVENT_IDX ? VIRTIO_F(VIRTIO_F_EVENT_IDX) : 0);
}

static int vtest_checks, vtest_failed;

/* Records check number ++vtest_checks; prints it when it fails. */
static int __attribute__((format(printf, 2, 3), unused)) check(int ok, const char *fmt, ...)
{
  vtest_checks++;
  if (!ok) {
    va_list ap;
    va_start(ap, fmt);
    printf("  check %d failed: ", vtest_checks);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (vtest_failed == 0)
      vtest_failed = vtest_checks > 255 ? 255 : vtest_checks;
  }
  return ok;
}

/* The exit code: 0, or the first failed check. */
static inline int vtest_result(const char *name)
{
  if (vtest_failed)
    printf("%s: FAILED (first failed check: %d of %d)\n", name, vtest_failed, vtest_checks);
  else
    printf("%s: all %d checks passed\n", name, vtest_checks);
  return vtest_failed;
}

/* ---- the disk pattern ----
 * Sector s of a test disk holds "sector %08x\n" (16 bytes, s in hex), then
 * byte i (16 to 511) = ((s * 7 + i) & 0xff) ^ 0xa5. The specs compute the
 * same in Lua to check the image file. */
static void __attribute__((unused)) vtest_fill(uint8_t *buf, uint64_t sector, uint32_t count)
{
  for (uint32_t k = 0; k < count; k++, sector++, buf += VIRTIO_BLK_SECTOR) {
    char head[17];
    snprintf(head, sizeof head, "sector %08x\n", (unsigned)sector);
    memcpy(buf, head, 16);
    for (uint32_t i = 16; i < VIRTIO_BLK_SECTOR; i++)
      buf[i] = (uint8_t)(((uint32_t)sector * 7 + i) & 0xff) ^ 0xa5;
  }
}

/* Whether buf holds the pattern of `count` sectors from `sector`. */
static int __attribute__((unused)) vtest_matches(const uint8_t *buf, uint64_t sector,
                                                 uint32_t count)
{
  static uint8_t want[VIRTIO_BLK_SECTOR];
  for (uint32_t k = 0; k < count; k++, sector++, buf += VIRTIO_BLK_SECTOR) {
    vtest_fill(want, sector, 1);
    if (memcmp(buf, want, VIRTIO_BLK_SECTOR) != 0)
      return 0;
  }
  return 1;
}

/* ---- virtio-blk requests ---- */

/* A request's header and status byte, kept apart from the data so that a
 * test can see what the device wrote where. */
struct blk_io {
  struct virtio_blk_req hdr;
  uint8_t status;
};

/* One request: header, the data split into the `nseg` pieces of `seg`
 * (lengths summing to len, all pieces device-writable for reads and
 * GET_ID, readable for writes), status. Returns the used length (the
 * status in io->status), or a negative VIRTIO_ / VQ_ error. */
static int64_t __attribute__((unused))
blk_request(struct vq *q, struct blk_io *io, uint32_t type, uint64_t sector, void *data,
            const uint32_t *seg, int nseg, int flags)
{
  struct vq_buf bufs[VQ_INDIRECT_MAX];
  if (nseg + 2 > VQ_INDIRECT_MAX)
    return VIRTIO_EINVAL;
  int writable = type != VIRTIO_BLK_T_OUT;
  io->hdr.type = type;
  io->hdr.reserved = 0;
  io->hdr.sector = sector;
  io->status = 0xee;
  int n = 0;
  bufs[n++] = (struct vq_buf){ (uintptr_t)&io->hdr, sizeof io->hdr, 0 };
  uintptr_t p = (uintptr_t)data;
  for (int i = 0; i < nseg; i++) {
    bufs[n++] = (struct vq_buf){ p, seg[i], writable };
    p += seg[i];
  }
  bufs[n++] = (struct vq_buf){ (uintptr_t)&io->status, 1, 1 };
  return vq_transfer(q, bufs, n, flags);
}

/* A read or write of `count` sectors in one piece. */
static int64_t __attribute__((unused))
blk_rw(struct vq *q, struct blk_io *io, uint32_t type, uint64_t sector, void *data,
       uint32_t count, int flags)
{
  uint32_t len = count * VIRTIO_BLK_SECTOR;
  return blk_request(q, io, type, sector, data, &len, count ? 1 : 0, flags);
}

#endif
