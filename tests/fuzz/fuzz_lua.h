/* What the fuzz harnesses that embed Lua share (loader_fuzz.c,
 * lmem_fuzz.c): a lua_State with the standard libraries and the vmm module
 * as the luavmm program has it (vmm.core preloaded from the linked core;
 * the Lua half from lua/ in the source tree, so run from the repository
 * root), and a driver chunk in tests/fuzz/ that returns the function called
 * once per input. That function returns nil, or a finding as a string.
 *
 * libFuzzer sees the coverage of C code only, and the Lua interpreter is
 * not instrumented: without help it would be blind to which lines of the
 * Lua library an input reached. A line hook gives it that: each step from
 * one line of lua/vmm/ to the next bumps a counter in libFuzzer's extra
 * counters section (an array it reads as coverage, like its own
 * counters), indexed by a hash of the two lines, the way AFL counts edges.
 * Built without libFuzzer (the replay test), the array is plain data. */
#ifndef LUAVMM_FUZZ_LUA_H
#define LUAVMM_FUZZ_LUA_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "../../src/vmm.h"
#include "fuzz.h"

#define FUZZ_LUA_COUNTERS 65536

__attribute__((section("__libfuzzer_extra_counters"), used))
static uint8_t fuzz_lua_counters[FUZZ_LUA_COUNTERS];
static const char *fuzz_lua_source;  /* the chunk of the last line seen */
static bool fuzz_lua_source_ours;    /* whether it is in lua/vmm/ */
static uintptr_t fuzz_lua_prev;

static void fuzz_lua_hook(lua_State *L, lua_Debug *ar)
{
  if (!lua_getinfo(L, "S", ar))
    return;
  /* A chunk's source string lives as long as its functions: compare the
   * pointer, search the text only when it changes. */
  if (ar->source != fuzz_lua_source) {
    fuzz_lua_source = ar->source;
    fuzz_lua_source_ours = strstr(ar->source, "lua/vmm/") != NULL;
  }
  if (!fuzz_lua_source_ours)
    return;
  uintptr_t here = ((uintptr_t)ar->source >> 4) * 0x9e3779b1u + (uintptr_t)ar->currentline;
  fuzz_lua_counters[(here ^ fuzz_lua_prev) % FUZZ_LUA_COUNTERS]++;
  fuzz_lua_prev = here >> 1;
}

static int fuzz_lua_msgh(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg != NULL ? msg : luaL_typename(L, 1), 1);
  return 1;
}

static inline lua_State *fuzz_lua_open(void)
{
  lua_State *L = luaL_newstate();
  FUZZ_ASSERT(L != NULL);
  luaL_openlibs(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_vmm_core);
  lua_setfield(L, -2, "vmm.core");
  lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushliteral(L, "lua/?.lua;lua/?/init.lua");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  lua_sethook(L, fuzz_lua_hook, LUA_MASKLINE, 0);
  return L;
}

/* Runs the chunk at path with the nargs values on top of the stack as its
 * arguments; returns a registry reference to the function it returns. */
static inline int fuzz_lua_driver(lua_State *L, const char *path, int nargs)
{
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, fuzz_lua_msgh);
  if (luaL_loadfile(L, path) != LUA_OK) {
    fprintf(stderr, "%s (run from the repository root)\n", lua_tostring(L, -1));
    abort();
  }
  for (int i = 1; i <= nargs; i++)
    lua_pushvalue(L, base + i);
  if (lua_pcall(L, nargs, 1, base + nargs + 1) != LUA_OK || !lua_isfunction(L, -1)) {
    fprintf(stderr, "%s: %s\n", path, lua_isstring(L, -1) ? lua_tostring(L, -1) : "no function");
    abort();
  }
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, base);
  return ref;
}

/* Calls the driver on one input. A finding, or an error of the driver
 * itself, is reported and aborts. */
static inline void fuzz_lua_call(lua_State *L, int ref, const uint8_t *data, size_t size,
                                 const char *who)
{
  int base = lua_gettop(L);
  lua_pushcfunction(L, fuzz_lua_msgh);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 1, base + 1) != LUA_OK) {
    fprintf(stderr, "%s: the driver failed: %s\n", who, lua_tostring(L, -1));
    abort();
  }
  if (!lua_isnil(L, -1)) {
    fprintf(stderr, "%s: finding: %s\n", who, lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, base);
}

#endif
