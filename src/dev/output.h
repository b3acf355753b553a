/* Output of a C device (debugcon, the UART, virtio-console) to a host fd,
 * written on a vCPU's or a device's thread with the device's lock held. */
#ifndef LUAVMM_OUTPUT_H
#define LUAVMM_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct vm;

struct output {
  int fd;         /* < 0: output is dropped */
  bool may_block; /* a pipe, FIFO, socket or terminal: the reader sets the pace */
};

/* fd (or -1) as an output; one fstat. */
struct output output_of(int fd);

/* Writes all of iov[0..n) (iov is consumed). A reader that stops reading
 * (a pager left open, a full pipe) must not make the VM unstoppable, so an
 * fd that may block is waited for in poll, where a stop request of vm
 * (vm:stop, a timeout, Ctrl-C, SIGTERM) is seen; then the rest is dropped.
 * Returns 0, or -1 when output was dropped (a stop, or a write error). */
int output_writev(const struct output *o, struct vm *vm, struct iovec *iov, int n);
int output_write(const struct output *o, struct vm *vm, const void *buf, size_t len);

#endif
