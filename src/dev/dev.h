/* The C fast-path devices: each attaches itself to a VM's bus and, if it
 * holds state, to the VM's device list. */
#ifndef LUAVMM_DEV_H
#define LUAVMM_DEV_H

#include <stdbool.h>
#include <stdint.h>

struct bus;
struct bus_range;
struct vm;

/* Writes of width bytes at port end the run with reason "exit". */
int debug_exit_attach(struct vm *vm, uint16_t port, uint16_t width, char *err);

/* Bytes written to port go to fd, which the device then owns (unless it is
 * stdout or stderr). */
int debugcon_attach(struct vm *vm, uint16_t port, int fd, char *err);

/* A constant register on bus: reads return value, writes are ignored. */
int constant_attach(struct vm *vm, struct bus *bus, uint64_t base, uint64_t len, uint64_t value,
                    char *err);
bool constant_is(const struct bus_range *r);
void constant_set(const struct bus_range *r, uint64_t value);

#endif
