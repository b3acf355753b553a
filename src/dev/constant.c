/* A constant register in C: reads return a fixed value, writes are ignored.
 * It is what vm:on_io / vm:on_mmio / vm:on_hypercall make from an integer
 * instead of a function: an identification register, a status that never
 * changes, or the cheapest possible C-handled exit for measurements. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "../err.h"
#include "../vm.h"

struct constant {
  struct device dev;
  _Atomic uint64_t value;
};

static int constant_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                           uint32_t size, bool write)
{
  struct constant *k = opaque;
  (void)c;
  (void)offset;
  if (!write) {
    uint64_t v = atomic_load_explicit(&k->value, memory_order_relaxed);
    memcpy(data, &v, size); /* little-endian: the low size bytes */
  }
  return 0;
}

static void constant_destroy(struct device *dev)
{
  free(dev);
}

int constant_attach(struct vm *vm, struct bus *bus, uint64_t base, uint64_t len, uint64_t value,
                    char *err)
{
  struct constant *k = calloc(1, sizeof *k);
  if (k == NULL)
    return errf(err, "out of memory");
  k->dev.name = "constant";
  k->dev.destroy = constant_destroy;
  atomic_init(&k->value, value);
  if (bus_add(bus, base, len, constant_access, k, "constant", 0, err) < 0) {
    free(k);
    return -1;
  }
  vm_add_device(vm, &k->dev);
  return 0;
}

bool constant_is(const struct bus_range *r)
{
  return r->fn == constant_access;
}

void constant_set(const struct bus_range *r, uint64_t value)
{
  struct constant *k = r->opaque;
  atomic_store(&k->value, value);
}
