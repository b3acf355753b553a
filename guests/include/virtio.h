/* virtio.h: a small guest-side virtio-mmio driver (virtio 1.x, register
 * layout version 2, split virtqueues), for test guests. Works in 32-bit
 * and 64-bit guests; addresses are physical (see luavmm.h).
 *
 * It polls: a request is put in the available ring, the device is notified
 * through QueueNotify, and the driver watches the used ring. Interrupts are
 * left enabled on the device side (so the device's interrupt counters
 * move), but the driver never waits for one. A wait is bounded: every round
 * it also reads the device status, so a device that stopped serving the
 * queue (DEVICE_NEEDS_RESET) or a request that never completes ends the
 * wait with an error instead of a hang.
 *
 * Typical use (one request at a time):
 *
 *   static struct virtio dev;
 *   static struct vq q;                         // static: rings inside
 *   if (virtio_probe(&dev, 0xd0000000, VIRTIO_ID_BLOCK) < 0 ||
 *       virtio_init(&dev, VIRTIO_F(VIRTIO_F_INDIRECT_DESC)) < 0 ||
 *       virtio_queue_init(&dev, &q, 0, 64) < 0 || virtio_driver_ok(&dev) < 0)
 *     ...;
 *   struct vq_buf bufs[] = { { hdr, 16, 0 }, { data, 512, 1 }, { st, 1, 1 } };
 *   int64_t used = vq_transfer(&q, bufs, 3, 0);  // bytes written, or VQ_E*
 *
 * The structures are public on purpose: a hostile test guest writes the
 * rings and registers by hand where this driver would do it right.
 */
#ifndef LUAVMM_VIRTIO_H
#define LUAVMM_VIRTIO_H

#include <stddef.h>
#include <stdint.h>

/* ---- the transport's registers (offsets from the device's base) ---- */
enum {
  VIRTIO_MMIO_MAGIC = 0x000,          /* R  0x74726976, "virt" */
  VIRTIO_MMIO_VERSION = 0x004,        /* R  2 */
  VIRTIO_MMIO_DEVICE_ID = 0x008,      /* R  0: no device */
  VIRTIO_MMIO_VENDOR_ID = 0x00c,      /* R */
  VIRTIO_MMIO_DEVICE_FEATURES = 0x010, /* R  32 bits, selected below */
  VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014, /* W */
  VIRTIO_MMIO_DRIVER_FEATURES = 0x020, /* W */
  VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024, /* W */
  VIRTIO_MMIO_QUEUE_SEL = 0x030,      /* W */
  VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034,  /* R  0: no such queue */
  VIRTIO_MMIO_QUEUE_NUM = 0x038,      /* W */
  VIRTIO_MMIO_QUEUE_READY = 0x044,    /* RW */
  VIRTIO_MMIO_QUEUE_NOTIFY = 0x050,   /* W  the queue's index */
  VIRTIO_MMIO_INTERRUPT_STATUS = 0x060, /* R */
  VIRTIO_MMIO_INTERRUPT_ACK = 0x064,  /* W */
  VIRTIO_MMIO_STATUS = 0x070,         /* RW  0 resets */
  VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080, /* W */
  VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084,
  VIRTIO_MMIO_QUEUE_DRIVER_LOW = 0x090, /* W  the available ring */
  VIRTIO_MMIO_QUEUE_DRIVER_HIGH = 0x094,
  VIRTIO_MMIO_QUEUE_DEVICE_LOW = 0x0a0, /* W  the used ring */
  VIRTIO_MMIO_QUEUE_DEVICE_HIGH = 0x0a4,
  VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc, /* R */
  VIRTIO_MMIO_CONFIG = 0x100,         /* the device-specific config space */
};

#define VIRTIO_MMIO_MAGIC_VALUE 0x74726976u

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* Feature bits the transport knows; VIRTIO_F(bit) makes the mask. */
#define VIRTIO_F(bit) (1ull << (bit))
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* Interrupt status bits. */
#define VIRTIO_INT_USED 1
#define VIRTIO_INT_CONFIG 2

/* ---- split virtqueues (virtio 1.x, 2.7) ---- */
#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VQ_DESC_F_INDIRECT 4

/* The largest queue this driver sets up, and the entries of its one
 * indirect table. */
#define VQ_MAX 256
#define VQ_INDIRECT_MAX 64

struct vq_desc {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};

/* The available ring: flags, idx, ring[num], used_event. Sized for VQ_MAX;
 * with a smaller queue used_event sits at ring[num], so the driver reaches
 * it through vq_used_event(). */
struct vq_avail {
  uint16_t flags;
  uint16_t idx;
  uint16_t ring[VQ_MAX + 1];
};

struct vq_used_elem {
  uint32_t id;
  uint32_t len;
};

/* The used ring: flags, idx, ring[num], avail_event (at ring[num]). */
struct vq_used {
  uint16_t flags;
  uint16_t idx;
  struct vq_used_elem ring[VQ_MAX + 1];
};

struct virtio;

/* A queue and its memory. Put it in .bss or .data: it holds the rings. */
struct vq {
  struct vq_desc desc[VQ_MAX] __attribute__((aligned(4096)));
  struct vq_avail avail __attribute__((aligned(4096)));
  struct vq_used used __attribute__((aligned(4096)));
  struct vq_desc indirect[VQ_INDIRECT_MAX] __attribute__((aligned(16)));
  struct virtio *dev;
  uint16_t index;        /* the queue's number on the device */
  uint16_t num;          /* its size, a power of two */
  uint16_t free_head;    /* the next descriptor to hand out (round robin) */
  uint16_t free;         /* descriptors not in flight */
  uint16_t avail_idx;    /* our copy of avail.idx */
  uint16_t last_used;    /* the used entries we have consumed */
  uint16_t chain_len[VQ_MAX]; /* descriptors in the chain at each head */
  int indirect_busy;     /* the indirect table belongs to a request */
};

struct virtio {
  uintptr_t base;
  uint32_t device_id;
  uint64_t device_features; /* what the device offers */
  uint64_t features;        /* what was negotiated */
  unsigned long poll_limit; /* rounds a wait may take; 0 means the default */
  int irq_waits;            /* nonzero: vq_transfer waits with vq_wait_irq */
  volatile unsigned long interrupts; /* virtio_interrupt() calls */
  volatile uint32_t isr_seen;        /* the InterruptStatus bits they found */
};

/* One buffer of a request. */
struct vq_buf {
  uint64_t addr;
  uint32_t len;
  int writable;          /* device-writable (the device fills it) */
};

/* Errors: every function returning int or int64_t gives a negative one. */
enum {
  VIRTIO_ENODEV = -1,    /* no magic, wrong version, or another device id */
  VIRTIO_EFEATURES = -2, /* the device lacks a required feature, or FEATURES_OK did not stick */
  VIRTIO_EQUEUE = -3,    /* no such queue, a size it cannot take, or QueueReady did not stick */
  VQ_ENOSPC = -4,        /* not enough free descriptors (or the indirect table is busy) */
  VQ_ENEEDS_RESET = -5,  /* the device set DEVICE_NEEDS_RESET while we waited */
  VQ_ETIMEOUT = -6,      /* nothing came back within the poll limit */
  VIRTIO_EINVAL = -7,    /* a request this driver cannot express */
};

/* A text for an error code above. */
const char *virtio_strerror(int err);

/* ---- registers and config space ---- */
uint32_t virtio_read(const struct virtio *d, uint32_t reg);
void virtio_write(const struct virtio *d, uint32_t reg, uint32_t v);
uint32_t virtio_status(const struct virtio *d);

/* Config space fields at `offset` from its start: one access each, of the
 * field's width (the 64-bit one as two 32-bit halves, retried while the
 * config generation changes). */
uint8_t virtio_config8(const struct virtio *d, uint32_t offset);
uint16_t virtio_config16(const struct virtio *d, uint32_t offset);
uint32_t virtio_config32(const struct virtio *d, uint32_t offset);
uint64_t virtio_config64(const struct virtio *d, uint32_t offset);

/* ---- bringing a device up ---- */

/* Checks the magic, the version (2) and the device id (`device_id`, or any
 * device but 0 when device_id is 0) at `base`; fills d. */
int virtio_probe(struct virtio *d, uintptr_t base, uint32_t device_id);

/* Resets the device and writes status 0 (all state on the device gone). */
void virtio_reset(struct virtio *d);

/* Reset, ACKNOWLEDGE | DRIVER, read the device's features, accept
 * VERSION_1 (required) plus those of `wanted` the device offers, then
 * FEATURES_OK and check that it stuck. On failure the status gets FAILED. */
int virtio_init(struct virtio *d, uint64_t wanted);

/* Sets up queue `index` with `num` entries (a power of two, at most
 * VQ_MAX and the device's QueueNumMax) over q's rings, then QueueReady. */
int virtio_queue_init(struct virtio *d, struct vq *q, uint16_t index, uint16_t num);

/* DRIVER_OK: the device is live. */
int virtio_driver_ok(struct virtio *d);

/* Reads and acknowledges the interrupt status; returns what it was. */
uint32_t virtio_ack_interrupts(const struct virtio *d);

/* ---- requests ---- */
#define VQ_INDIRECT 1   /* vq_submit flag: put the chain in the indirect table */

/* Writes the chain of n buffers into the descriptor table (or into the
 * indirect table, with VQ_INDIRECT), makes it available and returns its
 * head; no notification yet. */
int vq_submit(struct vq *q, const struct vq_buf *bufs, int n, int flags);

/* Makes descriptor `head` available (the next available ring entry and
 * index, after a write barrier). For hostile guests that build their own
 * descriptors. */
void vq_publish(struct vq *q, uint16_t head);

/* Notifies the device, unless its avail_event says it does not want it
 * (with EVENT_IDX). `old` is avail_idx before the last publish. */
void vq_kick(struct vq *q, uint16_t old);
/* Notifies without asking. */
void vq_notify(struct vq *q);

/* Polls for the next used entry: returns its descriptor id with *len the
 * bytes the device wrote, or VQ_ENEEDS_RESET / VQ_ETIMEOUT. Frees the
 * chain's descriptors when the id is one this driver handed out. */
int vq_wait(struct vq *q, uint32_t *len);

/* vq_submit, kick, vq_wait (vq_wait_irq with dev->irq_waits): the used
 * length, or an error. */
int64_t vq_transfer(struct vq *q, const struct vq_buf *bufs, int n, int flags);

/* ---- waiting for interrupts (64-bit, with <irq.h>) ----
 * The device's interrupt handler calls virtio_interrupt(d): it reads and
 * acknowledges InterruptStatus, and counts. vq_wait_irq is vq_wait that
 * sleeps (irq_wait: sti; hlt) until an interrupt between looks at the used
 * ring, instead of polling the device: with an ioeventfd and an irqfd on
 * the host side, a request then costs no exit but the handler's two.
 * Call it with interrupts off; it returns with them off. It reads the
 * device status only after a wake-up that brought nothing (a device that
 * gives up raises a configuration interrupt), and has no bound of its
 * own: a wait nothing wakes lasts until the host stops the VM. */
uint32_t virtio_interrupt(struct virtio *d);
int vq_wait_irq(struct vq *q, uint32_t *len);

/* Where the driver writes used_event and the device avail_event. */
static inline volatile uint16_t *vq_used_event(struct vq *q)
{
  return &q->avail.ring[q->num];
}

static inline volatile uint16_t *vq_avail_event(struct vq *q)
{
  return (volatile uint16_t *)&q->used.ring[q->num];
}

/* ---- virtio-blk (device id 2) ---- */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_CFG_CAPACITY 0  /* u64, in 512-byte sectors */
#define VIRTIO_BLK_CFG_SEG_MAX 12  /* u32 */
#define VIRTIO_BLK_CFG_BLK_SIZE 20 /* u32 */

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_SECTOR 512

struct virtio_blk_req {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

#endif
