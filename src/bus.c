#include "bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static struct bus_table *table_new(size_t count)
{
  struct bus_table *t = calloc(1, sizeof *t + count * sizeof t->ranges[0]);
  if (t != NULL)
    t->count = count;
  return t;
}

int bus_init(struct bus *b, uint64_t limit, const char *space)
{
  struct bus_table *t = table_new(0);
  if (t == NULL)
    return -1;
  atomic_init(&b->table, t);
  b->retired = NULL;
  b->limit = limit;
  b->space = space;
  return 0;
}

void bus_destroy(struct bus *b)
{
  free(atomic_load(&b->table));
  atomic_store(&b->table, NULL);
  while (b->retired != NULL) {
    struct bus_table *next = b->retired->retired_next;
    free(b->retired);
    b->retired = next;
  }
}

static void publish(struct bus *b, struct bus_table *t)
{
  struct bus_table *old = atomic_exchange_explicit(&b->table, t, memory_order_acq_rel);
  old->retired_next = b->retired;
  b->retired = old;
}

/* Overlap of [base, base+len) and a range. A range never wraps; an
 * [base, base+len) that would is taken as running to the top of the space,
 * and an empty one overlaps nothing. */
static bool overlaps(const struct bus_range *r, uint64_t base, uint64_t len)
{
  uint64_t end;
  if (len == 0)
    return false;
  return base < r->base + r->len && (__builtin_add_overflow(base, len, &end) || r->base < end);
}

const struct bus_range *bus_overlap(const struct bus *b, uint64_t base, uint64_t len)
{
  const struct bus_table *t = atomic_load_explicit(&b->table, memory_order_acquire);
  for (size_t i = 0; i < t->count; i++)
    if (overlaps(&t->ranges[i], base, len))
      return &t->ranges[i];
  return NULL;
}

int bus_add(struct bus *b, uint64_t base, uint64_t len, bus_fn *fn, void *opaque,
            const char *name, unsigned flags, char *err)
{
  uint64_t end;
  if (len == 0)
    return errf(err, "%s range at 0x%llx has length 0", b->space, (unsigned long long)base);
  if (__builtin_add_overflow(base, len, &end) || (b->limit && end > b->limit))
    return errf(err, "%s range 0x%llx+0x%llx is outside the address space", b->space,
                (unsigned long long)base, (unsigned long long)len);
  const struct bus_range *clash = bus_overlap(b, base, len);
  if (clash != NULL)
    return errf(err, "%s range [0x%llx, 0x%llx) for '%s' overlaps [0x%llx, 0x%llx) of '%s'",
                b->space, (unsigned long long)base, (unsigned long long)end, name,
                (unsigned long long)clash->base, (unsigned long long)(clash->base + clash->len),
                clash->name);

  const struct bus_table *old = atomic_load(&b->table);
  struct bus_table *t = table_new(old->count + 1);
  if (t == NULL)
    return errf(err, "out of memory");
  size_t at = 0;
  while (at < old->count && old->ranges[at].base < base)
    at++;
  memcpy(t->ranges, old->ranges, at * sizeof t->ranges[0]);
  memcpy(t->ranges + at + 1, old->ranges + at, (old->count - at) * sizeof t->ranges[0]);
  struct bus_range *r = &t->ranges[at];
  r->base = base;
  r->len = len;
  r->fn = fn;
  r->opaque = opaque;
  r->flags = flags;
  snprintf(r->name, sizeof r->name, "%s", name);
  publish(b, t);
  return 0;
}

int bus_remove(struct bus *b, uint64_t base, void **opaque)
{
  const struct bus_table *old = atomic_load(&b->table);
  size_t at = 0;
  while (at < old->count && old->ranges[at].base != base)
    at++;
  if (at == old->count)
    return -1;
  struct bus_table *t = table_new(old->count - 1);
  if (t == NULL)
    return -1;
  memcpy(t->ranges, old->ranges, at * sizeof t->ranges[0]);
  memcpy(t->ranges + at, old->ranges + at + 1, (old->count - at - 1) * sizeof t->ranges[0]);
  if (opaque != NULL)
    *opaque = old->ranges[at].opaque;
  publish(b, t);
  return 0;
}

const struct bus_range *bus_find(const struct bus *b, uint64_t addr, uint32_t size)
{
  const struct bus_table *t = atomic_load_explicit(&b->table, memory_order_acquire);
  size_t lo = 0, hi = t->count;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const struct bus_range *r = &t->ranges[mid];
    if (addr < r->base) {
      hi = mid;
    } else if (addr - r->base >= r->len) {
      lo = mid + 1;
    } else {
      /* The whole access must fit, not just its first byte. */
      if (size > r->len - (addr - r->base))
        return NULL;
      return r;
    }
  }
  return NULL;
}

const struct bus_range *bus_exact(const struct bus *b, uint64_t base, uint64_t len)
{
  const struct bus_range *r = bus_find(b, base, 1);
  return (r != NULL && r->base == base && r->len == len) ? r : NULL;
}
