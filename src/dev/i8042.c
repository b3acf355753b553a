/* The i8042 keyboard controller, as far as a booting kernel and a reset go:
 * the status register, the command byte, self-tests, port enables, the
 * output port, and the reset line (command 0xFE, or bit 0 of the output
 * port written low), which ends the run with reason "reset".
 *
 * No keyboard or mouse is attached: bytes for them are dropped, and the
 * controller raises no interrupts (IRQ 1 and 12 stay low); command results
 * are read by polling the status register, which is how kernels read them
 * at boot. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "../err.h"
#include "../vcpu.h"
#include "../vm.h"

#define I8042_DATA 0x60
#define I8042_CMD 0x64

#define STAT_OBF 0x01      /* output buffer full */
#define STAT_SYS 0x04      /* system flag, from the command byte */
#define STAT_CMD 0x08      /* the last write was a command */
#define STAT_UNLOCKED 0x10 /* keyboard not inhibited */
#define STAT_AUX_OBF 0x20  /* the output byte is from the aux port */

#define CTR_SYS 0x04
#define CTR_KBD_DISABLE 0x10
#define CTR_AUX_DISABLE 0x20

#define OUT_RESET 0x01     /* output port: low holds the CPU in reset */
#define OUT_A20 0x02

struct i8042 {
  struct device dev;
  pthread_mutex_t lock;
  uint8_t ram[32];       /* ram[0] is the command byte */
  uint8_t out;           /* the output buffer */
  bool obf, aux_obf;
  bool last_cmd;
  uint8_t pending;       /* a command waiting for its data byte, or 0 */
  uint8_t outport;
};

static void put_output(struct i8042 *k, uint8_t v, bool aux)
{
  k->out = v;
  k->obf = true;
  k->aux_obf = aux;
}

/* A command written to port 0x64. Returns true when it resets. */
static bool command(struct i8042 *k, uint8_t cmd)
{
  k->pending = 0;
  if (cmd >= 0x20 && cmd <= 0x3f) { /* read RAM; 0x20 is the command byte */
    put_output(k, k->ram[cmd & 0x1f], false);
    return false;
  }
  if (cmd >= 0x60 && cmd <= 0x7f) { /* write RAM: the next data byte */
    k->pending = cmd;
    return false;
  }
  if (cmd >= 0xf0) /* pulse the output lines whose bits are 0; bit 0 is reset */
    return !(cmd & 0x01);
  switch (cmd) {
  case 0xa7:
    k->ram[0] |= CTR_AUX_DISABLE;
    break;
  case 0xa8:
    k->ram[0] &= (uint8_t)~CTR_AUX_DISABLE;
    break;
  case 0xa9: /* aux port test: no fault */
  case 0xab: /* keyboard port test: no fault */
    put_output(k, 0x00, false);
    break;
  case 0xaa: /* controller self-test: passed, which sets the system flag */
    k->ram[0] |= CTR_SYS;
    put_output(k, 0x55, false);
    break;
  case 0xad:
    k->ram[0] |= CTR_KBD_DISABLE;
    break;
  case 0xae:
    k->ram[0] &= (uint8_t)~CTR_KBD_DISABLE;
    break;
  case 0xd0: /* read the output port */
    put_output(k, k->outport, false);
    break;
  case 0xd1: /* write the output port */
  case 0xd2: /* write the keyboard output buffer */
  case 0xd3: /* write the aux output buffer */
  case 0xd4: /* write to the aux device */
    k->pending = cmd;
    break;
  case 0xdd: /* A20 off, then on (recorded only: KVM has no A20 mask) */
    k->outport &= (uint8_t)~OUT_A20;
    break;
  case 0xdf:
    k->outport |= OUT_A20;
    break;
  default: /* anything else is ignored */
    break;
  }
  return false;
}

/* A byte written to port 0x60. Returns true when it resets. */
static bool data_write(struct i8042 *k, uint8_t v)
{
  uint8_t cmd = k->pending;
  k->pending = 0;
  if (cmd >= 0x60 && cmd <= 0x7f) {
    k->ram[cmd & 0x1f] = v;
    return false;
  }
  switch (cmd) {
  case 0xd1:
    /* Bit 0 low holds the CPU in reset: the machine restarts. */
    k->outport = v;
    return !(v & OUT_RESET);
  case 0xd2:
    put_output(k, v, false);
    break;
  case 0xd3:
    put_output(k, v, true);
    break;
  default: /* for the keyboard (0xd4: the mouse): nobody is there */
    break;
  }
  return false;
}

static uint8_t status(const struct i8042 *k)
{
  uint8_t st = STAT_UNLOCKED;
  if (k->obf)
    st |= STAT_OBF;
  if (k->aux_obf)
    st |= STAT_AUX_OBF;
  if (k->ram[0] & CTR_SYS)
    st |= STAT_SYS;
  if (k->last_cmd)
    st |= STAT_CMD;
  return st;
}

/* Ports 0x60 and 0x64 are separate one-port ranges, so every access here
 * is one byte: the bus gives a wider one to nobody. */
static int i8042_access(struct i8042 *k, struct vcpu *c, bool is_cmd, uint8_t *data,
                        uint32_t size, bool write)
{
  bool reset = false;
  pthread_mutex_lock(&k->lock);
  if (!write) {
    memset(data, 0xff, size);
    if (is_cmd) {
      data[0] = status(k);
    } else {
      data[0] = k->out; /* read again when empty: the last byte, as hardware does */
      k->obf = false;
      k->aux_obf = false;
    }
  } else if (is_cmd) {
    k->last_cmd = true;
    reset = command(k, data[0]);
  } else {
    k->last_cmd = false;
    reset = data_write(k, data[0]);
  }
  pthread_mutex_unlock(&k->lock);
  /* The run loop ends this vCPU; with several, the others stop as peers,
   * as for the exit port. */
  if (reset)
    return vcpu_stop(c, VCPU_RESET, 0);
  return 0;
}

static int i8042_data(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                      uint32_t size, bool write)
{
  (void)offset;
  return i8042_access(opaque, c, false, data, size, write);
}

static int i8042_cmd(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                     uint32_t size, bool write)
{
  (void)offset;
  return i8042_access(opaque, c, true, data, size, write);
}

static void i8042_destroy(struct device *dev)
{
  struct i8042 *k = (struct i8042 *)dev;
  pthread_mutex_destroy(&k->lock);
  free(k);
}

int i8042_attach(struct vm *vm, char *err)
{
  struct i8042 *k = calloc(1, sizeof *k);
  if (k == NULL)
    return errf(err, "out of memory");
  pthread_mutex_init(&k->lock, NULL);
  k->dev.name = "i8042";
  k->dev.destroy = i8042_destroy;
  /* As firmware leaves it: keyboard interrupt on, system flag set (the
   * power-on self-test passed), scan code translation on. */
  k->ram[0] = 0x45;
  k->outport = OUT_RESET | OUT_A20;
  if (bus_add(&vm->pio, I8042_DATA, 1, i8042_data, k, "i8042", 0, err) < 0) {
    i8042_destroy(&k->dev);
    return -1;
  }
  if (bus_add(&vm->pio, I8042_CMD, 1, i8042_cmd, k, "i8042", 0, err) < 0) {
    void *opaque;
    bus_remove(&vm->pio, I8042_DATA, &opaque);
    i8042_destroy(&k->dev);
    return -1;
  }
  vm_add_device(vm, &k->dev);
  return 0;
}
