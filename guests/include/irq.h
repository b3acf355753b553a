/* irq.h: interrupts for 64-bit test guests on luavmm's in-kernel irqchip
 * (vmm.vm{ irqchip = true }), from guests/rt/irq.c.
 *
 * irq_init() loads an IDT, software-enables this CPU's local APIC and
 * masks the 8259 PIC (by default KVM also routes lines 0-15 to it, which
 * would deliver them a second time, at vectors nobody set up).
 * irq_route(line, fn, arg) programs IOAPIC pin `line` as vector
 * IRQ_VECTOR(line), edge-triggered, active high, fixed delivery to this
 * CPU, and from then on each interrupt calls fn(arg) with interrupts off,
 * followed by the local APIC's EOI. An edge that comes while fn runs is
 * kept by the local APIC and delivered after the EOI.
 *
 * The guest runs with interrupts off (crt0 leaves IF = 0) and takes them
 * only where it says so: irq_wait() sleeps until the next one (sti; hlt,
 * so one that is already pending wakes it at once) and returns with
 * interrupts off again; irq_enable()/irq_disable() for longer stretches.
 *
 * 64-bit only; in a 32-bit build the header declares nothing. */
#ifndef LUAVMM_IRQ_H
#define LUAVMM_IRQ_H

#ifdef __x86_64__

#define IRQ_LINES 24                 /* the IOAPIC's pins */
#define IRQ_VECTOR(line) (0x30 + (line))
#define IRQ_SPURIOUS_VECTOR 0xff

typedef void irq_handler(void *arg);

/* The IDT, the local APIC, the PIC masked. Once, on CPU 0. */
void irq_init(void);

/* Routes IOAPIC pin `line` (0 to IRQ_LINES - 1) to fn(arg); returns 0,
 * or -1 for a line out of range. fn NULL masks the pin again. */
int irq_route(unsigned line, irq_handler *fn, void *arg);

/* Interrupts taken so far, all lines together. */
unsigned long irq_count(void);

/* Points IDT entry `vector` at `entry` (an interrupt gate: interrupts off
 * on entry) that code at privilege `dpl` may reach with `int`; for a
 * guest's own system calls. After irq_init. */
void irq_set_gate(unsigned vector, void (*entry)(void), unsigned dpl);

static inline void irq_enable(void)
{
  __asm__ volatile("sti" : : : "memory");
}

static inline void irq_disable(void)
{
  __asm__ volatile("cli" : : : "memory");
}

/* Sleeps until an interrupt has been handled: call it with interrupts
 * off, after checking that what you wait for has not happened yet; sti
 * takes effect after hlt starts, so an interrupt that came meanwhile
 * cannot be missed. Returns with interrupts off. */
static inline void irq_wait(void)
{
  __asm__ volatile("sti; hlt; cli" : : : "memory");
}

#endif
#endif
