#include "stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Keys are stored plus one, so 0 marks an empty slot. */
static size_t slot_of(const struct counter_map *m, uint64_t key)
{
  uint64_t h = key * 0x9e3779b97f4a7c15ull;
  size_t i = (size_t)(h >> 32) & (m->cap - 1);
  while (m->keys[i] != 0 && m->keys[i] != key + 1)
    i = (i + 1) & (m->cap - 1);
  return i;
}

static int grow(struct counter_map *m)
{
  size_t cap = m->cap ? m->cap * 2 : 64;
  struct counter_map bigger = { calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(uint64_t)),
                                cap, 0 };
  if (bigger.keys == NULL || bigger.counts == NULL) {
    free(bigger.keys);
    free(bigger.counts);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (m->keys[i] == 0)
      continue;
    size_t j = slot_of(&bigger, m->keys[i] - 1);
    bigger.keys[j] = m->keys[i];
    bigger.counts[j] = m->counts[i];
    bigger.used++;
  }
  counter_free(m);
  *m = bigger;
  return 0;
}

void counter_add(struct counter_map *m, uint64_t key, uint64_t n)
{
  if (key == UINT64_MAX)
    return; /* cannot be stored plus one; no port or address is this */
  /* Keep the load under 3/4 so probes stay short. A failed allocation
   * only loses a count. */
  if ((m->used + 1) * 4 > m->cap * 3 && grow(m) < 0)
    return;
  size_t i = slot_of(m, key);
  if (m->keys[i] == 0) {
    m->keys[i] = key + 1;
    m->used++;
  }
  m->counts[i] += n;
}

void counter_free(struct counter_map *m)
{
  free(m->keys);
  free(m->counts);
  memset(m, 0, sizeof *m);
}

void counter_each(const struct counter_map *m, void (*fn)(uint64_t key, uint64_t count, void *ctx),
                  void *ctx)
{
  for (size_t i = 0; i < m->cap; i++)
    if (m->keys[i] != 0 && m->counts[i] != 0)
      fn(m->keys[i] - 1, m->counts[i], ctx);
}

void stats_free(struct vcpu_stats *s)
{
  counter_free(&s->ports);
  counter_free(&s->mmio);
  counter_free(&s->hypercalls);
  memset(s, 0, sizeof *s);
}

void stats_reset(struct vcpu_stats *s)
{
  stats_free(s);
}

uint64_t stats_now_ns(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}
