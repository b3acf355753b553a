/* debugcon: bytes written to the port go to a file descriptor (stdout by
 * default), buffered and flushed at a newline, when full and when a run
 * ends. Reads return 0xe9, as QEMU's does, so guests can detect it. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dev.h"
#include "output.h"
#include "../err.h"
#include "../vm.h"

#define DEBUGCON_BUF 4096

struct debugcon {
  struct device dev;
  pthread_mutex_t lock;
  struct vm *vm;
  struct output out;
  size_t used;
  uint8_t buf[DEBUGCON_BUF];
};

/* Called with the lock held. A failed write drops the output: the guest
 * must not stop because the host's terminal went away. */
static void flush_locked(struct debugcon *d)
{
  if (d->used > 0)
    output_write(&d->out, d->vm, d->buf, d->used);
  d->used = 0;
}

static int debugcon_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                           uint32_t size, bool write)
{
  struct debugcon *d = opaque;
  (void)c;
  (void)offset;
  if (!write) {
    memset(data, 0, size);
    data[0] = 0xe9;
    return 0;
  }
  pthread_mutex_lock(&d->lock);
  /* Only the low byte counts: an `out dx, ax` writes one character. */
  d->buf[d->used++] = data[0];
  if (d->used == DEBUGCON_BUF || data[0] == '\n')
    flush_locked(d);
  pthread_mutex_unlock(&d->lock);
  return 0;
}

static void debugcon_flush(struct device *dev)
{
  struct debugcon *d = (struct debugcon *)dev;
  pthread_mutex_lock(&d->lock);
  flush_locked(d);
  pthread_mutex_unlock(&d->lock);
}

static void debugcon_destroy(struct device *dev)
{
  struct debugcon *d = (struct debugcon *)dev;
  debugcon_flush(dev);
  pthread_mutex_destroy(&d->lock);
  if (d->out.fd > STDERR_FILENO)
    close(d->out.fd);
  free(d);
}

int debugcon_attach(struct vm *vm, uint16_t port, int fd, char *err)
{
  struct debugcon *d = calloc(1, sizeof *d);
  if (d == NULL) {
    if (fd > STDERR_FILENO)
      close(fd);
    return errf(err, "out of memory");
  }
  pthread_mutex_init(&d->lock, NULL);
  d->vm = vm;
  d->out = output_of(fd);
  d->dev.name = "debugcon";
  d->dev.flush = debugcon_flush;
  d->dev.destroy = debugcon_destroy;
  if (bus_add(&vm->pio, port, 1, debugcon_access, d, "debugcon", 0, err) < 0) {
    d->dev.destroy(&d->dev);
    return -1;
  }
  vm_add_device(vm, &d->dev);
  return 0;
}
