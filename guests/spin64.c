/* spin64: prints "spinning" and then loops forever in a `jmp` to itself:
 * no I/O, no exit, nothing a VMM sees. Only a timeout, vm:stop or Ctrl-C
 * ends its run (scripts/spin.lua). On an SMP VM only CPU 0 speaks; every
 * CPU spins. */
#include <luavmm.h>

int main(void)
{
  if (cpu_id() == 0)
    puts("spinning");
  for (;;)
    __asm__ volatile("1: jmp 1b");
}
