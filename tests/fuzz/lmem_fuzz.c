/* libFuzzer harness for the Lua guest-memory API (src/lmem.c): random calls
 * of memory:read, write, fill, u8 to u64, load and map, #memory and
 * tostring, with arguments of every type and integers at every edge, on a
 * real VM (so it needs /dev/kvm), checked against a model of guest memory
 * (tests/fuzz/lmem_fuzz.lua describes the input and the checks). A finding
 * is a call that succeeds or fails against the model, an error that is not
 * a clean message, guest memory that differs from the model after any
 * call (read here in C, not through the API under test), or a sanitizer
 * report. */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "../../src/lvmm.h"
#include "fuzz_lua.h"

static lua_State *lmem_L;
static int lmem_fn;

/* compare(memory, model) -> nil, or what differs: guest memory as the
 * core holds it (read here, not through the API under test) against the
 * model's list of { gpa =, size =, bytes = } regions, sorted by gpa. */
static int lmem_compare(lua_State *L)
{
  struct lmem *m = luaL_checkudata(L, 1, MEMORY_TYPE);
  luaL_checktype(L, 2, LUA_TTABLE);
  FUZZ_ASSERT(m->owner->vm != NULL);
  const struct mem *mem = &m->owner->vm->mem;
  lua_Integer n = luaL_len(L, 2);
  if ((size_t)n != mem->count) {
    lua_pushfstring(L, "%d regions in guest memory, the model has %d", (int)mem->count, (int)n);
    return 1;
  }
  for (size_t i = 0; i < mem->count; i++) {
    const struct mem_region *r = &mem->regions[i];
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    lua_getfield(L, -1, "gpa");
    lua_getfield(L, -2, "size");
    lua_getfield(L, -3, "bytes");
    size_t len;
    const uint8_t *bytes = (const uint8_t *)lua_tolstring(L, -1, &len);
    if ((uint64_t)lua_tointeger(L, -3) != r->gpa || (uint64_t)lua_tointeger(L, -2) != r->size ||
        bytes == NULL || len != r->size) {
      lua_pushfstring(L, "region %d is [%p, +%p), not the model's", (int)i + 1,
                      (void *)(uintptr_t)r->gpa, (void *)(uintptr_t)r->size);
      return 1;
    }
    if (memcmp(bytes, r->host, len) != 0) {
      size_t at = 0;
      while (bytes[at] == r->host[at])
        at++;
      lua_pushfstring(L, "guest memory at %p is %d, the model's %d",
                      (void *)(uintptr_t)(r->gpa + at), r->host[at], bytes[at]);
      return 1;
    }
    lua_pop(L, 4);
  }
  return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  lmem_L = fuzz_lua_open();
  /* memory:load's regular file (a memfd, so nothing is left behind). */
  int fd = memfd_create("lmem_fuzz_file", MFD_CLOEXEC);
  FUZZ_ASSERT(fd >= 0);
  lua_pushcfunction(lmem_L, lmem_compare);
  lua_pushfstring(lmem_L, "/proc/self/fd/%d", fd);
  lmem_fn = fuzz_lua_driver(lmem_L, "tests/fuzz/lmem_fuzz.lua", 2);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_lua_call(lmem_L, lmem_fn, data, size, "lmem_fuzz");
  return 0;
}
