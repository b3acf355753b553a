/* hypercall64: asks the host to compute things through hypercalls, prints
 * the answers and checks them itself. Exits 0 when every answer is right,
 * 1 otherwise. The host side is scripts/hypercall.lua:
 *
 *   1  sum(a1, ..., a6)        the sum of all six arguments
 *   2  fib(n)                  the n-th Fibonacci number, 64 bits wide
 *   3  upper(gpa, len)         upper-cases len bytes at guest physical
 *                              address gpa in place; returns len
 */
#include <luavmm.h>

enum { HC_SUM = 1, HC_FIB = 2, HC_UPPER = 3 };

static char greeting[] = "hello from the guest";

static int failed;

static void check(int ok, const char *what)
{
  if (!ok) {
    printf("  wrong: %s\n", what);
    failed = 1;
  }
}

static uint64_t fib(unsigned n)
{
  uint64_t a = 0, b = 1;
  while (n--) {
    uint64_t t = a + b;
    a = b;
    b = t;
  }
  return a;
}

static char upper(char c)
{
  return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

int main(void)
{
  unsigned long sum = hypercall6(HC_SUM, 1, 2, 3, 4, 5, 6);
  printf("sum(1..6) = %lu\n", sum);
  check(sum == 21, "expected 21");

  unsigned long f = hypercall1(HC_FIB, 50);
  printf("fib(50) = %lu\n", f);
  check(f == fib(50), "expected 12586269025");

  /* Identity-mapped memory: the pointer is the guest physical address. */
  char expect[sizeof greeting];
  for (size_t i = 0; i < sizeof greeting; i++)
    expect[i] = upper(greeting[i]);
  size_t len = strlen(greeting);
  unsigned long n = hypercall2(HC_UPPER, (uintptr_t)greeting, len);
  printf("upper: %s\n", greeting);
  check(n == len, "the host should return the length");
  check(memcmp(greeting, expect, sizeof greeting) == 0, "expected HELLO FROM THE GUEST");

  puts(failed ? "hypercall64: FAILED" : "hypercall64: all answers right");
  return failed;
}
