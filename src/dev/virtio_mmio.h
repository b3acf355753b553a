/* The virtio-mmio transport (virtio 1.x, register layout version 2): one
 * 4 KiB window per device with feature negotiation, device status, the
 * config space and split virtqueues. What the device does with its queues
 * is up to its backend: a C device (virtio-blk, -rng, -console) or a Lua
 * one (src/lvirtio.c). One lock per device guards the transport and the
 * backend's queues.
 *
 * The fast path (on by default where KVM has it; virtio_mmio_set_fastpath):
 * a C backend's queue notifications reach an eventfd through KVM_IOEVENTFD
 * instead of exiting, and the device's I/O thread, which runs while the VM
 * runs, calls the backend's notify; with the in-kernel irqchip, interrupts
 * go to KVM through an irqfd. virtio_mmio.c explains threads, lifetimes and
 * the interrupt scheme. */
#ifndef LUAVMM_VIRTIO_MMIO_H
#define LUAVMM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../virtq.h"
#include "../vm.h"

#define VIRTIO_MMIO_SIZE 0x1000
#define VIRTIO_MAX_QUEUES 8
#define VIRTIO_CONFIG_MAX 256

#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

#define VIRTIO_INT_USED 1
#define VIRTIO_INT_CONFIG 2

struct virtio_mmio;
struct vcpu;

/* What a register access asks of a backend whose hooks cannot run under
 * the device lock (see `deferred` below). */
enum virtio_event_kind {
  VIRTIO_EVENT_NONE,
  VIRTIO_EVENT_NOTIFY,       /* the driver notified `queue` */
  VIRTIO_EVENT_CONFIG_WRITE, /* the driver wrote config[offset, offset+size) */
  VIRTIO_EVENT_RESET,        /* the driver reset the device */
};

struct virtio_event {
  enum virtio_event_kind kind;
  uint16_t queue;
  uint32_t offset;
  uint32_t size;
};

/* A backend. Every hook is called with the device lock held, except
 * `deferred`. */
struct virtio_backend {
  uint32_t device_id;
  uint64_t features;     /* device-specific bits; the transport adds its own */
  uint16_t num_queues;
  uint16_t queue_max;    /* the largest queue size the backend accepts */
  uint16_t queue_max_each[VIRTIO_MAX_QUEUES]; /* per queue where nonzero */
  uint32_t config_size;
  uint8_t config[VIRTIO_CONFIG_MAX];
  /* The driver notified queue q, or (from a backend thread) there is work.
   * Returns 0, or -1 after virtio_fail(). */
  int (*notify)(struct virtio_mmio *t, uint16_t q);
  /* A driver write to the config space, already stored in config[]. */
  void (*config_write)(struct virtio_mmio *t, uint32_t offset, uint32_t size);
  /* The driver reset the device (status 0), or set DRIVER_OK. */
  void (*reset)(struct virtio_mmio *t);
  void (*ready)(struct virtio_mmio *t);
  void (*destroy)(struct virtio_mmio *t);
  /* Set by a backend that must not be called with the device lock held: a
   * Lua one, whose calls take the control-plane lock, while a thread that
   * holds the control-plane lock may take the device lock (dev:pop). Were
   * notify called under the device lock, a vCPU thread holding it would
   * wait for the control-plane lock while the thread holding that waits
   * for the device lock. With `deferred` set, the transport never calls
   * notify, config_write or reset: it records the event of the access
   * and, after releasing its lock, calls deferred() on the vCPU's thread.
   * Its result is the access's (0, or -1 after vcpu_fault). */
  int (*deferred)(struct virtio_mmio *t, struct vcpu *c, const struct virtio_event *ev);
  void *opaque;
};

/* The fast path's state; everything but the thread fields is under the
 * device lock. */
struct virtio_fastpath {
  bool on;                                /* asked for (the `fastpath` option) */
  int kick_fd[VIRTIO_MAX_QUEUES];         /* a queue's notifications, or -1 */
  bool kick_assigned[VIRTIO_MAX_QUEUES];  /* KVM signals kick_fd now */
  bool kick_failed[VIRTIO_MAX_QUEUES];    /* KVM refused it: the queue exits */
  int irq_fd;                             /* bound to the line with KVM_IRQFD, or -1 */
  int wake_fd;                            /* ends the I/O thread's poll, or -1 */
  bool stopping;                          /* the I/O thread must return */
  pthread_t thread;                       /* the I/O thread: started and joined by */
  bool thread_running;                    /* the device hooks, on the control thread */
  char error[160];                        /* what failed, when part of it is off */
  uint64_t notifies;                      /* notifications that came through kick_fd */
  uint64_t interrupts;                    /* interrupts sent through irq_fd */
};

struct virtio_queue {
  struct virtq vq;
  uint16_t num;          /* QueueNum as the driver wrote it */
  bool ready;
  uint64_t desc, driver, device;
  uint64_t epoch;        /* which set-up of the queue this is; 0 while not ready */
};

struct virtio_mmio {
  struct device dev;     /* the VM's device list */
  struct vm *vm;
  pthread_mutex_t lock;
  uint64_t base;
  uint32_t irq;
  struct virtio_backend be;

  uint32_t status;
  uint32_t isr;
  uint32_t config_generation;
  uint32_t device_features_sel;
  uint32_t driver_features_sel;
  uint64_t driver_features;
  uint32_t queue_sel;
  struct virtio_queue queues[VIRTIO_MAX_QUEUES];
  /* Counts queue set-ups: each ready queue gets a new epoch, so a chain
   * popped before a reset or a queue's new set-up is known to be stale. */
  uint64_t epochs;

  /* Why the device last needed a reset, and counters, for Lua. */
  char error[256];
  uint64_t errors;
  uint64_t notifies;
  uint64_t interrupts;
  uint64_t bad_accesses;  /* wrong sizes, unknown registers */

  struct virtio_fastpath fp;
};

/* Maps a device at base (4 KiB, page-aligned) with interrupt line irq. The
 * transport owns the backend from here on (destroy hook). The fast path is
 * on where the VM allows it. */
int virtio_mmio_attach(struct vm *vm, uint64_t base, uint32_t irq,
                       const struct virtio_backend *be, struct virtio_mmio **out, char *err);

/* Turns the fast path on (ioeventfd for a C backend's queues where KVM has
 * it; an irqfd where the VM has the in-kernel irqchip) or off (every
 * notification exits, the line is KVM_IRQ_LINE). Only while the VM is not
 * running; the Lua constructors call it right after attaching. What did not
 * work out is in t->fp.error, and that part stays off. */
void virtio_mmio_set_fastpath(struct virtio_mmio *t, bool on);

/* With the lock held: the driver notified queue q `count` times through
 * its eventfd. Counts them and, when the queue is live, calls the backend's
 * notify. The I/O thread's work; the fuzz harness calls it at any moment,
 * as the thread may. */
void virtio_mmio_kicked(struct virtio_mmio *t, uint16_t q, uint64_t count);

/* For backends, with the lock held: the driver's queue q (NULL unless set
 * up and ready), a used-buffer interrupt when the driver wants one, and
 * the failure that sets DEVICE_NEEDS_RESET (the message is kept). */
struct virtq *virtio_queue(struct virtio_mmio *t, uint16_t q);
void virtio_notify_used(struct virtio_mmio *t, uint16_t q);
int virtio_fail(struct virtio_mmio *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* For backends, with the lock held: the device changed its config space;
 * bumps the config generation and, once the driver is live, interrupts it
 * with a configuration change. */
void virtio_config_changed(struct virtio_mmio *t);

/* The largest size queue q accepts (QueueNumMax). */
uint16_t virtio_queue_max(const struct virtio_mmio *t, uint16_t q);

/* Whether the driver negotiated a feature bit. */
bool virtio_has_feature(const struct virtio_mmio *t, unsigned bit);

#endif
