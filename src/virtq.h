/* Split virtqueues (virtio 1.x, section 2.7) walked by the device side, with
 * everything the guest wrote treated as hostile: ring indices, descriptor
 * addresses and lengths, chain links and indirect tables are all checked
 * before use, and every buffer handed to a device lies wholly inside guest
 * memory.
 *
 * The rings are translated to host pointers once, when the driver marks the
 * queue ready; guest memory regions never move or shrink while a VM exists,
 * so those pointers stay valid. Descriptors are copied before they are
 * checked, so a guest rewriting one meanwhile cannot slip past the check. */
#ifndef LUAVMM_VIRTQ_H
#define LUAVMM_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

#define VIRTQ_MAX_SIZE 32768   /* the largest queue the spec allows */
#define VIRTQ_MAX_BUFS 1024    /* buffers in one chain, indirect ones included */

struct virtq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

struct virtq {
  uint16_t num;         /* entries; a power of two; 0 while not set up */
  bool event_idx;       /* VIRTIO_F_EVENT_IDX negotiated */
  bool indirect;        /* VIRTIO_F_INDIRECT_DESC negotiated */
  uint16_t last_avail;  /* the next available entry to take */
  uint16_t used_idx;    /* the next used entry to fill */
  uint16_t signalled;   /* used_idx when the driver was last notified */
  struct virtq_desc *desc;
  uint16_t *avail;      /* flags, idx, ring[num], used_event */
  uint8_t *used;        /* flags, idx, ring[num] of {u32 id, u32 len}, avail_event */
  const struct mem *mem;
};

/* One buffer of a chain: host memory inside a guest region. */
struct virtq_buf {
  uint8_t *host;
  uint32_t len;
  bool write;           /* device-writable */
};

struct virtq_chain {
  uint16_t head;        /* what goes back in the used ring */
  unsigned count;
  uint64_t readable;    /* bytes in device-readable buffers */
  uint64_t writable;    /* bytes in device-writable buffers */
  struct virtq_buf bufs[VIRTQ_MAX_BUFS];
};

/* Checks and translates the three rings. Fails (message in err) when num
 * is not a power of two up to VIRTQ_MAX_SIZE, an address is misaligned, or
 * a ring is not wholly inside guest memory. */
int virtq_setup(struct virtq *q, const struct mem *mem, uint16_t num, uint64_t desc,
                uint64_t avail, uint64_t used, char *err);
void virtq_reset(struct virtq *q);

/* Takes the next available chain: 1 with *c filled, 0 when none is
 * available, -1 when the driver broke the rules (err says how): the device
 * then needs a reset. Zero-length buffers are skipped. With the event index,
 * each pop first sets avail_event to the first entry not taken yet: a
 * device that pops until 0 has asked to hear of the driver's next entry. */
int virtq_pop(struct virtq *q, struct virtq_chain *c, char *err);

/* Returns a chain to the driver with the number of bytes written. */
void virtq_push(struct virtq *q, uint16_t head, uint32_t written);

/* After pushes: whether the driver wants an interrupt now (event index or
 * the NO_INTERRUPT flag), and records that it was told. */
bool virtq_should_notify(struct virtq *q);

/* Copies between a chain's buffers and a host buffer, starting `offset`
 * bytes into the readable (or writable) part. Returns the bytes copied,
 * which is less than len when the chain is shorter. */
size_t virtq_read(const struct virtq_chain *c, uint64_t offset, void *dst, size_t len);

/* Fills iov (room for c->count entries) with `len` bytes of the readable
 * (or writable) part, starting `skip` bytes in, for preadv/pwritev.
 * Returns the number of entries. */
struct iovec;
int virtq_iov(const struct virtq_chain *c, bool writable, uint64_t skip, uint64_t len,
              struct iovec *iov);
size_t virtq_write(const struct virtq_chain *c, uint64_t offset, const void *src, size_t len);

/* The same over the first `count` buffers of a chain kept elsewhere (a Lua
 * chain keeps only the buffers it has, not a whole struct virtq_chain). */
size_t virtq_bufs_read(const struct virtq_buf *bufs, unsigned count, uint64_t offset, void *dst,
                       size_t len);
size_t virtq_bufs_write(const struct virtq_buf *bufs, unsigned count, uint64_t offset,
                        const void *src, size_t len);

#endif
