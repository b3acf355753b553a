/* The luavmm program's interactive loop (repl.c) and the parts of main.c it
 * shares: running a chunk, reporting an error, the signal flags. */
#ifndef LUAVMM_REPL_H
#define LUAVMM_REPL_H

#include <lua.h>
#include <stdbool.h>

/* repl.c: reads statements from stdin and evaluates them until end of
 * input or SIGTERM. With a terminal: line editing, history, prompts and a
 * banner; otherwise plain lines and nothing printed but results and errors.
 * Called holding the control-plane lock; returns holding it. */
void repl_run(lua_State *L);

/* main.c: lua_pcall of the function under its narg arguments, with a
 * traceback message handler, Ctrl-C and SIGTERM turned into Lua errors;
 * restores the SIGINT and SIGTERM actions it found. */
int main_call(lua_State *L, int narg, int nres);

/* main.c: for a status other than LUA_OK, prints the message at the top of
 * the stack to stderr ("luavmm: " first when prefixed) and pops it. */
void main_report(lua_State *L, int status, bool prefixed);

/* main.c: in the REPL outside main_call, SIGINT and SIGTERM only set flags
 * (on); off restores their default disposition. */
void main_catch_prompt(bool on);

/* main.c: whether SIGINT came since the last call (clears the flag). */
bool main_take_interrupt(void);

/* main.c: whether SIGTERM came: the program must end. */
bool main_terminated(void);

#endif
