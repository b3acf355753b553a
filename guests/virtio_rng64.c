/* virtio_rng64: entropy from a virtio-rng device, in 64-bit long mode.
 *
 * The host attaches vm:virtio_rng at 0xD0001000 (or tells another base)
 * and answers hypercall 0x30 (vtest.h): 1 the base (0: default), 2 the
 * features to ask for (1 indirect descriptors, 2 event index).
 *
 * Reads 64 bytes twice (the second time in two buffers of 32), checks that
 * each came back whole, is not all zeroes and that the two differ. Exits 0
 * when everything held, else with the number of the first failed check. */
#include "vtest.h"

static struct virtio dev;
static struct vq q;
static uint8_t a[64], b[64];

static int all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != 0)
      return 0;
  return 1;
}

static void show(const char *name, const uint8_t *p)
{
  printf("%s:", name);
  for (int i = 0; i < 16; i++)
    printf(" %02x", p[i]);
  printf(" ...\n");
}

int main(void)
{
  uintptr_t base = vtest_param(VTEST_P_BASE);
  uint64_t want = vtest_features();
  if (base == 0)
    base = VTEST_RNG_BASE;
  printf("virtio_rng64: device at 0x%lx\n", (unsigned long)base);
  int rc = virtio_probe(&dev, base, VIRTIO_ID_RNG);
  if (!check(rc == 0, "no virtio-rng device at 0x%lx", (unsigned long)base))
    return vtest_result("virtio_rng64");
  rc = virtio_init(&dev, want);
  check(rc == 0, "feature negotiation: %s", virtio_strerror(rc));
  check((dev.features & want) == want, "the device did not take the features asked for");
  rc = virtio_queue_init(&dev, &q, 0, 8);
  if (!check(rc == 0, "queue set-up: %s", virtio_strerror(rc)) ||
      !check(virtio_driver_ok(&dev) == 0, "DRIVER_OK did not stick"))
    return vtest_result("virtio_rng64");
  int flags = dev.features & VIRTIO_F(VIRTIO_F_INDIRECT_DESC) ? VQ_INDIRECT : 0;

  struct vq_buf one[] = { { (uintptr_t)a, sizeof a, 1 } };
  int64_t used = vq_transfer(&q, one, 1, flags);
  show("first ", a);
  check(used == sizeof a, "first read: %lld bytes, expected 64", (long long)used);
  struct vq_buf two[] = { { (uintptr_t)b, 32, 1 }, { (uintptr_t)b + 32, 32, 1 } };
  used = vq_transfer(&q, two, 2, flags);
  show("second", b);
  check(used == sizeof b, "second read: %lld bytes, expected 64", (long long)used);
  check(!all_zero(a, sizeof a), "the first 64 bytes are all zero");
  check(!all_zero(b, sizeof b), "the second 64 bytes are all zero");
  check(memcmp(a, b, sizeof a) != 0, "both reads returned the same bytes");
  check(!all_zero(b + 32, 32), "the second buffer of the second read is all zero");
  return vtest_result("virtio_rng64");
}
