/* Interrupts for 64-bit guests: an IDT with one entry stub per IOAPIC
 * pin, the local APIC and the IOAPIC at their usual addresses. See
 * guests/include/irq.h. Empty in a 32-bit build. */
#include <irq.h>

#include "rt.h"

#ifdef __x86_64__

#define LAPIC_BASE 0xfee00000ul
#define LAPIC_TPR 0x080
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_SVR_ENABLE 0x100

#define IOAPIC_BASE 0xfec00000ul
#define IOAPIC_WINDOW 0x10
#define IOAPIC_REDIR(line) (0x10 + 2 * (line))
#define IOAPIC_MASKED (1u << 16)

/* A 64-bit interrupt gate. */
struct gate {
  uint16_t offset0;
  uint16_t selector;
  uint8_t ist;
  uint8_t type;          /* 0x8e: present, DPL 0, interrupt gate; DPL in bits 5-6 */
  uint16_t offset1;
  uint32_t offset2;
  uint32_t zero;
};

static struct gate idt[256] __attribute__((aligned(16)));
static irq_handler *handlers[IRQ_LINES];
static void *handler_args[IRQ_LINES];
static volatile unsigned long taken;

void irq_dispatch(unsigned long line);

/* Each pin's stub pushes its number and goes to the common part, which
 * saves what the C calling convention lets a callee clobber (no SSE:
 * guests are built with -mgeneral-regs-only), aligns the stack and calls
 * irq_dispatch. On entry the CPU has pushed 5 words onto a 16-byte
 * aligned stack; with the pin's number and 9 registers that is 15 words,
 * so one more keeps the call aligned. */
__asm__(".pushsection .text\n"
        "irq_common:\n"
        "  push %rax\n  push %rcx\n  push %rdx\n  push %rsi\n  push %rdi\n"
        "  push %r8\n  push %r9\n  push %r10\n  push %r11\n"
        "  mov 72(%rsp), %rdi\n"
        "  sub $8, %rsp\n"
        "  cld\n"
        "  call irq_dispatch\n"
        "  add $8, %rsp\n"
        "  pop %r11\n  pop %r10\n  pop %r9\n  pop %r8\n  pop %rdi\n"
        "  pop %rsi\n  pop %rdx\n  pop %rcx\n  pop %rax\n"
        "  add $8, %rsp\n"
        "  iretq\n"
        "irq_spurious:\n"
        "  iretq\n"
        ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23\n"
        "irq_stub_\\n:\n"
        "  push $\\n\n"
        "  jmp irq_common\n"
        ".endr\n"
        ".popsection\n"
        ".pushsection .rodata\n"
        ".balign 8\n"
        "irq_stubs:\n"
        ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23\n"
        "  .quad irq_stub_\\n\n"
        ".endr\n"
        "irq_spurious_stub:\n"
        "  .quad irq_spurious\n"
        ".popsection\n");

extern const uint64_t irq_stubs[IRQ_LINES];
extern const uint64_t irq_spurious_stub;

static void lapic_write(uint32_t reg, uint32_t v)
{
  mmio_write32(LAPIC_BASE + reg, v);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
  mmio_write32(IOAPIC_BASE, reg);
  mmio_write32(IOAPIC_BASE + IOAPIC_WINDOW, v);
}

void irq_dispatch(unsigned long line)
{
  taken++;
  if (line < IRQ_LINES && handlers[line] != NULL)
    handlers[line](handler_args[line]);
  lapic_write(LAPIC_EOI, 0);
}

static void set_gate(unsigned vector, uint64_t entry, unsigned dpl)
{
  uint16_t cs;
  __asm__ volatile("mov %%cs, %0" : "=r"(cs));
  idt[vector] = (struct gate){
    .offset0 = (uint16_t)entry,
    .selector = cs,
    .type = (uint8_t)(0x8e | (dpl & 3) << 5),
    .offset1 = (uint16_t)(entry >> 16),
    .offset2 = (uint32_t)(entry >> 32),
  };
}

void irq_init(void)
{
  for (unsigned line = 0; line < IRQ_LINES; line++)
    set_gate(IRQ_VECTOR(line), irq_stubs[line], 0);
  set_gate(IRQ_SPURIOUS_VECTOR, irq_spurious_stub, 0);
  struct __attribute__((packed)) {
    uint16_t limit;
    uint64_t base;
  } idtr = { sizeof idt - 1, (uintptr_t)idt };
  __asm__ volatile("lidt %0" : : "m"(idtr));
  /* Both PICs masked: lines reach us through the IOAPIC only. */
  outb(0x21, 0xff);
  outb(0xa1, 0xff);
  lapic_write(LAPIC_TPR, 0);
  lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | IRQ_SPURIOUS_VECTOR);
}

int irq_route(unsigned line, irq_handler *fn, void *arg)
{
  if (line >= IRQ_LINES)
    return -1;
  ioapic_write(IOAPIC_REDIR(line), IOAPIC_MASKED);
  handlers[line] = fn;
  handler_args[line] = arg;
  if (fn == NULL)
    return 0;
  /* The destination (this CPU's APIC ID) first, then the low half:
   * vector, fixed delivery, physical destination, active high, edge,
   * unmasked. */
  ioapic_write(IOAPIC_REDIR(line) + 1, (uint32_t)cpu_id() << 24);
  ioapic_write(IOAPIC_REDIR(line), IRQ_VECTOR(line));
  return 0;
}

unsigned long irq_count(void)
{
  return taken;
}

void irq_set_gate(unsigned vector, void (*entry)(void), unsigned dpl)
{
  if (vector < 256)
    set_gate(vector, (uintptr_t)entry, dpl);
}

#endif
