/* The exit dispatcher against exits this host's KVM never produces (PVM runs
 * guests without hardware VM entry, so there is no FAIL_ENTRY here) and
 * against malformed exit records: each is written into a real vCPU's
 * kvm_run and dispatched as if KVM_RUN had returned it. */
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/bus.h"
#include "../../src/err.h"
#include "../../src/kvm.h"
#include "../../src/vcpu.h"
#include "../../src/vm.h"
#include "tap.h"

static struct kvm kvm;

/* A fresh VM with one vCPU and 64 KiB of RAM. */
static struct vm *new_vm(void)
{
  char err[ERR_LEN];
  struct vm *vm;
  struct vm_config cfg = { .ncpus = 1 };
  if (vm_create(&vm, &kvm, &cfg, err) < 0 || mem_map(&vm->mem, vm->fd, 0, 0x10000, 0, "ram", err) < 0) {
    printf("Bail out! %s\n", err);
    exit(1);
  }
  return vm;
}

/* Dispatches whatever the test wrote into kvm_run; returns the stop reason. */
static int inject(struct vcpu *c)
{
  vcpu_clear_stop(c);
  c->exit_pending = true;
  return vcpu_run(c, false);
}

static uint8_t seen[64];
static int seen_count;

static int record(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data, uint32_t size,
                  bool write)
{
  (void)opaque;
  (void)c;
  (void)offset;
  if (write && seen_count + size <= sizeof seen) {
    memcpy(seen + seen_count, data, size);
    seen_count += (int)size;
  }
  return 0;
}

int main(void)
{
  char err[ERR_LEN];
  if (vcpu_signals_init() < 0 || kvm_open(&kvm, "/dev/kvm", err) < 0) {
    printf("Bail out! %s\n", err);
    return 1;
  }
  struct vm *vm = new_vm();
  struct vcpu *c = vm->cpus[0];
  struct kvm_run *run = c->run;

  run->exit_reason = KVM_EXIT_FAIL_ENTRY;
  run->fail_entry.hardware_entry_failure_reason = 0x80000021;
  CHECK(inject(c) == VCPU_FAULT_FAIL_ENTRY, "FAIL_ENTRY stops the vCPU with a fault");
  CHECK(CONTAINS(c->stop.message, "invalid guest state (VMX exit reason 33)"),
        "a VMX invalid-guest-state entry failure is decoded");
  CHECK(CONTAINS(c->stop.message, "hardware reason 0x80000021"), "the raw reason is shown");
  CHECK(CONTAINS(c->stop.message, "rip "), "registers follow the headline");

  run->exit_reason = KVM_EXIT_FAIL_ENTRY;
  run->fail_entry.hardware_entry_failure_reason = UINT64_MAX;
  inject(c);
  CHECK(CONTAINS(c->stop.message, "SVM_EXIT_ERR"), "an SVM VMRUN failure is decoded");

  run->exit_reason = KVM_EXIT_FAIL_ENTRY;
  run->fail_entry.hardware_entry_failure_reason = 0x80000022;
  inject(c);
  CHECK(CONTAINS(c->stop.message, "loading MSRs"), "an MSR-loading entry failure is decoded");

  memset(&run->internal, 0, sizeof run->internal);
  run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
  run->emulation_failure.ndata = 3;
  run->emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
  run->emulation_failure.insn_size = 3;
  memcpy(run->emulation_failure.insn_bytes, "\x0f\xc7\x0e", 3);
  CHECK(inject(c) == VCPU_FAULT_INTERNAL, "INTERNAL_ERROR stops the vCPU with a fault");
  CHECK(CONTAINS(c->stop.message, "emulation failure"), "the emulation suberror is named");
  CHECK(CONTAINS(c->stop.message, "instruction bytes: 0f c7 0e"), "the instruction bytes are shown");

  run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run->emulation_failure.insn_size = 200; /* more than the 15 bytes there are */
  inject(c);
  CHECK(CONTAINS(c->stop.message, "instruction bytes: 0f c7 0e 00"), "an oversized insn_size is clamped");

  memset(&run->internal, 0, sizeof run->internal);
  run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
  run->internal.suberror = KVM_INTERNAL_ERROR_DELIVERY_EV;
  run->internal.ndata = 1000; /* bogus: only 16 words exist */
  run->internal.data[0] = 0x80000b0e;
  inject(c);
  CHECK(CONTAINS(c->stop.message, "while delivering an event"), "the delivery suberror is named");
  CHECK(CONTAINS(c->stop.message, "data: 0x80000b0e"), "its data words are shown, ndata clamped");

  run->exit_reason = KVM_EXIT_SYSTEM_EVENT;
  run->system_event.type = KVM_SYSTEM_EVENT_RESET;
  CHECK(inject(c) == VCPU_SYSTEM_EVENT && c->stop.code == KVM_SYSTEM_EVENT_RESET,
        "SYSTEM_EVENT ends the run normally with its type");

  run->exit_reason = 999;
  CHECK(inject(c) == VCPU_FAULT_EXIT && CONTAINS(c->stop.message, "unexpected exit unknown exit reason (999)"),
        "an unknown exit reason is a clear fault");

  CHECK(bus_add(&vm->pio, 0x80, 4, record, NULL, "record", 0, err) == 0, "a C device attaches");
  run->exit_reason = KVM_EXIT_IO;
  run->io.direction = KVM_EXIT_IO_OUT;
  run->io.port = 0x80;
  run->io.size = 2;
  run->io.count = 3;
  run->io.data_offset = 0x1000;
  memcpy((uint8_t *)run + 0x1000, "aabbcc", 6);
  seen_count = 0;
  vm_request_stop(vm, VCPU_STOPPED, 0); /* end the run right after the exit */
  CHECK(inject(c) == VCPU_STOPPED, "a string I/O exit is dispatched, then the stop is seen");
  CHECK(seen_count == 6 && memcmp(seen, "aabbcc", 6) == 0, "string I/O passes each item in turn (%d bytes: %.6s)", seen_count, seen);
  atomic_store(&vm->stop_request, 0);

  run->exit_reason = KVM_EXIT_IO;
  run->io.size = 3;
  CHECK(inject(c) == VCPU_FAULT_KVM && CONTAINS(c->stop.message, "malformed I/O exit"),
        "an I/O size of 3 is refused");
  run->io.size = 4;
  run->io.count = 0x40000000;
  CHECK(inject(c) == VCPU_FAULT_KVM, "an I/O count running past kvm_run is refused");
  run->io.count = 1;
  run->io.data_offset = (uint64_t)c->run_size - 2;
  CHECK(inject(c) == VCPU_FAULT_KVM, "I/O data straddling the end of kvm_run is refused");
  run->io.data_offset = UINT64_MAX - 1;
  CHECK(inject(c) == VCPU_FAULT_KVM, "a wrapping I/O data offset is refused");

  run->exit_reason = KVM_EXIT_MMIO;
  run->mmio.len = 0;
  CHECK(inject(c) == VCPU_FAULT_KVM, "an MMIO length of 0 is refused");
  run->mmio.len = 9;
  CHECK(inject(c) == VCPU_FAULT_KVM, "an MMIO length of 9 is refused");

  vm_destroy(vm);
  kvm_close(&kvm);
  printf("1..%d\n", tap_count);
  return tap_failed != 0;
}
