/* The C virtio devices, each on the virtio-mmio transport. */
#ifndef LUAVMM_VIRTIO_DEVICES_H
#define LUAVMM_VIRTIO_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

struct vm;
struct virtio_mmio;

struct virtio_blk_stats {
  uint64_t reads, writes, flushes, errors;
  uint64_t bytes_read, bytes_written;
};

int virtio_blk_attach(struct vm *vm, uint64_t base, uint32_t irq, const char *path,
                      bool readonly, const char *id, struct virtio_mmio **out, char *err);
const struct virtio_blk_stats *virtio_blk_stats(const struct virtio_mmio *t);

int virtio_rng_attach(struct vm *vm, uint64_t base, uint32_t irq, struct virtio_mmio **out,
                      char *err);

#endif
