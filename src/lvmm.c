/* luaopen_vmm_core: the module table, the per-state control-plane lock and
 * the lazily opened /dev/kvm. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "lvmm.h"
#include "vcpu.h"
#include "vmm.h"

void ctl_acquire(struct lstate *st)
{
  ctl_lock(&st->lock);
}

void ctl_release(struct lstate *st)
{
  ctl_unlock(&st->lock);
}

struct lstate *lstate_get(lua_State *L)
{
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  struct lstate *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (st == NULL)
    lu_errorf(L, "vmm: the module is not loaded in this Lua state");
  return st;
}

int lstate_kvm(lua_State *L, struct lstate *st)
{
  if (st->kvm_open)
    return 0;
  char err[ERR_LEN];
  const char *path = getenv("LUAVMM_KVM_DEVICE");
  if (path == NULL || *path == '\0')
    path = "/dev/kvm";
  if (kvm_open(&st->kvm, path, err) < 0)
    return lu_errorf(L, "%s", err);
  st->kvm_open = true;
  return 0;
}

static int state_gc(lua_State *L)
{
  struct lstate *st = lua_touserdata(L, 1);
  if (st->kvm_open)
    kvm_close(&st->kvm);
  st->kvm_open = false;
  /* The closing thread holds the lock; every VM is already gone. */
  ctl_unlock(&st->lock);
  ctl_destroy(&st->lock);
  return 0;
}

static struct lstate *state_new(lua_State *L)
{
  struct lstate *st = lua_newuserdatauv(L, sizeof *st, 0);
  memset(st, 0, sizeof *st);
  ctl_init(&st->lock);
  ctl_lock(&st->lock);
  lua_newtable(L);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  return st;
}

/* The state without raising: these run around blocking reads. */
static struct lstate *lstate_peek(lua_State *L)
{
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  struct lstate *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return st;
}

void luavmm_unlock(lua_State *L)
{
  struct lstate *st = lstate_peek(L);
  if (st != NULL)
    ctl_release(st);
}

void luavmm_lock(lua_State *L)
{
  struct lstate *st = lstate_peek(L);
  if (st != NULL)
    ctl_acquire(st);
}

/* vmm.available() -> true | false, message */
static int m_available(lua_State *L)
{
  struct lstate *st = lstate_get(L);
  if (st->kvm_open) {
    lua_pushboolean(L, 1);
    return 1;
  }
  char err[ERR_LEN];
  const char *path = getenv("LUAVMM_KVM_DEVICE");
  struct kvm probe;
  if (kvm_open(&probe, path && *path ? path : "/dev/kvm", err) < 0) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err);
    return 2;
  }
  kvm_close(&probe);
  lua_pushboolean(L, 1);
  return 1;
}

/* vmm.capabilities() -> table of what this host's KVM offers */
static int m_capabilities(lua_State *L)
{
  struct lstate *st = lstate_get(L);
  lstate_kvm(L, st);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, st->kvm.max_vcpus);
  lua_setfield(L, -2, "max_vcpus");
  lua_pushinteger(L, st->kvm.max_slots);
  lua_setfield(L, -2, "max_memory_slots");
  lua_pushboolean(L, st->kvm.readonly_mem);
  lua_setfield(L, -2, "readonly_memory");
  lua_pushboolean(L, st->kvm.coalesced_mmio > 0);
  lua_setfield(L, -2, "coalesced_mmio");
  lua_pushboolean(L, st->kvm.emulation_bytes);
  lua_setfield(L, -2, "emulation_failure_bytes");
  lua_pushinteger(L, st->kvm.run_size);
  lua_setfield(L, -2, "run_size");
  return 1;
}

static void push_cpuid_entry(lua_State *L, const struct kvm_cpuid_entry2 *e)
{
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, e->function);
  lua_setfield(L, -2, "leaf");
  lua_pushinteger(L, e->index);
  lua_setfield(L, -2, "subleaf");
  lua_pushinteger(L, e->flags);
  lua_setfield(L, -2, "flags");
  lua_pushinteger(L, e->eax);
  lua_setfield(L, -2, "eax");
  lua_pushinteger(L, e->ebx);
  lua_setfield(L, -2, "ebx");
  lua_pushinteger(L, e->ecx);
  lua_setfield(L, -2, "ecx");
  lua_pushinteger(L, e->edx);
  lua_setfield(L, -2, "edx");
}

/* vmm.supported_cpuid() -> list of {leaf, subleaf, flags, eax, ebx, ecx, edx} */
static int m_supported_cpuid(lua_State *L)
{
  struct lstate *st = lstate_get(L);
  lstate_kvm(L, st);
  struct kvm_cpuid2 *c = st->kvm.cpuid;
  lua_createtable(L, (int)c->nent, 0);
  for (uint32_t i = 0; i < c->nent; i++) {
    push_cpuid_entry(L, &c->entries[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* vmm.now() -> seconds on the monotonic clock */
static int m_now(lua_State *L)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  lua_pushnumber(L, (lua_Number)t.tv_sec + (lua_Number)t.tv_nsec / 1e9);
  return 1;
}

/* vmm.sleep(seconds): sleeps without the control-plane lock, so VMs
 * running in the background can call their Lua handlers meanwhile. A
 * signal (Ctrl-C) ends the sleep early. */
static int m_sleep(lua_State *L)
{
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds must be from 0 to 1e9");
  struct timespec t = { (time_t)s, (long)((s - (lua_Number)(time_t)s) * 1e9) };
  struct lstate *st = lstate_get(L);
  ctl_release(st);
  nanosleep(&t, NULL);
  ctl_acquire(st);
  return 0;
}

/* vmm.stats_on_close(true): every VM prints its exit statistics to stderr
 * when it is closed or collected (luavmm --stats). */
static int m_stats_on_close(lua_State *L)
{
  lstate_get(L)->stats_on_close = lua_toboolean(L, 1);
  return 0;
}

/* vmm.parse_size("64M") -> 67108864 */
static int m_parse_size(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)lu_checksize(L, 1));
  return 1;
}

static const luaL_Reg module_fns[] = {
  { "vm", lvm_new },
  { "available", m_available },
  { "capabilities", m_capabilities },
  { "supported_cpuid", m_supported_cpuid },
  { "parse_size", m_parse_size },
  { "now", m_now },
  { "stats_on_close", m_stats_on_close },
  { "sleep", m_sleep },
  { NULL, NULL },
};

int luaopen_vmm_core(lua_State *L)
{
  lua_getfield(L, LUA_REGISTRYINDEX, STATE_KEY);
  bool loaded = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (!loaded) {
    if (vcpu_signals_init() < 0)
      return lu_errorf(L, "vmm: cannot install the vCPU kick signal: %s", strerror(errno));
    state_new(L);
  }
  lvm_open_type(L);
  lcpu_open_type(L);
  lmem_open_type(L);

  luaL_newlib(L, module_fns);
  lua_pushliteral(L, "luavmm " LUAVMM_VERSION);
  lua_setfield(L, -2, "version");
  /* The method tables, so lua/vmm/ can add methods written in Lua. */
  lua_createtable(L, 0, 3);
  luaL_getmetatable(L, VM_TYPE);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "vm");
  lua_pop(L, 1);
  luaL_getmetatable(L, CPU_TYPE);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "cpu");
  lua_pop(L, 1);
  luaL_getmetatable(L, MEMORY_TYPE);
  lua_getfield(L, -1, "methods");
  lua_setfield(L, -3, "memory");
  lua_pop(L, 1);
  lua_setfield(L, -2, "methods");
  return 1;
}

/* `require "vmm"` reached the C module directly: the Lua half of the
 * library (lua/vmm/init.lua) was not found on package.path. */
int luaopen_vmm(lua_State *L)
{
  return lu_errorf(L, "vmm: found the C core (vmm.so) but not the Lua library "
                       "vmm/init.lua; add its folder to LUA_PATH, for example "
                       "LUA_PATH='lua/?.lua;lua/?/init.lua;;' in the source tree, "
                       "or run 'make install'");
}
