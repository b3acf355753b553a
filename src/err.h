/* Error messages from the core: a fixed buffer filled with printf-style text.
 * Core functions return 0 on success and -1 on failure with the reason in
 * the caller's buffer, so the bindings can raise it with context. */
#ifndef LUAVMM_ERR_H
#define LUAVMM_ERR_H

#include <stddef.h>

#define ERR_LEN 512

int errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
