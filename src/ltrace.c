/* Recording traces (vm:trace) and dispatching one access from Lua
 * (vm:dispatch), which is how lua/vmm/trace.lua replays a trace against the
 * handlers without a guest. */
#include <string.h>

#include "err.h"
#include "lvmm.h"
#include "trace.h"
#include "vcpu.h"

#define HYPERCALL_PORT 0xabba

/* vm:trace(path) starts recording every exit to path; vm:trace(false)
 * stops and returns how many records were written. */
static int vm_trace(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  char err[ERR_LEN];
  if (v->running)
    return lu_errorf(L, "vm:trace: the VM is running; start or stop a trace between runs");
  struct trace *old = atomic_exchange(&v->vm->trace, NULL);
  uint64_t count = old != NULL ? trace_count(old) : 0;
  if (trace_close(old, err) < 0)
    return lu_errorf(L, "vm:trace: %s", err);
  if (lua_toboolean(L, 2)) {
    struct trace *t;
    if (trace_open(&t, luaL_checkstring(L, 2), err) < 0)
      return lu_errorf(L, "vm:trace: %s", err);
    atomic_store(&v->vm->trace, t);
    return 0;
  }
  lua_pushinteger(L, (lua_Integer)count);
  return 1;
}

static lua_Integer field_integer(lua_State *L, const char *name, lua_Integer def)
{
  lua_getfield(L, 2, name);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok)
      lu_errorf(L, "vm:dispatch: %s must be an integer", name);
  }
  lua_pop(L, 1);
  return v;
}

/* Raises the fault a dispatched access caused, if any. */
static void check_fault(lua_State *L, struct vcpu *c)
{
  if (c->stop.reason >= VCPU_FAULT)
    lu_errorf(L, "%s", c->stop.message ? c->stop.message : "the access failed");
}

/* vm:dispatch{ cpu = 0, kind = "io"|"mmio", addr =, size =, value = }
 *   -> the value read (no `value`), or nothing for a write
 * vm:dispatch{ cpu = 0, kind = "hypercall", nr =, args = {...} } -> rax
 * Calls the handler as if the guest had made the access, outside any run. */
static int vm_dispatch(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (v->running)
    return lu_errorf(L, "vm:dispatch: the VM is running");
  lua_Integer id = field_integer(L, "cpu", 0);
  if (id < 0 || id >= v->vm->ncpus)
    return lu_errorf(L, "vm:dispatch: no vCPU %lld", (long long)id);
  struct vcpu *c = v->vm->cpus[id];
  struct lcpu_state *cs = c->user;
  lua_getfield(L, 2, "kind");
  const char *kind = luaL_optstring(L, -1, "io");
  lua_pop(L, 1);

  uint8_t data[8] = { 0 };
  uint32_t size;
  uint64_t addr;
  bool write;
  enum bus_space space = SPACE_IO;
  struct kvm_regs saved = *vcpu_regs(c);
  if (strcmp(kind, "hypercall") == 0) {
    lua_Integer nr = field_integer(L, "nr", -1);
    if (nr < 0 || nr > 0xffffffffll)
      return lu_errorf(L, "vm:dispatch: a hypercall needs nr, 0 to 2^32-1");
    uint64_t args[6] = { 0 };
    lua_getfield(L, 2, "args");
    for (int i = 0; i < 6 && lua_istable(L, -1); i++) {
      lua_rawgeti(L, -1, i + 1);
      args[i] = (uint64_t)lua_tointeger(L, -1);
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    struct kvm_regs *r = vcpu_regs(c);
    r->rdi = args[0], r->rsi = args[1], r->rcx = args[2];
    r->r10 = args[3], r->r8 = args[4], r->r9 = args[5];
    r->rax = (uint64_t)nr;
    uint32_t n32 = (uint32_t)nr;
    memcpy(data, &n32, 4);
    size = 4;
    addr = HYPERCALL_PORT;
    write = true;
  } else {
    if (strcmp(kind, "mmio") == 0)
      space = SPACE_MMIO;
    else if (strcmp(kind, "io") != 0)
      return lu_errorf(L, "vm:dispatch: kind must be \"io\", \"mmio\" or \"hypercall\", not '%s'",
                       kind);
    lua_Integer a = field_integer(L, "addr", -1);
    lua_Integer s = field_integer(L, "size", 0);
    if (a < 0 || (space == SPACE_IO && a > 0xffff))
      return lu_errorf(L, "vm:dispatch: addr is missing or out of range");
    if (space == SPACE_IO ? (s != 1 && s != 2 && s != 4) : (s < 1 || s > 8))
      return lu_errorf(L, "vm:dispatch: size %lld is not a valid %s access size", (long long)s,
                       kind);
    lua_getfield(L, 2, "value");
    write = !lua_isnil(L, -1);
    if (write) {
      uint64_t value = (uint64_t)luaL_checkinteger(L, -1);
      memcpy(data, &value, (size_t)s);
    }
    lua_pop(L, 1);
    size = (uint32_t)s;
    addr = (uint64_t)a;
  }

  vcpu_clear_stop(c);
  cs->caller_holds_lock = true;
  vcpu_access(c, space, addr, data, size, write);
  cs->caller_holds_lock = false;
  uint64_t rax = vcpu_regs(c)->rax;
  *vcpu_regs(c) = saved; /* the guest's registers are not the replay's */
  check_fault(L, c);
  if (strcmp(kind, "hypercall") == 0) {
    lua_pushinteger(L, (lua_Integer)rax);
    return 1;
  }
  if (write)
    return 0;
  uint64_t value = 0;
  memcpy(&value, data, size);
  lua_pushinteger(L, (lua_Integer)value);
  return 1;
}

static const luaL_Reg trace_methods[] = {
  { "trace", vm_trace },
  { "dispatch", vm_dispatch },
  { NULL, NULL },
};

void ltrace_add_methods(lua_State *L)
{
  luaL_setfuncs(L, trace_methods, 0);
}
