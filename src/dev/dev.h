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

/* A 16550A UART at port..port+7 on interrupt line irq. in_fd and out_fd
 * (-1 for none) become the device's, unless they are stdin, stdout or
 * stderr. Only one UART in the process may read stdin: with
 * stdin_optional a UART asking for it when it is taken gets no input,
 * otherwise that is an error. */
struct serial_config {
  uint16_t port;
  uint32_t irq;
  int in_fd;
  int out_fd;
  bool escape;          /* Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A */
  bool stdin_optional;
};
int serial_attach(struct vm *vm, const struct serial_config *cfg, char *err);

/* The i8042 keyboard controller at ports 0x60 and 0x64, as far as resets
 * and the commands of a booting kernel go. */
int i8042_attach(struct vm *vm, char *err);

/* CMOS memory and the real-time clock at ports 0x70 and 0x71. With
 * fixed_time, the clock reads that time (seconds since the epoch) and
 * stands still; otherwise it is the host's. utc: the clock keeps UTC,
 * not local time. */
int rtc_attach(struct vm *vm, bool fixed_time, int64_t epoch, bool utc, char *err);

#endif
