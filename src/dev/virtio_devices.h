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

/* virtio-console, one port: output to out_fd, input from in_fd (-1 for
 * none; both become the device's, closed on failure too, unless they are
 * stdin, stdout or stderr). Only one device in the process may read stdin
 * (term.h): with stdin_optional a console asking for it when it is taken
 * gets no input, otherwise that is an error. */
struct virtio_console_config {
  int in_fd;
  int out_fd;
  bool escape;          /* Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A */
  bool stdin_optional;
};

struct virtio_console_stats {
  uint64_t output_bytes;  /* taken from the transmit queue */
  uint64_t output_errors; /* chains whose write failed (their output is lost) */
  uint64_t input_bytes;   /* put in receive buffers */
  uint64_t input_pending; /* read from the input, waiting for receive buffers */
};

int virtio_console_attach(struct vm *vm, uint64_t base, uint32_t irq,
                          const struct virtio_console_config *cfg, struct virtio_mmio **out,
                          char *err);
/* With the device lock held. */
void virtio_console_stats(const struct virtio_mmio *t, struct virtio_console_stats *out);

#endif
