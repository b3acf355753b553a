/* libFuzzer harness for the port/MMIO bus (src/bus.c): random sequences
 * of bus_add, bus_remove, bus_find, bus_exact and bus_overlap, with
 * overlapping, wrapping and edge-length ranges, checked against a plain
 * reference model (an unsorted array searched linearly). A finding is a
 * sanitizer report or a broken invariant: the published table is sorted by
 * base and its ranges do not overlap, wrap, or pass the space's limit; add
 * succeeds exactly when the model says the range is free; find returns the
 * range that holds the whole access, or none; exact and overlap agree with
 * the model and with each other.
 *
 * Input:
 *   u8  space     % 3: 0 ports (limit 0x10000), 1 MMIO (no limit: 2^64),
 *                 2 a limit from the input (u32 << 12)
 *   ops until the input ends: { u8 op, value, value }
 * A value is a selector byte and its operand (see bus_value): small
 * numbers, numbers near 2^64 or the limit, powers of two, or the edges of a
 * range already on the bus, so that the interesting cases come often.
 *
 * Ops (op % 8): 0-2 add (base, len); 3 remove (base); 4 find (addr, size
 * 1, 2, 4, 8 or the value's low 32 bits); 5 exact (base, len); 6 overlap
 * (base, len); 7 remove the range at index value % count. */
#include <stddef.h>
#include <stdint.h>

#include "../../src/bus.h"
#include "../../src/err.h"
#include "fuzz.h"

#define BUS_MODEL_MAX 256

struct bus_model_range {
  uint64_t base, len;
  uintptr_t token; /* the opaque handed to bus_add: identifies the range */
};

static struct bus_model_range bus_model[BUS_MODEL_MAX];
static size_t bus_model_count;

static int bus_handler(void *opaque, struct vcpu *cpu, uint64_t offset, uint8_t *data,
                       uint32_t size, bool is_write)
{
  (void)opaque;
  (void)cpu;
  (void)offset;
  (void)data;
  (void)size;
  (void)is_write;
  return 0;
}

static uint64_t bus_u64(struct fuzz_in *in)
{
  uint64_t lo = fuzz_u32(in);
  return lo | (uint64_t)fuzz_u32(in) << 32;
}

/* The space's exclusive top: limit, or 2^64 (returned as 0) for none. */
static uint64_t bus_value(struct fuzz_in *in, uint64_t limit)
{
  uint8_t sel = fuzz_u8(in);
  uint64_t top_minus = limit ? limit : 0; /* 0 - n wraps to 2^64 - n */
  switch (sel % 8) {
  case 0:
    return fuzz_u8(in);
  case 1:
    return fuzz_u16(in);
  case 2:
    return bus_u64(in);
  case 3:
    return UINT64_MAX - fuzz_u8(in);
  case 4:
    return top_minus - fuzz_u8(in);
  case 5: { /* an edge of a range on the bus: base or end, give or take one */
    uint8_t pick = fuzz_u8(in);
    if (bus_model_count == 0)
      return pick;
    const struct bus_model_range *r = &bus_model[pick % bus_model_count];
    uint64_t at = (pick & 0x80) ? r->base + r->len : r->base;
    return at + (uint64_t)((int)(sel >> 3) % 3 - 1);
  }
  case 6: {
    uint8_t shift = fuzz_u8(in);
    return (1ull << (shift % 64)) + (uint64_t)((int)(shift >> 6) % 3 - 1);
  }
  default:
    return fuzz_u32(in);
  }
}

/* Whether [base, base+len) and r overlap; the access is clamped at 2^64
 * (bus_overlap's callers check wrapping first; the model does not need
 * them to). */
static bool bus_model_overlaps(const struct bus_model_range *r, uint64_t base, uint64_t len)
{
  uint64_t end;
  bool wraps = __builtin_add_overflow(base, len, &end);
  if (len == 0)
    return false;
  return base < r->base + r->len && (wraps || r->base < end);
}

static const struct bus_model_range *bus_model_find(uint64_t addr, uint32_t size)
{
  for (size_t i = 0; i < bus_model_count; i++) {
    const struct bus_model_range *r = &bus_model[i];
    if (addr >= r->base && addr - r->base < r->len && size <= r->len - (addr - r->base))
      return r;
  }
  return NULL;
}

/* The published table: sorted, disjoint, no empty, wrapping or
 * out-of-space range, and the same set as the model. */
static void bus_check_table(const struct bus *b)
{
  const struct bus_table *t = atomic_load(&b->table);
  FUZZ_ASSERT(t->count == bus_model_count);
  for (size_t i = 0; i < t->count; i++) {
    const struct bus_range *r = &t->ranges[i];
    uint64_t end;
    FUZZ_ASSERT(r->len > 0);
    FUZZ_ASSERT(!__builtin_add_overflow(r->base, r->len, &end));
    FUZZ_ASSERT(b->limit == 0 || end <= b->limit);
    if (i > 0)
      FUZZ_ASSERT(t->ranges[i - 1].base + t->ranges[i - 1].len <= r->base);
    /* Each range is found at its first and last byte, and not past them. */
    FUZZ_ASSERT(bus_find(b, r->base, 1) == r);
    FUZZ_ASSERT(bus_find(b, end - 1, 1) == r);
    FUZZ_ASSERT(bus_find(b, r->base, (uint32_t)(r->len > UINT32_MAX ? UINT32_MAX : r->len)) == r);
    const struct bus_range *after = bus_find(b, end, 1);
    FUZZ_ASSERT(after == NULL || after->base == end);
    FUZZ_ASSERT(bus_exact(b, r->base, r->len) == r);
    bool in_model = false;
    for (size_t k = 0; k < bus_model_count && !in_model; k++)
      in_model = bus_model[k].base == r->base && bus_model[k].len == r->len &&
                 bus_model[k].token == (uintptr_t)r->opaque;
    FUZZ_ASSERT(in_model);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct fuzz_in in = { data, size };
  uint8_t space = fuzz_u8(&in) % 3;
  uint64_t limit = space == 0 ? 0x10000 : space == 1 ? 0 : (uint64_t)fuzz_u32(&in) << 12;
  struct bus b;
  char err[ERR_LEN];
  uintptr_t next_token = 1;
  FUZZ_ASSERT(bus_init(&b, limit, "fuzz") == 0);
  bus_model_count = 0;

  while (in.n > 0) {
    uint8_t op = fuzz_u8(&in) % 8;
    uint64_t x = bus_value(&in, limit), y = bus_value(&in, limit);
    switch (op) {
    case 0:
    case 1:
    case 2: { /* add [x, x+y) */
      uint64_t end;
      bool vacant = y > 0 && !__builtin_add_overflow(x, y, &end) && (limit == 0 || end <= limit);
      for (size_t i = 0; i < bus_model_count && vacant; i++)
        vacant = !bus_model_overlaps(&bus_model[i], x, y);
      vacant = vacant && bus_model_count < BUS_MODEL_MAX;
      err[0] = '\0';
      int rc = bus_model_count < BUS_MODEL_MAX
                 ? bus_add(&b, x, y, bus_handler, (void *)next_token, "r", 0, err)
                 : -1;
      FUZZ_ASSERT((rc == 0) == vacant);
      if (rc == 0) {
        bus_model[bus_model_count++] = (struct bus_model_range){ x, y, next_token++ };
      } else if (bus_model_count < BUS_MODEL_MAX) {
        FUZZ_ASSERT(err[0] != '\0');
      }
      break;
    }
    case 3:
    case 7: { /* remove by base, or the range at an index */
      if (op == 7 && bus_model_count > 0)
        x = bus_model[x % bus_model_count].base;
      size_t at = 0;
      while (at < bus_model_count && bus_model[at].base != x)
        at++;
      void *opaque = NULL;
      int rc = bus_remove(&b, x, &opaque);
      FUZZ_ASSERT((rc == 0) == (at < bus_model_count));
      if (rc == 0) {
        FUZZ_ASSERT((uintptr_t)opaque == bus_model[at].token);
        bus_model[at] = bus_model[--bus_model_count];
      }
      break;
    }
    case 4: { /* find */
      static const uint32_t sizes[] = { 1, 2, 4, 8 };
      uint32_t len = (y & 0x100) ? (uint32_t)y : sizes[y % 4];
      const struct bus_range *r = bus_find(&b, x, len);
      const struct bus_model_range *m = bus_model_find(x, len);
      FUZZ_ASSERT((r == NULL) == (m == NULL));
      if (r != NULL) {
        FUZZ_ASSERT((uintptr_t)r->opaque == m->token);
        FUZZ_ASSERT(x >= r->base && x - r->base < r->len && len <= r->len - (x - r->base));
      }
      break;
    }
    case 5: { /* exact */
      const struct bus_range *r = bus_exact(&b, x, y);
      const struct bus_model_range *m = NULL;
      for (size_t i = 0; i < bus_model_count && m == NULL; i++)
        if (bus_model[i].base == x && bus_model[i].len == y)
          m = &bus_model[i];
      FUZZ_ASSERT((r == NULL) == (m == NULL));
      if (r != NULL) {
        FUZZ_ASSERT((uintptr_t)r->opaque == m->token);
        FUZZ_ASSERT(bus_overlap(&b, x, y) == r); /* exact implies overlap */
      }
      break;
    }
    case 6: { /* overlap */
      const struct bus_range *r = bus_overlap(&b, x, y);
      bool any = false;
      for (size_t i = 0; i < bus_model_count && !any; i++)
        any = bus_model_overlaps(&bus_model[i], x, y);
      FUZZ_ASSERT((r != NULL) == any);
      if (r != NULL) {
        struct bus_model_range copy = { r->base, r->len, 0 };
        FUZZ_ASSERT(bus_model_overlaps(&copy, x, y));
      }
      break;
    }
    }
    bus_check_table(&b);
  }
  bus_destroy(&b);
  return 0;
}
