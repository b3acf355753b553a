/* smp64: an SMP guest in 64-bit long mode. Every vCPU runs main() at once;
 * the host side is scripts/smp.lua, with these hypercalls:
 *
 *   0x10  print(gpa, len)       writes len bytes of guest memory at gpa to
 *                               the host's output, in one piece
 *   0x11  count()               adds 1 to a counter the host keeps and
 *                               returns the new value
 *   0x12  report(id, n, bad)    this CPU's index as CPUID gave it, the
 *                               number of count() calls it made, and how
 *                               many of their results were not larger than
 *                               the one before (0 when the host's counter
 *                               only grows)
 *
 * Each CPU says hello, calls count() INCREMENTS times, reports and halts;
 * the run ends when every vCPU has halted. The hello line is formatted
 * into a buffer and handed over with one hypercall: the host prints it
 * whole, so lines from different CPUs cannot interleave, and it costs one
 * exit where printf costs one per character (printf would not interleave
 * either, it holds the runtime's console lock, but every other CPU would
 * spin while the holder makes its dozen exits).
 */
#include <luavmm.h>

enum { HC_PRINT = 0x10, HC_COUNT = 0x11, HC_REPORT = 0x12 };

/* Each count() is a port exit and a Lua call: about 10 µs here with one
 * vCPU. scripts/smp.lua expects this number. */
#define INCREMENTS 1000

static void say(const char *line, int len)
{
  /* The buffer is on this CPU's stack; addresses are physical (identity
   * map), so the pointer is what the host reads. */
  hypercall2(HC_PRINT, (uintptr_t)line, (unsigned long)len);
}

int main(void)
{
  int id = cpu_id();
  char line[64];
  int len = snprintf(line, sizeof line, "cpu %d: hello\n", id);
  say(line, len < (int)sizeof line ? len : (int)sizeof line - 1);

  unsigned long last = 0, bad = 0;
  for (int i = 0; i < INCREMENTS; i++) {
    unsigned long now = hypercall0(HC_COUNT);
    if (now <= last)
      bad++;
    last = now;
  }
  hypercall3(HC_REPORT, (unsigned long)id, INCREMENTS, bad);

  /* Not `return`: on CPU 0 that would be exit(), which ends the run for
   * every CPU, including those still counting. */
  cpu_halt();
}
