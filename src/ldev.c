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

/* vm:debug_exit{ port = 0xf4, width = 1 }: QEMU's default width of one port */
static int vm_debug_exit(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  check_not_running(L, v, "debug_exit");
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
  lua_Integer port = opt_field(L, 2, "port", 0xe9, 0, 0xffff, "debugcon");
  int fd = STDOUT_FILENO;
  if (lua_type(L, 2) == LUA_TTABLE) {
    lua_getfield(L, 2, "path");
    if (!lua_isnil(L, -1)) {
      const char *path = luaL_checkstring(L, -1);
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
  { NULL, NULL },
};

/* Adds the device constructors to the vm method table at the top. */
void ldev_add_methods(lua_State *L)
{
  luaL_setfuncs(L, device_methods, 0);
}
