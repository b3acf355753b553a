#include "err.h"

#include <stdarg.h>
#include <stdio.h>

/* Writes the message and returns -1, so failures read as `return errf(...)`. */
int errf(char *err, const char *fmt, ...)
{
  va_list ap;
  if (err == NULL)
    return -1;
  va_start(ap, fmt);
  vsnprintf(err, ERR_LEN, fmt, ap);
  va_end(ap);
  return -1;
}
