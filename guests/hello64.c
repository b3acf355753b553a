/* hello64: a C guest in 64-bit long mode, on the runtime. */
#include <luavmm.h>

int main(void)
{
  puts("Hello from 64-bit long mode!");
  return 0;
}
