/* What the fuzz harnesses share: the input read as a stream, and guest
 * memory made of two heap regions with a hole between them, so that
 * AddressSanitizer catches any access past a region's end and a buffer
 * that spans the hole must be refused.
 *
 *   region A: guest physical [0x0000, 0x8000)
 *   hole:                    [0x8000, 0x9000)
 *   region B:                [0x9000, 0x10000)
 *
 * Addresses in inputs are 16-bit, so they fall in or near guest memory. */
#ifndef LUAVMM_FUZZ_H
#define LUAVMM_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/mem.h"

#define FUZZ_A_GPA 0x0000u
#define FUZZ_A_SIZE 0x8000u
#define FUZZ_B_GPA 0x9000u
#define FUZZ_B_SIZE 0x7000u

/* An invariant of the code under test: a failure is a finding. */
#define FUZZ_ASSERT(cond)                                                             \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                        \
    }                                                                                 \
  } while (0)

/* The input as a stream; reading past its end gives zeroes. */
struct fuzz_in {
  const uint8_t *p;
  size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
  uint16_t lo = fuzz_u8(in);
  return (uint16_t)(lo | fuzz_u8(in) << 8);
}

static inline uint32_t fuzz_u32(struct fuzz_in *in)
{
  uint32_t lo = fuzz_u16(in);
  return lo | (uint32_t)fuzz_u16(in) << 16;
}

struct fuzz_mem {
  struct mem mem;
  struct mem_region regions[2];
};

/* Guest memory from the rest of the input: region A's bytes, then B's;
 * what the input lacks is zero. */
static inline void fuzz_mem_init(struct fuzz_mem *fm, struct fuzz_in *in)
{
  static const struct { uint32_t gpa, size; const char *name; } layout[2] = {
    { FUZZ_A_GPA, FUZZ_A_SIZE, "a" }, { FUZZ_B_GPA, FUZZ_B_SIZE, "b" },
  };
  mem_init(&fm->mem, 8);
  for (int i = 0; i < 2; i++) {
    uint8_t *host = calloc(1, layout[i].size);
    FUZZ_ASSERT(host != NULL);
    size_t n = in->n < layout[i].size ? in->n : layout[i].size;
    memcpy(host, in->p, n);
    in->p += n;
    in->n -= n;
    fm->regions[i] = (struct mem_region){ .gpa = layout[i].gpa, .size = layout[i].size,
                                          .host = host, .slot = (uint32_t)i };
    snprintf(fm->regions[i].name, sizeof fm->regions[i].name, "%s", layout[i].name);
  }
  fm->mem.regions = fm->regions;
  fm->mem.count = fm->mem.cap = 2;
}

static inline void fuzz_mem_free(struct fuzz_mem *fm)
{
  for (int i = 0; i < 2; i++)
    free(fm->regions[i].host);
  memset(fm, 0, sizeof *fm);
}

/* Whether [host, host+len) lies wholly inside one region. */
static inline bool fuzz_inside(const struct fuzz_mem *fm, const uint8_t *host, uint64_t len)
{
  for (int i = 0; i < 2; i++) {
    uintptr_t lo = (uintptr_t)fm->regions[i].host, p = (uintptr_t)host;
    if (p >= lo && p - lo <= fm->regions[i].size && len <= fm->regions[i].size - (p - lo))
      return true;
  }
  return false;
}

/* A little-endian store into guest memory, if it is all there (the
 * driver's side changing rings and descriptors between device steps). */
static inline void fuzz_poke(struct fuzz_mem *fm, uint64_t gpa, uint64_t value, uint32_t size)
{
  uint8_t *p = mem_ptr(&fm->mem, gpa, size);
  if (p != NULL)
    memcpy(p, &value, size);
}

#endif
