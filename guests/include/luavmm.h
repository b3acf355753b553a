/* luavmm.h: the guest side of luavmm, for small freestanding test guests.
 *
 * The conventions a guest and the VMM share:
 *
 *   Console    One byte written with `out` to port 0xE9 is one character of
 *              output (QEMU's debugcon does the same). A read of the port
 *              returns 0xE9 where the VMM attaches vm:debugcon.
 *
 *   Exit       Write the exit code to port 0xF4 with `outb` (QEMU's
 *              isa-debug-exit port), then `cli; hlt` in a loop in case
 *              nothing ends the run there. vm:debug_exit{} ends the run
 *              with {reason = "exit", code = the byte written}.
 *
 *   Hypercall  `out dx, eax` with dx = 0xABBA and eax = the hypercall
 *              number. Arguments go in rdi, rsi, rcx, r10, r8, r9 (rcx, not
 *              rdx: dx holds the port); the result comes back in rax. Lua
 *              registers handlers with vm:on_hypercall(nr, fn). In 32-bit
 *              protected mode there are three arguments, edi, esi and ecx,
 *              and the result comes back in eax. By convention a negative
 *              result is an error, like Linux's -errno (-38, ENOSYS, for an
 *              unknown number when the VM ignores unhandled exits).
 *
 *   Memory     Real-mode guests are flat binaries loaded at 0x8000 and
 *              entered with cs = 0, ip = 0x8000, sp = 0x7c00. Protected- and
 *              long-mode guests are flat binaries linked at 0x100000 and
 *              entered at their first byte: flat 32-bit protected mode with
 *              paging off, or 64-bit long mode with the first 4 GiB identity
 *              mapped (2 MiB pages) and SSE enabled. The VMM's GDT is at
 *              0x500 and its page tables at 0x1000-0x6fff, so a guest never
 *              writes below 0x8000. The runtime's start code (rt/crt0.S)
 *              sets up its own stacks (16 KiB per CPU) and zeroes .bss, so
 *              guests do not depend on the VMM's rsp. Guest addresses are physical
 *              addresses (paging is off or an identity map), so a pointer
 *              can be handed to the host as is.
 *
 *   SMP        A C guest may run on up to LUAVMM_MAX_CPUS vCPUs at once.
 *              There is no interrupt controller and no INIT/SIPI: every
 *              vCPU enters at the same entry point with the same registers,
 *              and cpu_id() (CPUID leaf 1, EBX[31:24], which luavmm sets to
 *              the vCPU's index) tells them apart. crt0 gives each CPU its
 *              own stack; CPU 0 zeroes .bss while the others wait, then
 *              every CPU calls main(). main's return value is the exit code
 *              on CPU 0 only: there it goes to exit(), which ends the run
 *              for every CPU; on any other CPU returning from main halts
 *              that CPU alone. `hlt` ends only the vCPU that runs it, and
 *              the run ends when all have ended. printf and puts hold a
 *              console lock for the whole call, so lines from different
 *              CPUs do not interleave.
 *
 * Everything here works in both 32-bit and 64-bit builds unless it says
 * otherwise. The runtime (guests/rt/) provides the functions declared at
 * the end; gcc may also call memset, memcpy, memmove and memcmp on its own.
 */
#ifndef LUAVMM_H
#define LUAVMM_H

#define LUAVMM_CONSOLE_PORT 0xE9
#define LUAVMM_EXIT_PORT 0xF4
#define LUAVMM_HYPERCALL_PORT 0xABBA

/* The runtime's stacks: one per CPU, for CPU indexes 0 to MAX_CPUS - 1. */
#define LUAVMM_MAX_CPUS 16
#define LUAVMM_STACK_SIZE 16384

/* Plain numbers up to here, which crt0.S includes this header for; the
 * assembler sees nothing below. */
#ifndef __ASSEMBLER__

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* ---- port I/O ---- */

static inline void outb(uint16_t port, uint8_t v)
{
  __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
  __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
  __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
  uint8_t v;
  __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static inline uint16_t inw(uint16_t port)
{
  uint16_t v;
  __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

static inline uint32_t inl(uint16_t port)
{
  uint32_t v;
  __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

/* ---- MMIO ----
 * An MMIO access exits to the VMM, and KVM must decode the instruction to
 * know what the guest wanted. A plain `mov` is what every instruction
 * emulator handles, so the accessors spell it out instead of leaving gcc
 * free to fold a volatile load into a `cmp` or `test` with a memory
 * operand. The "memory" clobber keeps ordinary loads and stores from moving
 * across a device access. */

static inline uint8_t mmio_read8(uintptr_t addr)
{
  uint8_t v;
  __asm__ volatile("movb %1, %0" : "=q"(v) : "m"(*(volatile uint8_t *)addr) : "memory");
  return v;
}

static inline uint16_t mmio_read16(uintptr_t addr)
{
  uint16_t v;
  __asm__ volatile("movw %1, %0" : "=r"(v) : "m"(*(volatile uint16_t *)addr) : "memory");
  return v;
}

static inline uint32_t mmio_read32(uintptr_t addr)
{
  uint32_t v;
  __asm__ volatile("movl %1, %0" : "=r"(v) : "m"(*(volatile uint32_t *)addr) : "memory");
  return v;
}

static inline void mmio_write8(uintptr_t addr, uint8_t v)
{
  __asm__ volatile("movb %1, %0" : "=m"(*(volatile uint8_t *)addr) : "q"(v) : "memory");
}

static inline void mmio_write16(uintptr_t addr, uint16_t v)
{
  __asm__ volatile("movw %1, %0" : "=m"(*(volatile uint16_t *)addr) : "r"(v) : "memory");
}

static inline void mmio_write32(uintptr_t addr, uint32_t v)
{
  __asm__ volatile("movl %1, %0" : "=m"(*(volatile uint32_t *)addr) : "r"(v) : "memory");
}

#if defined(__x86_64__)
static inline uint64_t mmio_read64(uintptr_t addr)
{
  uint64_t v;
  __asm__ volatile("movq %1, %0" : "=r"(v) : "m"(*(volatile uint64_t *)addr) : "memory");
  return v;
}

static inline void mmio_write64(uintptr_t addr, uint64_t v)
{
  __asm__ volatile("movq %1, %0" : "=m"(*(volatile uint64_t *)addr) : "r"(v) : "memory");
}
#else
/* 32-bit code has no 64-bit general-purpose move: two 32-bit accesses, low
 * half first. Not atomic; the device sees two exits. */
static inline uint64_t mmio_read64(uintptr_t addr)
{
  uint64_t lo = mmio_read32(addr);
  return lo | (uint64_t)mmio_read32(addr + 4) << 32;
}

static inline void mmio_write64(uintptr_t addr, uint64_t v)
{
  mmio_write32(addr, (uint32_t)v);
  mmio_write32(addr + 4, (uint32_t)(v >> 32));
}
#endif

/* ---- hypercalls ----
 * Arguments and the result are register-sized: unsigned long is 64 bits in
 * a 64-bit guest and 32 bits in a 32-bit one. The "memory" clobber matters:
 * the host may read or write guest memory that a pointer argument names. */

static inline unsigned long hypercall0(uint32_t nr)
{
  unsigned long ax = nr;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT)
                   : "memory");
  return ax;
}

static inline unsigned long hypercall1(uint32_t nr, unsigned long a1)
{
  unsigned long ax = nr;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT), "D"(a1)
                   : "memory");
  return ax;
}

static inline unsigned long hypercall2(uint32_t nr, unsigned long a1, unsigned long a2)
{
  unsigned long ax = nr;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT), "D"(a1), "S"(a2)
                   : "memory");
  return ax;
}

static inline unsigned long hypercall3(uint32_t nr, unsigned long a1, unsigned long a2,
                                       unsigned long a3)
{
  unsigned long ax = nr;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT), "D"(a1), "S"(a2), "c"(a3)
                   : "memory");
  return ax;
}

#if defined(__x86_64__)
static inline unsigned long hypercall4(uint32_t nr, unsigned long a1, unsigned long a2,
                                       unsigned long a3, unsigned long a4)
{
  unsigned long ax = nr;
  register unsigned long r10 __asm__("r10") = a4;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT), "D"(a1), "S"(a2), "c"(a3), "r"(r10)
                   : "memory");
  return ax;
}

static inline unsigned long hypercall5(uint32_t nr, unsigned long a1, unsigned long a2,
                                       unsigned long a3, unsigned long a4, unsigned long a5)
{
  unsigned long ax = nr;
  register unsigned long r10 __asm__("r10") = a4;
  register unsigned long r8 __asm__("r8") = a5;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT), "D"(a1), "S"(a2), "c"(a3), "r"(r10), "r"(r8)
                   : "memory");
  return ax;
}

static inline unsigned long hypercall6(uint32_t nr, unsigned long a1, unsigned long a2,
                                       unsigned long a3, unsigned long a4, unsigned long a5,
                                       unsigned long a6)
{
  unsigned long ax = nr;
  register unsigned long r10 __asm__("r10") = a4;
  register unsigned long r8 __asm__("r8") = a5;
  register unsigned long r9 __asm__("r9") = a6;
  __asm__ volatile("outl %%eax, %%dx"
                   : "+a"(ax)
                   : "d"(LUAVMM_HYPERCALL_PORT), "D"(a1), "S"(a2), "c"(a3), "r"(r10), "r"(r8),
                     "r"(r9)
                   : "memory");
  return ax;
}
#else
/* 32-bit guests have only three hypercall arguments (edi, esi, ecx): using
 * hypercall4, 5 or 6 there is a compile error naming the function. */
#pragma GCC poison hypercall4 hypercall5 hypercall6
#endif

/* ---- SMP: spinning, spinlocks ----
 * For counters and flags shared between CPUs, <stdatomic.h> works in these
 * freestanding builds: gcc provides it, and atomics up to the register
 * width (8 bytes in a 64-bit guest, 4 in a 32-bit one) are inline `lock`
 * instructions. Wider ones call libatomic, which guests do not have: the
 * link fails naming __atomic_*_8. What <stdatomic.h> lacks is below.
 * Interrupts are always off in these guests, so a spinlock never needs to
 * disable them. */

/* The spin-wait hint: `pause` tells the CPU (and a hypervisor watching
 * for spinning vCPUs) that this is a busy-wait loop. */
static inline void cpu_relax(void)
{
  __asm__ volatile("pause" : : : "memory");
}

/* A spinlock; all zeroes (SPINLOCK_INIT, or .bss) is unlocked. */
typedef struct {
  int locked;
} spinlock_t;

#define SPINLOCK_INIT { 0 }

/* Takes the lock if it is free: nonzero when it did. */
static inline int spin_trylock(spinlock_t *l)
{
  return __atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE) == 0;
}

/* Test-and-test-and-set: the `xchg` (a locked, fully ordered instruction)
 * only when the lock looks free, so waiting CPUs spin on reads of its
 * cache line instead of taking it over with a write each time. */
static inline void spin_lock(spinlock_t *l)
{
  while (!spin_trylock(l))
    while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
      cpu_relax();
}

static inline void spin_unlock(spinlock_t *l)
{
  __atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

/* ---- the runtime (guests/rt/) ---- */

/* This CPU's index, 0 to the VM's vCPU count - 1: CPUID leaf 1's initial
 * APIC ID, which luavmm sets to the vCPU's index. CPUID is a VM exit under
 * hardware virtualization (KVM answers it in the kernel; the VMM never
 * sees it), so keep the result rather than calling this in a hot loop. */
int cpu_id(void);

/* Halts this CPU for good (`cli; hlt`); on an SMP guest the others go on.
 * The VMM ends this vCPU's part of the run with reason "hlt". */
__attribute__((noreturn)) void cpu_halt(void);

/* Console output through port 0xE9. puts adds a newline, like C's. */
int putchar(int c);
int puts(const char *s);

/* A small printf: %d %i %u %x %X %c %s %p %%, the length modifiers hh, h, l,
 * ll and z, a field width (a number or *), the flags '-' and '0', and a
 * precision for %s. Returns the number of characters written. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* The same formatting into buf, as C's: at most size - 1 characters and a
 * terminating NUL (nothing when size is 0). Returns the length the whole
 * output would have had, so a result >= size means it was cut short. */
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Writes code to the exit port and halts for good. */
__attribute__((noreturn)) void exit(int code);

void *memset(void *dst, int c, size_t n);
void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

#endif /* __ASSEMBLER__ */
#endif
