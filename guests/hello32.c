/* hello32: a C guest in 32-bit protected mode (paging off), on the runtime. */
#include <luavmm.h>

int main(void)
{
  puts("Hello from 32-bit protected mode!");
  return 0;
}
