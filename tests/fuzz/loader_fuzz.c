/* libFuzzer harness for the loaders written in Lua (lua/vmm/elf.lua,
 * multiboot.lua, linux.lua), which parse untrusted kernel files: the input
 * is a kernel file, given to every header parser and every full loader on
 * a small vmm.pc machine (tests/fuzz/loader_fuzz.lua says what each gets
 * and what counts as a finding). The harness embeds Lua with the vmm
 * module, as the luavmm program does, and needs /dev/kvm for the machine.
 * A finding is a Lua error that is not one of the loaders' validation
 * messages, a broken promise of a loader that accepted the input, or a
 * sanitizer report in the C it reaches (guest memory writes). */
#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

#include "fuzz_lua.h"

static lua_State *loader_L;
static int loader_fn;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  loader_L = fuzz_lua_open();
  /* multiboot.boot reads its kernel from a path: this one. */
  int fd = memfd_create("loader_fuzz_kernel", MFD_CLOEXEC);
  FUZZ_ASSERT(fd >= 0);
  lua_pushfstring(loader_L, "/proc/self/fd/%d", fd);
  loader_fn = fuzz_lua_driver(loader_L, "tests/fuzz/loader_fuzz.lua", 1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  fuzz_lua_call(loader_L, loader_fn, data, size, "loader_fuzz");
  return 0;
}
