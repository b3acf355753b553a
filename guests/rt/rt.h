/* rt.h: what the runtime's files share; not part of the guest API. */
#ifndef RT_H
#define RT_H

#include <luavmm.h>

/* Where formatted output goes: the console, or a caller's buffer. */
struct sink {
  int console; /* nonzero: to the console, a byte per `out`; else to buf */
  char *buf;
  size_t size; /* buf's size; one byte of it is kept for the NUL */
  size_t len;  /* characters produced so far, whether they fit or not */
};

/* printf's formatting, into s. */
void sink_format(struct sink *s, const char *fmt, va_list ap);

#endif
