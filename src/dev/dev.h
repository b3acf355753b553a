/* The C fast-path devices: each attaches itself to a VM's bus and, if it
 * holds state, to the VM's device list. */
#ifndef LUAVMM_DEV_H
#define LUAVMM_DEV_H

#include <stdint.h>

struct vm;

/* Writes of width bytes at port end the run with reason "exit". */
int debug_exit_attach(struct vm *vm, uint16_t port, uint16_t width, char *err);

/* Bytes written to port go to fd, which the device then owns (unless it is
 * stdout or stderr). */
int debugcon_attach(struct vm *vm, uint16_t port, int fd, char *err);

#endif
