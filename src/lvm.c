/* The vm userdata: creation, handlers, runs, close. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ctype.h>

#include "err.h"
#include "fault.h"
#include "lvmm.h"
#include "vcpu.h"

#define DEFAULT_MEMORY (64ull << 20)

struct lvm *lvm_check(lua_State *L, int idx)
{
  struct lvm *v = luaL_checkudata(L, idx, VM_TYPE);
  if (v->vm == NULL)
    lu_errorf(L, "the VM is closed");
  return v;
}

/* ---- creation ---- */

static uint64_t opt_memory(lua_State *L, int opts)
{
  if (lua_type(L, opts) != LUA_TTABLE)
    return DEFAULT_MEMORY;
  lua_getfield(L, opts, "memory");
  uint64_t size = DEFAULT_MEMORY;
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1))
    size = 0;
  else if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) == LUA_TNUMBER) {
      int ok;
      lua_Integer n = lua_tointegerx(L, -1, &ok);
      if (!ok || n < 0)
        lu_errorf(L, "vmm.vm: memory must be a non-negative integer or a size like \"64M\"");
      size = (uint64_t)n;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      if (lu_parse_size(lua_tostring(L, -1), &size) < 0)
        lu_errorf(L, "vmm.vm: cannot parse memory size '%s' (use bytes or a number with "
                      "K, M or G, like \"64M\")", lua_tostring(L, -1));
    } else {
      lu_errorf(L, "vmm.vm: memory must be a size (\"64M\", bytes) or false, not %s",
                 luaL_typename(L, -1));
    }
  }
  lua_pop(L, 1);
  return size;
}

static int opt_int(lua_State *L, int opts, const char *field, int def, int lo, int hi)
{
  if (lua_type(L, opts) != LUA_TTABLE)
    return def;
  lua_getfield(L, opts, field);
  int v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    lua_Integer n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < lo || n > hi)
      lu_errorf(L, "vmm.vm: %s must be an integer from %d to %d", field, lo, hi);
    v = (int)n;
  }
  lua_pop(L, 1);
  return v;
}

static const char *const opt_names[] = { "memory", "cpus", "unhandled", "irqchip", "pit",
                                          NULL };

/* vmm.vm{ memory = "64M", cpus = 1, unhandled = "stop", irqchip = false,
 *         pit = false } -> vm */
int lvm_new(lua_State *L)
{
  struct lstate *st = lstate_get(L);
  lu_checkoptions(L, 1, opt_names, NULL, "vmm.vm");
  uint64_t memory = opt_memory(L, 1);
  struct vm_config cfg = {
    .ncpus = opt_int(L, 1, "cpus", 1, 1, 1024),
    .irqchip = lu_optbool(L, 1, "irqchip", false),
    .pit = lu_optbool(L, 1, "pit", false),
  };
  int ncpus = cfg.ncpus;
  lstate_kvm(L, st);

  /* The userdata first, closed, so a failure below leaves nothing to leak. */
  struct lvm *v = lua_newuserdatauv(L, sizeof *v, 1);
  memset(v, 0, sizeof *v);
  v->st = st;
  v->anchor = LUA_NOREF;
  luaL_setmetatable(L, VM_TYPE);
  int vm_idx = lua_gettop(L);

  char err[ERR_LEN];
  struct vm *vm;
  if (vm_create(&vm, &st->kvm, &cfg, err) < 0)
    return lu_errorf(L, "vmm.vm: %s", err);
  v->vm = vm;
  v->cpus = calloc((size_t)ncpus, sizeof *v->cpus);
  if (v->cpus == NULL)
    return lu_errorf(L, "vmm.vm: out of memory");
  if (memory > 0 && mem_map(&vm->mem, vm->fd, 0, memory, 0, "ram", err) < 0)
    return lu_errorf(L, "vmm.vm: %s", err);

  /* The uservalue table: everything Lua-side the VM owns. Keeping it there
   * rather than in the registry lets an unreferenced VM be collected. */
  lua_createtable(L, 8, 4);
  lua_setiuservalue(L, vm_idx, 1);
  lhandler_install(L, v, vm_idx);

  if (lua_type(L, 1) == LUA_TTABLE) {
    lua_getfield(L, 1, "unhandled");
    if (!lua_isnil(L, -1))
      lhandler_set_unhandled(L, v, vm_idx, lua_gettop(L));
    lua_pop(L, 1);
  }
  lua_settop(L, vm_idx);
  return 1;
}

/* ---- methods ---- */

static int vm_cpu(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  luaL_argcheck(L, id >= 0 && id < v->vm->ncpus, 2,
                lua_pushfstring(L, "no vCPU %d (this VM has %d)", (int)id, v->vm->ncpus));
  lu_pushhandlers(L, 1);
  lua_getfield(L, -1, "cpus");
  lua_rawgeti(L, -1, id + 1);
  return 1;
}

static int vm_load(lua_State *L)
{
  lvm_check(L, 1);
  lua_getfield(L, 1, "memory");
  lua_getfield(L, -1, "load");
  lua_insert(L, -2);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_call(L, 3, 1);
  return 1;
}

static int vm_map(lua_State *L)
{
  lvm_check(L, 1);
  lua_getfield(L, 1, "memory");
  lua_getfield(L, -1, "map");
  lua_insert(L, -2);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 0);
  return 0;
}

/* on_io(port, [len,] fn|value|nil) and on_mmio(addr, len, fn|value|nil):
 * a function is a Lua handler, an integer a constant register in C. */
static int set_handler(lua_State *L, enum bus_space space)
{
  struct lvm *v = lvm_check(L, 1);
  const char *who = space == SPACE_IO ? "on_io" : "on_mmio";
  uint64_t base = lu_checkaddr(L, 2, space == SPACE_IO ? "port" : "address");
  uint64_t len = 1;
  int fn = 4;
  if (lua_gettop(L) == 3 && space == SPACE_IO &&
      (lua_isfunction(L, 3) || lua_isnil(L, 3) || lua_isinteger(L, 3))) {
    fn = 3;
  } else {
    int ok;
    lua_Integer n = lua_tointegerx(L, 3, &ok);
    luaL_argcheck(L, ok && n > 0, 3, "length must be a positive integer");
    len = (uint64_t)n;
  }
  luaL_argexpected(L, lua_isfunction(L, fn) || lua_isinteger(L, fn) || lua_isnil(L, fn), fn,
                   "function, integer or nil");
  return lhandler_set(L, v, space, base, len, fn, who);
}

static int vm_on_io(lua_State *L)
{
  return set_handler(L, SPACE_IO);
}

static int vm_on_mmio(lua_State *L)
{
  return set_handler(L, SPACE_MMIO);
}

static int vm_on_hypercall(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  return lhandler_set_hypercall(L, v, 1);
}

static int vm_on_unhandled(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  luaL_checkany(L, 2);
  return lhandler_set_unhandled(L, v, 1, 2);
}

/* Prints the VM's statistics with vmm.stats.format; a failure to do so
 * is reported, never raised (this runs from __gc too). */
static int print_stats(lua_State *L)
{
  struct lvm *v = lua_touserdata(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "vmm.stats");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "format");
  lstats_push(L, v->vm);
  lua_pushfstring(L, "luavmm statistics for vmm.vm %p", (void *)v);
  lua_call(L, 2, 1);
  fprintf(stderr, "%s\n", lua_tostring(L, -1));
  return 0;
}

static void close_vm(lua_State *L, struct lvm *v)
{
  if (v->vm == NULL)
    return;
  lrun_shutdown(L, v);
  if (v->st->stats_on_close) {
    lua_pushcfunction(L, print_stats);
    lua_pushlightuserdata(L, v);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      fprintf(stderr, "luavmm: cannot print statistics: %s\n", lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  vm_destroy(v->vm);
  v->vm = NULL;
  lhandler_free_all(v);
  free(v->cpus);
  v->cpus = NULL;
}

/* vm:close() and __close. Closing twice is harmless; a VM running in the
 * background is stopped first. */
static int vm_close(lua_State *L)
{
  struct lvm *v = luaL_checkudata(L, 1, VM_TYPE);
  if ((v->running && !v->threaded) || lrun_on_own_vcpu(v))
    return lu_errorf(L, "cannot close a running VM from its own handler; call vm:stop()");
  close_vm(L, v);
  return 0;
}

/* __gc: a running VM is anchored, so this finds one only at lua_close. */
static int vm_gc(lua_State *L)
{
  struct lvm *v = luaL_checkudata(L, 1, VM_TYPE);
  if ((v->running && !v->threaded) || lrun_on_own_vcpu(v)) {
    /* lua_close from inside one of its handlers (os.exit(code, true)):
     * the vCPU is on this very stack, so its memory must stay mapped. */
    vm_request_stop(v->vm, VCPU_STOPPED, 0);
    return 0;
  }
  close_vm(L, v);
  return 0;
}

static int vm_tostring(lua_State *L)
{
  struct lvm *v = luaL_checkudata(L, 1, VM_TYPE);
  if (v->vm == NULL) {
    lua_pushfstring(L, "vmm.vm (closed): %p", (void *)v);
    return 1;
  }
  lua_pushfstring(L, "vmm.vm (%d MiB, %d cpu%s, %s): %p",
                  (int)(mem_total(&v->vm->mem) >> 20), v->vm->ncpus,
                  v->vm->ncpus == 1 ? "" : "s", v->running ? "running" : "stopped", (void *)v);
  return 1;
}

/* Fields: vm.memory, vm.cpus, vm.running, vm.closed; else methods. */
static int vm_index(lua_State *L)
{
  struct lvm *v = luaL_checkudata(L, 1, VM_TYPE);
  const char *key = lua_tostring(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1) || key == NULL)
    return 1;
  if (strcmp(key, "closed") == 0) {
    lua_pushboolean(L, v->vm == NULL);
    return 1;
  }
  if (strcmp(key, "running") == 0) {
    lua_pushboolean(L, v->running);
    return 1;
  }
  if (strcmp(key, "state") == 0) {
    lua_pushstring(L, v->vm == NULL ? "closed" : v->paused ? "paused"
                      : v->running ? "running" : "stopped");
    return 1;
  }
  lvm_check(L, 1);
  if (strcmp(key, "memory") == 0) {
    lu_pushhandlers(L, 1);
    lua_getfield(L, -1, "memory");
    return 1;
  }
  if (strcmp(key, "cpus") == 0) {
    lua_pushinteger(L, v->vm->ncpus);
    return 1;
  }
  if (strcmp(key, "irqchip") == 0) {
    lua_pushboolean(L, v->vm->irqchip);
    return 1;
  }
  return lu_errorf(L, "vm has no field or method '%s'", key);
}

static const luaL_Reg vm_methods[] = {
  { "cpu", vm_cpu },
  { "load", vm_load },
  { "map", vm_map },
  { "on_io", vm_on_io },
  { "on_mmio", vm_on_mmio },
  { "on_hypercall", vm_on_hypercall },
  { "on_unhandled", vm_on_unhandled },
  { "close", vm_close },
  { NULL, NULL },
};

void lvm_open_type(lua_State *L)
{
  if (!luaL_newmetatable(L, VM_TYPE)) {
    lua_pop(L, 1);
    return;
  }
  luaL_newlib(L, vm_methods);
  ldev_add_methods(L);
  lrun_add_methods(L);
  lstats_add_methods(L);
  ltrace_add_methods(L);
  lvirtio_add_methods(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_pushcclosure(L, vm_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, vm_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, vm_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, vm_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
