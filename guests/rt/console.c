/* Console output on port 0xE9, a small printf, and exit. */
#include <luavmm.h>

int putchar(int c)
{
  outb(LUAVMM_CONSOLE_PORT, (uint8_t)c);
  return (unsigned char)c;
}

int puts(const char *s)
{
  while (*s)
    putchar(*s++);
  putchar('\n');
  return 1;
}

void exit(int code)
{
  outb(LUAVMM_EXIT_PORT, (uint8_t)code);
  /* Nothing ended the run at the exit port: stop here for good. */
  for (;;)
    __asm__ volatile("cli; hlt");
}

/* ---- printf ---- */

struct spec {
  int left;      /* '-': pad on the right */
  int zero;      /* '0': pad numbers with zeros */
  int width;
  int precision; /* -1 when absent */
};

/* Divides *n by base (2 to 36) in place and returns the remainder, using
 * 32-bit divisions only: a 32-bit guest has no libgcc for __udivdi3. The
 * number goes through in 16-bit pieces, so each step divides a value below
 * base << 16. */
static unsigned divmod(uint64_t *n, unsigned base)
{
  uint64_t q = 0;
  uint32_t r = 0;
  for (int shift = 48; shift >= 0; shift -= 16) {
    uint32_t cur = r << 16 | (uint32_t)(*n >> shift & 0xffff);
    q |= (uint64_t)(cur / base) << shift;
    r = cur % base;
  }
  *n = q;
  return r;
}

static int pad(int n, char c)
{
  for (int i = 0; i < n; i++)
    putchar(c);
  return n > 0 ? n : 0;
}

/* Writes s (len bytes) in the field spec describes, after a prefix ("-",
 * "0x") that zero padding goes after and space padding before. */
static int field(const struct spec *sp, const char *prefix, const char *s, int len, int number)
{
  int plen = (int)strlen(prefix);
  int fill = sp->width - plen - len;
  int out = 0;
  if (!sp->left && !(sp->zero && number))
    out += pad(fill, ' ');
  for (const char *p = prefix; *p; p++)
    putchar(*p);
  out += plen;
  if (!sp->left && sp->zero && number)
    out += pad(fill, '0');
  for (int i = 0; i < len; i++)
    putchar(s[i]);
  out += len;
  if (sp->left)
    out += pad(fill, ' ');
  return out;
}

static int number(const struct spec *sp, uint64_t u, int negative, unsigned base, int upper,
                  const char *prefix)
{
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char buf[24]; /* 2^64 has 20 decimal digits, 16 hex */
  int i = sizeof buf;
  do
    buf[--i] = digits[divmod(&u, base)];
  while (u != 0);
  return field(sp, negative ? "-" : prefix, buf + i, (int)sizeof buf - i, 1);
}

enum length { LEN_INT, LEN_CHAR, LEN_SHORT, LEN_LONG, LEN_LLONG, LEN_SIZE };

static uint64_t get_unsigned(va_list *ap, enum length len)
{
  switch (len) {
  case LEN_CHAR: return (unsigned char)va_arg(*ap, unsigned int);
  case LEN_SHORT: return (unsigned short)va_arg(*ap, unsigned int);
  case LEN_LONG: return va_arg(*ap, unsigned long);
  case LEN_LLONG: return va_arg(*ap, unsigned long long);
  case LEN_SIZE: return va_arg(*ap, size_t);
  default: return va_arg(*ap, unsigned int);
  }
}

static int64_t get_signed(va_list *ap, enum length len)
{
  switch (len) {
  case LEN_CHAR: return (signed char)va_arg(*ap, int);
  case LEN_SHORT: return (short)va_arg(*ap, int);
  case LEN_LONG: return va_arg(*ap, long);
  case LEN_LLONG: return va_arg(*ap, long long);
  case LEN_SIZE: return (int64_t)va_arg(*ap, size_t);
  default: return va_arg(*ap, int);
  }
}

int vprintf(const char *fmt, va_list ap_in)
{
  va_list ap;
  va_copy(ap, ap_in);
  int out = 0;
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      putchar(*f);
      out++;
      continue;
    }
    const char *start = f++;
    struct spec sp = { 0, 0, 0, -1 };
    for (;; f++) {
      if (*f == '-')
        sp.left = 1;
      else if (*f == '0')
        sp.zero = 1;
      else
        break;
    }
    if (*f == '*') {
      sp.width = va_arg(ap, int);
      if (sp.width < 0) {
        sp.left = 1;
        sp.width = -sp.width;
      }
      f++;
    }
    while (*f >= '0' && *f <= '9')
      sp.width = sp.width * 10 + (*f++ - '0');
    if (*f == '.') {
      f++;
      sp.precision = 0;
      if (*f == '*') {
        sp.precision = va_arg(ap, int);
        f++;
      }
      while (*f >= '0' && *f <= '9')
        sp.precision = sp.precision * 10 + (*f++ - '0');
    }
    enum length len = LEN_INT;
    if (*f == 'h') {
      len = f[1] == 'h' ? LEN_CHAR : LEN_SHORT;
      f += f[1] == 'h' ? 2 : 1;
    } else if (*f == 'l') {
      len = f[1] == 'l' ? LEN_LLONG : LEN_LONG;
      f += f[1] == 'l' ? 2 : 1;
    } else if (*f == 'z') {
      len = LEN_SIZE;
      f++;
    }

    switch (*f) {
    case 'd':
    case 'i': {
      int64_t v = get_signed(&ap, len);
      uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
      out += number(&sp, u, v < 0, 10, 0, "");
      break;
    }
    case 'u':
      out += number(&sp, get_unsigned(&ap, len), 0, 10, 0, "");
      break;
    case 'x':
    case 'X':
      out += number(&sp, get_unsigned(&ap, len), 0, 16, *f == 'X', "");
      break;
    case 'p':
      out += number(&sp, (uintptr_t)va_arg(ap, void *), 0, 16, 0, "0x");
      break;
    case 'c': {
      char c = (char)va_arg(ap, int);
      out += field(&sp, "", &c, 1, 0);
      break;
    }
    case 's': {
      const char *s = va_arg(ap, const char *);
      if (s == NULL)
        s = "(null)";
      int n = 0;
      while (s[n] && (sp.precision < 0 || n < sp.precision))
        n++;
      out += field(&sp, "", s, n, 0);
      break;
    }
    case '%':
      putchar('%');
      out++;
      break;
    default:
      /* Not a conversion we know: print it as written. */
      for (const char *p = start; p <= f && *p; p++, out++)
        putchar(*p);
      if (*f == '\0')
        f--;
      break;
    }
  }
  va_end(ap);
  return out;
}

int printf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vprintf(fmt, ap);
  va_end(ap);
  return n;
}
