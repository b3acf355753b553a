/* A minimal TAP producer for the C tests: tests/run.lua counts the lines. */
#ifndef LUAVMM_TAP_H
#define LUAVMM_TAP_H

#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

#define CHECK(cond, ...)                                    \
  do {                                                      \
    int tap_ok_ = (cond);                                   \
    tap_count++;                                            \
    if (tap_ok_) {                                          \
      printf("ok %d - ", tap_count);                        \
    } else {                                                \
      tap_failed++;                                         \
      printf("not ok %d - ", tap_count);                    \
    }                                                       \
    printf(__VA_ARGS__);                                    \
    printf("\n");                                           \
    if (!tap_ok_)                                           \
      printf("#   at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
  } while (0)

#define CONTAINS(haystack, needle) ((haystack) != NULL && strstr((haystack), (needle)) != NULL)

#endif
