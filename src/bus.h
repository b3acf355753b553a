/* An address space (port I/O or MMIO) mapping ranges to device handlers.
 *
 * vCPU threads look ranges up without a lock: the table is immutable once
 * published, and a change publishes a new copy. Old copies are kept until
 * the bus is destroyed, because a vCPU may still be reading one; changes are
 * rare (set-up and the odd handler swap), so the memory is negligible. */
#ifndef LUAVMM_BUS_H
#define LUAVMM_BUS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vcpu;

enum bus_space { SPACE_IO, SPACE_MMIO };

/* One signature serves port I/O and MMIO. offset is relative to the range's
 * base. For a read, data arrives zeroed and the handler fills size bytes
 * (little-endian); for a write it holds the value. Returns 0, or -1 after
 * recording why the vCPU must stop (vcpu_fault or vcpu_stop). */
typedef int bus_fn(void *opaque, struct vcpu *cpu, uint64_t offset, uint8_t *data,
                   uint32_t size, bool is_write);

#define BUS_NAME_LEN 96

#define BUS_HYPERCALL 1u /* the hypercall port: traced as hypercalls */

struct bus_range {
  uint64_t base;
  uint64_t len;
  bus_fn *fn;
  void *opaque;
  unsigned flags;
  char name[BUS_NAME_LEN];
};

struct bus_table {
  struct bus_table *retired_next;
  uint64_t max_addr;     /* the space's size: 0x10000 for ports */
  size_t count;
  struct bus_range ranges[]; /* sorted by base, never overlapping */
};

struct bus {
  _Atomic(struct bus_table *) table;
  struct bus_table *retired;
  uint64_t limit; /* exclusive upper bound of addresses, 0 for 2^64 */
  const char *space; /* "port" or "MMIO address", for messages */
};

int bus_init(struct bus *b, uint64_t limit, const char *space);
void bus_destroy(struct bus *b);

/* Adds [base, base+len). Rejects empty, wrapping and overlapping ranges,
 * naming the range already there. */
int bus_add(struct bus *b, uint64_t base, uint64_t len, bus_fn *fn, void *opaque,
            const char *name, unsigned flags, char *err);

/* Removes the range starting exactly at base; its opaque goes to *opaque.
 * Returns -1 if there is none. */
int bus_remove(struct bus *b, uint64_t base, void **opaque);

/* The range holding the whole access [addr, addr+size), or NULL. */
const struct bus_range *bus_find(const struct bus *b, uint64_t addr, uint32_t size);

/* The range starting exactly at base with exactly len, or NULL. */
const struct bus_range *bus_exact(const struct bus *b, uint64_t base, uint64_t len);

/* The first range overlapping [base, base+len), or NULL (nothing for len 0;
 * a base+len past 2^64 counts as reaching the top of the space). */
const struct bus_range *bus_overlap(const struct bus *b, uint64_t base, uint64_t len);

#endif
