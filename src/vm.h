/* A virtual machine: the KVM VM fd, its memory, its two buses and its vCPUs. */
#ifndef LUAVMM_VM_H
#define LUAVMM_VM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "kvm.h"
#include "mem.h"

struct vcpu;
struct trace;

/* What happens to an access no range claims. */
enum unhandled_policy {
  UNHANDLED_STOP,   /* stop the VM with an error naming the access */
  UNHANDLED_IGNORE, /* drop writes, read all-ones */
  UNHANDLED_CALL,   /* call vm->unhandled_fn */
};

typedef int unhandled_fn(void *opaque, struct vcpu *cpu, enum bus_space space, uint64_t addr,
                         uint8_t *data, uint32_t size, bool is_write);

/* A C device's hooks beyond its bus handler, each optional: start when a
 * run starts (before any vCPU enters: a console takes the terminal), flush
 * when it ends (after every vCPU has stopped: output, the terminal back),
 * and free itself when the VM goes. quiesce also comes when a run ends,
 * before any device's flush: a device whose own thread serves the guest
 * (a virtio transport's I/O thread) stops it there, so that it calls no
 * other device that has flushed already. */
struct device {
  struct device *next;
  const char *name;
  void (*start)(struct device *dev);
  void (*flush)(struct device *dev);
  void (*destroy)(struct device *dev);
  void (*quiesce)(struct device *dev);
};

struct vm {
  struct kvm *kvm;
  int fd;
  struct mem mem;
  struct bus pio;
  struct bus mmio;
  struct vcpu **cpus;
  int ncpus;
  struct device *devices;

  /* Stop requests from outside the guest (vm:stop, timeout, Ctrl-C): the
   * first request wins until the next run clears it. */
  _Atomic int stop_request;
  _Atomic int64_t stop_code;
  /* The request whose code stop_code holds (VCPU_RUNNING: none yet). A
   * request is made (stop_request) a moment before its code is stored;
   * vm_stop_code waits for this to catch up. */
  _Atomic int stop_published;

  /* vCPU threads (thread.c): wait_cond is signalled when a thread finishes
   * or parks, and when a pause ends. */
  pthread_mutex_t wait_lock;
  pthread_cond_t wait_cond;
  int threads_active;   /* started and not finished */
  int threads_parked;   /* paused, waiting in their thread */
  int first_stop;       /* the vCPU whose stop ended the run for all, or -1 */

  _Atomic(struct trace *) trace; /* recording exits, or NULL */

  bool irqchip;
  bool pit;
  _Atomic uint32_t irq_levels; /* bit n: line n's level, as last set */
  bool ioeventfd;       /* KVM_CAP_IOEVENTFD: guest writes can signal an eventfd */
  bool irqfd;           /* KVM_CAP_IRQFD, and an irqchip to take the interrupts */

  _Atomic int unhandled;
  unhandled_fn *unhandled_fn;
  void *unhandled_opaque;

  /* The seccomp sandbox (sandbox.c): the vCPUs' filters, built on the
   * first sandboxed run and kept, and whether this run's threads install
   * them (vm_start's threads only: a filter is never lifted). */
  struct sandbox *sandbox;
  bool sandbox_on;
};

/* How a VM is made. The in-kernel irqchip (PIC, IOAPIC, LAPICs) must be
 * created before the vCPUs; with it, hlt waits in the kernel and vCPUs
 * other than 0 wait for INIT/SIPI. */
struct vm_config {
  int ncpus;
  bool irqchip;
  bool pit;                 /* the in-kernel PIT (needs irqchip) */
  uint64_t tss_addr;        /* 3 pages KVM needs on Intel, below 4 GiB, not RAM */
  uint64_t identity_map_addr; /* 1 page, likewise */
};

#define VM_TSS_ADDR 0xfffbd000ull
#define VM_IDENTITY_MAP_ADDR 0xfffbc000ull
#define VM_IRQ_LINES 24     /* the IOAPIC's pins; the PIC's 16 are the first */

int vm_create(struct vm **out, struct kvm *kvm, const struct vm_config *cfg, char *err);

/* Sets interrupt line irq to level (1 raised, 0 lowered). With the
 * in-kernel irqchip it is KVM_IRQ_LINE; without one the level is only
 * recorded (vm->irq_levels). Safe from any thread. */
int vm_irq_line(struct vm *vm, uint32_t irq, int level);
/* Only records the level (vm:irq_level), for a line whose interrupts go to
 * KVM through an irqfd. */
void vm_irq_record(struct vm *vm, uint32_t irq, int level);

/* KVM_IOEVENTFD: a 4-byte MMIO write of `datamatch` at addr signals fd
 * instead of exiting (assign), or no longer does (!assign). KVM_IRQFD: a
 * write to fd is an edge on interrupt line gsi (the line goes up and down
 * again), or no longer is. Both return 0, or -1 with errno. */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint64_t datamatch, int fd, bool assign);
int vm_irqfd(struct vm *vm, uint32_t gsi, int fd, bool assign);
void vm_destroy(struct vm *vm);

void vm_add_device(struct vm *vm, struct device *dev);
void vm_start_devices(struct vm *vm);
void vm_flush_devices(struct vm *vm);

/* Asks every vCPU of the VM to stop with reason (a VCPU_* stop reason).
 * The first request wins, except that any request replaces a pause. Safe
 * from any thread and from a signal handler. */
void vm_request_stop(struct vm *vm, int reason, int64_t code);

/* The code of the stop request req (read from stop_request): 0 for a pause
 * or none. Only one request that is not a pause wins a run, so its code is
 * stored once; this waits the few instructions until it is. */
int64_t vm_stop_code(struct vm *vm, int req);

/* Clears the stop request for a new run. */
void vm_clear_stop_request(struct vm *vm);

/* vCPU threads (thread.c). vm_start runs every vCPU on its own thread;
 * vm_wait blocks until all have finished (timeout in seconds, <= 0 for
 * none) and returns 0, or -1 on timeout; vm_join reaps the threads.
 * vm_pause returns once every vCPU is parked or finished. */
int vm_start(struct vm *vm, char *err);
int vm_wait(struct vm *vm, double timeout);
void vm_join(struct vm *vm);
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
bool vm_threads_active(struct vm *vm);

#endif
