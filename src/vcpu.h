/* A vCPU: its fd, its kvm_run area, register access and its stop record. */
#ifndef LUAVMM_VCPU_H
#define LUAVMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "stats.h"

struct vm;

/* Why vcpu_run returned. Below VCPU_FAULT the run ended normally. */
enum vcpu_stop_reason {
  VCPU_RUNNING = 0,
  VCPU_HLT,          /* the guest executed hlt */
  VCPU_STOPPED,      /* vm:stop() */
  VCPU_TIMEOUT,      /* the run's time limit passed */
  VCPU_INTERRUPTED,  /* Ctrl-C */
  VCPU_EXIT,         /* the guest wrote the exit port; code holds the value */
  VCPU_SYSTEM_EVENT, /* KVM_EXIT_SYSTEM_EVENT; code holds the type */
  VCPU_STEP,         /* a step returned an exit without dispatching it */
  VCPU_PAUSED,       /* vm:pause(); the thread waits for resume or stop */
  VCPU_PEER,         /* another vCPU ended the run (a fault, the exit port) */
  VCPU_RESET,        /* the guest reset the machine (i8042 0xFE) */
  VCPU_QUIT,         /* the user asked to quit (the console escape, Ctrl-A x) */
  VCPU_FAULT,        /* first fault reason */
  VCPU_FAULT_SHUTDOWN = VCPU_FAULT, /* triple fault */
  VCPU_FAULT_FAIL_ENTRY,
  VCPU_FAULT_INTERNAL,
  VCPU_FAULT_UNHANDLED, /* an access nobody handles, under the "stop" policy */
  VCPU_FAULT_HANDLER,   /* a handler failed (a Lua error, a bad return value) */
  VCPU_FAULT_HYPERCALL, /* an unknown hypercall under the "stop" policy */
  VCPU_FAULT_KVM,       /* KVM_RUN itself failed */
  VCPU_FAULT_EXIT,      /* an exit reason we do not handle */
};

struct vcpu {
  struct vm *vm;
  int id;
  int fd;
  struct kvm_run *run;
  int run_size;

  pthread_t thread;     /* the thread in vcpu_run, while running is set */
  _Atomic bool running;
  bool has_thread;       /* a vCPU thread exists and must be joined */
  bool finished;         /* that thread has left its loop (under vm->wait_lock) */
  bool exit_pending;     /* run holds an exit not yet dispatched (stepping) */
  bool needs_completion; /* a dispatched I/O exit KVM finishes at the next KVM_RUN */
  uint64_t exits;        /* userspace exits in the current run */
  bool called_lua;       /* the access being dispatched called a Lua handler */
  bool sandboxed;        /* its thread is under the seccomp filter (sandbox.c) */
  struct vcpu_stats stats;

  struct {
    int reason;
    int64_t code;
    char *message;      /* for faults: headline, registers, code bytes */
  } stop;

  void *user;            /* the bindings' per-vCPU state */
};

int vcpu_create(struct vcpu **out, struct vm *vm, int id, char *err);
void vcpu_destroy(struct vcpu *c);

/* General registers live in kvm_run (KVM_CAP_SYNC_REGS): reading them costs
 * no ioctl, and a change is handed to KVM at the next KVM_RUN. */
static inline struct kvm_regs *vcpu_regs(struct vcpu *c) { return &c->run->s.regs.regs; }
static inline void vcpu_regs_changed(struct vcpu *c) { c->run->kvm_dirty_regs |= KVM_SYNC_X86_REGS; }

int vcpu_get_sregs(struct vcpu *c, struct kvm_sregs *s);
int vcpu_set_sregs(struct vcpu *c, const struct kvm_sregs *s);
int vcpu_get_fpu(struct vcpu *c, struct kvm_fpu *f);
int vcpu_set_fpu(struct vcpu *c, const struct kvm_fpu *f);
int vcpu_get_msr(struct vcpu *c, uint32_t index, uint64_t *value);
int vcpu_set_msr(struct vcpu *c, uint32_t index, uint64_t value);
/* Returns the number of entries copied into out (at most max), or -1. */
int vcpu_get_cpuid(struct vcpu *c, struct kvm_cpuid_entry2 *out, int max);
int vcpu_set_cpuid(struct vcpu *c, const struct kvm_cpuid_entry2 *entries, int n);
/* Guest-linear to guest-physical through the vCPU's page tables. */
int vcpu_translate(struct vcpu *c, uint64_t linear, uint64_t *gpa);

/* The run loop (exit.c). Runs until a stop reason is set and returns it.
 * With step set, returns VCPU_STEP at the first exit, leaving it pending. */
int vcpu_run(struct vcpu *c, bool step);

/* Dispatches a pending exit to its handler (after a step). */
int vcpu_dispatch_pending(struct vcpu *c);

/* Lets KVM finish a dispatched I/O exit so registers are architectural. */
void vcpu_settle(struct vcpu *c);

/* Records a stop (not a fault) and returns -1. */
int vcpu_stop(struct vcpu *c, int reason, int64_t code);

/* Records a fault with a printf headline, followed by the registers and the
 * code at rip, and returns -1. */
int vcpu_fault(struct vcpu *c, int reason, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* Same, with a preformatted body appended after the registers (a Lua
 * traceback). */
int vcpu_fault_with(struct vcpu *c, int reason, const char *body, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

void vcpu_clear_stop(struct vcpu *c);

/* One access on a bus, as an exit would make it: the range's handler, or
 * the unhandled policy; counted, timed and traced (exit.c). */
int vcpu_access(struct vcpu *c, enum bus_space space, uint64_t addr, uint8_t *data,
                uint32_t size, bool write);

/* Applies the VM's policy to an access no range claims (exit.c). */
int vcpu_unhandled(struct vcpu *c, enum bus_space space, uint64_t addr, uint8_t *data,
                   uint32_t size, bool write);

/* Signals (exit.c): the kick signal interrupts KVM_RUN; the calling-thread
 * run installs SIGINT and a timer around itself. */
int vcpu_signals_init(void);
int vcpu_kick_signal(void);
struct vcpu *vcpu_current(void);

#endif
