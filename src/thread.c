/* vCPU threads: one per vCPU, each running its own KVM_RUN loop, for SMP
 * machines and for runs in the background. The thread that waits holds no
 * lock a vCPU needs: vm->wait_lock only guards the counters below, and the
 * control-plane lock is released by the bindings around vm_wait. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "sandbox.h"
#include "vcpu.h"
#include "vm.h"

#define VCPU_STACK (512 * 1024)

/* Stops that end the run for every vCPU, not just the one that saw them. */
static bool ends_run(int reason)
{
  return reason >= VCPU_FAULT || reason == VCPU_EXIT || reason == VCPU_SYSTEM_EVENT ||
         reason == VCPU_RESET || reason == VCPU_QUIT;
}

/* Parks a paused vCPU until vm_resume or a stop request; true to go on. */
static bool park(struct vcpu *c)
{
  struct vm *vm = c->vm;
  pthread_mutex_lock(&vm->wait_lock);
  vm->threads_parked++;
  pthread_cond_broadcast(&vm->wait_cond);
  /* Timed, because a stop can come from a signal handler, which cannot
   * take wait_lock to signal the condition. */
  while (atomic_load(&vm->stop_request) == VCPU_PAUSED) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    t.tv_nsec += 50 * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
      t.tv_sec++;
      t.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&vm->wait_cond, &vm->wait_lock, &t);
  }
  vm->threads_parked--;
  bool resume = atomic_load(&vm->stop_request) == VCPU_RUNNING;
  pthread_mutex_unlock(&vm->wait_lock);
  if (resume)
    vcpu_clear_stop(c);
  return resume;
}

static void *vcpu_thread(void *arg)
{
  struct vcpu *c = arg;
  struct vm *vm = c->vm;
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, vcpu_kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
  if (vm->sandbox_on) {
    /* Last, so the set-up above is not filtered. A failure ends this
     * vCPU's run, and so the VM's, before any guest code runs. */
    char err[ERR_LEN];
    if (sandbox_enter(c, err) < 0)
      vcpu_fault(c, VCPU_FAULT_KVM, "cannot enter the seccomp sandbox: %s", err);
    else
      c->sandboxed = true;
  }

  for (;;) {
    int reason = vcpu_run(c, false);
    if (reason == VCPU_PAUSED && park(c))
      continue;
    if (reason == VCPU_PAUSED) { /* stopped while parked: that stop is the reason */
      vcpu_clear_stop(c);
      int req = atomic_load(&vm->stop_request);
      vcpu_stop(c, req, vm_stop_code(vm, req));
    }
    break;
  }
  if (ends_run(c->stop.reason)) {
    pthread_mutex_lock(&vm->wait_lock);
    if (vm->first_stop < 0)
      vm->first_stop = c->id;
    pthread_mutex_unlock(&vm->wait_lock);
    vm_request_stop(vm, VCPU_PEER, 0);
  }
  c->sandboxed = false; /* the thread goes; the vCPU may run unfiltered next */
  pthread_mutex_lock(&vm->wait_lock);
  c->finished = true;
  vm->threads_active--;
  pthread_cond_broadcast(&vm->wait_cond);
  pthread_mutex_unlock(&vm->wait_lock);
  return NULL;
}

int vm_start(struct vm *vm, char *err)
{
  vm_join(vm);
  vm_clear_stop_request(vm);
  vm->first_stop = -1;

  /* Threads start with every signal blocked: Ctrl-C and SIGTERM belong to
   * the main thread; each vCPU unblocks only the kick signal. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, VCPU_STACK);
  int rc = 0;
  for (int i = 0; i < vm->ncpus; i++) {
    struct vcpu *c = vm->cpus[i];
    vcpu_clear_stop(c);
    c->exits = 0;
    c->finished = false;
    pthread_mutex_lock(&vm->wait_lock);
    vm->threads_active++;
    pthread_mutex_unlock(&vm->wait_lock);
    rc = pthread_create(&c->thread, &attr, vcpu_thread, c);
    if (rc != 0) {
      pthread_mutex_lock(&vm->wait_lock);
      vm->threads_active--;
      pthread_mutex_unlock(&vm->wait_lock);
      break;
    }
    c->has_thread = true;
  }
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    vm_request_stop(vm, VCPU_STOPPED, 0);
    vm_join(vm);
    return errf(err, "cannot start a vCPU thread: %s", strerror(rc));
  }
  return 0;
}

int vm_wait(struct vm *vm, double timeout)
{
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  if (timeout > 0) {
    deadline.tv_sec += (time_t)timeout;
    deadline.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
      deadline.tv_sec++;
      deadline.tv_nsec -= 1000000000L;
    }
  }
  int rc = 0;
  pthread_mutex_lock(&vm->wait_lock);
  while (vm->threads_active > 0) {
    if (timeout > 0) {
      if (pthread_cond_timedwait(&vm->wait_cond, &vm->wait_lock, &deadline) == ETIMEDOUT &&
          vm->threads_active > 0) {
        rc = -1;
        break;
      }
    } else {
      pthread_cond_wait(&vm->wait_cond, &vm->wait_lock);
    }
  }
  pthread_mutex_unlock(&vm->wait_lock);
  return rc;
}

void vm_join(struct vm *vm)
{
  if (vm_threads_active(vm)) {
    vm_request_stop(vm, VCPU_STOPPED, 0);
    vm_wait(vm, 0);
  }
  for (int i = 0; i < vm->ncpus; i++) {
    struct vcpu *c = vm->cpus[i];
    if (c != NULL && c->has_thread) {
      pthread_join(c->thread, NULL);
      c->has_thread = false;
    }
  }
}

bool vm_threads_active(struct vm *vm)
{
  pthread_mutex_lock(&vm->wait_lock);
  bool active = vm->threads_active > 0;
  pthread_mutex_unlock(&vm->wait_lock);
  return active;
}

void vm_pause(struct vm *vm)
{
  vm_request_stop(vm, VCPU_PAUSED, 0);
  pthread_mutex_lock(&vm->wait_lock);
  while (vm->threads_parked < vm->threads_active &&
         atomic_load(&vm->stop_request) == VCPU_PAUSED)
    pthread_cond_wait(&vm->wait_cond, &vm->wait_lock);
  pthread_mutex_unlock(&vm->wait_lock);
}

void vm_resume(struct vm *vm)
{
  pthread_mutex_lock(&vm->wait_lock);
  int expected = VCPU_PAUSED;
  atomic_compare_exchange_strong(&vm->stop_request, &expected, VCPU_RUNNING);
  pthread_cond_broadcast(&vm->wait_cond);
  pthread_mutex_unlock(&vm->wait_lock);
}
