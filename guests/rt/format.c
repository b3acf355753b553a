/* printf's formatting, shared by printf (to the console) and snprintf (to
 * a buffer). */
#include "rt.h"

static void emit(struct sink *s, char c)
{
  if (s->console)
    putchar(c);
  else if (s->len + 1 < s->size)
    s->buf[s->len] = c;
  s->len++;
}

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

static void pad(struct sink *s, int n, char c)
{
  for (int i = 0; i < n; i++)
    emit(s, c);
}

/* Writes str (len bytes) in the field sp describes, after a prefix ("-",
 * "0x") that zero padding goes after and space padding before. */
static void field(struct sink *s, const struct spec *sp, const char *prefix, const char *str,
                  int len, int number)
{
  int fill = sp->width - (int)strlen(prefix) - len;
  if (!sp->left && !(sp->zero && number))
    pad(s, fill, ' ');
  for (const char *p = prefix; *p; p++)
    emit(s, *p);
  if (!sp->left && sp->zero && number)
    pad(s, fill, '0');
  for (int i = 0; i < len; i++)
    emit(s, str[i]);
  if (sp->left)
    pad(s, fill, ' ');
}

static void number(struct sink *s, const struct spec *sp, uint64_t u, int negative,
                   unsigned base, int upper, const char *prefix)
{
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  char buf[24]; /* 2^64 has 20 decimal digits, 16 hex */
  int i = sizeof buf;
  do
    buf[--i] = digits[divmod(&u, base)];
  while (u != 0);
  field(s, sp, negative ? "-" : prefix, buf + i, (int)sizeof buf - i, 1);
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

void sink_format(struct sink *s, const char *fmt, va_list ap_in)
{
  va_list ap;
  va_copy(ap, ap_in);
  for (const char *f = fmt; *f; f++) {
    if (*f != '%') {
      emit(s, *f);
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
      number(s, &sp, u, v < 0, 10, 0, "");
      break;
    }
    case 'u':
      number(s, &sp, get_unsigned(&ap, len), 0, 10, 0, "");
      break;
    case 'x':
    case 'X':
      number(s, &sp, get_unsigned(&ap, len), 0, 16, *f == 'X', "");
      break;
    case 'p':
      number(s, &sp, (uintptr_t)va_arg(ap, void *), 0, 16, 0, "0x");
      break;
    case 'c': {
      char c = (char)va_arg(ap, int);
      field(s, &sp, "", &c, 1, 0);
      break;
    }
    case 's': {
      const char *str = va_arg(ap, const char *);
      if (str == NULL)
        str = "(null)";
      int n = 0;
      while (str[n] && (sp.precision < 0 || n < sp.precision))
        n++;
      field(s, &sp, "", str, n, 0);
      break;
    }
    case '%':
      emit(s, '%');
      break;
    default:
      /* Not a conversion we know: print it as written. */
      for (const char *p = start; p <= f && *p; p++)
        emit(s, *p);
      if (*f == '\0')
        f--;
      break;
    }
  }
  va_end(ap);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
  /* With size 0 nothing is stored and buf may be NULL, as C allows. */
  struct sink s = { 0, buf, size, 0 };
  sink_format(&s, fmt, ap);
  if (size > 0)
    buf[s.len < size ? s.len : size - 1] = '\0';
  return (int)s.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, size, fmt, ap);
  va_end(ap);
  return n;
}
