/* Setting a VM up while signals arrive: a process with an interval timer
 * (libFuzzer's, a user's SIGALRM, a profiler's SIGPROF) gets them in the
 * middle of KVM's set-up calls, and KVM_CREATE_VM then fails with EINTR
 * now and then (lmem_fuzz found it). vm_create must retry, not fail.
 * A timer fires every 50 µs, with a handler installed without SA_RESTART,
 * while VMs with memory and a vCPU are created, run to their hlt and
 * destroyed. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "../../src/err.h"
#include "../../src/kvm.h"
#include "../../src/mem.h"
#include "../../src/vcpu.h"
#include "../../src/vm.h"
#include "tap.h"

#define VMS 400

static volatile sig_atomic_t ticks;

static void on_alarm(int sig)
{
  (void)sig;
  ticks++;
}

int main(void)
{
  struct kvm kvm;
  char err[ERR_LEN];
  if (vcpu_signals_init() < 0 || kvm_open(&kvm, "/dev/kvm", err) < 0) {
    printf("Bail out! %s\n", err);
    return 1;
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART: interrupted calls return EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every = { .it_interval = { 0, 50 }, .it_value = { 0, 50 } };
  setitimer(ITIMER_REAL, &every, NULL);

  int created = 0, ran = 0;
  char first_error[ERR_LEN] = "";
  for (int i = 0; i < VMS; i++) {
    struct vm *vm;
    struct vm_config cfg = { .ncpus = 1 };
    if (vm_create(&vm, &kvm, &cfg, err) < 0 ||
        mem_map(&vm->mem, vm->fd, 0, 0x10000, 0, "ram", err) < 0) {
      if (first_error[0] == '\0')
        snprintf(first_error, sizeof first_error, "%s", err);
      continue;
    }
    created++;
    uint8_t hlt = 0xf4;
    struct vcpu *c = vm->cpus[0];
    struct kvm_sregs sregs;
    if (mem_write(&vm->mem, 0x1000, &hlt, 1) == 0 && vcpu_get_sregs(c, &sregs) == 0) {
      sregs.cs.base = 0;
      sregs.cs.selector = 0;
      vcpu_regs(c)->rip = 0x1000;
      vcpu_regs_changed(c);
      if (vcpu_set_sregs(c, &sregs) == 0 && vcpu_run(c, false) == VCPU_HLT)
        ran++;
    }
    vm_destroy(vm);
  }
  struct itimerval off = { { 0, 0 }, { 0, 0 } };
  setitimer(ITIMER_REAL, &off, NULL);

  CHECK(ticks > 0, "the timer fired while VMs were made (%d signals)", (int)ticks);
  CHECK(created == VMS, "every VM was created despite the signals: %d of %d (first error: %s)",
        created, VMS, first_error[0] ? first_error : "none");
  CHECK(ran == created, "every VM created ran to its hlt: %d of %d", ran, created);
  kvm_close(&kvm);
  printf("1..%d\n", tap_count);
  return tap_failed != 0;
}
