/* Which CPU this is, and halting one CPU. */
#include <luavmm.h>

int cpu_id(void)
{
  /* CPUID leaf 1, EBX[31:24]: the initial APIC ID, which luavmm sets to
   * the vCPU's index. */
  uint32_t a = 1, b, c = 0, d;
  __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
  return (int)(b >> 24);
}

void cpu_halt(void)
{
  for (;;)
    __asm__ volatile("cli; hlt");
}
