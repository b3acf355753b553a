/* virtio-blk backed by a raw image file: read, write, flush and get-id,
 * served with preadv/pwritev straight between the file and the guest's
 * buffers. A flush returns only after fdatasync, so data the guest was told
 * is flushed is on the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../err.h"
#include "virtio_devices.h"
#include "virtio_mmio.h"

#define SECTOR 512
#define BLK_F_SEG_MAX 2
#define BLK_F_RO 5
#define BLK_F_BLK_SIZE 6
#define BLK_F_FLUSH 9
#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8
#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2
#define BLK_ID_BYTES 20
#define QUEUE_MAX 256

struct blk {
  int fd;
  uint64_t sectors;
  bool readonly;
  char id[BLK_ID_BYTES];
  struct virtio_blk_stats stats;
  struct virtq_chain chain;
};

/* preadv/pwritev until done: short transfers resume where they stopped. */
static int transfer(int fd, struct iovec *iov, int n, off_t at, bool write)
{
  while (n > 0) {
    ssize_t r = write ? pwritev(fd, iov, n, at) : preadv(fd, iov, n, at);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1; /* an error, or the file ended early */
    at += r;
    while (n > 0 && (size_t)r >= iov->iov_len) {
      r -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + r;
      iov->iov_len -= (size_t)r;
    }
  }
  return 0;
}

static uint8_t serve(struct blk *b, const struct virtq_chain *c, uint64_t *written)
{
  struct {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
  } hdr;
  struct iovec iov[VIRTQ_MAX_BUFS];
  uint64_t data, end;

  if (c->readable < sizeof hdr)
    return BLK_S_IOERR;
  virtq_read(c, 0, &hdr, sizeof hdr);
  switch (hdr.type) {
  case BLK_T_IN:
  case BLK_T_OUT: {
    bool out = hdr.type == BLK_T_OUT;
    data = out ? c->readable - sizeof hdr : c->writable - 1;
    if (out && b->readonly)
      return BLK_S_IOERR;
    /* The data goes one way only: data buffers pointing the other way
     * would pass for a transfer of 0 bytes, and report success. */
    if (out ? c->writable != 1 : c->readable != sizeof hdr)
      return BLK_S_IOERR;
    /* Whole sectors, inside the disk; the arithmetic cannot overflow. */
    if (data % SECTOR || hdr.sector > b->sectors ||
        __builtin_add_overflow(hdr.sector, data / SECTOR, &end) || end > b->sectors)
      return BLK_S_IOERR;
    int n = virtq_iov(c, !out, out ? sizeof hdr : 0, data, iov);
    if (transfer(b->fd, iov, n, (off_t)(hdr.sector * SECTOR), out) < 0)
      return BLK_S_IOERR;
    if (out)
      b->stats.writes++, b->stats.bytes_written += data;
    else
      b->stats.reads++, b->stats.bytes_read += data, *written = data;
    return BLK_S_OK;
  }
  case BLK_T_FLUSH:
    b->stats.flushes++;
    return fdatasync(b->fd) == 0 ? BLK_S_OK : BLK_S_IOERR;
  case BLK_T_GET_ID: {
    uint64_t n = c->writable - 1 < BLK_ID_BYTES ? c->writable - 1 : BLK_ID_BYTES;
    *written = virtq_write(c, 0, b->id, (size_t)n);
    return BLK_S_OK;
  }
  default:
    return BLK_S_UNSUPP;
  }
}

static int blk_notify(struct virtio_mmio *t, uint16_t q)
{
  struct blk *b = t->be.opaque;
  struct virtq *vq = virtio_queue(t, q);
  char err[ERR_LEN];
  int rc;
  while (vq != NULL && (rc = virtq_pop(vq, &b->chain, err)) != 0) {
    if (rc < 0)
      return virtio_fail(t, "virtio-blk: %s", err);
    /* Without a byte to put the status in, the driver cannot be told. */
    if (b->chain.writable < 1)
      return virtio_fail(t, "virtio-blk: request %u has no writable status byte", b->chain.head);
    uint64_t written = 0;
    uint8_t status = serve(b, &b->chain, &written);
    if (status != BLK_S_OK)
      b->stats.errors++;
    virtq_write(&b->chain, b->chain.writable - 1, &status, 1);
    virtq_push(vq, b->chain.head, (uint32_t)(written + 1));
  }
  virtio_notify_used(t, q);
  return 0;
}

static void blk_destroy(struct virtio_mmio *t)
{
  struct blk *b = t->be.opaque;
  close(b->fd);
  free(b);
}

int virtio_blk_attach(struct vm *vm, uint64_t base, uint32_t irq, const char *path,
                      bool readonly, const char *id, struct virtio_mmio **out, char *err)
{
  struct blk *b = calloc(1, sizeof *b);
  if (b == NULL)
    return errf(err, "out of memory");
  b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  struct stat sb;
  if (b->fd < 0 || fstat(b->fd, &sb) < 0) {
    int e = errno;
    if (b->fd >= 0)
      close(b->fd);
    free(b);
    return errf(err, "virtio-blk: cannot open %s: %s", path, strerror(e));
  }
  if (!S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode)) {
    close(b->fd);
    free(b);
    return errf(err, "virtio-blk: %s is not a regular file or a block device", path);
  }
  off_t size = lseek(b->fd, 0, SEEK_END);
  b->sectors = size > 0 ? (uint64_t)size / SECTOR : 0;
  b->readonly = readonly;
  strncpy(b->id, id ? id : "luavmm", sizeof b->id);

  struct virtio_backend be = {
    .device_id = 2,
    .features = (1ull << BLK_F_SEG_MAX) | (1ull << BLK_F_BLK_SIZE) | (1ull << BLK_F_FLUSH) |
                (readonly ? 1ull << BLK_F_RO : 0),
    .num_queues = 1,
    .queue_max = QUEUE_MAX,
    .config_size = 24,
    .notify = blk_notify,
    .destroy = blk_destroy,
    .opaque = b,
  };
  /* Config: capacity (u64 sectors), size_max (u32), seg_max (u32),
   * geometry (4 bytes), blk_size (u32). */
  uint32_t seg_max = VIRTQ_MAX_BUFS - 2, blk_size = SECTOR;
  memcpy(be.config, &b->sectors, 8);
  memcpy(be.config + 12, &seg_max, 4);
  memcpy(be.config + 20, &blk_size, 4);
  if (virtio_mmio_attach(vm, base, irq, &be, out, err) < 0) {
    close(b->fd);
    free(b);
    return -1;
  }
  return 0;
}

const struct virtio_blk_stats *virtio_blk_stats(const struct virtio_mmio *t)
{
  return &((const struct blk *)t->be.opaque)->stats;
}
