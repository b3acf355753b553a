/* Console output on port 0xE9, and exit. printf and puts hold the console
 * lock for a whole call, so on an SMP guest each call's output comes out
 * in one piece instead of byte-interleaved with other CPUs'. */
#include "rt.h"

/* In .bss: CPU 0 zeroes it (unlocked) before any CPU reaches main. */
static spinlock_t console_lock;

int putchar(int c)
{
  outb(LUAVMM_CONSOLE_PORT, (uint8_t)c);
  return (unsigned char)c;
}

int puts(const char *s)
{
  spin_lock(&console_lock);
  while (*s)
    putchar(*s++);
  putchar('\n');
  spin_unlock(&console_lock);
  return 1;
}

int vprintf(const char *fmt, va_list ap)
{
  struct sink s = { 1, NULL, 0, 0 };
  spin_lock(&console_lock);
  sink_format(&s, fmt, ap);
  spin_unlock(&console_lock);
  return (int)s.len;
}

int printf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}

void exit(int code)
{
  outb(LUAVMM_EXIT_PORT, (uint8_t)code);
  /* Nothing ended the run at the exit port: stop here for good. */
  for (;;)
    __asm__ volatile("cli; hlt");
}
