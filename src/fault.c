#include "fault.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "vcpu.h"
#include "vm.h"

#define CR0_PE (1ull << 0)
#define CR0_PG (1ull << 31)
#define EFER_LMA (1ull << 10)
#define FAULT_MSG_LEN 16384

const char *exit_reason_name(uint32_t reason)
{
  static const char *const names[] = {
    [KVM_EXIT_UNKNOWN] = "KVM_EXIT_UNKNOWN",
    [KVM_EXIT_EXCEPTION] = "KVM_EXIT_EXCEPTION",
    [KVM_EXIT_IO] = "KVM_EXIT_IO",
    [KVM_EXIT_HYPERCALL] = "KVM_EXIT_HYPERCALL",
    [KVM_EXIT_DEBUG] = "KVM_EXIT_DEBUG",
    [KVM_EXIT_HLT] = "KVM_EXIT_HLT",
    [KVM_EXIT_MMIO] = "KVM_EXIT_MMIO",
    [KVM_EXIT_IRQ_WINDOW_OPEN] = "KVM_EXIT_IRQ_WINDOW_OPEN",
    [KVM_EXIT_SHUTDOWN] = "KVM_EXIT_SHUTDOWN",
    [KVM_EXIT_FAIL_ENTRY] = "KVM_EXIT_FAIL_ENTRY",
    [KVM_EXIT_INTR] = "KVM_EXIT_INTR",
    [KVM_EXIT_SET_TPR] = "KVM_EXIT_SET_TPR",
    [KVM_EXIT_TPR_ACCESS] = "KVM_EXIT_TPR_ACCESS",
    [KVM_EXIT_NMI] = "KVM_EXIT_NMI",
    [KVM_EXIT_INTERNAL_ERROR] = "KVM_EXIT_INTERNAL_ERROR",
    [KVM_EXIT_WATCHDOG] = "KVM_EXIT_WATCHDOG",
    [KVM_EXIT_SYSTEM_EVENT] = "KVM_EXIT_SYSTEM_EVENT",
    [KVM_EXIT_IOAPIC_EOI] = "KVM_EXIT_IOAPIC_EOI",
    [KVM_EXIT_HYPERV] = "KVM_EXIT_HYPERV",
    [KVM_EXIT_X86_RDMSR] = "KVM_EXIT_X86_RDMSR",
    [KVM_EXIT_X86_WRMSR] = "KVM_EXIT_X86_WRMSR",
    [KVM_EXIT_DIRTY_RING_FULL] = "KVM_EXIT_DIRTY_RING_FULL",
    [KVM_EXIT_AP_RESET_HOLD] = "KVM_EXIT_AP_RESET_HOLD",
    [KVM_EXIT_X86_BUS_LOCK] = "KVM_EXIT_X86_BUS_LOCK",
    [KVM_EXIT_XEN] = "KVM_EXIT_XEN",
    [KVM_EXIT_NOTIFY] = "KVM_EXIT_NOTIFY",
  };
  if (reason < sizeof names / sizeof names[0] && names[reason] != NULL)
    return names[reason];
  return "unknown exit reason";
}

const char *fail_entry_reason(uint64_t hw)
{
  /* SVM reports VMEXIT_INVALID (-1); VMX reports its basic exit reason with
   * bit 31 set for a failed entry. */
  if (hw == UINT64_MAX)
    return "VMRUN failed: invalid guest state in the VMCB (SVM_EXIT_ERR)";
  if (hw == (1ull << 63))
    return "the vCPU's state is not supported by KVM on this CPU";
  switch (hw & 0xffff) {
  case 33:
    return "VM entry failed: invalid guest state (VMX exit reason 33); check CR0/CR4/EFER "
           "and the segment registers for consistency";
  case 34:
    return "VM entry failed while loading MSRs (VMX exit reason 34)";
  case 41:
    return "VM entry failed: machine-check event (VMX exit reason 41)";
  default:
    return "VM entry failed for a reason KVM passed through unchanged";
  }
}

const char *internal_error_name(uint32_t suberror)
{
  switch (suberror) {
  case KVM_INTERNAL_ERROR_EMULATION:
    return "emulation failure: KVM could not emulate the instruction at rip";
  case KVM_INTERNAL_ERROR_SIMUL_EX:
    return "simultaneous exceptions: a fault occurred while delivering another";
  case KVM_INTERNAL_ERROR_DELIVERY_EV:
    return "a VM exit occurred while delivering an event (interrupt or exception)";
  case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
    return "unexpected VM exit reason from the hardware";
  default:
    return "unknown suberror";
  }
}

struct out {
  char *buf;
  size_t len;
  size_t used;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
  if (o->used + 1 >= o->len)
    return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(o->buf + o->used, o->len - o->used, fmt, ap);
  va_end(ap);
  if (n > 0)
    o->used += (size_t)n < o->len - o->used ? (size_t)n : o->len - o->used - 1;
}

static void put_segment(struct out *o, const char *name, const struct kvm_segment *s)
{
  put(o, "  %-4s %04x base %016llx limit %08x type %x s %u dpl %u p %u db %u l %u g %u%s\n",
      name, s->selector, (unsigned long long)s->base, s->limit, s->type, s->s, s->dpl,
      s->present, s->db, s->l, s->g, s->unusable ? " unusable" : "");
}

static const char *mode_name(const struct kvm_sregs *s)
{
  if (!(s->cr0 & CR0_PE))
    return "real mode";
  if (s->efer & EFER_LMA)
    return s->cs.l ? "64-bit long mode" : "compatibility mode";
  return s->cs.db ? "32-bit protected mode" : "16-bit protected mode";
}

/* The bytes at cs:rip, read through the guest's page tables when paging is on. */
static void put_code(struct out *o, struct vcpu *c, const struct kvm_sregs *s)
{
  const struct kvm_regs *r = vcpu_regs(c);
  uint64_t linear = (s->efer & EFER_LMA) && s->cs.l ? r->rip : s->cs.base + r->rip;
  uint64_t gpa = linear;
  if ((s->cr0 & CR0_PG) && vcpu_translate(c, linear, &gpa) < 0) {
    put(o, "  code at rip: linear 0x%llx is not mapped by the guest's page tables\n",
        (unsigned long long)linear);
    return;
  }
  put(o, "  code at rip (guest physical 0x%llx):", (unsigned long long)gpa);
  int shown = 0;
  for (; shown < 16; shown++) {
    const uint8_t *p = mem_ptr(&c->vm->mem, gpa + (uint64_t)shown, 1);
    if (p == NULL)
      break;
    put(o, " %02x", *p);
  }
  put(o, shown ? "\n" : " (not in guest memory)\n");
}

void describe_vcpu(struct vcpu *c, char *buf, size_t len)
{
  struct out o = { buf, len, strlen(buf) };
  const struct kvm_regs *r = vcpu_regs(c);
  struct kvm_sregs s;

  put(&o, "  rax %016llx rbx %016llx rcx %016llx rdx %016llx\n", (unsigned long long)r->rax,
      (unsigned long long)r->rbx, (unsigned long long)r->rcx, (unsigned long long)r->rdx);
  put(&o, "  rsi %016llx rdi %016llx rsp %016llx rbp %016llx\n", (unsigned long long)r->rsi,
      (unsigned long long)r->rdi, (unsigned long long)r->rsp, (unsigned long long)r->rbp);
  put(&o, "  r8  %016llx r9  %016llx r10 %016llx r11 %016llx\n", (unsigned long long)r->r8,
      (unsigned long long)r->r9, (unsigned long long)r->r10, (unsigned long long)r->r11);
  put(&o, "  r12 %016llx r13 %016llx r14 %016llx r15 %016llx\n", (unsigned long long)r->r12,
      (unsigned long long)r->r13, (unsigned long long)r->r14, (unsigned long long)r->r15);
  put(&o, "  rip %016llx rflags %016llx\n", (unsigned long long)r->rip,
      (unsigned long long)r->rflags);
  if (vcpu_get_sregs(c, &s) < 0) {
    put(&o, "  (segment registers unavailable)\n");
    return;
  }
  put_segment(&o, "cs", &s.cs);
  put_segment(&o, "ds", &s.ds);
  put_segment(&o, "es", &s.es);
  put_segment(&o, "ss", &s.ss);
  put_segment(&o, "fs", &s.fs);
  put_segment(&o, "gs", &s.gs);
  put(&o, "  cr0 %016llx cr2 %016llx cr3 %016llx cr4 %016llx\n", (unsigned long long)s.cr0,
      (unsigned long long)s.cr2, (unsigned long long)s.cr3, (unsigned long long)s.cr4);
  put(&o, "  efer %016llx gdt %016llx/%04x idt %016llx/%04x (%s)\n",
      (unsigned long long)s.efer, (unsigned long long)s.gdt.base, s.gdt.limit,
      (unsigned long long)s.idt.base, s.idt.limit, mode_name(&s));
  put_code(&o, c, &s);
}

static int fault_v(struct vcpu *c, int reason, const char *body, const char *fmt, va_list ap)
{
  if (c->stop.reason != VCPU_RUNNING && c->stop.reason >= VCPU_FAULT)
    return -1; /* keep the first fault */
  char *msg = malloc(FAULT_MSG_LEN);
  if (msg == NULL)
    return vcpu_stop(c, reason, 0);
  int n = snprintf(msg, FAULT_MSG_LEN, "cpu %d: ", c->id);
  vsnprintf(msg + n, FAULT_MSG_LEN - (size_t)n, fmt, ap);
  size_t used = strlen(msg);
  snprintf(msg + used, FAULT_MSG_LEN - used, "\n");
  describe_vcpu(c, msg, FAULT_MSG_LEN);
  if (body != NULL) {
    used = strlen(msg);
    snprintf(msg + used, FAULT_MSG_LEN - used, "%s", body);
  }
  free(c->stop.message);
  c->stop.message = msg;
  c->stop.reason = reason;
  c->stop.code = 0;
  return -1;
}

int vcpu_fault(struct vcpu *c, int reason, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fault_v(c, reason, NULL, fmt, ap);
  va_end(ap);
  return -1;
}

int vcpu_fault_with(struct vcpu *c, int reason, const char *body, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fault_v(c, reason, body, fmt, ap);
  va_end(ap);
  return -1;
}
