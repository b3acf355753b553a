/* Exit statistics, one set per vCPU so counting needs no lock: exits by KVM
 * exit reason, by port, by MMIO address and by hypercall number, and time
 * spent in C and in Lua handlers. Read them only while the vCPU is not
 * running (a run's end orders the writes before the reads). */
#ifndef LUAVMM_STATS_H
#define LUAVMM_STATS_H

#include <stddef.h>
#include <stdint.h>

#define STATS_REASONS 64

/* Counts per 64-bit key: open addressing, grown by doubling. */
struct counter_map {
  uint64_t *keys;
  uint64_t *counts;
  size_t cap;    /* a power of two, or 0 */
  size_t used;
};

struct vcpu_stats {
  uint64_t exits;
  uint64_t by_reason[STATS_REASONS]; /* index: KVM exit reason (>= 63 lumped) */
  struct counter_map ports;
  struct counter_map mmio;
  struct counter_map hypercalls;
  uint64_t c_calls, c_ns;     /* handlers in C (the fast path) */
  uint64_t lua_calls, lua_ns; /* handlers in Lua */
};

void counter_add(struct counter_map *m, uint64_t key, uint64_t n);
void counter_free(struct counter_map *m);
/* Calls fn for each key with a non-zero count, in no particular order. */
void counter_each(const struct counter_map *m, void (*fn)(uint64_t key, uint64_t count, void *ctx),
                  void *ctx);

void stats_reset(struct vcpu_stats *s);
void stats_free(struct vcpu_stats *s);

uint64_t stats_now_ns(void);

#endif
