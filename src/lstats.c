/* vm:stats(): exit statistics as Lua tables, per vCPU and summed. */
#include <ctype.h>
#include <string.h>

#include "fault.h"
#include "lvmm.h"
#include "vcpu.h"

static void add_to_field(lua_State *L, int t, lua_Integer key, uint64_t n)
{
  lua_rawgeti(L, t, key);
  lua_Integer cur = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, cur + (lua_Integer)n);
  lua_rawseti(L, t, key);
}

struct fold {
  lua_State *L;
  int t;
};

static void fold_one(uint64_t key, uint64_t count, void *ctx)
{
  struct fold *f = ctx;
  add_to_field(f->L, f->t, (lua_Integer)key, count);
}

static void add_map(lua_State *L, int stats, const char *name, const struct counter_map *m)
{
  lua_getfield(L, stats, name);
  struct fold f = { L, lua_gettop(L) };
  counter_each(m, fold_one, &f);
  lua_pop(L, 1);
}

/* "KVM_EXIT_IO" -> "io" */
static void push_reason_name(lua_State *L, uint32_t reason)
{
  const char *name = exit_reason_name(reason);
  char buf[48];
  size_t i = 0;
  if (strncmp(name, "KVM_EXIT_", 9) == 0)
    name += 9;
  for (; name[i] && i < sizeof buf - 1; i++)
    buf[i] = name[i] == ' ' ? '_' : (char)tolower((unsigned char)name[i]);
  buf[i] = '\0';
  lua_pushstring(L, buf);
}

static void add_timing(lua_State *L, int stats, const char *name, uint64_t calls, uint64_t ns)
{
  lua_getfield(L, stats, "handlers");
  lua_getfield(L, -1, name);
  lua_getfield(L, -1, "calls");
  lua_Integer c = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, c + (lua_Integer)calls);
  lua_setfield(L, -2, "calls");
  lua_getfield(L, -1, "seconds");
  lua_Number s = lua_tonumber(L, -1);
  lua_pop(L, 1);
  lua_pushnumber(L, s + (lua_Number)ns / 1e9);
  lua_setfield(L, -2, "seconds");
  lua_pop(L, 2);
}

static void new_stats_table(lua_State *L)
{
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, 0);
  lua_setfield(L, -2, "exits");
  const char *maps[] = { "reasons", "ports", "mmio", "hypercalls" };
  for (int i = 0; i < 4; i++) {
    lua_newtable(L);
    lua_setfield(L, -2, maps[i]);
  }
  lua_createtable(L, 0, 2);
  const char *kinds[] = { "c", "lua" };
  for (int i = 0; i < 2; i++) {
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, 0);
    lua_setfield(L, -2, "calls");
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "seconds");
    lua_setfield(L, -2, kinds[i]);
  }
  lua_setfield(L, -2, "handlers");
}

/* Adds one vCPU's counters into the stats table at index t. */
static void add_vcpu(lua_State *L, int t, const struct vcpu_stats *s)
{
  lua_getfield(L, t, "exits");
  lua_Integer e = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, e + (lua_Integer)s->exits);
  lua_setfield(L, t, "exits");
  lua_getfield(L, t, "reasons");
  for (uint32_t r = 0; r < STATS_REASONS; r++) {
    if (s->by_reason[r] == 0)
      continue;
    push_reason_name(L, r);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    lua_Integer cur = lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_pushinteger(L, cur + (lua_Integer)s->by_reason[r]);
    lua_rawset(L, -3);
  }
  lua_pop(L, 1);
  add_map(L, t, "ports", &s->ports);
  add_map(L, t, "mmio", &s->mmio);
  add_map(L, t, "hypercalls", &s->hypercalls);
  add_timing(L, t, "c", s->c_calls, s->c_ns);
  add_timing(L, t, "lua", s->lua_calls, s->lua_ns);
}

/* Pushes the statistics of every vCPU, summed, with `cpus` listing each. */
void lstats_push(lua_State *L, struct vm *vm)
{
  new_stats_table(L);
  int total = lua_gettop(L);
  lua_createtable(L, vm->ncpus, 0);
  for (int i = 0; i < vm->ncpus; i++) {
    new_stats_table(L);
    add_vcpu(L, lua_gettop(L), &vm->cpus[i]->stats);
    lua_rawseti(L, -2, i + 1);
    add_vcpu(L, total, &vm->cpus[i]->stats);
  }
  lua_setfield(L, total, "cpus");
}

/* vm:stats() -> { exits, reasons, ports, mmio, hypercalls, handlers, cpus } */
static int vm_stats(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (v->threaded && !v->paused && !lrun_on_own_vcpu(v))
    return lu_errorf(L, "vm:stats: the VM is running; pause it or wait for it first");
  lstats_push(L, v->vm);
  return 1;
}

/* vm:reset_stats() */
static int vm_reset_stats(lua_State *L)
{
  struct lvm *v = lvm_check(L, 1);
  if (v->running)
    return lu_errorf(L, "vm:reset_stats: the VM is running");
  for (int i = 0; i < v->vm->ncpus; i++)
    stats_reset(&v->vm->cpus[i]->stats);
  return 0;
}

static const luaL_Reg stats_methods[] = {
  { "stats", vm_stats },
  { "reset_stats", vm_reset_stats },
  { NULL, NULL },
};

void lstats_add_methods(lua_State *L)
{
  luaL_setfuncs(L, stats_methods, 0);
}
