/* virtio-rng: every buffer the driver offers is filled from the host's
 * getrandom. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "../err.h"
#include "virtio_devices.h"
#include "virtio_mmio.h"

struct rng {
  struct virtq_chain chain;
};

static int rng_notify(struct virtio_mmio *t, uint16_t q)
{
  struct rng *r = t->be.opaque;
  struct virtq *vq = virtio_queue(t, q);
  char err[ERR_LEN];
  int rc;
  while (vq != NULL && (rc = virtq_pop(vq, &r->chain, err)) != 0) {
    if (rc < 0)
      return virtio_fail(t, "virtio-rng: %s", err);
    uint64_t filled = 0;
    for (unsigned i = 0; i < r->chain.count; i++) {
      const struct virtq_buf *b = &r->chain.bufs[i];
      if (!b->write)
        continue;
      uint32_t done = 0;
      while (done < b->len) {
        ssize_t n = getrandom(b->host + done, b->len - done, 0);
        if (n < 0 && errno == EINTR)
          continue;
        if (n <= 0)
          break;
        done += (uint32_t)n;
      }
      filled += done;
    }
    virtq_push(vq, r->chain.head, (uint32_t)filled);
  }
  virtio_notify_used(t, q);
  return 0;
}

static void rng_destroy(struct virtio_mmio *t)
{
  free(t->be.opaque);
}

int virtio_rng_attach(struct vm *vm, uint64_t base, uint32_t irq, struct virtio_mmio **out,
                      char *err)
{
  struct rng *r = calloc(1, sizeof *r);
  if (r == NULL)
    return errf(err, "out of memory");
  struct virtio_backend be = {
    .device_id = 4,
    .num_queues = 1,
    .queue_max = 256,
    .notify = rng_notify,
    .destroy = rng_destroy,
    .opaque = r,
  };
  if (virtio_mmio_attach(vm, base, irq, &be, out, err) < 0) {
    free(r);
    return -1;
  }
  return 0;
}
