/* The interactive loop of the luavmm program: read a statement, evaluate
 * it, print what it returns, and again.
 *
 * Each line is first tried as `return <line>`, so that an expression prints
 * its value; failing that, as a statement, reading continuation lines while
 * the parser says the input ended too soon. With a terminal, lines come from
 * libedit (editing, history in ~/.luavmm_history); otherwise from stdio,
 * with no prompts, so the loop can be driven from a pipe.
 *
 * While it waits for input the loop gives up the control-plane lock, so that
 * vCPU threads running in the background can call their Lua handlers. */
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <lauxlib.h>
#include <lua.h>

#include "repl.h"
#include "vmm.h"

#define PROMPT "luavmm> "
#define PROMPT_MORE ">> "
#define CHUNKNAME "=stdin"
#define HISTORY_FILE ".luavmm_history"
#define HISTORY_MAX 1000

/* What reading a line or a statement produced, besides a Lua load status. */
enum {
  READ_EOF = -1,  /* end of input (Ctrl-D), or SIGTERM */
  READ_INTR = -2, /* Ctrl-C: the input so far is dropped */
};

struct reader {
  bool tty;
  char *history; /* the history file's path, or NULL */
  char *buf;     /* getline's buffer, without a terminal */
  size_t cap;
};

/* Reads one line into *line (malloc'd, without its newline). Returns 0,
 * READ_EOF or READ_INTR. The control-plane lock is released meanwhile. */
static int read_line(lua_State *L, struct reader *r, const char *prompt, char **line)
{
  *line = NULL;
  main_take_interrupt(); /* a Ctrl-C before the prompt is not for this line */
  luavmm_unlock(L);
  if (r->tty) {
    *line = readline(prompt);
  } else {
    ssize_t n = getline(&r->buf, &r->cap, stdin);
    if (n >= 0) {
      if (n > 0 && r->buf[n - 1] == '\n')
        r->buf[n - 1] = '\0';
      *line = strdup(r->buf);
    }
  }
  luavmm_lock(L);

  if (*line != NULL)
    return 0;
  if (main_terminated())
    return READ_EOF;
  if (main_take_interrupt()) {
    clearerr(stdin); /* getline saw EINTR; later reads must not give up */
    return READ_INTR;
  }
  return READ_EOF;
}

/* Adds a statement to the history (terminal only, blank lines skipped). */
static void remember(struct reader *r, const char *text)
{
  if (r->tty && text[strspn(text, " \t\n")] != '\0')
    add_history(text);
}

/* A syntax error because the input stopped in the middle of a statement. */
static bool incomplete(lua_State *L, int status)
{
  if (status != LUA_ERRSYNTAX)
    return false;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char mark[] = "<eof>";
  size_t marklen = sizeof mark - 1;
  return msg != NULL && len >= marklen && strcmp(msg + len - marklen, mark) == 0;
}

/* Reads a statement and compiles it. Returns LUA_OK with the function
 * pushed, a load status with its message pushed, or READ_EOF / READ_INTR
 * with nothing pushed. */
static int read_statement(lua_State *L, struct reader *r)
{
  char *line;
  int got = read_line(L, r, PROMPT, &line);
  if (got != 0)
    return got;
  /* The statement's text; "=expr" is the old (Lua 5.1 to 5.3) spelling of
   * "return expr". */
  bool eq = line[0] == '=';
  lua_pushfstring(L, "%s%s", eq ? "return " : "", eq ? line + 1 : line);
  /* First as an expression, so that its value prints. */
  if (eq)
    lua_pushvalue(L, -1);
  else
    lua_pushfstring(L, "return %s", line);
  size_t len;
  const char *src = lua_tolstring(L, -1, &len);
  if (luaL_loadbuffer(L, src, len, CHUNKNAME) == LUA_OK) {
    remember(r, line);
    free(line);
    lua_replace(L, -3); /* the function where the statement's text was */
    lua_pop(L, 1);
    return LUA_OK;
  }
  free(line);
  lua_pop(L, 2); /* the error and the expression */

  /* A statement, perhaps over several lines: the text so far is at -1. */
  for (;;) {
    src = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, src, len, CHUNKNAME);
    if (!incomplete(L, status)) {
      remember(r, src);
      lua_remove(L, -2); /* the text: the function or the error stays */
      return status;
    }
    got = read_line(L, r, PROMPT_MORE, &line);
    if (got == READ_EOF && !main_terminated()) {
      remember(r, src);
      lua_remove(L, -2); /* report the "<eof>" error: the statement is cut */
      return LUA_ERRSYNTAX;
    }
    lua_pop(L, 1); /* the "<eof>" error */
    if (got != 0) {
      lua_pop(L, 1); /* the text */
      return got;
    }
    lua_pushliteral(L, "\n");
    lua_pushstring(L, line);
    free(line);
    lua_concat(L, 3);
  }
}

/* Calls the function at the top of the stack and prints what it returns
 * with the global print. */
static void evaluate(lua_State *L)
{
  int base = lua_gettop(L) - 1; /* below the function */
  int status = main_call(L, 0, LUA_MULTRET);
  if (status == LUA_OK && lua_gettop(L) > base) {
    int n = lua_gettop(L) - base;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, base + 1);
    status = main_call(L, n, 0);
    if (status != LUA_OK) {
      lua_pushfstring(L, "error calling 'print' (%s)", lua_tostring(L, -1));
      lua_remove(L, -2);
    }
  }
  main_report(L, status, false);
  lua_settop(L, base);
}

/* Opens libedit's history: loads $HOME/.luavmm_history when there is one. */
static void history_open(struct reader *r)
{
  rl_readline_name = "luavmm"; /* for "luavmm:" lines in ~/.editrc */
  using_history();
  stifle_history(HISTORY_MAX);
  const char *home = getenv("HOME");
  if (home == NULL || *home == '\0')
    return;
  size_t len = strlen(home) + 1 + sizeof HISTORY_FILE;
  r->history = malloc(len);
  if (r->history == NULL)
    return;
  snprintf(r->history, len, "%s/%s", home, HISTORY_FILE);
  read_history(r->history); /* a first run has none: not an error */
}

/* Saves the history; a file that cannot be written is skipped silently. */
static void history_close(struct reader *r)
{
  if (r->history != NULL)
    write_history(r->history);
  free(r->history);
  r->history = NULL;
}

void repl_run(lua_State *L)
{
  struct reader r = { .tty = isatty(STDIN_FILENO) };
  if (r.tty) {
    /* libedit decodes input by the locale: UTF-8 typed at the prompt. */
    setlocale(LC_CTYPE, "");
    history_open(&r);
    printf("luavmm %s (%s) \xe2\x80\x94 vmm is loaded; Ctrl-D to quit\n", LUAVMM_VERSION,
           LUA_RELEASE);
    fflush(stdout);
  }
  main_catch_prompt(true);
  int top = lua_gettop(L);
  while (!main_terminated()) {
    int status = read_statement(L, &r);
    if (status == READ_EOF)
      break;
    if (status == READ_INTR) {
      if (r.tty)
        fputs("\n", stdout); /* libedit left the cursor after the dropped line */
      fflush(stdout);
      continue;
    }
    if (status == LUA_OK)
      evaluate(L);
    else
      main_report(L, status, false);
    lua_settop(L, top);
  }
  main_catch_prompt(false);
  if (r.tty) {
    fputs("\n", stdout);
    fflush(stdout);
    history_close(&r);
  }
  free(r.buf);
}
