/* Argument helpers shared by the bindings. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lvmm.h"

/* A guest address: a non-negative integer (addresses are below 2^52). */
uint64_t lu_checkaddr(lua_State *L, int arg, const char *what)
{
  int ok;
  lua_Integer v = lua_tointegerx(L, arg, &ok);
  if (!ok)
    luaL_typeerror(L, arg, what);
  if (v < 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s must not be negative", what));
  return (uint64_t)v;
}

/* "64M", "1G", "512K", "4096" or 4096 -> bytes. Returns -1 on bad syntax or
 * overflow. */
int lu_parse_size(const char *s, uint64_t *out)
{
  char *end;
  if (!isdigit((unsigned char)*s))
    return -1;
  unsigned long long n = strtoull(s, &end, 10);
  unsigned shift = 0;
  switch (toupper((unsigned char)*end)) {
  case 'K': shift = 10; end++; break;
  case 'M': shift = 20; end++; break;
  case 'G': shift = 30; end++; break;
  case 'T': shift = 40; end++; break;
  default: break;
  }
  if (shift && (*end == 'i' || *end == 'I'))
    end++;
  if (shift && (*end == 'b' || *end == 'B'))
    end++;
  if (*end != '\0')
    return -1;
  if (shift && n > (UINT64_MAX >> shift))
    return -1;
  *out = (uint64_t)n << shift;
  return 0;
}

uint64_t lu_checksize(lua_State *L, int arg)
{
  if (lua_type(L, arg) == LUA_TNUMBER) {
    int ok;
    lua_Integer v = lua_tointegerx(L, arg, &ok);
    if (!ok || v < 0)
      luaL_argerror(L, arg, "size must be a non-negative integer");
    return (uint64_t)v;
  }
  const char *s = lua_tostring(L, arg);
  uint64_t n;
  if (s == NULL)
    luaL_typeerror(L, arg, "size (an integer or a string like \"64M\")");
  if (lu_parse_size(s, &n) < 0)
    luaL_argerror(L, arg, lua_pushfstring(L, "cannot parse size '%s' (use bytes or a "
                                             "number with K, M or G, like \"64M\")", s));
  return n;
}

void lu_pushhandlers(lua_State *L, int vm_idx)
{
  lua_getiuservalue(L, vm_idx, 1);
}

/* Message handler: the error as a string, with a traceback. */
int lu_traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

bool lu_optbool(lua_State *L, int t, const char *field, bool def)
{
  if (lua_type(L, t) != LUA_TTABLE)
    return def;
  lua_getfield(L, t, field);
  bool v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

/* luaL_error with the C library's printf, for the hex that lua_pushfstring
 * cannot format. */
int lu_errorf(lua_State *L, const char *fmt, ...)
{
  char buf[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return luaL_error(L, "%s", buf);
}

static bool listed(const char *key, const char *const *list)
{
  for (int i = 0; list != NULL && list[i] != NULL; i++)
    if (strcmp(key, list[i]) == 0)
      return true;
  return false;
}

static void add_list(luaL_Buffer *b, const char *const *list, bool *first)
{
  for (int i = 0; list != NULL && list[i] != NULL; i++) {
    luaL_addstring(b, *first ? "" : ", ");
    luaL_addstring(b, list[i]);
    *first = false;
  }
}

void lu_checkoptions(lua_State *L, int t, const char *const *names, const char *const *more,
                     const char *who)
{
  if (lua_isnoneornil(L, t))
    return;
  t = lua_absindex(L, t);
  luaL_checktype(L, t, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, t)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING &&
        (listed(lua_tostring(L, -1), names) || listed(lua_tostring(L, -1), more)))
      continue;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    bool first = true;
    add_list(&b, names, &first);
    add_list(&b, more, &first);
    luaL_pushresult(&b);
    const char *list = lua_tostring(L, -1);
    lu_errorf(L, "%s: unknown option '%s' (%s%s)", who, luaL_tolstring(L, -2, NULL),
              first ? "it takes none" : "known: ", list);
  }
}
