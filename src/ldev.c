/* Lua constructors for the C fast-path devices in src/dev/. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "dev/dev.h"
#include "err.h"
#include "lvmm.h"

static lua_Integer opt_field(lua_State *L, int t, const char *name, lua_Integer def,
                             lua_Integer lo, lua_Integer hi, const char *who)
{
  if (lua_type(L, t) != LUA_TTABLE)
    return def;
  lua_getfield(L, t, name);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < lo || v > hi)
      lu_errorf(L, "%s: %s must be an integer from %lld to %lld", who, name, (long long)lo,
                (long long)hi);
  }
  lua_pop(L, 1);
  return v;
}

static void check_not_running(lua_State *L, struct lvm *v, const char *who)
{
  if (v->running)
    lu_errorf(L, "%s: the VM is running; add devices before running it", who);
}

static const char *const debug_exit_options[] = { "port", "width", NULL };
static const char *const debugcon_options[] = { "port", "path", NULL };

/* vm:debug_exit{ port = 0xf4, width = 1 }: QEMU's default width of one port */
static int vm_debug_exit(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  check_not_running(L, v, "debug_exit");
  lu_checkoptions(L, 2, debug_exit_options, NULL, "debug_exit");
  lua_Integer port = opt_field(L, 2, "port", 0xf4, 0, 0xffff, "debug_exit");
  lua_Integer width = opt_field(L, 2, "width", 1, 1, 4, "debug_exit");
  char err[ERR_LEN];
  if (port + width > 0x10000)
    return lu_errorf(L, "debug_exit: ports 0x%llx+%lld run past 0xffff", (long long)port,
                     (long long)width);
  if (debug_exit_attach(v->vm, (uint16_t)port, (uint16_t)width, err) < 0)
    return lu_errorf(L, "debug_exit: %s", err);
  return 0;
}

/* vm:debugcon{ port = 0xe9, path = "out.txt" }: output to stdout or a file */
static int vm_debugcon(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  check_not_running(L, v, "debugcon");
  lu_checkoptions(L, 2, debugcon_options, NULL, "debugcon");
  lua_Integer port = opt_field(L, 2, "port", 0xe9, 0, 0xffff, "debugcon");
  int fd = STDOUT_FILENO;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "path");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TSTRING)
        return lu_errorf(L, "debugcon: path must be a string (got %s)", luaL_typename(L, -1));
      const char *path = lua_tostring(L, -1);
      fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0)
        return lu_errorf(L, "debugcon: cannot open %s: %s", path, strerror(errno));
    }
    lua_pop(L, 1);
  }
  char err[ERR_LEN];
  if (debugcon_attach(v->vm, (uint16_t)port, fd, err) < 0)
    return lu_errorf(L, "debugcon: %s", err);
  return 0;
}

/* The interrupt of a UART at one of the PC's four usual ports. */
static lua_Integer usual_serial_irq(lua_Integer port)
{
  return port == 0x2f8 || port == 0x2e8 ? 3 : 4;
}

/* Opens path for the serial device, or raises after closing keep_fd. */
static int open_or_raise(lua_State *L, const char *path, int flags, int keep_fd,
                         const char *what)
{
  int fd = open(path, flags | O_CLOEXEC, 0644);
  if (fd >= 0)
    return fd;
  int e = errno;
  if (keep_fd > STDERR_FILENO)
    close(keep_fd);
  return lu_errorf(L, "serial: cannot open %s %s: %s", what, path, strerror(e));
}

static const char *const serial_options[] = { "port", "irq", "input", "output", "escape", NULL };

/* vm:serial{ port = 0x3f8, irq = 4, input = "stdin", output = "stdout",
 *            escape = true }: a 16550A UART.
 *   input:  "stdin"; false for none; or a path (a file or a FIFO) to read,
 *           which is how tests feed a UART. The default is stdin only when
 *           stdin is a terminal (and no other UART reads it): a script
 *           whose stdin is a pipe or a file has not offered it to a guest.
 *   output: "stdout" (the default), "stderr", false, or a path to create.
 *   irq:    defaults to the PC's line for the port: 3 for 0x2f8 and
 *           0x2e8, 4 otherwise. */
static int vm_serial(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  check_not_running(L, v, "serial");
  lu_checkoptions(L, 2, serial_options, NULL, "serial");
  lua_Integer port = opt_field(L, 2, "port", 0x3f8, 0, 0xfff8, "serial");
  lua_Integer irq = opt_field(L, 2, "irq", usual_serial_irq(port), 0, VM_IRQ_LINES - 1,
                              "serial");
  struct serial_config cfg = {
    .port = (uint16_t)port,
    .irq = (uint32_t)irq,
    .in_fd = -1,
    .out_fd = STDOUT_FILENO,
    .escape = lu_optbool(L, 2, "escape", true),
  };

  /* Everything that can raise is checked before any file is opened. */
  const char *in_path = NULL, *out_path = NULL;
  bool in_stdin = false, in_default = true, out_default = true;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "input");
    if (lua_type(L, -1) == LUA_TSTRING) {
      in_default = false;
      in_path = lua_tostring(L, -1);
      in_stdin = strcmp(in_path, "stdin") == 0;
    } else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
      in_default = false;
    } else if (!lua_isnil(L, -1)) {
      return lu_errorf(L, "serial: input must be \"stdin\", false or a path, not %s",
                       luaL_typename(L, -1));
    }
    lua_getfield(L, 2, "output");
    if (lua_type(L, -1) == LUA_TSTRING) {
      out_default = false;
      out_path = lua_tostring(L, -1);
    } else if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
      out_default = false;
      cfg.out_fd = -1;
    } else if (!lua_isnil(L, -1)) {
      return lu_errorf(L, "serial: output must be \"stdout\", \"stderr\", false or a path, "
                       "not %s", luaL_typename(L, -1));
    }
    /* The strings stay on the stack, so the pointers stay valid. */
  }
  if (in_default && isatty(STDIN_FILENO)) {
    cfg.in_fd = STDIN_FILENO;
    cfg.stdin_optional = true;
  }
  if (in_stdin)
    cfg.in_fd = STDIN_FILENO;

  if (!out_default && out_path != NULL) {
    if (strcmp(out_path, "stdout") == 0)
      cfg.out_fd = STDOUT_FILENO;
    else if (strcmp(out_path, "stderr") == 0)
      cfg.out_fd = STDERR_FILENO;
    else
      cfg.out_fd = open_or_raise(L, out_path, O_WRONLY | O_CREAT | O_TRUNC, -1, "output");
  }
  /* Non-blocking: opening a FIFO must not wait for its writer. */
  if (in_path != NULL && !in_stdin)
    cfg.in_fd = open_or_raise(L, in_path, O_RDONLY | O_NONBLOCK, cfg.out_fd, "input");

  char err[ERR_LEN];
  if (serial_attach(v->vm, &cfg, err) < 0) /* closes the files on failure */
    return lu_errorf(L, "serial: %s", err);
  return 0;
}

static const char *const no_options[] = { NULL };

/* vm:i8042{}: the keyboard controller at 0x60 and 0x64, for its reset line. */
static int vm_i8042(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  check_not_running(L, v, "i8042");
  lu_checkoptions(L, 2, no_options, NULL, "i8042");
  char err[ERR_LEN];
  if (i8042_attach(v->vm, err) < 0)
    return lu_errorf(L, "i8042: %s", err);
  return 0;
}

static const char *const rtc_options[] = { "time", "utc", NULL };

/* vm:rtc{ time = "host" | seconds since the epoch, utc = true }: CMOS and
 * the real-time clock at 0x70 and 0x71. A fixed time stands still (tests);
 * utc = false keeps the host's local time instead. */
static int vm_rtc(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  check_not_running(L, v, "rtc");
  lu_checkoptions(L, 2, rtc_options, NULL, "rtc");
  bool fixed = false;
  int64_t epoch = 0;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "time");
    if (lua_type(L, -1) == LUA_TNUMBER) {
      int ok;
      lua_Integer t = lua_tointegerx(L, -1, &ok);
      /* Up to 9999-12-31 23:59:59, the last second the registers can show. */
      if (!ok || t < 0 || t > 253402300799LL)
        return lu_errorf(L, "rtc: time must be \"host\" or whole seconds since 1970 up to "
                         "the end of 9999");
      fixed = true;
      epoch = (int64_t)t;
    } else if (!lua_isnil(L, -1) &&
               !(lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "host") == 0)) {
      return lu_errorf(L, "rtc: time must be \"host\" or whole seconds since 1970 up to the "
                       "end of 9999");
    }
    lua_pop(L, 1);
  }
  bool utc = lu_optbool(L, 2, "utc", true);
  char err[ERR_LEN];
  if (rtc_attach(v->vm, fixed, epoch, utc, err) < 0)
    return lu_errorf(L, "rtc: %s", err);
  return 0;
}

static uint32_t check_line(lua_State *L, int arg)
{
  lua_Integer line = luaL_checkinteger(L, arg);
  luaL_argcheck(L, line >= 0 && line < VM_IRQ_LINES, arg, "interrupt lines are 0 to 23");
  return (uint32_t)line;
}

/* vm:irq(line, level): raises (true, 1) or lowers (false, 0) a line of the
 * in-kernel PIC/IOAPIC; without an irqchip only the level is recorded. */
static int vm_irq(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  uint32_t line = check_line(L, 2);
  int level = lua_isboolean(L, 3) ? lua_toboolean(L, 3) : (int)(luaL_checkinteger(L, 3) != 0);
  if (vm_irq_line(v->vm, line, level) < 0)
    return lu_errorf(L, "vm:irq: KVM_IRQ_LINE %u: %s", line, strerror(errno));
  return 0;
}

/* vm:irq_pulse(line): an edge, raised then lowered. */
static int vm_irq_pulse(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  uint32_t line = check_line(L, 2);
  if (vm_irq_line(v->vm, line, 1) < 0 || vm_irq_line(v->vm, line, 0) < 0)
    return lu_errorf(L, "vm:irq_pulse: KVM_IRQ_LINE %u: %s", line, strerror(errno));
  return 0;
}

/* vm:irq_level(line) -> the level last set, true or false */
static int vm_irq_level(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  uint32_t line = check_line(L, 2);
  lua_pushboolean(L, (atomic_load(&v->vm->irq_levels) >> line) & 1);
  return 1;
}

static const luaL_Reg device_methods[] = {
  { "irq", vm_irq },
  { "irq_pulse", vm_irq_pulse },
  { "irq_level", vm_irq_level },
  { "debug_exit", vm_debug_exit },
  { "debugcon", vm_debugcon },
  { "serial", vm_serial },
  { "i8042", vm_i8042 },
  { "rtc", vm_rtc },
  { NULL, NULL },
};

/* Adds the device constructors to the vm method table at the top. */
void ldev_add_methods(lua_State *L)
{
  luaL_setfuncs(L, device_methods, 0);
}
