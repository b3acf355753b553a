/* The C API of the vmm module for programs that embed it (the luavmm
 * program): open the module, and give up the control-plane lock while the
 * embedding thread blocks outside Lua (at a prompt), so vCPU threads can run
 * their Lua handlers. */
#ifndef LUAVMM_VMM_H
#define LUAVMM_VMM_H

#include <lua.h>

#define LUAVMM_VERSION "0.1.0"

int luaopen_vmm_core(lua_State *L);
int luaopen_vmm(lua_State *L);

/* Neither raises; both do nothing if the module is not loaded in L. */
void luavmm_unlock(lua_State *L);
void luavmm_lock(lua_State *L);

/* The signal (SIGINT or SIGTERM) that last stopped a VM run or wait, or 0;
 * reading clears it. Such a run raises "interrupted" or "terminated"; this
 * tells the program without parsing the message. */
int luavmm_interrupted(void);

#endif
