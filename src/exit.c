/* The KVM_RUN loop: enter the guest, dispatch the exit with one flat switch,
 * repeat until something asks the vCPU to stop.
 *
 * Stopping: whoever wants a vCPU out of KVM_RUN sets kvm_run->immediate_exit
 * and sends the kick signal to its thread (vm_request_stop). The signal's
 * handler does nothing but set immediate_exit again, so a kick that lands
 * just before KVM_RUN is not lost: KVM sees the flag on entry and returns
 * EINTR at once. The loop then reads the VM's stop request. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "fault.h"
#include "run.h"
#include "trace.h"
#include "vcpu.h"
#include "vm.h"
#include "vmm.h"

/* The vCPU this thread is running, for the signal handlers. Written before
 * signals can reach it, so the handlers never trigger TLS allocation. */
static __thread struct vcpu *current;

static int kick_signo;

struct vcpu *vcpu_current(void)
{
  return current;
}

int vcpu_kick_signal(void)
{
  return kick_signo;
}

static void set_immediate_exit(struct vcpu *c)
{
  __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELEASE);
}

static void on_kick(int sig, siginfo_t *info, void *ctx)
{
  (void)sig;
  (void)ctx;
  int saved = errno;
  struct vcpu *c = current;
  if (c != NULL) {
    if (info->si_code == SI_TIMER)
      vm_request_stop(c->vm, VCPU_TIMEOUT, 0);
    set_immediate_exit(c);
  }
  errno = saved;
}

/* The VM that Ctrl-C stops: the one being run or waited for. */
static struct vm *_Atomic interrupt_target;
static volatile sig_atomic_t interrupted;

int luavmm_interrupted(void)
{
  int was = interrupted;
  interrupted = 0;
  return was;
}

/* Ctrl-C or SIGTERM during a run or a wait: stop the VM; the stop's code
 * is the signal, so the run can say "interrupted" or "terminated". */
static void on_interrupt(int sig)
{
  int saved = errno;
  struct vm *vm = atomic_load(&interrupt_target);
  if (vm != NULL) {
    vm_request_stop(vm, VCPU_INTERRUPTED, sig);
    interrupted = sig;
  }
  struct vcpu *c = current;
  if (c != NULL)
    set_immediate_exit(c);
  errno = saved;
}

int vcpu_signals_init(void)
{
  if (kick_signo != 0)
    return 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_kick;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGRTMIN, &sa, NULL) < 0)
    return -1;
  kick_signo = SIGRTMIN;
  return 0;
}

/* ---- exit dispatch ---- */

int vcpu_unhandled(struct vcpu *c, enum bus_space space, uint64_t addr, uint8_t *data,
                     uint32_t size, bool write)
{
  struct vm *vm = c->vm;
  switch (atomic_load_explicit(&vm->unhandled, memory_order_relaxed)) {
  case UNHANDLED_IGNORE:
    if (!write)
      memset(data, 0xff, size);
    return 0;
  case UNHANDLED_CALL:
    return vm->unhandled_fn(vm->unhandled_opaque, c, space, addr, data, size, write);
  default:
    break;
  }
  if (!write)
    memset(data, 0xff, size);
  uint64_t value = 0;
  memcpy(&value, data, size);
  char detail[64] = "";
  if (write)
    snprintf(detail, sizeof detail, ", value 0x%llx", (unsigned long long)value);
  const struct mem_region *rom = space == SPACE_MMIO ? mem_find(&vm->mem, addr) : NULL;
  if (rom != NULL && write)
    return vcpu_fault(c, VCPU_FAULT_UNHANDLED,
                      "write to read-only memory region '%s' at 0x%llx (%u byte%s%s)",
                      rom->name, (unsigned long long)addr, size, size == 1 ? "" : "s", detail);
  return vcpu_fault(c, VCPU_FAULT_UNHANDLED,
                    "unhandled %s %s %s 0x%llx (%u byte%s%s); no handler is registered there "
                    "(vm:on_unhandled(\"ignore\") lets such accesses pass)",
                    space == SPACE_IO ? "I/O" : "MMIO", write ? "write" : "read",
                    space == SPACE_IO ? (write ? "to port" : "from port") : "at",
                    (unsigned long long)addr, size, size == 1 ? "" : "s", detail);
}

/* C handlers are timed one call in STATS_SAMPLE: reading the clock around
 * every exit would cost more than most C handlers do. Lua handlers time
 * themselves (lhandler.c), every call. */
#define STATS_SAMPLE 16

static void account(struct vcpu *c, bool sampled, uint64_t t0)
{
  if (c->called_lua) {
    c->stats.lua_calls++;
    return;
  }
  c->stats.c_calls++;
  if (sampled)
    c->stats.c_ns += (stats_now_ns() - t0) * STATS_SAMPLE;
}

static uint64_t le_value(const uint8_t *data, uint32_t size)
{
  uint64_t v = 0;
  memcpy(&v, data, size);
  return v;
}

/* A hypercall through the port: its arguments and result go to the trace
 * instead of the port access that carries it. */
static int traced_hypercall(struct vcpu *c, struct trace *t, const struct bus_range *r,
                            uint64_t addr, uint8_t *data, uint32_t size, bool write)
{
  const struct kvm_regs *regs = vcpu_regs(c);
  uint64_t args[6] = { regs->rdi, regs->rsi, regs->rcx, regs->r10, regs->r8, regs->r9 };
  uint32_t nr = (uint32_t)le_value(data, size);
  int rc = r->fn(r->opaque, c, addr - r->base, data, size, write);
  trace_hypercall(t, c, nr, args, vcpu_regs(c)->rax);
  return rc;
}

int vcpu_access(struct vcpu *c, enum bus_space space, uint64_t addr, uint8_t *data,
                uint32_t size, bool write)
{
  struct vm *vm = c->vm;
  struct trace *t = atomic_load_explicit(&vm->trace, memory_order_acquire);
  const struct bus_range *r = bus_find(space == SPACE_IO ? &vm->pio : &vm->mmio, addr, size);
  bool sampled = c->stats.c_calls % STATS_SAMPLE == 0;
  uint64_t t0 = sampled ? stats_now_ns() : 0;
  int rc;
  c->called_lua = false;
  if (t != NULL && r != NULL && (r->flags & BUS_HYPERCALL) && write) {
    rc = traced_hypercall(c, t, r, addr, data, size, write);
  } else {
    rc = r != NULL ? r->fn(r->opaque, c, addr - r->base, data, size, write)
                   : vcpu_unhandled(c, space, addr, data, size, write);
    if (t != NULL)
      trace_access(t, c, space == SPACE_IO ? TRACE_IO : TRACE_MMIO, write, size, addr,
                   le_value(data, size));
  }
  account(c, sampled, t0);
  return rc;
}

static int dispatch_io(struct vcpu *c)
{
  struct kvm_run *run = c->run;
  uint32_t size = run->io.size;
  uint32_t count = run->io.count;
  uint64_t offset = run->io.data_offset;
  uint64_t bytes;
  bool write = run->io.direction == KVM_EXIT_IO_OUT;
  uint16_t port = run->io.port;

  /* Trust nothing, even from KVM: the data must lie inside kvm_run. */
  if ((size != 1 && size != 2 && size != 4) || count == 0 ||
      __builtin_mul_overflow((uint64_t)size, (uint64_t)count, &bytes) ||
      offset > (uint64_t)c->run_size || bytes > (uint64_t)c->run_size - offset)
    return vcpu_fault(c, VCPU_FAULT_KVM,
                      "malformed I/O exit from KVM (port 0x%x, size %u, count %u, offset 0x%llx)",
                      port, size, count, (unsigned long long)offset);
  uint8_t *data = (uint8_t *)run + offset;
  if (!write)
    memset(data, 0, bytes);
  c->needs_completion = true;

  counter_add(&c->stats.ports, port, count);
  int rc = 0;
  /* String I/O (rep ins/outs): the port stays fixed, the data advances. */
  for (uint32_t i = 0; i < count && rc == 0; i++)
    rc = vcpu_access(c, SPACE_IO, port, data + (size_t)i * size, size, write);
  return rc;
}

static int dispatch_mmio(struct vcpu *c)
{
  struct kvm_run *run = c->run;
  uint32_t size = run->mmio.len;
  uint64_t addr = run->mmio.phys_addr;
  bool write = run->mmio.is_write;

  if (size == 0 || size > sizeof run->mmio.data)
    return vcpu_fault(c, VCPU_FAULT_KVM, "malformed MMIO exit from KVM (address 0x%llx, size %u)",
                      (unsigned long long)addr, size);
  /* Zeroed before dispatch so a short or failed read never leaks old data. */
  if (!write)
    memset(run->mmio.data, 0, sizeof run->mmio.data);
  c->needs_completion = true;
  counter_add(&c->stats.mmio, addr, 1);
  return vcpu_access(c, SPACE_MMIO, addr, run->mmio.data, size, write);
}

static const char *system_event_name(uint32_t type)
{
  switch (type) {
  case KVM_SYSTEM_EVENT_SHUTDOWN:
    return "shutdown";
  case KVM_SYSTEM_EVENT_RESET:
    return "reset";
  case KVM_SYSTEM_EVENT_CRASH:
    return "crash";
  default:
    return "other";
  }
}

static int dispatch_internal_error(struct vcpu *c)
{
  struct kvm_run *run = c->run;
  uint32_t sub = run->internal.suberror;
  uint32_t ndata = run->internal.ndata;
  char extra[256] = "";
  size_t used = 0;

  if (ndata > sizeof run->internal.data / sizeof run->internal.data[0])
    ndata = sizeof run->internal.data / sizeof run->internal.data[0];
  if (sub == KVM_INTERNAL_ERROR_EMULATION && ndata >= 1 &&
      (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
    uint32_t n = run->emulation_failure.insn_size;
    if (n > sizeof run->emulation_failure.insn_bytes)
      n = sizeof run->emulation_failure.insn_bytes;
    used += (size_t)snprintf(extra, sizeof extra, "; instruction bytes:");
    for (uint32_t i = 0; i < n && used < sizeof extra; i++)
      used += (size_t)snprintf(extra + used, sizeof extra - used, " %02x",
                               run->emulation_failure.insn_bytes[i]);
  } else if (ndata > 0) {
    used += (size_t)snprintf(extra, sizeof extra, "; data:");
    for (uint32_t i = 0; i < ndata && used < sizeof extra; i++)
      used += (size_t)snprintf(extra + used, sizeof extra - used, " 0x%llx",
                               (unsigned long long)run->internal.data[i]);
  }
  return vcpu_fault(c, VCPU_FAULT_INTERNAL, "KVM_EXIT_INTERNAL_ERROR, suberror %u: %s%s", sub,
                    internal_error_name(sub), extra);
}

static int dispatch(struct vcpu *c)
{
  struct kvm_run *run = c->run;
  c->exit_pending = false;
  if (run->exit_reason != KVM_EXIT_IO && run->exit_reason != KVM_EXIT_MMIO) {
    struct trace *t = atomic_load_explicit(&c->vm->trace, memory_order_acquire);
    if (t != NULL)
      trace_exit(t, c, run->exit_reason);
  }
  switch (run->exit_reason) {
  case KVM_EXIT_IO:
    return dispatch_io(c);
  case KVM_EXIT_MMIO:
    return dispatch_mmio(c);
  case KVM_EXIT_HLT:
    return vcpu_stop(c, VCPU_HLT, 0);
  case KVM_EXIT_SHUTDOWN:
    return vcpu_fault(c, VCPU_FAULT_SHUTDOWN,
                      "triple fault (KVM_EXIT_SHUTDOWN): an exception occurred while the guest "
                      "could not deliver a double fault");
  case KVM_EXIT_FAIL_ENTRY:
    return vcpu_fault(c, VCPU_FAULT_FAIL_ENTRY, "KVM_EXIT_FAIL_ENTRY: %s (hardware reason 0x%llx)",
                      fail_entry_reason(run->fail_entry.hardware_entry_failure_reason),
                      (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
  case KVM_EXIT_INTERNAL_ERROR:
    return dispatch_internal_error(c);
  case KVM_EXIT_SYSTEM_EVENT:
    return vcpu_stop(c, VCPU_SYSTEM_EVENT, run->system_event.type);
  case KVM_EXIT_INTR:
    return 0;
  default:
    return vcpu_fault(c, VCPU_FAULT_EXIT, "unexpected exit %s (%u)",
                      exit_reason_name(run->exit_reason), run->exit_reason);
  }
}

const char *vcpu_system_event_name(int64_t type)
{
  return system_event_name((uint32_t)type);
}

/* Checks for a stop request; true when the loop must end. */
static bool stop_requested(struct vcpu *c)
{
  int req = atomic_load_explicit(&c->vm->stop_request, memory_order_acquire);
  if (req == VCPU_RUNNING)
    return false;
  vcpu_stop(c, req, vm_stop_code(c->vm, req));
  return true;
}

/* KVM_RUN returned an exit: it is pending until dispatched. */
static void note_exit(struct vcpu *c)
{
  uint32_t reason = c->run->exit_reason;
  c->exit_pending = true;
  c->exits++;
  c->stats.exits++;
  c->stats.by_reason[reason < STATS_REASONS ? reason : STATS_REASONS - 1]++;
}

/* One KVM_RUN that returns with an exit pending, or -1 with the stop set. */
static int enter(struct vcpu *c)
{
  for (;;) {
    if (ioctl(c->fd, KVM_RUN, 0) == 0) {
      /* KVM completed the previous I/O before producing this exit. */
      c->needs_completion = false;
      note_exit(c);
      return 0;
    }
    if (errno == EINTR || errno == EAGAIN) {
      __atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_RELAXED);
      c->needs_completion = false;
      if (stop_requested(c))
        return -1;
      continue;
    }
    return vcpu_fault(c, VCPU_FAULT_KVM, "KVM_RUN failed: %s", strerror(errno));
  }
}

int vcpu_dispatch_pending(struct vcpu *c)
{
  if (!c->exit_pending)
    return 0;
  return dispatch(c);
}

void vcpu_settle(struct vcpu *c)
{
  if (!c->needs_completion || c->exit_pending)
    return;
  __atomic_store_n(&c->run->immediate_exit, 1, __ATOMIC_RELAXED);
  if (ioctl(c->fd, KVM_RUN, 0) == 0) {
    /* Finishing the instruction produced a new exit (string I/O goes on);
     * it stays pending for the next run or step. */
    note_exit(c);
  }
  __atomic_store_n(&c->run->immediate_exit, 0, __ATOMIC_RELAXED);
  c->needs_completion = false;
}

int vcpu_run(struct vcpu *c, bool step)
{
  c->thread = pthread_self();
  current = c;
  atomic_store(&c->running, true);
  for (;;) {
    if (c->exit_pending && dispatch(c) < 0)
      break;
    if (c->stop.reason != VCPU_RUNNING || stop_requested(c))
      break;
    if (enter(c) < 0)
      break;
    if (step) {
      vcpu_stop(c, VCPU_STEP, 0);
      break;
    }
  }
  vcpu_settle(c);
  atomic_store(&c->running, false);
  current = NULL;
  return c->stop.reason;
}

/* ---- the guard around a run on the calling thread ---- */

/* Whether this thread's mask already lets the kick signal through. A run
 * unblocks it and leaves it so: the handler does nothing outside a run,
 * and it saves two system calls on every run (tiny VMs are run often). */
static __thread bool kick_unblocked;

int run_guard_begin(struct run_guard *g, struct vm *vm, double timeout, bool catch_sigint)
{
  memset(g, 0, sizeof *g);
  g->old_target = atomic_exchange(&interrupt_target, vm);
  if (!kick_unblocked) {
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, kick_signo);
    pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
    kick_unblocked = true;
  }
  if (catch_sigint) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &g->old_int);
    sigaction(SIGTERM, &sa, &g->old_term);
    g->caught_sigint = true;
  }
  if (timeout > 0) {
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = kick_signo;
    sev._sigev_un._tid = gettid();
    if (timer_create(CLOCK_MONOTONIC, &sev, &g->timer) < 0)
      return -1;
    g->has_timer = true;
    struct itimerspec its = { 0 };
    its.it_value.tv_sec = (time_t)timeout;
    its.it_value.tv_nsec = (long)((timeout - (double)its.it_value.tv_sec) * 1e9);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
      its.it_value.tv_nsec = 1;
    timer_settime(g->timer, 0, &its, NULL);
  }
  return 0;
}

void run_guard_end(struct run_guard *g)
{
  if (g->has_timer)
    timer_delete(g->timer);
  if (g->caught_sigint) {
    sigaction(SIGINT, &g->old_int, NULL);
    sigaction(SIGTERM, &g->old_term, NULL);
  }
  atomic_store(&interrupt_target, g->old_target);
}
