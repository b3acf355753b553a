/* The luavmm program: Lua 5.4 with the vmm module loaded, driven from the
 * command line the way the `lua` program is (options, the arg table, scripts,
 * stdin), with the interactive loop in repl.c.
 *
 * Signals. Lua code must never be touched from a signal handler beyond
 * arming a hook, so Ctrl-C (SIGINT) while Lua runs arms a count-1 hook that
 * raises "interrupted!" at the next instruction; a second Ctrl-C before that
 * happens gets the default action, the way out of a C function that never
 * returns to Lua. vm:run installs its own SIGINT handler for the length of a
 * run (it stops the VM and raises "interrupted"). SIGTERM arms the same hook
 * (raising "terminated"), so the state is closed and the program exits 143;
 * a hook cannot fire while a guest runs or C code blocks, so the handler also
 * starts a short alarm after which SIGTERM takes its default action anyway.
 * In the REPL, between chunks, both signals only set flags (repl.c reads
 * them). Elsewhere both have their default disposition. */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "repl.h"
#include "vmm.h"

#define PROGNAME "luavmm"
#define EXIT_INTERRUPTED 130 /* 128 + SIGINT, what a shell reports */
#define EXIT_TERMINATED 143  /* 128 + SIGTERM */
#define TERM_GRACE_S 2       /* seconds a SIGTERM waits for Lua to unwind */
#define INIT_VAR "LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR

/* The state the signal handlers arm the hook on; set before they can run. */
static lua_State *volatile signal_L;
static volatile sig_atomic_t got_sigint;
static volatile sig_atomic_t got_sigterm;
/* A chunk failed after Ctrl-C stopped a VM: the module's handler got the
 * signal, not ours, so got_sigint alone cannot tell; luavmm_interrupted()
 * can. */
static volatile sig_atomic_t vm_interrupted;

/* ---- signals ---- */

/* Installs handler for sig, saving the previous action in old (if not
 * NULL). No SA_RESTART: a blocking read returns EINTR instead of restarting,
 * so io.read() and the prompt give up their wait. */
static void set_signal(int sig, void (*handler)(int), struct sigaction *old)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, old);
}

/* The hook armed by the handlers: runs at the next Lua instruction, in a
 * state where raising an error is safe. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  luaL_error(L, got_sigterm ? "terminated" : "interrupted!");
}

/* Arms stop_hook on every kind of event, so it fires wherever Lua is. */
static void arm_stop_hook(void)
{
  lua_sethook(signal_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
}

/* SIGINT while Lua runs. */
static void on_sigint_lua(int sig)
{
  got_sigint = 1;
  set_signal(sig, SIG_DFL, NULL); /* a second Ctrl-C kills: C code may never return */
  arm_stop_hook();
}

/* The grace after a SIGTERM is over: die the default way. */
static void on_term_grace_over(int sig)
{
  (void)sig;
  set_signal(SIGTERM, SIG_DFL, NULL);
  raise(SIGTERM);
}

/* SIGTERM while Lua runs. */
static void on_sigterm_lua(int sig)
{
  got_sigterm = 1;
  set_signal(sig, SIG_DFL, NULL);
  set_signal(SIGALRM, on_term_grace_over, NULL);
  alarm(TERM_GRACE_S);
  arm_stop_hook();
}

/* SIGINT or SIGTERM at the prompt: the state is not ours (the control-plane
 * lock is released), so only a flag. */
static void on_signal_prompt(int sig)
{
  if (sig == SIGINT)
    got_sigint = 1;
  else
    got_sigterm = 1;
}

void main_catch_prompt(bool on)
{
  set_signal(SIGINT, on ? on_signal_prompt : SIG_DFL, NULL);
  set_signal(SIGTERM, on ? on_signal_prompt : SIG_DFL, NULL);
}

bool main_take_interrupt(void)
{
  bool was = got_sigint;
  got_sigint = 0;
  return was;
}

bool main_terminated(void)
{
  return got_sigterm;
}

/* ---- running chunks ---- */

/* Message handler: the error as a string, followed by a traceback. */
static int msghandler(lua_State *L)
{
  const char *msg = NULL;
  int sig = luavmm_interrupted();
  if (sig == SIGTERM)
    got_sigterm = 1;
  else if (sig != 0)
    vm_interrupted = 1;
  if (lua_type(L, 1) == LUA_TSTRING) {
    msg = lua_tostring(L, 1);
  } else if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
    msg = lua_tostring(L, -1);
  } else if (lua_type(L, 1) == LUA_TNUMBER) {
    msg = lua_tostring(L, 1);
  } else {
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main_call(lua_State *L, int narg, int nres)
{
  int base = lua_gettop(L) - narg; /* the function's slot */
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  signal_L = L;
  struct sigaction old_int, old_term;
  set_signal(SIGINT, on_sigint_lua, &old_int);
  set_signal(SIGTERM, on_sigterm_lua, &old_term);
  int status = lua_pcall(L, narg, nres, base);
  /* Back to what the caller had: the default, or the REPL's flags. After
   * a SIGTERM its default action stays, for the grace alarm. */
  sigaction(SIGINT, &old_int, NULL);
  if (!got_sigterm)
    sigaction(SIGTERM, &old_term, NULL);
  /* A signal that came after the chunk's last instruction left the hook
   * armed; it must not hit whatever runs next. A user's hook stays. */
  if (lua_gethook(L) == stop_hook)
    lua_sethook(L, NULL, 0, 0);
  lua_remove(L, base);
  return status;
}

void main_report(lua_State *L, int status, bool prefixed)
{
  if (status == LUA_OK)
    return;
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL)
    msg = "(error object is not a string)";
  if (prefixed)
    fprintf(stderr, "%s: ", PROGNAME);
  fprintf(stderr, "%s\n", msg);
  fflush(stderr);
  lua_pop(L, 1);
}

/* Runs the chunk that a load returning `status` left on the stack, or
 * reports why it did not load. */
static int run_loaded(lua_State *L, int status)
{
  if (status == LUA_OK)
    status = main_call(L, 0, 0);
  main_report(L, status, true);
  return status;
}

static int run_string(lua_State *L, const char *s, const char *name)
{
  return run_loaded(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int run_file(lua_State *L, const char *path)
{
  return run_loaded(L, luaL_loadfile(L, path));
}

/* ---- the command line ---- */

struct options {
  bool e, i, v, E, W;
  bool stats;        /* --stats: each VM prints its exit statistics when closed */
  int script;        /* argv index of the script, or argc when there is none */
  bool stdin_script; /* the script is "-" (not after "--"): stdin */
};

static void print_usage(const char *bad, bool needs_arg)
{
  if (needs_arg)
    fprintf(stderr, "%s: '%s' needs an argument\n", PROGNAME, bad);
  else
    fprintf(stderr, "%s: unrecognized option '%s'\n", PROGNAME, bad);
  fprintf(stderr,
          "usage: %s [options] [script [args]]\n"
          "Options:\n"
          "  -e stat   execute the Lua statement 'stat'\n"
          "  -i        enter the interactive prompt after running 'script'\n"
          "  -l mod    require library 'mod' into global 'mod'\n"
          "  -l g=mod  require library 'mod' into global 'g'\n"
          "  -v        show version information\n"
          "  -E        ignore environment variables (LUA_INIT, LUA_PATH, ...)\n"
          "  -W        turn warnings on\n"
          "  --stats   print each VM's exit statistics when it is closed\n"
          "  --        stop handling options\n"
          "  -         stop handling options and run stdin as the script\n"
          "The vmm module is loaded into the global 'vmm' before anything runs.\n",
          PROGNAME);
  fflush(stderr);
}

/* First pass over argv: checks the options and finds the script. Returns
 * false (after the usage message) on a bad option. -e and -l run in the
 * second pass, in order, once the state is ready. */
static bool parse_options(int argc, char **argv, struct options *o)
{
  memset(o, 0, sizeof *o);
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-')
      break; /* the script */
    switch (a[1]) {
    case '\0': /* "-": the script is stdin */
      o->stdin_script = true;
      o->script = i;
      return true;
    case '-':
      if (strcmp(a, "--stats") == 0) {
        o->stats = true;
        break;
      }
      if (a[2] != '\0') {
        print_usage(a, false);
        return false;
      }
      o->script = i + 1;
      return true;
    case 'E':
    case 'W':
    case 'i':
    case 'v':
      if (a[2] != '\0') {
        print_usage(a, false);
        return false;
      }
      if (a[1] == 'E')
        o->E = true;
      else if (a[1] == 'W')
        o->W = true;
      else if (a[1] == 'i')
        o->i = true;
      else
        o->v = true;
      break;
    case 'e':
    case 'l':
      if (a[1] == 'e')
        o->e = true;
      if (a[2] == '\0') {
        /* Like lua: a following option is a missing argument, not one. */
        if (i + 1 >= argc || argv[i + 1][0] == '-') {
          print_usage(a, true);
          return false;
        }
        i++;
      }
      break;
    default:
      print_usage(a, false);
      return false;
    }
  }
  o->script = i;
  return true;
}

/* The global `arg`: arg[0] is the script (the program when there is none),
 * the program and options below it, the script's arguments above. */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
  if (script >= argc)
    script = 0;
  lua_createtable(L, argc - script - 1 > 0 ? argc - script - 1 : 0, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, (lua_Integer)i - script);
  }
  lua_setglobal(L, "arg");
}

/* -l mod, -l g=mod: g = require(mod). Without '=', a suffix after '-' in
 * the name is not part of the global's name (lua's rule: -l mod-2.1). */
static int require_into_global(lua_State *L, const char *spec)
{
  const char *eq = strchr(spec, '=');
  const char *modname = eq != NULL ? eq + 1 : spec;
  size_t globlen = eq != NULL ? (size_t)(eq - spec) : strlen(spec);
  if (eq == NULL) {
    const char *mark = strchr(spec, '-');
    if (mark != NULL)
      globlen = (size_t)(mark - spec);
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = main_call(L, 1, 1);
  if (status == LUA_OK) {
    lua_pushlstring(L, spec, globlen);
    lua_insert(L, -2);
    lua_setglobal(L, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
  main_report(L, status, true);
  return status;
}

/* Second pass: runs -e and -l in the order given; -W already took effect. */
static int run_options(lua_State *L, char **argv, int script)
{
  for (int i = 1; i < script; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || (a[1] != 'e' && a[1] != 'l'))
      continue;
    const char *value = a[2] != '\0' ? a + 2 : argv[++i];
    int status = a[1] == 'e' ? run_string(L, value, "=(command line)")
                             : require_into_global(L, value);
    if (status != LUA_OK)
      return status;
  }
  return LUA_OK;
}

/* LUA_INIT_5_4, else LUA_INIT: "@file" runs the file, anything else is code. */
static int run_lua_init(lua_State *L)
{
  const char *name = "=" INIT_VAR;
  const char *init = getenv(INIT_VAR);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv("LUA_INIT");
  }
  if (init == NULL)
    return LUA_OK;
  if (init[0] == '@')
    return run_file(L, init + 1);
  return run_string(L, init, name);
}

/* Loads and runs the script at path (NULL: stdin) with the n strings in
 * args as `...`. */
static int run_script(lua_State *L, const char *path, char **args, int n)
{
  int status = luaL_loadfile(L, path);
  if (status == LUA_OK) {
    luaL_checkstack(L, n, "too many arguments to the script");
    for (int i = 0; i < n; i++)
      lua_pushstring(L, args[i]);
    status = main_call(L, n, 0);
  }
  main_report(L, status, true);
  return status;
}

/* ---- the vmm module ---- */

/* Prepends the Lua library folders that sit beside the executable to
 * package.path: <prefix>/lua (the source tree, with the program in build/)
 * and <prefix>/share/lua/5.4 (make install), where <prefix> is the folder
 * above the one holding the executable; and <prefix>/../lua for a
 * sanitizer build in build/san-<name>/. */
static void add_library_path(lua_State *L)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return;
  exe[n] = '\0';
  /* package.path cannot quote its separators; such a folder is skipped. */
  if (strpbrk(exe, ";?") != NULL)
    return;
  for (int up = 0; up < 2; up++) {
    char *slash = strrchr(exe, '/');
    if (slash == NULL)
      return;
    *slash = '\0';
  }
  char top[PATH_MAX];
  memcpy(top, exe, strlen(exe) + 1);
  char *slash = strrchr(top, '/');
  if (slash != NULL)
    *slash = '\0';
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;"
                     "%s/share/lua/5.4/?.lua;%s/share/lua/5.4/?/init.lua;"
                     "%s/lua/?.lua;%s/lua/?/init.lua;",
                  exe, exe, exe, exe, top, top);
  lua_getfield(L, -2, "path");
  lua_concat(L, 2);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
}

/* package.preload["vmm.core"], the library path, then vmm = require "vmm".
 * Loading the module also takes the control-plane lock for this thread. */
static int load_vmm(lua_State *L)
{
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, luaopen_vmm_core);
  lua_setfield(L, -2, "vmm.core");
  lua_pop(L, 1);
  add_library_path(L);
  return require_into_global(L, "vmm");
}

/* os.exit(code [, close]) with close defaulting to true: the state is
 * closed on the way out, so VMs are closed, their threads joined and
 * their statistics printed (--stats). os.exit(code, false) skips it. */
static int os_exit_closing(lua_State *L)
{
  if (lua_isnoneornil(L, 2)) {
    lua_settop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 0);
  return 0;
}

static void replace_os_exit(lua_State *L)
{
  lua_getglobal(L, "os");
  lua_getfield(L, -1, "exit");
  lua_pushcclosure(L, os_exit_closing, 1);
  lua_setfield(L, -2, "exit");
  lua_pop(L, 1);
}

/* ---- the program ---- */

static void print_version(void)
{
  printf("%s %s (%s)\n", PROGNAME, LUAVMM_VERSION, LUA_RELEASE);
  fflush(stdout);
}

/* Everything that touches the state, run protected so that even a memory
 * error is reported. Returns the exit status as an integer. */
static int run_program(lua_State *L)
{
  int argc = (int)lua_tointeger(L, 1);
  char **argv = lua_touserdata(L, 2);
  struct options o;
  lua_settop(L, 0);

  if (!parse_options(argc, argv, &o)) {
    lua_pushinteger(L, EXIT_FAILURE);
    return 1;
  }
  bool tty = isatty(STDIN_FILENO);
  bool has_script = o.script < argc;
  /* The REPL's banner already names the version. */
  bool repl = o.i || (!has_script && !o.e && !o.v && tty);
  if (o.v && !(repl && tty))
    print_version();

  if (o.E) {
    /* The package library reads this: LUA_PATH and LUA_CPATH are ignored. */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  replace_os_exit(L);
  create_arg_table(L, argc, argv, o.script);
  if (o.W)
    lua_warning(L, "@on", 0);

  int status = load_vmm(L);
  if (status == LUA_OK && o.stats)
    status = run_string(L, "vmm.stats_on_close(true)", "=--stats");
  if (status == LUA_OK && !o.E)
    status = run_lua_init(L);
  if (status == LUA_OK)
    status = run_options(L, argv, o.script);
  if (status == LUA_OK && has_script)
    status = run_script(L, o.stdin_script ? NULL : argv[o.script], argv + o.script + 1,
                        argc - o.script - 1);
  if (status == LUA_OK) {
    if (repl)
      repl_run(L);
    else if (!has_script && !o.e && !o.v)
      status = run_script(L, NULL, NULL, 0); /* stdin is not a terminal: a script */
  }

  int code = EXIT_SUCCESS;
  if (got_sigterm)
    code = EXIT_TERMINATED;
  else if (status != LUA_OK)
    code = got_sigint || vm_interrupted ? EXIT_INTERRUPTED : EXIT_FAILURE;
  lua_pushinteger(L, code);
  return 1;
}

int main(int argc, char **argv)
{
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create the Lua state: not enough memory\n", PROGNAME);
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, run_program);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int code = EXIT_FAILURE;
  if (status == LUA_OK)
    code = (int)lua_tointeger(L, -1);
  else
    main_report(L, status, true);
  /* Closes every VM and releases its fds; the control-plane lock is held. */
  lua_close(L);
  return code;
}
