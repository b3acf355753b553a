/* isa-debug-exit, as QEMU's test guests know it: a write to the port ends the
 * run with reason "exit" and the written value as its code. */
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "../err.h"
#include "../vcpu.h"
#include "../vm.h"

static int debug_exit_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                             uint32_t size, bool write)
{
  (void)opaque;
  (void)offset;
  if (!write) {
    memset(data, 0xff, size);
    return 0;
  }
  uint32_t value = 0;
  memcpy(&value, data, size);
  /* The run loop ends this vCPU; with several, the others stop as peers. */
  return vcpu_stop(c, VCPU_EXIT, value);
}

int debug_exit_attach(struct vm *vm, uint16_t port, uint16_t width, char *err)
{
  return bus_add(&vm->pio, port, width, debug_exit_access, NULL, "debug-exit", 0, err);
}
