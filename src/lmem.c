/* The memory userdata: bounds-checked copies in and out of guest memory.
 * Lua never sees a pointer; every range is checked against the regions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "lvmm.h"

#define MAX_READ (1ull << 30) /* one string; read bigger ranges in pieces */

static struct vm *check_mem(lua_State *L, int idx)
{
  struct lmem *m = luaL_checkudata(L, idx, MEMORY_TYPE);
  if (m->owner->vm == NULL)
    lu_errorf(L, "the VM of this memory is closed");
  return m->owner->vm;
}

void lmem_push_new(lua_State *L, int vm_idx)
{
  struct lmem *m = lua_newuserdatauv(L, sizeof *m, 1);
  m->owner = lua_touserdata(L, vm_idx);
  lua_pushvalue(L, vm_idx);
  lua_setiuservalue(L, -2, 1);
  luaL_setmetatable(L, MEMORY_TYPE);
}

static int range_error(lua_State *L, const char *who, uint64_t gpa, uint64_t len)
{
  return lu_errorf(L, "memory:%s: [0x%llx, 0x%llx) is not inside guest memory", who,
                   (unsigned long long)gpa, (unsigned long long)(gpa + len));
}

/* memory:read(gpa, len) -> string */
static int mem_lread(lua_State *L)
{
  struct vm *vm = check_mem(L, 1);
  uint64_t gpa = lu_checkaddr(L, 2, "address");
  uint64_t len = lu_checkaddr(L, 3, "length");
  luaL_argcheck(L, len <= MAX_READ, 3, "at most 1 GiB per read");
  if (!mem_covers(&vm->mem, gpa, len))
    return range_error(L, "read", gpa, len);
  luaL_Buffer b;
  char *p = luaL_buffinitsize(L, &b, (size_t)len);
  mem_read(&vm->mem, gpa, p, len);
  luaL_pushresultsize(&b, (size_t)len);
  return 1;
}

/* memory:write(gpa, data) -> number of bytes written */
static int mem_lwrite(lua_State *L)
{
  struct vm *vm = check_mem(L, 1);
  uint64_t gpa = lu_checkaddr(L, 2, "address");
  size_t len;
  const char *s = luaL_checklstring(L, 3, &len);
  if (mem_write(&vm->mem, gpa, s, len) < 0)
    return range_error(L, "write", gpa, len);
  lua_pushinteger(L, (lua_Integer)len);
  return 1;
}

/* memory:fill(gpa, len, byte) */
static int mem_lfill(lua_State *L)
{
  struct vm *vm = check_mem(L, 1);
  uint64_t gpa = lu_checkaddr(L, 2, "address");
  uint64_t len = lu_checkaddr(L, 3, "length");
  lua_Integer byte = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, byte >= 0 && byte <= 255, 4, "a byte is 0 to 255");
  if (mem_fill(&vm->mem, gpa, (int)byte, len) < 0)
    return range_error(L, "fill", gpa, len);
  return 0;
}

/* memory:u8/u16/u32/u64(gpa) -> value; (gpa, value) writes, little-endian */
static int access_int(lua_State *L, unsigned size, const char *who)
{
  struct vm *vm = check_mem(L, 1);
  uint64_t gpa = lu_checkaddr(L, 2, "address");
  if (lua_isnoneornil(L, 3)) {
    uint64_t v = 0;
    if (mem_read(&vm->mem, gpa, &v, size) < 0)
      return range_error(L, who, gpa, size);
    lua_pushinteger(L, (lua_Integer)v);
    return 1;
  }
  lua_Integer v = luaL_checkinteger(L, 3);
  if (size < 8) {
    lua_Integer lo = -((lua_Integer)1 << (size * 8 - 1));
    lua_Integer hi = ((lua_Integer)1 << (size * 8)) - 1;
    luaL_argcheck(L, v >= lo && v <= hi, 3,
                  lua_pushfstring(L, "value does not fit in %d bytes", (int)size));
  }
  uint64_t u = (uint64_t)v;
  if (mem_write(&vm->mem, gpa, &u, size) < 0)
    return range_error(L, who, gpa, size);
  return 0;
}

static int mem_u8(lua_State *L) { return access_int(L, 1, "u8"); }
static int mem_u16(lua_State *L) { return access_int(L, 2, "u16"); }
static int mem_u32(lua_State *L) { return access_int(L, 4, "u32"); }
static int mem_u64(lua_State *L) { return access_int(L, 8, "u64"); }

/* memory:load(path, gpa) -> size: the whole file, or an error */
static int mem_lload(lua_State *L)
{
  struct vm *vm = check_mem(L, 1);
  const char *path = luaL_checkstring(L, 2);
  uint64_t gpa = lu_checkaddr(L, 3, "address");
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return lu_errorf(L, "cannot load %s: %s", path, strerror(errno));
  struct stat sb;
  if (fstat(fileno(f), &sb) < 0 || !S_ISREG(sb.st_mode)) {
    fclose(f);
    return lu_errorf(L, "cannot load %s: not a regular file", path);
  }
  uint64_t size = (uint64_t)sb.st_size;
  if (!mem_covers(&vm->mem, gpa, size)) {
    fclose(f);
    return lu_errorf(L, "cannot load %s (%llu bytes) at 0x%llx: [0x%llx, 0x%llx) is not inside "
                        "guest memory", path, (unsigned long long)size, (unsigned long long)gpa,
                     (unsigned long long)gpa, (unsigned long long)(gpa + size));
  }
  /* Straight into guest memory, region by region: no second copy. */
  uint64_t done = 0;
  while (done < size) {
    const struct mem_region *r = mem_find(&vm->mem, gpa + done);
    uint64_t off = gpa + done - r->gpa;
    uint64_t n = r->size - off < size - done ? r->size - off : size - done;
    if (fread(r->host + off, 1, (size_t)n, f) != n) {
      int e = ferror(f) ? errno : 0;
      fclose(f);
      return lu_errorf(L, "cannot load %s: %s", path, e ? strerror(e) : "file shrank while read");
    }
    done += n;
  }
  fclose(f);
  lua_pushinteger(L, (lua_Integer)size);
  return 1;
}

/* memory:map{ gpa = 0xfffc0000, size = "256K", name = "rom", readonly = true } */
static int mem_lmap(lua_State *L)
{
  struct lmem *m = luaL_checkudata(L, 1, MEMORY_TYPE);
  struct vm *vm = check_mem(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (m->owner->running)
    return lu_errorf(L, "memory:map: the VM is running; map memory before running it");
  /* The fields are checked here, not with luaL_check*: those would name
   * a stack slot ("bad argument #-1"), not the field. */
  int ok;
  lua_getfield(L, 2, "gpa");
  lua_Integer g = lua_tointegerx(L, -1, &ok);
  if (!ok || g < 0)
    return lu_errorf(L, "memory:map: gpa must be a non-negative integer (got %s)",
                     luaL_tolstring(L, -1, NULL));
  uint64_t gpa = (uint64_t)g;
  lua_getfield(L, 2, "size");
  uint64_t size = 0;
  if (lua_type(L, -1) == LUA_TNUMBER) {
    lua_Integer n = lua_tointegerx(L, -1, &ok);
    if (!ok || n < 0)
      return lu_errorf(L, "memory:map: size must be a non-negative integer (got %s)",
                       luaL_tolstring(L, -1, NULL));
    size = (uint64_t)n;
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    if (lu_parse_size(lua_tostring(L, -1), &size) < 0)
      return lu_errorf(L, "memory:map: cannot parse size '%s' (use bytes or a number with K, "
                          "M or G, like \"64K\")", lua_tostring(L, -1));
  } else if (lua_isnil(L, -1)) {
    return lu_errorf(L, "memory:map: size is required");
  } else {
    return lu_errorf(L, "memory:map: size must be an integer or a string like \"64K\" (got %s)",
                     luaL_typename(L, -1));
  }
  lua_getfield(L, 2, "name");
  const char *name = "memory";
  if (!lua_isnil(L, -1) && (name = lua_tostring(L, -1)) == NULL)
    return lu_errorf(L, "memory:map: name must be a string (got %s)", luaL_typename(L, -1));
  bool readonly = lu_optbool(L, 2, "readonly", false);
  if (readonly && !m->owner->st->kvm.readonly_mem)
    return lu_errorf(L, "memory:map: this host's KVM has no read-only memory slots");
  uint64_t end;
  const struct bus_range *mmio;
  if (!readonly && !__builtin_add_overflow(gpa, size, &end) &&
      (mmio = bus_overlap(&vm->mmio, gpa, size)) != NULL)
    return lu_errorf(L, "memory:map: region '%s' [0x%llx, 0x%llx) overlaps the MMIO range of "
                        "'%s' [0x%llx, 0x%llx); the guest would reach RAM, not the handler",
                     name, (unsigned long long)gpa, (unsigned long long)end, mmio->name,
                     (unsigned long long)mmio->base, (unsigned long long)(mmio->base + mmio->len));
  char err[ERR_LEN];
  if (mem_map(&vm->mem, vm->fd, gpa, size, readonly ? MEM_READONLY : 0, name, err) < 0)
    return lu_errorf(L, "memory:map: %s", err);
  return 0;
}

/* memory:regions() -> { {gpa=, size=, name=, readonly=}, ... } sorted by gpa */
static int mem_lregions(lua_State *L)
{
  struct vm *vm = check_mem(L, 1);
  lua_createtable(L, (int)vm->mem.count, 0);
  for (size_t i = 0; i < vm->mem.count; i++) {
    const struct mem_region *r = &vm->mem.regions[i];
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)r->gpa);
    lua_setfield(L, -2, "gpa");
    lua_pushinteger(L, (lua_Integer)r->size);
    lua_setfield(L, -2, "size");
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
    lua_pushboolean(L, r->flags & MEM_READONLY);
    lua_setfield(L, -2, "readonly");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* #memory: total bytes of guest memory */
static int mem_len(lua_State *L)
{
  struct vm *vm = check_mem(L, 1);
  lua_pushinteger(L, (lua_Integer)mem_total(&vm->mem));
  return 1;
}

static int mem_tostring(lua_State *L)
{
  struct lmem *m = luaL_checkudata(L, 1, MEMORY_TYPE);
  if (m->owner->vm == NULL)
    lua_pushliteral(L, "vmm.memory (closed)");
  else
    lua_pushfstring(L, "vmm.memory (%I bytes in %d regions)",
                    (lua_Integer)mem_total(&m->owner->vm->mem), (int)m->owner->vm->mem.count);
  return 1;
}

static const luaL_Reg mem_methods[] = {
  { "read", mem_lread },
  { "write", mem_lwrite },
  { "fill", mem_lfill },
  { "u8", mem_u8 },
  { "u16", mem_u16 },
  { "u32", mem_u32 },
  { "u64", mem_u64 },
  { "load", mem_lload },
  { "map", mem_lmap },
  { "regions", mem_lregions },
  { NULL, NULL },
};

void lmem_open_type(lua_State *L)
{
  if (!luaL_newmetatable(L, MEMORY_TYPE)) {
    lua_pop(L, 1);
    return;
  }
  luaL_newlib(L, mem_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "methods");
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, mem_len);
  lua_setfield(L, -2, "__len");
  lua_pushcfunction(L, mem_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}
