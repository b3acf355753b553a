/* Lua functions as bus devices: port I/O and MMIO handlers, hypercalls and
 * the catch-all for unhandled accesses.
 *
 * A vCPU thread calls a handler holding the control-plane lock, on the
 * vCPU's own coroutine, through lua_pcall with a traceback handler. Nothing
 * between taking and dropping the lock can raise: the calls that could
 * (converting the error object, allocating) happen inside the pcall. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev/dev.h"
#include "err.h"
#include "lvmm.h"
#include "stats.h"
#include "vcpu.h"

#define HYPERCALL_PORT 0xabba
#define HYPERCALL_ENOSYS (-38)

struct lhandler {
  struct lhandler *next;
  struct lvm *owner;
  int slot; /* the function's index in the handler table; 0 once removed */
  enum bus_space space;
  uint64_t base;
  uint64_t len;
};

static int lua_bus_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                          uint32_t size, bool write);

/* A handler's `value` argument: the value written, or nil for a read. */
static void push_value(lua_State *co, const uint8_t *data, uint32_t size, bool write)
{
  if (write) {
    uint64_t value = 0;
    memcpy(&value, data, size);
    lua_pushinteger(co, (lua_Integer)value);
  } else {
    lua_pushnil(co);
  }
}

static void describe_access(char *buf, size_t len, enum bus_space space, uint64_t addr,
                            uint32_t size, bool write, const uint8_t *data)
{
  uint64_t value = 0;
  memcpy(&value, data, size);
  int n = snprintf(buf, len, "%s %s %s 0x%" PRIx64 " (%u byte%s", space == SPACE_IO ? "I/O" : "MMIO",
                   write ? "write" : "read", space == SPACE_IO ? (write ? "to port" : "from port") : "at",
                   addr, size, size == 1 ? "" : "s");
  if (write && n > 0 && (size_t)n < len)
    n += snprintf(buf + n, len - (size_t)n, ", value 0x%" PRIx64, value);
  if (n > 0 && (size_t)n < len)
    snprintf(buf + n, len - (size_t)n, ")");
}

/* After a failed pcall: either a stop request interrupted the handler (the
 * stop hook raised), or the handler itself failed. */
static int handler_failed(struct vcpu *c, lua_State *co, const char *what)
{
  int req = atomic_load(&c->vm->stop_request);
  if (req != VCPU_RUNNING)
    return vcpu_stop(c, req, vm_stop_code(c->vm, req));
  const char *msg = lua_tostring(co, -1);
  return vcpu_fault(c, VCPU_FAULT_HANDLER, "Lua handler for %s failed:\n%s", what,
                    msg ? msg : "(no message)");
}

/* Stores the handler's return value (at the top of co) as the read result. */
static int store_read_result(struct vcpu *c, lua_State *co, uint8_t *data, uint32_t size,
                             const char *what)
{
  if (lua_isnil(co, -1))
    return 0; /* nothing returned: the read yields 0 */
  int ok;
  lua_Integer v = lua_tointegerx(co, -1, &ok);
  if (!ok)
    return vcpu_fault(c, VCPU_FAULT_HANDLER,
                      "Lua handler for %s returned a %s; a read handler returns an integer "
                      "(or nothing, for 0)", what, lua_typename(co, lua_type(co, -1)));
  uint64_t u = (uint64_t)v;
  memcpy(data, &u, size); /* little-endian: the low size bytes */
  return 0;
}

/* Takes the control-plane lock for a handler call. False (lock not held)
 * when the VM is being closed: its Lua side may be half gone. */
static bool lock_for_call(struct lvm *v, struct vcpu *c)
{
  struct lcpu_state *cs = c->user;
  if (c->sandboxed) {
    /* A sandboxed run starts only without Lua handlers (lrun.c); this
     * catches one added while the VM runs, and a hypercall that no
     * constant answers. Lua would need far more than the filter allows. */
    vcpu_fault(c, VCPU_FAULT_HANDLER, "this exit needs Lua (a Lua handler, a Lua device or a "
               "hypercall that no constant answers), which a sandboxed vCPU cannot enter");
    return false;
  }
  if (cs->caller_holds_lock)
    return true; /* vm:dispatch, from Lua: the lock is ours already */
  ctl_acquire(v->st);
  if (!atomic_load(&v->closing))
    return true;
  ctl_release(v->st);
  vcpu_stop(c, VCPU_STOPPED, 0);
  return false;
}

static void unlock_after_call(struct lvm *v, struct vcpu *c)
{
  struct lcpu_state *cs = c->user;
  if (!cs->caller_holds_lock)
    ctl_release(v->st);
}

/* Every handler call runs with a count hook. It lets a waiting thread have
 * the control-plane lock now and then (so the REPL, vm:stop and the other
 * vCPUs are not shut out by a long handler), and it ends a handler that is
 * still running STOP_GRACE after the VM was asked to stop: a handler that
 * never returns can always be stopped. */
#define HOOK_COUNT 1000
#define STOP_GRACE_NS 100000000ull /* 100 ms */

static void handler_hook(lua_State *co, lua_Debug *ar)
{
  (void)ar;
  struct lcpu_state *cs = *(struct lcpu_state **)lua_getextraspace(co);
  struct vm *vm = cs->owner->vm;
  int req = atomic_load(&vm->stop_request);
  if (req != VCPU_RUNNING && req != VCPU_PAUSED) {
    uint64_t now = stats_now_ns();
    if (cs->stop_seen == 0)
      cs->stop_seen = now;
    else if (now - cs->stop_seen > STOP_GRACE_NS)
      luaL_error(co, "the VM was stopped while this handler ran");
  }
  if (ctl_contended(&cs->owner->st->lock) && !cs->caller_holds_lock) {
    ctl_release(cs->owner->st);
    ctl_acquire(cs->owner->st);
    if (atomic_load(&cs->owner->closing))
      luaL_error(co, "the VM was closed while this handler ran");
  }
}

static void begin_call(struct vcpu *c, struct lcpu_state *cs)
{
  c->called_lua = true; /* for the statistics: this exit's time is Lua's */
  cs->stop_seen = 0;
  cs->call_start = stats_now_ns();
  lua_sethook(cs->co, handler_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

static void end_call(struct vcpu *c, struct lcpu_state *cs)
{
  lua_sethook(cs->co, NULL, 0, 0);
  c->stats.lua_ns += stats_now_ns() - cs->call_start;
}

/* The same machinery for C devices with Lua backends (lvirtio.c). */
bool lhandler_enter(struct lvm *v, struct vcpu *c)
{
  return lock_for_call(v, c);
}

void lhandler_leave(struct lvm *v, struct vcpu *c)
{
  unlock_after_call(v, c);
}

int lhandler_pcall(struct vcpu *c, int nargs, int nresults)
{
  struct lcpu_state *cs = c->user;
  begin_call(c, cs);
  int status = lua_pcall(cs->co, nargs, nresults, CO_MSGH);
  end_call(c, cs);
  return status;
}

int lhandler_failed(struct vcpu *c, const char *what)
{
  struct lcpu_state *cs = c->user;
  return handler_failed(c, cs->co, what);
}

static int lua_bus_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                          uint32_t size, bool write)
{
  struct lhandler *h = opaque;
  struct lcpu_state *cs = c->user;
  lua_State *co = cs->co;
  int rc = 0;

  if (!lock_for_call(h->owner, c))
    return -1;
  if (h->slot == 0) {
    /* Removed after this vCPU found it: as if it were never there. */
    unlock_after_call(h->owner, c);
    return vcpu_unhandled(c, h->space, h->base + offset, data, size, write);
  }
  lua_rawgeti(co, CO_HANDLERS, h->slot);
  lua_pushvalue(co, CO_CPU);
  lua_pushinteger(co, (lua_Integer)offset);
  lua_pushinteger(co, size);
  push_value(co, data, size, write);
  begin_call(c, cs);
  int status = lua_pcall(co, 4, 1, CO_MSGH);
  end_call(c, cs);
  if (status != LUA_OK || !write) {
    char what[96];
    describe_access(what, sizeof what, h->space, h->base + offset, size, write, data);
    if (status != LUA_OK)
      rc = handler_failed(c, co, what);
    else
      rc = store_read_result(c, co, data, size, what);
  }
  lua_settop(co, CO_BASE);
  unlock_after_call(h->owner, c);
  return rc;
}

/* ---- hypercalls: out dx, eax to port 0xABBA ---- */

static int hypercall_access(void *opaque, struct vcpu *c, uint64_t offset, uint8_t *data,
                            uint32_t size, bool write)
{
  struct lvm *v = opaque;
  struct lcpu_state *cs = c->user;
  lua_State *co = cs->co;
  struct kvm_regs *r = vcpu_regs(c);
  int rc = 0;

  if (!write || offset != 0)
    return vcpu_unhandled(c, SPACE_IO, HYPERCALL_PORT + offset, data, size, write);
  uint32_t nr = 0;
  memcpy(&nr, data, size);
  counter_add(&c->stats.hypercalls, nr, 1);
  if (nr < HYPERCALL_CONSTANTS && atomic_load_explicit(&v->hc_const[nr].set, memory_order_acquire)) {
    /* The C fast path: no Lua, no lock. */
    r->rax = (uint64_t)atomic_load_explicit(&v->hc_const[nr].value, memory_order_relaxed);
    vcpu_regs_changed(c);
    return 0;
  }

  if (!lock_for_call(v, c))
    return -1;
  lua_rawgeti(co, CO_HYPERCALLS, nr);
  if (lua_isnil(co, -1)) {
    lua_settop(co, CO_BASE);
    int policy = atomic_load(&c->vm->unhandled);
    if (policy == UNHANDLED_STOP) {
      unlock_after_call(v, c);
      return vcpu_fault(c, VCPU_FAULT_HYPERCALL,
                        "unknown hypercall %u (rdi 0x%llx, rsi 0x%llx): no vm:on_hypercall(%u, ...) "
                        "handler is registered", nr, (unsigned long long)r->rdi,
                        (unsigned long long)r->rsi, nr);
    }
    if (policy == UNHANDLED_IGNORE || v->unhandled_slot == 0) {
      r->rax = (uint64_t)(int64_t)HYPERCALL_ENOSYS;
      vcpu_regs_changed(c);
      unlock_after_call(v, c);
      return 0;
    }
    /* The catch-all sees it as ("hypercall", nr). */
    lua_rawgeti(co, CO_HANDLERS, v->unhandled_slot);
    lua_pushvalue(co, CO_CPU);
    lua_pushliteral(co, "hypercall");
    lua_pushinteger(co, nr);
    lua_pushinteger(co, size);
    lua_pushnil(co);
  } else {
    lua_pushvalue(co, CO_CPU);
    lua_pushinteger(co, (lua_Integer)r->rdi);
    lua_pushinteger(co, (lua_Integer)r->rsi);
    lua_pushinteger(co, (lua_Integer)r->rcx);
    lua_pushinteger(co, (lua_Integer)r->r10);
    lua_pushinteger(co, (lua_Integer)r->r8);
    lua_pushinteger(co, (lua_Integer)r->r9);
  }
  int nargs = lua_gettop(co) - CO_BASE - 1;
  begin_call(c, cs);
  int status = lua_pcall(co, nargs, 1, CO_MSGH);
  end_call(c, cs);
  char what[48]; /* formatted only when something failed */
  if (status != LUA_OK) {
    snprintf(what, sizeof what, "hypercall %u", nr);
    rc = handler_failed(c, co, what);
  } else if (!lua_isnil(co, -1)) {
    int ok;
    lua_Integer ret = lua_tointegerx(co, -1, &ok);
    if (!ok && lua_isboolean(co, -1)) {
      ret = lua_toboolean(co, -1);
      ok = 1;
    }
    if (!ok) {
      snprintf(what, sizeof what, "hypercall %u", nr);
      rc = vcpu_fault(c, VCPU_FAULT_HANDLER,
                      "Lua handler for %s returned a %s; a hypercall returns an integer "
                      "(or nothing, for 0)", what, lua_typename(co, lua_type(co, -1)));
    }
    else {
      r->rax = (uint64_t)ret;
      vcpu_regs_changed(c);
    }
  } else {
    r->rax = 0;
    vcpu_regs_changed(c);
  }
  lua_settop(co, CO_BASE);
  unlock_after_call(v, c);
  return rc;
}

/* ---- the catch-all ---- */

static int unhandled_call(void *opaque, struct vcpu *c, enum bus_space space, uint64_t addr,
                          uint8_t *data, uint32_t size, bool write)
{
  struct lvm *v = opaque;
  struct lcpu_state *cs = c->user;
  lua_State *co = cs->co;
  int rc = 0;

  if (!lock_for_call(v, c))
    return -1;
  if (v->unhandled_slot == 0) {
    unlock_after_call(v, c);
    if (!write)
      memset(data, 0xff, size);
    return 0;
  }
  lua_rawgeti(co, CO_HANDLERS, v->unhandled_slot);
  lua_pushvalue(co, CO_CPU);
  if (space == SPACE_IO)
    lua_pushliteral(co, "io");
  else
    lua_pushliteral(co, "mmio");
  lua_pushinteger(co, (lua_Integer)addr);
  lua_pushinteger(co, size);
  push_value(co, data, size, write);
  begin_call(c, cs);
  int status = lua_pcall(co, 5, 1, CO_MSGH);
  end_call(c, cs);
  if (status != LUA_OK || !write) {
    char what[128];
    int n = snprintf(what, sizeof what, "unhandled ");
    describe_access(what + n, sizeof what - (size_t)n, space, addr, size, write, data);
    if (status != LUA_OK) {
      rc = handler_failed(c, co, what);
    } else {
      memset(data, 0xff, size); /* nothing returned reads all-ones here */
      if (!lua_isnil(co, -1))
        rc = store_read_result(c, co, data, size, what);
    }
  }
  lua_settop(co, CO_BASE);
  unlock_after_call(v, c);
  return rc;
}

/* ---- registration (under the control-plane lock, from Lua) ---- */

static int new_slot(lua_State *L, struct lvm *v, int vm_idx, int fn_idx)
{
  lu_pushhandlers(L, vm_idx);
  int slot = ++v->next_slot;
  lua_pushvalue(L, fn_idx);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  return slot;
}

static void clear_slot(lua_State *L, int vm_idx, int slot)
{
  lu_pushhandlers(L, vm_idx);
  lua_pushnil(L);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
}

/* Where fn was defined, to name a handler in overlap messages. */
static void handler_name(lua_State *L, int fn_idx, char *buf, size_t len)
{
  lua_Debug ar;
  lua_pushvalue(L, fn_idx);
  if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
    snprintf(buf, len, "Lua handler %s:%d", ar.short_src, ar.linedefined);
  else
    snprintf(buf, len, "Lua handler");
}

int lhandler_set(lua_State *L, struct lvm *v, enum bus_space space, uint64_t base,
                 uint64_t len, int fn_idx, const char *who)
{
  struct vm *vm = v->vm;
  struct bus *bus = space == SPACE_IO ? &vm->pio : &vm->mmio;
  const int vm_idx = 1;
  char err[ERR_LEN];

  const struct bus_range *exact = bus_exact(bus, base, len);
  if (exact != NULL && exact->fn != lua_bus_access && !constant_is(exact))
    return lu_errorf(L, "%s: [0x%llx, 0x%llx) belongs to '%s', which is not a Lua handler", who,
                      (unsigned long long)base, (unsigned long long)(base + len), exact->name);
  bool constant = lua_isinteger(L, fn_idx);
  if (exact != NULL && constant && constant_is(exact)) {
    constant_set(exact, (uint64_t)lua_tointeger(L, fn_idx));
    return 0;
  }
  /* Removing, or changing between a function and a constant: the old
   * range goes first. */
  if (lua_isnil(L, fn_idx) || (exact != NULL && constant != constant_is(exact))) {
    void *opaque;
    if (exact == NULL || bus_remove(bus, base, &opaque) < 0)
      return lu_errorf(L, "%s: no handler covers exactly [0x%llx, 0x%llx) to remove", who,
                        (unsigned long long)base, (unsigned long long)(base + len));
    if (exact->fn == lua_bus_access) {
      struct lhandler *h = opaque;
      clear_slot(L, vm_idx, h->slot);
      h->slot = 0;
    } /* a constant stays allocated until the VM goes: a vCPU may still hold it */
    if (lua_isnil(L, fn_idx))
      return 0;
    exact = NULL;
  }
  if (exact != NULL) {
    /* Same range: swap the function, keep the range. The next exit sees it. */
    struct lhandler *h = exact->opaque;
    lu_pushhandlers(L, vm_idx);
    lua_pushvalue(L, fn_idx);
    lua_rawseti(L, -2, h->slot);
    lua_pop(L, 1);
    return 0;
  }
  if (space == SPACE_MMIO) {
    uint64_t end;
    if (__builtin_add_overflow(base, len, &end))
      return lu_errorf(L, "%s: range 0x%llx+0x%llx wraps around", who, (unsigned long long)base,
                        (unsigned long long)len);
    for (size_t i = 0; i < vm->mem.count; i++) {
      const struct mem_region *r = &vm->mem.regions[i];
      if (base < r->gpa + r->size && r->gpa < end && !(r->flags & MEM_READONLY))
        return lu_errorf(L, "%s: [0x%llx, 0x%llx) overlaps memory region '%s' [0x%llx, 0x%llx); "
                             "the guest's accesses there go to RAM and never reach a handler",
                          who, (unsigned long long)base, (unsigned long long)end, r->name,
                          (unsigned long long)r->gpa, (unsigned long long)(r->gpa + r->size));
    }
  }
  if (constant) {
    if (constant_attach(vm, bus, base, len, (uint64_t)lua_tointeger(L, fn_idx), err) < 0)
      return lu_errorf(L, "%s: %s", who, err);
    return 0;
  }
  struct lhandler *h = calloc(1, sizeof *h);
  if (h == NULL)
    return lu_errorf(L, "%s: out of memory", who);
  h->owner = v;
  h->space = space;
  h->base = base;
  h->len = len;
  char name[BUS_NAME_LEN];
  handler_name(L, fn_idx, name, sizeof name);
  if (bus_add(bus, base, len, lua_bus_access, h, name, 0, err) < 0) {
    free(h);
    return lu_errorf(L, "%s: %s", who, err);
  }
  h->slot = new_slot(L, v, vm_idx, fn_idx);
  h->next = v->handlers;
  v->handlers = h;
  return 0;
}

/* vm:on_hypercall(nr, fn|nil) */
int lhandler_set_hypercall(lua_State *L, struct lvm *v, int vm_idx)
{
  lua_Integer nr = luaL_checkinteger(L, 2);
  luaL_argcheck(L, nr >= 0 && nr <= 0xffffffffll, 2, "hypercall numbers are 0 to 2^32-1");
  if (lua_isinteger(L, 3)) {
    luaL_argcheck(L, nr < HYPERCALL_CONSTANTS, 2, "constant hypercalls are numbered 0 to 255");
    atomic_store(&v->hc_const[nr].value, lua_tointeger(L, 3));
    atomic_store(&v->hc_const[nr].set, true);
  } else {
    if (!lua_isnil(L, 3))
      luaL_checktype(L, 3, LUA_TFUNCTION);
    if (nr < HYPERCALL_CONSTANTS)
      atomic_store(&v->hc_const[nr].set, false);
  }
  lu_pushhandlers(L, vm_idx);
  lua_getfield(L, -1, "hypercalls");
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, nr);
  return 0;
}

/* vm:on_unhandled("stop" | "ignore" | fn) */
int lhandler_set_unhandled(lua_State *L, struct lvm *v, int vm_idx, int arg)
{
  int policy;
  if (lua_isfunction(L, arg)) {
    if (v->unhandled_slot == 0)
      v->unhandled_slot = new_slot(L, v, vm_idx, arg);
    else {
      lu_pushhandlers(L, vm_idx);
      lua_pushvalue(L, arg);
      lua_rawseti(L, -2, v->unhandled_slot);
      lua_pop(L, 1);
    }
    policy = UNHANDLED_CALL;
  } else {
    static const char *const names[] = { "stop", "ignore", NULL };
    static const int policies[] = { UNHANDLED_STOP, UNHANDLED_IGNORE };
    if (lua_type(L, arg) != LUA_TSTRING)
      return lu_errorf(L, "unhandled: expected \"stop\", \"ignore\" or a function, got %s",
                        luaL_typename(L, arg));
    const char *s = lua_tostring(L, arg);
    int i = 0;
    while (names[i] && strcmp(names[i], s) != 0)
      i++;
    if (names[i] == NULL)
      return lu_errorf(L, "unhandled: expected \"stop\", \"ignore\" or a function, got '%s'", s);
    policy = policies[i];
  }
  atomic_store(&v->vm->unhandled, policy);
  return 0;
}

/* Sets up the handler table, each vCPU's coroutine and cpu userdata, the
 * memory userdata, and the hypercall port. The handler table is at the top
 * of the stack's uservalue 1 of vm_idx. */
void lhandler_install(lua_State *L, struct lvm *v, int vm_idx)
{
  struct vm *vm = v->vm;
  char err[ERR_LEN];

  lu_pushhandlers(L, vm_idx);
  int t = lua_gettop(L);
  lua_newtable(L);
  lua_setfield(L, t, "hypercalls");
  lmem_push_new(L, vm_idx);
  lua_setfield(L, t, "memory");
  lua_createtable(L, vm->ncpus, 0);
  lua_createtable(L, vm->ncpus, 0);
  int cpus = lua_gettop(L) - 1, threads = lua_gettop(L);
  for (int i = 0; i < vm->ncpus; i++) {
    lcpu_push_new(L, vm_idx, i);
    lua_rawseti(L, cpus, i + 1);
    lua_State *co = lua_newthread(L);
    lua_rawseti(L, threads, i + 1);
    lua_pushcfunction(co, lu_traceback);
    lua_pushvalue(L, t);
    lua_xmove(L, co, 1);
    lua_rawgeti(L, cpus, i + 1);
    lua_xmove(L, co, 1);
    lua_getfield(L, t, "hypercalls");
    lua_xmove(L, co, 1);
    struct lcpu_state *cs = &v->cpus[i];
    cs->owner = v;
    cs->co = co;
    *(struct lcpu_state **)lua_getextraspace(co) = cs;
    vm->cpus[i]->user = cs;
  }
  lua_setfield(L, t, "threads");
  lua_setfield(L, t, "cpus");
  lua_settop(L, t - 1);

  vm->unhandled_fn = unhandled_call;
  vm->unhandled_opaque = v;
  if (bus_add(&vm->pio, HYPERCALL_PORT, 4, hypercall_access, v, "hypercall", BUS_HYPERCALL, err) < 0)
    lu_errorf(L, "vmm.vm: %s", err);
}

bool lhandler_uses_lua(lua_State *L, struct lvm *v, int vm_idx, char *buf, size_t len)
{
  for (const struct lhandler *h = v->handlers; h != NULL; h = h->next) {
    if (h->slot != 0) {
      snprintf(buf, len, "%s 0x%llx has a Lua handler", h->space == SPACE_IO ? "port" : "MMIO address",
               (unsigned long long)h->base);
      return true;
    }
  }
  if (atomic_load(&v->vm->unhandled) == UNHANDLED_CALL && v->unhandled_slot != 0) {
    snprintf(buf, len, "vm:on_unhandled has a Lua function");
    return true;
  }
  bool found = false;
  lu_pushhandlers(L, vm_idx);
  lua_getfield(L, -1, "hypercalls");
  lua_pushnil(L);
  while (!found && lua_next(L, -2)) {
    if (lua_isfunction(L, -1)) {
      snprintf(buf, len, "hypercall 0x%llx has a Lua handler (vm:on_hypercall(nr, integer) "
               "answers in C)", (unsigned long long)lua_tointeger(L, -2));
      found = true;
      lua_pop(L, 1); /* the key stays for lua_next; dropped below */
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  /* The handler table's other integer slots hold Lua devices' callbacks
   * (lvirtio.c); the catch-all's slot may outlive its policy. */
  lua_pushnil(L);
  while (!found && lua_next(L, -2)) {
    if (lua_type(L, -2) == LUA_TNUMBER && lua_tointeger(L, -2) != v->unhandled_slot) {
      snprintf(buf, len, "a device written in Lua is attached");
      found = true;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return found;
}

void lhandler_free_all(struct lvm *v)
{
  while (v->handlers != NULL) {
    struct lhandler *next = v->handlers->next;
    free(v->handlers);
    v->handlers = next;
  }
}
